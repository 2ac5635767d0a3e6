/*
 * linalg.c -- matmul with NumPy semantics.
 *
 *   (K,) @ (K,)          -> ()          dot product
 *   (M, K) @ (K,)        -> (M,)        matrix-vector
 *   (K,) @ (K, N)        -> (N,)        vector-matrix
 *   (..., M, K) @ (..., K, N) -> (..., M, N), batch dims broadcast
 *
 * The arithmetic is done by tg_gemm_f32/f64 (kernels/gemm.c, the packed SIMD
 * kernel); transposed and strided operands are passed by strides, never
 * copied.
 */
#include "ops_internal.h"
#include "../kernels/gemm.h"

#include <stdlib.h>

_Static_assert(TG_MAX_DIMS <= TG_GEMM_MAX_BATCH_DIMS, "tg_gemm_batched takes every batch dim");


/* The product of matmul (tri < 0) or tri_matmul (tri a tg_gemm_tri):
 * checks, broadcasting, dtype promotion and the GEMM call; the caller
 * records it.  Returns the new tensor, or NULL with the error set. */
static tg_tensor *product(const char *who, tg_tensor *a, tg_tensor *b, int tri) {
    if (a->ndim == 0 || b->ndim == 0)
        return TG_FAIL(TG_ERR_VALUE,
                       "%s: input operand %d is a 0-d tensor (a scalar); use * to multiply "
                       "by a scalar",
                       who, a->ndim == 0 ? 0 : 1);
    if (!tg_dtype_is_float(a->dtype) || !tg_dtype_is_float(b->dtype))
        return TG_FAIL(TG_ERR_TYPE,
                       "%s: expected float32 or float64 operands, got %s and %s",
                       who, tg_dtype_name(a->dtype), tg_dtype_name(b->dtype));
    tg_dtype dt = tg_dtype_promote(a->dtype, b->dtype);
    /* promote 1-D operands to 2-D views */
    int na = a->ndim < 2 ? 2 : a->ndim, nb = b->ndim < 2 ? 2 : b->ndim;
    int64_t ash[TG_MAX_DIMS], ast[TG_MAX_DIMS], bsh[TG_MAX_DIMS], bst[TG_MAX_DIMS];
    if (a->ndim == 1) {
        ash[0] = 1; ast[0] = 0;
        ash[1] = a->shape[0]; ast[1] = a->strides[0];
    } else {
        memcpy(ash, a->shape, sizeof ash);
        memcpy(ast, a->strides, sizeof ast);
    }
    if (b->ndim == 1) {
        bsh[0] = b->shape[0]; bst[0] = b->strides[0];
        bsh[1] = 1; bst[1] = 0;
    } else {
        memcpy(bsh, b->shape, sizeof bsh);
        memcpy(bst, b->strides, sizeof bst);
    }
    int64_t M = ash[na - 2], K = ash[na - 1], K2 = bsh[nb - 2], N = bsh[nb - 1];
    if (K != K2)
        return TG_FAIL(TG_ERR_VALUE,
                       "%s: shapes %s and %s are not aligned: %lld (dim %d) != %lld (dim %d)",
                       who, tg__shp(a), tg__shp(b), (long long)K, a->ndim - 1, (long long)K2,
                       b->ndim == 1 ? 0 : b->ndim - 2);
    /* broadcast the batch dims */
    int nbatch;
    int64_t batch[TG_MAX_DIMS];
    if (tg__broadcast_shapes(who, na - 2, ash, nb - 2, bsh, &nbatch, batch))
        return TG_FAIL(TG_ERR_VALUE,
                       "%s: shapes %s and %s have batch dimensions %s and %s that cannot be "
                       "broadcast together",
                       who, tg__shp(a), tg__shp(b), tg__shp2(na - 2, ash), tg__shp2(nb - 2, bsh));
    int64_t oshape[TG_MAX_DIMS];
    int ond = 0;
    for (int i = 0; i < nbatch; i++) oshape[ond++] = batch[i];
    if (a->ndim != 1) oshape[ond++] = M;
    if (b->ndim != 1) oshape[ond++] = N;
    if (ond > TG_MAX_DIMS) return TG_FAIL(TG_ERR_VALUE, "%s: too many dimensions", who);
    tg_tensor *ac = tg__as_dtype(a, dt), *bc = ac ? tg__as_dtype(b, dt) : NULL;
    /* a converted operand (mixed dtypes) is a contiguous copy: use its strides */
    if (ac && ac != a) {
        if (a->ndim == 1) ast[1] = ac->strides[0];
        else memcpy(ast, ac->strides, sizeof ast);
    }
    if (bc && bc != b) {
        if (b->ndim == 1) bst[0] = bc->strides[0];
        else memcpy(bst, bc->strides, sizeof bst);
    }
    tg_tensor *out = bc ? tg_tensor_empty(ond, oshape, dt) : NULL;
    if (out && out->numel > 0) {
        /* batch strides (elements) of a and b, 0 where broadcast */
        int64_t sa[TG_MAX_DIMS], sb[TG_MAX_DIMS];
        for (int i = 0; i < nbatch; i++) {
            int ia = na - 2 - nbatch + i, ib = nb - 2 - nbatch + i;
            sa[i] = (ia < 0 || ash[ia] == 1) ? 0 : ast[ia];
            sb[i] = (ib < 0 || bsh[ib] == 1) ? 0 : bst[ib];
        }
        int64_t nb_total = 1;
        for (int i = 0; i < nbatch; i++) nb_total *= batch[i];
        char *pa0 = tg_tensor_data(ac), *pb0 = tg_tensor_data(bc), *po = tg_tensor_data(out);
        int64_t rsa = ast[na - 2], csa = ast[na - 1], rsb = bst[nb - 2], csb = bst[nb - 1];
        /* a batch of a times a b shared by every item (x @ W) is one tall
         * gemm when a's rows, over the whole batch, are evenly spaced in
         * memory (a contiguous a, or any view whose batch dims nest) */
        int64_t rs_fold = rsa;
        bool fold = nbatch > 0 && a->ndim > 2 && tri < 0; /* a triangle is per item */
        for (int i = 0; fold && i < nbatch; i++) fold = sb[i] == 0;
        if (fold) {
            int64_t len = M;
            for (int i = nbatch - 1; fold && i >= 0; i--) {
                if (batch[i] == 1) continue;
                if (len == 1) rs_fold = sa[i];
                else fold = sa[i] == len * rs_fold;
                len *= batch[i];
            }
        }
        void *kt = tg__kernel_begin(nb_total * M * N * K);
        if (fold) {
            int64_t Mt = M * nb_total;
            if (dt == TG_FLOAT32)
                tg_gemm_f32(Mt, N, K, 1.0f, (float *)pa0, rs_fold, csa, (float *)pb0, rsb, csb,
                            0.0f, (float *)po, N, 1);
            else
                tg_gemm_f64(Mt, N, K, 1.0, (double *)pa0, rs_fold, csa, (double *)pb0, rsb, csb,
                            0.0, (double *)po, N, 1);
        } else {
            /* one product per batch item: the batched gemm packs into one
             * pair of buffers per chunk of items and spreads the items over
             * the threads (kernels/gemm.c, tg_gemm_batched_f32) */
            int64_t sc[TG_MAX_DIMS], step = M * N;
            for (int i = nbatch - 1; i >= 0; i--) {
                sc[i] = step;
                step *= batch[i];
            }
            if (tri >= 0 && dt == TG_FLOAT32)
                tg_gemm_tri_batched_f32((tg_gemm_tri)tri, nbatch, batch, sa, sb, sc, M, N, K, 1.0f,
                                        (float *)pa0, rsa, csa, (float *)pb0, rsb, csb, 0.0f,
                                        (float *)po, N, 1);
            else if (tri >= 0)
                tg_gemm_tri_batched_f64((tg_gemm_tri)tri, nbatch, batch, sa, sb, sc, M, N, K, 1.0,
                                        (double *)pa0, rsa, csa, (double *)pb0, rsb, csb, 0.0,
                                        (double *)po, N, 1);
            else if (dt == TG_FLOAT32)
                tg_gemm_batched_f32(nbatch, batch, sa, sb, sc, M, N, K, 1.0f, (float *)pa0, rsa,
                                    csa, (float *)pb0, rsb, csb, 0.0f, (float *)po, N, 1);
            else
                tg_gemm_batched_f64(nbatch, batch, sa, sb, sc, M, N, K, 1.0, (double *)pa0, rsa,
                                    csa, (double *)pb0, rsb, csb, 0.0, (double *)po, N, 1);
        }
        tg__kernel_end(kt);
    }
    tg_tensor_release(ac);
    tg_tensor_release(bc);
    return out;
}

tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b) {
    return tg__record2(&tg_opdef_matmul, a, b, product("matmul", a, b, -1), 0);
}

/* x with a size-1 axis inserted at `axis` (a view). */
static tg_tensor *unsq(tg_tensor *x, int64_t axis) { return tg_unsqueeze(x, axis); }

/* Whether the matrices of x (its last two dims, both longer than 1) are
 * stored column by column: a transposed view of a row-major tensor. */
static bool col_major(const tg_tensor *x) {
    int n = x->ndim;
    return n >= 2 && x->shape[n - 1] > 1 && x->shape[n - 2] > 1 &&
           llabs(x->strides[n - 2]) < llabs(x->strides[n - 1]);
}

/* The gradient of a column-major operand in that operand's own memory
 * order: (g^T @ x)^T when g_left, else (x @ g^T)^T -- a transposed view of a
 * contiguous product (the dB branch below says why that pays). */
static tg_tensor *grad_in_own_order(tg_tensor *g, tg_tensor *x, bool g_left) {
    tg_tensor *gt = tg_transpose(g, -1, -2);
    tg_tensor *c = gt ? (g_left ? tg_matmul(gt, x) : tg_matmul(x, gt)) : NULL;
    tg_tensor *t = c ? tg_transpose(c, -1, -2) : NULL;
    tg_tensor_release(c);
    tg_tensor_release(gt);
    return t;
}

