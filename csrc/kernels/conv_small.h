/*
 * conv_small.h -- direct float32 convolution for few input channels (the
 * first layer of an image network: 1-3 channels), forward and weight
 * gradient, vectorised along the output row (conv_small.c tells how;
 * csrc/ops/conv.c decides when).
 *
 * Stride 1, dilation 1, one group, any padding, kernels up to 8 wide.  All
 * tensors contiguous NCHW float32.  The functions split the work between
 * the pool threads (threadpool.h); the results are the same bits on any
 * number of threads and with any of the compiled instruction sets (fused
 * multiply-adds in a fixed order everywhere; the forward pass's are those
 * of gemm.c's SIMD kernels on the implicit GEMM's product).  Each
 * returns 0, or -1 when it could not allocate its scratch memory (nothing
 * useful was written: the caller takes another path).
 */
#ifndef TG_CONV_SMALL_H
#define TG_CONV_SMALL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Input (N, C, H, W), kernel (O, C, KH, KW), padding top/bottom/left/right,
 * output (N, O, OH, OW), OH = H + pt + pb - KH + 1 (OW likewise). */
typedef struct {
    int64_t N, C, H, W, O, KH, KW;
    int64_t pt, pb, pl, pr;
    int64_t OH, OW;
} tg_csmall_geom;

/* Whether the kernel handles these sizes (KW <= 8, sizes > 0, scratch of a
 * sane size). */
int tg_csmall_supported(const tg_csmall_geom *g);

/* y = conv2d(x, w) (+ b, may be NULL). */
int tg_csmall_conv_f32(const tg_csmall_geom *g, const float *x, const float *w, const float *b,
                       float *y);

/* dw (O, C, KH, KW) = the weight gradient for input x and output gradient
 * dy (N, O, OH, OW). */
int tg_csmall_weight_grad_f32(const tg_csmall_geom *g, const float *x, const float *dy, float *dw);

/* The instruction set in use ("avx512", "avx2" or "baseline"; chosen and
 * self-tested at the first call). */
const char *tg_csmall_isa(void);

#ifdef __cplusplus
}
#endif

#endif
