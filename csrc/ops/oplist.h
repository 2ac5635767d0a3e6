/*
 * oplist.h -- the op registry, one line per op.
 *
 * Included several times with different definitions of TG_OP (an X-macro):
 * it generates the op-id enum (internal.h) and the registry table
 * (registry.c) from this single list, so they can never disagree.  Adding an
 * op = one TG_DEFINE_OP block in an ops/ file + one line here; the tests and
 * the docs read the registry and cover it automatically.
 */
/* elementwise.c: binary with broadcasting */
TG_OP(add)
TG_OP(sub)
TG_OP(mul)
TG_OP(div)
TG_OP(pow)
TG_OP(maximum)
TG_OP(minimum)
TG_OP(eq)
TG_OP(ne)
TG_OP(lt)
TG_OP(le)
TG_OP(gt)
TG_OP(ge)
TG_OP(where)
/* elementwise.c: unary */
TG_OP(neg)
TG_OP(exp)
TG_OP(log)
TG_OP(sqrt)
TG_OP(abs)
TG_OP(sin)
TG_OP(cos)
TG_OP(tanh)
TG_OP(sigmoid)
TG_OP(relu)
TG_OP(leaky_relu)
TG_OP(gelu)
TG_OP(erf)
TG_OP(softplus)
TG_OP(clip)
TG_OP(cast)
/* reduce.c */
TG_OP(sum)
TG_OP(mean)
TG_OP(max)
TG_OP(min)
TG_OP(var)
TG_OP(logsumexp)
TG_OP(argmax)
TG_OP(argmin)
/* linalg.c */
TG_OP(matmul)
TG_OP(linear)
/* movement.c */
TG_OP(reshape)
TG_OP(permute)
TG_OP(broadcast_to)
TG_OP(contiguous)
TG_OP(slice)
TG_OP(slice_backward)
TG_OP(index_select)
TG_OP(index_add)
TG_OP(gather)
TG_OP(scatter_add)
TG_OP(concat)
TG_OP(pad)
/* nn.c */
TG_OP(softmax)
TG_OP(log_softmax)
TG_OP(cross_entropy)
TG_OP(nll_loss)
TG_OP(mse_loss)
TG_OP(bce_with_logits)
TG_OP(one_hot)
TG_OP(dropout)
/* conv.c */
TG_OP(conv2d)
TG_OP(conv2d_input_grad)
TG_OP(conv2d_weight_grad)
TG_OP(max_pool2d)
TG_OP(max_pool2d_backward)
TG_OP(avg_pool2d)
TG_OP(avg_pool2d_backward)
/* core/record.c: ops defined outside the library (tg_custom_record) */
TG_OP(custom)