static tg_status matmul_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *a = tg_entry_saved(e, 0), *b = a ? tg_entry_saved(e, 1) : NULL;
    CHECK(b);
    /* work on 2-D+ versions: restore the dims that 1-D operands removed */
    tg_tensor *a2 = a->ndim == 1 ? unsq(a, 0) : (tg_tensor_retain(a), a);
    tg_tensor *b2 = b->ndim == 1 ? unsq(b, 1) : (tg_tensor_retain(b), b);
    tg_tensor *g2 = g;
    tg_tensor_retain(g2);
    if (a->ndim == 1 && g2) {
        tg_tensor *t = unsq(g2, g2->ndim - (b->ndim == 1 ? 0 : 1));
        tg_tensor_release(g2);
        g2 = t;
    }
    if (b->ndim == 1 && g2) {
        tg_tensor *t = unsq(g2, g2->ndim);
        tg_tensor_release(g2);
        g2 = t;
    }
    tg_status st = TG_OK;
    if (!a2 || !b2 || !g2) {
        st = tg_error_status();
        goto done;
    }
    if (tg_entry_needs_grad(e, 0)) {
        /* dA = dC B^T; for a transposed view A, as (B dC^T)^T (see dB) */
        tg_tensor *ga;
        if (a->ndim >= 2 && col_major(a2)) {
            ga = grad_in_own_order(g2, b2, false);
        } else {
            tg_tensor *bt = tg_transpose(b2, -1, -2);
            ga = bt ? tg_matmul(g2, bt) : NULL;
            tg_tensor_release(bt);
        }
        if (ga && a->ndim == 1) { /* (..., 1, K) -> (..., K) */
            tg_tensor *t = tg_squeeze(ga, (int64_t[]){-2}, 1);
            tg_tensor_release(ga);
            ga = t;
        }
        if (!ga) { st = tg_error_status(); goto done; }
        gi[0] = ga;
    }
    if (tg_entry_needs_grad(e, 1)) {
        /* dB = A^T dC */
        tg_tensor *gb;
        if (b2->ndim == 2 && a2->ndim > 2) {
            /* B shared by every batch item (x @ W with x (..., M, K)): dB is
             * the sum over the batch of A_i^T dC_i, which is ONE product of
             * the batch folded into the rows: (K, R) @ (R, N) with R = the
             * batch size times M.  Summing per-item products instead would
             * run one small GEMM per item into a (batch, K, N) temporary
             * and then reduce it (issue 16).  Reshape is a view for the
             * usual contiguous A and dC, a copy otherwise; all three ops are
             * recorded under create_graph, so double backward still works. */
            /* rows counted, not -1: a reshape to (-1, 0) is ambiguous when K or N is 0 */
            int64_t rows = 1;
            for (int d = 0; d < a2->ndim - 1; d++) rows *= a2->shape[d];
            int64_t ashape[2] = {rows, a2->shape[a2->ndim - 1]};
            int64_t gshape[2] = {rows, g2->shape[g2->ndim - 1]};
            tg_tensor *af = tg_reshape(a2, 2, ashape);
            tg_tensor *gf = af ? tg_reshape(g2, 2, gshape) : NULL;
            tg_tensor *at = gf ? tg_transpose(af, 0, 1) : NULL;
            gb = at ? tg_matmul(at, gf) : NULL;
            tg_tensor_release(at);
            tg_tensor_release(gf);
            tg_tensor_release(af);
        } else if (col_major(b2)) {
            /* B is a transposed view (k^T in attention's q @ k^T): compute
             * dB^T = dC^T A, contiguous, and hand back its transpose, a
             * gradient laid out in memory like B itself.  The GEMM computes
             * every element with the same sum in the same order either
             * way; what changes is that the gradient, sent back through the
             * permute that made B, arrives in B's own memory order instead
             * of needing a transposing copy (0.3 ms for each of the GPT
             * benchmark's (16, 4, 32, 64) key gradients). */
            gb = grad_in_own_order(g2, a2, true);
        } else {
            tg_tensor *at = tg_transpose(a2, -1, -2);
            gb = at ? tg_matmul(at, g2) : NULL;
            tg_tensor_release(at);
        }
        if (gb && b->ndim == 1) { /* (..., K, 1) -> (..., K) */
            tg_tensor *t = tg_squeeze(gb, (int64_t[]){-1}, 1);
            tg_tensor_release(gb);
            gb = t;
        }
        if (!gb) { st = tg_error_status(); goto done; }
        gi[1] = gb;
    }
