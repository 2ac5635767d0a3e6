/*
 * oplist.h -- the op registry, one line per op.
 *
 * Included several times with different definitions of TG_OP (an X-macro):
 * it generates the op-id enum (internal.h), the registry table and the
 * signature table (registry.c), and the Python bindings (csrc/python/
 * opbind.c) from this single list, so they can never disagree.  Adding an
 * op = one TG_DEFINE_OP block in an ops/ file + one line here (+ its
 * prototype in tapegrad.h); the Python function and method, their
 * docstrings, the docs and the tests read the registry and follow.
 *
 * A composite op (made of other ops; .composite = true in its block, no VJP
 * of its own) is listed here like any other.
 *
 * TG_OP(name, SIG): SIG is the op's calling signature (tg_op_sig):
 *   UNARY    tg_tensor *tg_name(tg_tensor *x)
 *   BINARY   tg_tensor *tg_name(tg_tensor *a, tg_tensor *b)
 *   REDUCE   tg_tensor *tg_name(tg_tensor *x, const int64_t *axes, int naxes, bool keepdims)
 *   CUSTOM   anything else: bound by hand in csrc/python/
 *   INTERNAL used by VJPs and the engine; no Python function
 */
/* elementwise.c: binary with broadcasting */
TG_OP(add, BINARY)
TG_OP(sub, BINARY)
TG_OP(mul, BINARY)
TG_OP(div, BINARY)
TG_OP(pow, BINARY)
TG_OP(maximum, BINARY)
TG_OP(minimum, BINARY)
TG_OP(eq, BINARY)
TG_OP(ne, BINARY)
TG_OP(lt, BINARY)
TG_OP(le, BINARY)
TG_OP(gt, BINARY)
TG_OP(ge, BINARY)
TG_OP(where, CUSTOM)
/* elementwise.c: unary */
TG_OP(neg, UNARY)
TG_OP(exp, UNARY)
TG_OP(log, UNARY)
TG_OP(sqrt, UNARY)
TG_OP(abs, UNARY)
TG_OP(sin, UNARY)
TG_OP(cos, UNARY)
TG_OP(tanh, UNARY)
TG_OP(sigmoid, UNARY)
TG_OP(silu, UNARY)
TG_OP(relu, UNARY)
TG_OP(leaky_relu, CUSTOM)
TG_OP(gelu, UNARY)
TG_OP(erf, UNARY)
TG_OP(softplus, UNARY)
TG_OP(clip, CUSTOM)
TG_OP(cast, INTERNAL)
/* reduce.c */
TG_OP(sum, REDUCE)
TG_OP(mean, CUSTOM)
TG_OP(max, REDUCE)
TG_OP(min, REDUCE)
TG_OP(var, CUSTOM)
TG_OP(logsumexp, REDUCE)
TG_OP(argmax, CUSTOM)
TG_OP(argmin, CUSTOM)
/* linalg.c */
TG_OP(matmul, BINARY)
TG_OP(linear, CUSTOM)
/* movement.c */
TG_OP(reshape, CUSTOM)
TG_OP(permute, CUSTOM)
TG_OP(broadcast_to, CUSTOM)
TG_OP(contiguous, UNARY)
TG_OP(slice, INTERNAL)
TG_OP(slice_backward, INTERNAL)
TG_OP(index_select, CUSTOM)
TG_OP(index_add, INTERNAL)
TG_OP(gather, CUSTOM)
TG_OP(scatter_add, INTERNAL)
TG_OP(concat, CUSTOM)
TG_OP(pad, CUSTOM)
/* nn.c */
TG_OP(softmax, CUSTOM)
TG_OP(log_softmax, CUSTOM)
TG_OP(cross_entropy, CUSTOM)
TG_OP(nll_loss, CUSTOM)
TG_OP(mse_loss, CUSTOM)
TG_OP(bce_with_logits, CUSTOM)
TG_OP(one_hot, CUSTOM)
TG_OP(dropout, CUSTOM)
/* conv.c */
TG_OP(conv2d, CUSTOM)
TG_OP(conv2d_input_grad, INTERNAL)
TG_OP(conv2d_weight_grad, INTERNAL)
TG_OP(max_pool2d, CUSTOM)
TG_OP(max_pool2d_backward, INTERNAL)
TG_OP(avg_pool2d, CUSTOM)
TG_OP(avg_pool2d_backward, INTERNAL)
/* logic.c: bool/bitwise/logical ops and predicates (issue 14, dtypes) */

/* math.c: elementwise math (issue 14) */

/* activation.c: activations (issue 14) */

/* scan.c: reductions, scans, sorting (issue 14) */

/* shape.c: shape and indexing (issue 14) */

/* conv.c: more convolutions, pooling, interpolation (issue 14) */

/* nn.c: normalization, attention, embedding, losses (issue 14) */

/* inplace.c: in-place ops on the tape (issue 14) */
TG_OP(copy_slices, INTERNAL)
TG_OP(as_strided, INTERNAL)

/* linalg.c: tg.linalg and more products (issue 19) */

/* core/record.c: ops defined outside the library (tg_custom_record) */
TG_OP(custom, INTERNAL)
