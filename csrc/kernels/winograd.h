/*
 * winograd.h -- Winograd minimal filtering for float32 convolutions with a
 * square kernel, stride 1, dilation 1, one group (winograd.c tells how;
 * csrc/ops/conv.c decides when).
 *
 * All tensors are contiguous NCHW float32.  The functions split the images
 * between the pool threads (threadpool.h); the results do not depend on the
 * number of threads, and the forward's (or input gradient's) result for an
 * image does not depend on the other images of the batch.  Each returns 0,
 * or -1 when it could not allocate its scratch memory (nothing useful was
 * written: the caller takes another path).
 */
#ifndef TG_WINOGRAD_H
#define TG_WINOGRAD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Input (N, C, H, W), kernel (O, C, r, r), padding top/bottom/left/right,
 * output (N, O, OH, OW) with OH = H + pt + pb - r + 1 (OW likewise);
 * m: the output tile (m x m outputs from (m+r-1) x (m+r-1) inputs). */
typedef struct {
    int64_t N, C, H, W, O, r;
    int64_t pt, pb, pl, pr;
    int64_t OH, OW;
    int m;
} tg_wino_geom;

/* Whether F(m x m, r x r) is built in (r = 5 with m = 2 or 3, r = 3 with
 * m = 2 or 4). */
int tg_wino_supported(int m, int r);

/* Scratch bytes one worker needs per image (0 if the sizes overflow):
 * callers refuse shapes whose buffers would be absurd. */
double tg_wino_bytes_per_image(const tg_wino_geom *g);

/* y = conv2d(x, w) (+ b, may be NULL).  flip = 1: the kernel used is w
 * given as (C, O, r, r) with its taps reversed and its two channel axes
 * swapped, i.e. y = conv2d_input_grad-style product (the transposed
 * convolution with stride 1 as a convolution).
 * Returns 0 when every output is finite; 1 when some output is inf or NaN
 * (every output is written; the caller computes the call again by the
 * direct path, which puts non-finite values exactly where the definition
 * does: see winograd.c, "Non-finite inputs"); -1 when the shape is not
 * supported or scratch memory ran out (the output is then undefined). */
int tg_wino_conv_f32(const tg_wino_geom *g, const float *x, const float *w, int flip,
                     const float *b, float *y);

/* dw (O, C, r, r) = the weight gradient of conv2d for input x and output
 * gradient dy (N, O, OH, OW), accumulated in a fixed number of partial
 * sums (from the shapes only) in a fixed order.  Returns 0, 1 or -1 as
 * tg_wino_conv_f32 does. */
int tg_wino_weight_grad_f32(const tg_wino_geom *g, const float *x, const float *dy, float *dw);

/* The instruction set whose transforms F(m x m, r x r) uses ("avx512",
 * "avx2" or "baseline"; chosen and self-tested at the first call), NULL if
 * it is not built in. */
const char *tg_wino_isa(int m, int r);

/* For tests: before any Winograd call, make the named SIMD build ("avx512"
 * or "avx2") of the transforms wrong on a remainder lane, so that its
 * self-test refuses it and the next build down is used.  0, or -1 (not a
 * SIMD build of this CPU family, or the choice is already made). */
int tg_wino_testing_break(const char *isa);

#ifdef __cplusplus
}
#endif

#endif