done:
    tg_tensor_release(a2);
    tg_tensor_release(b2);
    tg_tensor_release(g2);
    return st;
}

static tg_tensor *apply_matmul(tg_tensor *const *in, int n, const tg_params *p) {
    (void)p;
    if (n != 2) return TG_FAIL(TG_ERR_VALUE, "apply: matmul takes 2 inputs");
    return tg_matmul(in[0], in[1]);
}
TG_DEFINE_OP(matmul, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_MATMUL, 2, 2, true},
             .forward = "C = A B", .forward_tex = "C = A B",
             .vjp = "dA = dC B^T, dB = A^T dC (batch dims summed when broadcast)",
             .vjp_tex = "\\bar A = \\bar C B^{\\top},\\quad \\bar B = A^{\\top} \\bar C",
             .doc = "Matrix product with NumPy semantics (1-D, 2-D, batched with broadcasting).",
             .backward = matmul_vjp, .apply = apply_matmul,
             .examples = "3x4,4x5;4,4x5;3x4,4;4,4;2x3x4,4x5;2x1x3x4,5x4x2;T3x4,T4x2;2x3x4,T4x5",
             .grad_out_tex = "\\bar C", .grad_in_tex = "\\bar A;\\bar B");

/* ===================================================================== */
/* tri_matmul: a product with a triangle, causal attention's two products */
/* ===================================================================== */

/* i0 = mode (tg_gemm_tri): 0 tril(A @ B), 1 triu(A @ B), 2 tril(A) @ B,
 * 3 triu(A) @ B, in the last two dims; batch dims broadcast as matmul's.
 * scaled_dot_product_attention(is_causal=True) computes its scores as
 * tril(q @ k^T) and its output as tril(P) @ v (P is 0 above the diagonal
 * anyway): the GEMM skips what the triangle drops, about half of each
 * product (kernels/gemm.c, tg_gemm_tri_batched_f32).  The VJPs are the
 * same four products: the gradient of a product with a triangular result
 * is a product with a triangular operand, and the other way round. */
tg_tensor *tg_tri_matmul(tg_tensor *a, tg_tensor *b, int64_t mode) {
    const char *who = "tri_matmul";
    if (!a || !b) return TG_FAIL(TG_ERR_VALUE, "%s: input is NULL", who);
    if (mode < 0 || mode >= TG_TRI_N_MODES)
        return TG_FAIL(TG_ERR_VALUE,
                       "%s: mode (i0) must be 0 tril(A @ B), 1 triu(A @ B), 2 tril(A) @ B or "
                       "3 triu(A) @ B, got %lld",
                       who, (long long)mode);
    if (a->ndim < 2 || b->ndim < 2)
        return TG_FAIL(TG_ERR_VALUE,
                       "%s: expected operands of at least 2 dims (..., M, K) and (..., K, N), got "
                       "%s and %s",
                       who, tg__shp(a), tg__shp(b));
    return tg__record2(&tg_opdef_tri_matmul, a, b, product(who, a, b, (int)mode), mode);
}

