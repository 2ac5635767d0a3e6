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
TG_OP(div, CUSTOM) /* div(a, b, rounding_mode=): csrc/python/mathops.c */
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
TG_OP(gelu, CUSTOM) /* gelu(x, approximate=): csrc/python/mathops.c */
TG_OP(erf, UNARY)
TG_OP(softplus, CUSTOM) /* softplus(x, beta=1, threshold=20): csrc/python/mathops.c */
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
TG_OP(tri_matmul, INTERNAL) /* causal attention's products */
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
TG_OP(masked_softmax, INTERNAL)
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
TG_OP(logical_and, BINARY)
TG_OP(logical_or, BINARY)
TG_OP(logical_xor, BINARY)
TG_OP(logical_not, UNARY)
TG_OP(bitwise_and, BINARY)
TG_OP(bitwise_or, BINARY)
TG_OP(bitwise_xor, BINARY)
TG_OP(bitwise_not, UNARY)
TG_OP(left_shift, BINARY)
TG_OP(right_shift, BINARY)
TG_OP(isnan, UNARY)
TG_OP(isinf, UNARY)
TG_OP(isfinite, UNARY)
TG_OP(isclose, CUSTOM)
TG_OP(all, REDUCE)
TG_OP(any, REDUCE)

/* math.c: elementwise math (issue 14) */
TG_OP(tan, UNARY)
TG_OP(asin, UNARY)
TG_OP(acos, UNARY)
TG_OP(atan, UNARY)
TG_OP(sinh, UNARY)
TG_OP(cosh, UNARY)
TG_OP(asinh, UNARY)
TG_OP(acosh, UNARY)
TG_OP(atanh, UNARY)
TG_OP(log2, UNARY)
TG_OP(log10, UNARY)
TG_OP(log1p, UNARY)
TG_OP(expm1, UNARY)
TG_OP(exp2, UNARY)
TG_OP(rsqrt, UNARY)
TG_OP(reciprocal, UNARY)
TG_OP(square, UNARY)
TG_OP(floor, UNARY)
TG_OP(ceil, UNARY)
TG_OP(trunc, UNARY)
TG_OP(round, CUSTOM)
TG_OP(sign, UNARY)
TG_OP(atan2, BINARY)
TG_OP(copysign, BINARY)
TG_OP(logaddexp, BINARY)
TG_OP(hypot, BINARY)
TG_OP(fmod, BINARY)
TG_OP(remainder, BINARY)
TG_OP(floor_divide, BINARY)
TG_OP(trunc_divide, CUSTOM)
TG_OP(lerp, CUSTOM)
TG_OP(nan_to_num, CUSTOM)

/* activation.c: activations (issue 14) */
TG_OP(elu, CUSTOM)
TG_OP(selu, UNARY)
TG_OP(celu, CUSTOM)
TG_OP(hardtanh, CUSTOM)
TG_OP(relu6, UNARY)
TG_OP(hardsigmoid, UNARY)
TG_OP(hardswish, UNARY)
TG_OP(logsigmoid, UNARY)
TG_OP(softsign, UNARY)
TG_OP(mish, UNARY)
TG_OP(gelu_tanh, CUSTOM) /* gelu(x, approximate='tanh') */
TG_OP(softplus_beta, CUSTOM) /* softplus(x, beta, threshold) */
TG_OP(softmin, CUSTOM)
TG_OP(glu, CUSTOM)

/* scan.c: reductions, scans, sorting (issue 14) */
TG_OP(cumsum, CUSTOM)
TG_OP(cumprod, CUSTOM)
TG_OP(prod, REDUCE)
TG_OP(logcumsumexp, CUSTOM)
TG_OP(cummax, CUSTOM)
TG_OP(cummin, CUSTOM)
TG_OP(sort, CUSTOM)
TG_OP(argsort, CUSTOM)
TG_OP(topk, CUSTOM)
TG_OP(median, CUSTOM)
TG_OP(std, CUSTOM)
TG_OP(var_mean, CUSTOM)
TG_OP(std_mean, CUSTOM)
TG_OP(norm, CUSTOM)

/* shape.c: shape and indexing (issue 14) */
TG_OP(flip, CUSTOM)
TG_OP(roll, CUSTOM)
TG_OP(tril, CUSTOM)
TG_OP(triu, CUSTOM)
TG_OP(diagonal, CUSTOM)
TG_OP(diag, CUSTOM)
TG_OP(trace, CUSTOM)
TG_OP(repeat, CUSTOM)
TG_OP(tile, CUSTOM)
TG_OP(repeat_interleave, CUSTOM)
TG_OP(unflatten, CUSTOM)
TG_OP(nonzero, CUSTOM)
TG_OP(masked_select, CUSTOM)
TG_OP(masked_fill, CUSTOM)
TG_OP(scatter, CUSTOM)
TG_OP(scatter_reduce, CUSTOM)
TG_OP(einsum, CUSTOM)
TG_OP(unfold, CUSTOM)
TG_OP(pad_mode, CUSTOM)

/* conv.c: more convolutions, pooling, interpolation (issue 14) */
TG_OP(max_unpool2d, CUSTOM)
TG_OP(conv1d, CUSTOM)
TG_OP(conv_transpose2d, CUSTOM)
TG_OP(interpolate, CUSTOM)
TG_OP(adaptive_avg_pool2d, CUSTOM)

/* nn.c: normalization, attention, embedding, losses (issue 14) */
TG_OP(binary_cross_entropy, CUSTOM)
TG_OP(huber_loss, CUSTOM)
TG_OP(smooth_l1_loss, CUSTOM)
TG_OP(l1_loss, CUSTOM)
TG_OP(kl_div, CUSTOM)
TG_OP(embedding, CUSTOM)
TG_OP(layer_norm, CUSTOM)
TG_OP(group_norm, CUSTOM)
TG_OP(normalize, CUSTOM)
TG_OP(cosine_similarity, CUSTOM)
TG_OP(scaled_dot_product_attention, CUSTOM)

/* inplace.c: in-place ops on the tape (issue 14) */
TG_OP(copy_slices, INTERNAL)
TG_OP(as_strided, INTERNAL)

/* npfn: products and NumPy functions (issue 19) */
TG_OP(tensordot, CUSTOM)
TG_OP(dot, CUSTOM)
TG_OP(inner, BINARY)
TG_OP(outer, BINARY)
TG_OP(kron, BINARY)
TG_OP(cross, CUSTOM)
TG_OP(diff, CUSTOM)
TG_OP(fmax, BINARY)
TG_OP(fmin, BINARY)
TG_OP(logaddexp2, BINARY)
TG_OP(sinc, UNARY)
TG_OP(deg2rad, UNARY)
TG_OP(rad2deg, UNARY)

/* linalg.c: tg.linalg and more products (issue 19) */
TG_OP(linalg_inv, CUSTOM)
TG_OP(linalg_solve, CUSTOM)
TG_OP(linalg_det, CUSTOM)
TG_OP(linalg_slogdet, CUSTOM)
TG_OP(linalg_cholesky, CUSTOM)
TG_OP(linalg_eigh, CUSTOM)
TG_OP(linalg_qr, CUSTOM)
TG_OP(linalg_svd, CUSTOM)

/* core/record.c: ops defined outside the library (tg_custom_record) */
TG_OP(custom, INTERNAL)