/* tri_matmul(x, y, mode)^T (a transposed view): dB of a triangular C. */
static tg_tensor *tri_transposed(tg_tensor *x, tg_tensor *y, int mode) {
    tg_tensor *p = tg_tri_matmul(x, y, mode);
    if (!p) return NULL;
    tg_tensor *r = tg_transpose(p, -1, -2);
    tg_tensor_release(p);
    return r;
}

static tg_status tri_matmul_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *a = tg_entry_saved(e, 0), *b = a ? tg_entry_saved(e, 1) : NULL;
    CHECK(b);
    int mode = (int)e->params.i[0];
    bool c_tri = mode == TG_TRI_LOWER_C || mode == TG_TRI_UPPER_C;
    bool lower = mode == TG_TRI_LOWER_C || mode == TG_TRI_LOWER_A;
    int same_a = lower ? TG_TRI_LOWER_A : TG_TRI_UPPER_A, same_c = lower ? TG_TRI_LOWER_C : TG_TRI_UPPER_C;
    int flip_a = lower ? TG_TRI_UPPER_A : TG_TRI_LOWER_A;
    tg_tensor *bt = NULL, *gt = NULL, *at = NULL;
    tg_status st = TG_OK;
    if (tg_entry_needs_grad(e, 0)) {
        /* C = tril(A B): dA = tril(dC) B^T.  C = tril(A) B: dA = tril(dC B^T). */
        bt = tg_transpose(b, -1, -2);
        gi[0] = bt ? tg_tri_matmul(g, bt, c_tri ? same_a : same_c) : NULL;
        if (!gi[0]) { st = tg_error_status(); goto done; }
    }
    if (tg_entry_needs_grad(e, 1)) {
        /* C = tril(A B): dB = A^T tril(dC) = (triu(dC^T) A)^T.
         * C = tril(A) B: dB = tril(A)^T dC = triu(A^T) dC. */
        if (c_tri) {
            gt = tg_transpose(g, -1, -2);
            gi[1] = gt ? tri_transposed(gt, a, flip_a) : NULL;
        } else {
            at = tg_transpose(a, -1, -2);
            gi[1] = at ? tg_tri_matmul(at, g, flip_a) : NULL;
        }
        if (!gi[1]) { st = tg_error_status(); goto done; }
    }
done:
    tg_tensor_release(bt);
    tg_tensor_release(gt);
    tg_tensor_release(at);
    return st;
}

static tg_tensor *apply_tri_matmul(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 2) return TG_FAIL(TG_ERR_VALUE, "apply: tri_matmul takes 2 inputs");
    return tg_tri_matmul(in[0], in[1], p->i[0]);
}
TG_DEFINE_OP(tri_matmul, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_MATMUL, 1, 2, true}, /* about half a matmul's */
             .forward = "C = tril(A B) | triu(A B) | tril(A) B | triu(A) B (i0 = 0..3)",
             .forward_tex = "C = \\operatorname{tril}(A B),\\ \\operatorname{triu}(A B),\\ "
                            "\\operatorname{tril}(A) B \\text{ or } \\operatorname{triu}(A) B",
             .vjp = "tril(A B): dA = tril(dC) B^T, dB = A^T tril(dC); tril(A) B: dA = tril(dC B^T), "
                    "dB = tril(A)^T dC (triu likewise)",
             .vjp_tex = "\\bar A = \\operatorname{tril}(\\bar C) B^{\\top} \\text{ or } "
                        "\\operatorname{tril}(\\bar C B^{\\top}),\\quad \\bar B = A^{\\top} "
                        "\\operatorname{tril}(\\bar C) \\text{ or } \\operatorname{tril}(A)^{\\top} "
                        "\\bar C \\text{ (triu likewise)}",
             .doc = "Matrix product with a triangle in the last two dims (i0: 0 tril(A @ B), 1 triu(A @ B), "
                    "2 tril(A) @ B, 3 triu(A) @ B; entries outside tril(A)/triu(A) are taken as 0 "
                    "whatever they hold); batch dims broadcast as in matmul. The GEMM skips what the "
                    "triangle drops: scaled_dot_product_attention's causal products.",
             .backward = tri_matmul_vjp, .apply = apply_tri_matmul,
             .examples = "4x4,4x4|i0=0;3x5,5x4|i0=1;4x3,3x5|i0=2;5x4,4x3|i0=3;2x3x4,4x3|i0=0;"
                         "2x4x4,1x4x3|i0=2;T4x5,5x4|i0=1;4x4,T4x3|i0=3",
             .grad_out_tex = "\\bar C", .grad_in_tex = "\\bar A;\\bar B");

/* ===================================================================== */
/* linear: y = x W^T + b, one entry on the tape                          */
/* ===================================================================== */

/* What nn.Linear computes.  As one op (instead of transpose, matmul, add)
 * it records one tape entry, adds the bias inside the same pass over y, and
 * its VJP writes dW = dY^T X straight into a contiguous (out, in) tensor:
 * the transposed gradient that the three-op version hands to the weight
 * would have to be copied into the weight's layout at every step. */
tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *b) {
    const char *who = "linear";
    if (!x || !w) return TG_FAIL(TG_ERR_VALUE, "linear: input or weight is NULL");
    if (!tg_dtype_is_float(x->dtype) || !tg_dtype_is_float(w->dtype) ||
        (b && !tg_dtype_is_float(b->dtype)))
        return TG_FAIL(TG_ERR_TYPE,
                       "linear: expected float32 or float64 input, weight and bias, got %s, %s "
                       "and %s",
                       tg_dtype_name(x->dtype), tg_dtype_name(w->dtype),
                       b ? tg_dtype_name(b->dtype) : "no bias");
    if (w->ndim != 2)
        return TG_FAIL(TG_ERR_VALUE,
                       "linear: weight must be 2-D (out_features, in_features), got shape %s",
                       tg__shp(w));
    if (x->ndim < 1)
        return TG_FAIL(TG_ERR_VALUE,
                       "linear: input must have shape (..., in_features), got a 0-d tensor");
    int64_t K = x->shape[x->ndim - 1], N = w->shape[0];
    if (K != w->shape[1])
        return TG_FAIL(TG_ERR_VALUE,
                       "linear: input shape %s has %lld features (last dim) but weight shape %s "
                       "expects %lld (dim 1)",
                       tg__shp(x), (long long)K, tg__shp(w), (long long)w->shape[1]);
    if (b && (b->ndim != 1 || b->shape[0] != N))
        return TG_FAIL(TG_ERR_VALUE,
                       "linear: bias has shape %s but weight shape %s has %lld output features "
                       "(expected shape (%lld,))",
                       tg__shp(b), tg__shp(w), (long long)N, (long long)N);
    tg_dtype dt = tg_dtype_promote(x->dtype, w->dtype);
    if (b) dt = tg_dtype_promote(dt, b->dtype);
    int64_t M = 1, oshape[TG_MAX_DIMS];
    for (int d = 0; d < x->ndim - 1; d++) {
        M *= x->shape[d];
        oshape[d] = x->shape[d];
    }
    oshape[x->ndim - 1] = N;
    /* X as an (M, K) matrix: 1-D and 2-D by their strides, more dims must be
     * contiguous (then the leading dims fold into rows) */
    tg_tensor *xc = tg__as_dtype(x, dt);
    if (xc && x->ndim > 2 && !tg_tensor_is_contiguous(xc)) {
        tg_tensor *t = tg__copy(xc);
        tg_tensor_release(xc);
        xc = t;
    }
    tg_tensor *wc = xc ? tg__as_dtype(w, dt) : NULL;
    tg_tensor *bc = (wc && b) ? tg__as_dtype(b, dt) : NULL;
    tg_tensor *out = (wc && (bc || !b)) ? tg_tensor_empty(x->ndim, oshape, dt) : NULL;
    if (out && out->numel > 0) {
        int64_t rsa = x->ndim == 2 ? xc->strides[0] : K, csa = xc->strides[xc->ndim - 1];
        if (x->ndim > 2) csa = 1;
        /* B = W^T: element (k, n) of B is W[n, k] */
        int64_t rsb = wc->strides[1], csb = wc->strides[0];
        char *px = tg_tensor_data(xc), *pw = tg_tensor_data(wc), *po = tg_tensor_data(out);
        void *kt = tg__kernel_begin(M * N * (K + 1));
        /* y = X W^T, then + b on each row (in the same pass over y) */
#define LINEAR_FORWARD(T, GEMM)                                                            \
    do {                                                                                   \
        T *o = (T *)po;                                                                    \
        GEMM(M, N, K, 1, (T *)px, rsa, csa, (T *)pw, rsb, csb, 0, o, N, 1);                \
        if (bc) {                                                                          \
            const T *bb = (const T *)tg_tensor_data(bc);                                   \
            int64_t bs = bc->strides[0];                                                   \
            for (int64_t i = 0; i < M; i++)                                                \
                for (int64_t j = 0; j < N; j++) o[i * N + j] += bb[j * bs];                \
        }                                                                                  \
    } while (0)
        if (dt == TG_FLOAT32) LINEAR_FORWARD(float, tg_gemm_f32);
        else LINEAR_FORWARD(double, tg_gemm_f64);
#undef LINEAR_FORWARD
        tg__kernel_end(kt);
    }
    tg_tensor_release(xc);
    tg_tensor_release(wc);
    tg_tensor_release(bc);
    (void)who;
    tg_tensor *in[3] = {x, w, b};
    tg_entry *e;
    out = tg__finish(&tg_opdef_linear, b ? 3 : 2, in, out, &e);
    if (e && (tg__save(e, x) || tg__save(e, w))) {
        tg_tensor_release(out);
        return NULL;
    }
    return out;
}

static tg_status linear_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = tg_entry_saved(e, 0), *w = x ? tg_entry_saved(e, 1) : NULL;
    CHECK(w);
    if (tg_entry_needs_grad(e, 0)) /* dX = dY W: (..., out) @ (out, in) */
        CHECK(gi[0] = tg_matmul(g, w));
    bool need_w = tg_entry_needs_grad(e, 1), need_b = tg_entry_needs_grad(e, 2);
    if (!need_w && !need_b) return TG_OK;
    /* dY and X as matrices of rows: (M, out) and (M, in) */
    int64_t gshape[2] = {-1, g->shape[g->ndim - 1]}, xshape[2] = {-1, x->shape[x->ndim - 1]};
    tg_tensor *g2 = tg_reshape(g, 2, gshape);
    CHECK(g2);
    tg_status st = TG_OK;
    if (need_w) { /* dW = dY^T X: (out, M) @ (M, in), contiguous (out, in) */
        tg_tensor *x2 = tg_reshape(x, 2, xshape);
        tg_tensor *gt = x2 ? tg_transpose(g2, 0, 1) : NULL;
        gi[1] = gt ? tg_matmul(gt, x2) : NULL;
        tg_tensor_release(gt);
        tg_tensor_release(x2);
        if (!gi[1]) st = tg_error_status();
    }
    if (!st && need_b) { /* db = column sums of dY */
        gi[2] = tg_sum(g2, (int64_t[]){0}, 1, false);
        if (!gi[2]) st = tg_error_status();
    }
    tg_tensor_release(g2);
    return st;
}

static tg_tensor *apply_linear(tg_tensor *const *in, int n, const tg_params *p) {
    (void)p;
    if (n != 2 && n != 3) return TG_FAIL(TG_ERR_VALUE, "linear: expected 2 or 3 inputs, got %d", n);
    return tg_linear(in[0], in[1], n == 3 ? in[2] : NULL);
}
TG_DEFINE_OP(linear, .arity = -1, .diff_mask = 7, .dtypes = "float32,float64",
             .functional = true,
             .flops = {TG_FLOPS_MATMUL, 2, 2, true},
             .forward = "y = x W^T + b", .forward_tex = "y = x W^{\\top} + b",
             .vjp = "dx = dy W, dW = dy^T x (rows of x and dy summed), db = sum of dy over rows",
             .vjp_tex = "\\bar x = \\bar y W,\\quad \\bar W = \\bar y^{\\top} x,\\quad "
                        "\\bar b = \\textstyle\\sum_{\\text{rows}} \\bar y",
             .doc = "Affine map of nn.Linear: x (..., in), W (out, in), optional b (out,); one tape "
                    "entry, dW written in W's layout.",
             .backward = linear_vjp, .apply = apply_linear,
             .examples = "3x4,5x4,5;2x3x4,5x4;T4x3,2x3,2;4,5x4,5;3x4,T5x4;2x2x3,4x3,4",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x;\\bar W;\\bar b");
