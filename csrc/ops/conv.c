/*
 * conv.c -- 2-D convolution and pooling of NCHW tensors, with PyTorch's
 * semantics (cross-correlation, zero padding, floor rounding of the output
 * size, dilation, groups, padding that may differ before and after).
 *
 *   x (N, C, H, W)  *  w (O, C/G, KH, KW)  (+ b (O,))  ->  y (N, O, OH, OW)
 *   OH = (H + ph + ph1 - dh (KH - 1) - 1) / sh + 1   (same for OW)
 *
 * How the convolution is computed: as a GEMM on the image's windows.  For
 * one image, every window of x that the kernel visits is one column of a
 * matrix cols (C*KH*KW, OH*OW) (zeros where the window hangs over the
 * padding); the convolution is then a single matrix product with the
 * weight seen as a (O, C*KH*KW) matrix:
 *
 *   y_n (O, OH*OW) = w (O, C*KH*KW) @ cols_n (C*KH*KW, OH*OW)
 *
 * done by gemm.c's packed kernel.  The backward products are the same
 * matrices the other way round:
 *
 *   dx:  cols = w^T @ dy_n, then col2im adds each column back into its window
 *   dw:  dw  += dy_n @ cols_n^T        (summed over the images)
 *   db:  sum of dy over N, OH, OW (bias_grad: channels split between threads)
 *
 * Implicit GEMM (the forward product, and dw for kernels at least 4 wide).
 * cols is never formed:
 * gemm.c's packed kernel copies B into panels of kc rows x NR columns
 * before the micro-kernel reads them, and tg_gemm_packb_* (gemm.h) lets a
 * callback write those panels.  implicit_pack_* writes them straight from
 * the image, zero-padded once into a (C, Hp, Wp) copy so that no window
 * needs a bounds check: a row of the panel is a few runs of one image row
 * (forward: the panel's 32 output positions are 2-3 pieces of output rows)
 * or of kernel rows (dw: B = cols^T, the patches, 32 taps = 6-7 kernel rows
 * of 5).  With one block of A's rows (M = O <= 192 here), gemm.c packs each
 * micro-panel just before the micro-kernel uses it, while it is in L1.  The
 * panels hold the values pack_b would have copied from cols, and the rest
 * is tg_gemm_*'s kernel and blocking, so the bits are those of im2col +
 * tg_gemm_* (TAPEGRAD_CONV=im2col selects that path, for the tests and for
 * measuring; it is also the fallback when gemm.c declines: M or N = 1, tiny
 * products, no memory).  Measured on the MNIST CNN's two convolutions
 * (batch 32, one thread's CPU time, best of 15-25 calls of each path
 * interleaved in one process, load average 5-9 from the other sessions),
 * in ms, first with a plain loop copying the packer's runs, then with
 * copy_run's fixed-size copies (what is kept):
 *
 *                             implicit        im2col     PyTorch
 *   conv2 (16->32, 14x14)  forward  2.29-2.47 -> 2.14  2.69-2.98  1.39-1.56
 *                          dw       3.00-3.14 -> 2.88  3.31-3.57  1.56-1.67
 *   conv1 (1->16, 28x28)   forward  0.40-0.44 -> 0.38  0.46-0.49  0.29-0.38
 *                          dw       0.70-0.82 -> 0.73  0.84-0.97  0.42-0.50
 *
 * (implicit / im2col: 0.75 forward, 0.82 dw for conv2, 0.78 and 0.75 for
 * conv1), and the whole training step (one thread, the two paths
 * interleaved step by step, best of 40 steps): batch 32 11.93 ms against
 * 13.07 before copy_run (0.91), 11.66 against 13.89 after (0.84; batch 128,
 * 15 steps: 45.3 against 53.4, 0.85).  With PyTorch's step interleaved
 * too (thread CPU time, load average 11): 11.63 / 14.05 / 12.44 ms at
 * batch 32, 60.8 / 74.2 / 61.1 ms at batch 128 (implicit / im2col /
 * PyTorch; a busy machine slows PyTorch more than its quiet 9.3 ms).  Not kept: the dx product
 * with dy packed from the images' planes (instead of gathered into one
 * matrix for the batched GEMM): 1.04-1.07 times slower on conv2 and
 * 1.08-1.19 on conv1 in the same runs (the gather is only O/(C*KH*KW) of
 * the columns' size, and the packer's per-run copies are no faster than
 * pack_b's whole lines); memcpy calls for the packer's runs: dw 0.87 ->
 * 1.11 of im2col's time (a call per 5-float run).  perf on the step after
 * this (2 threads, loaded machine): 35 % micro-kernel, 17 % implicit_pack
 * (before copy_run), 8 % pack_a, 7 % dx_range (col2im), 5 % pooling; with
 * copy_run (1 thread): 34 % micro-kernel, 14 % implicit_pack, 7 % dx_range,
 * 7 % pack_a (mostly dw's A = dy_n, transposed by pack_lines' scalar loop
 * for the AVX-512 kernel's 8-row panels), 5 % pooling, 4 % memmove.  Next
 * candidates: a vector transposing pack of 8 lines in gemm.c (as
 * pack16_avx2 for 16), and col2im.
 *
 * The images are processed in parallel (threadpool.h), each worker with its
 * own cols buffer; dw is summed from a fixed number of partial sums, in a
 * fixed order, so the result does not depend on the number of threads.
 *
 * The forward and dx products take several images per GEMM (img_batch: up
 * to 8 images and about 4 MiB of columns, from the shapes only): cols of m
 * images side by side, (C*KH*KW, m*OH*OW), so that w is packed once per m
 * images instead of once per image and the product is m times wider (fewer
 * part-empty 32-column tiles: 196 columns are 7 tiles of which the last is
 * 1/8 full).  y goes through a (O, m*OH*OW) buffer and dy is gathered into
 * one, each copy O/(C*KH*KW) of the columns' size (8 % here).  Every element of y and of
 * cols is the same sum in the same order for any m (gemm.c cuts K from K
 * alone, and edge tiles use the full tiles' arithmetic), so the bits are
 * those of one image per GEMM.  Measured on the CNN's second convolution
 * (batch 32, one thread's CPU time, best of 15, interleaved with PyTorch in
 * the same process, three runs): forward 2.83 -> 2.61 ms, dx 2.79 -> 2.47
 * ms (PyTorch 1.31 and 1.30 ms: ratios 2.14 -> 2.01 and 2.15 -> 1.87).  On
 * the whole training step (batch 32, one thread) the gain is below the
 * noise between processes on the loaded machine; with the cap switched at
 * run time (a temporary knob, not kept) and the caps interleaved step by
 * step in one process, 60 steps each, two runs: best 12.21 / 12.11 ms with
 * one image per GEMM, 11.69 / 11.58 with up to 8 (medians 12.77 / 12.24 ->
 * 12.44 / 11.78), 3 and 6 images in between.  The byte cap matters: 16 MiB
 * (32 images, 10 MiB of columns, out of the 2 MiB L2) gave 2.96 / 2.56 ms.
 * On two threads the pool cuts a batch of 32 into 8 chunks, so 4 per GEMM.
 *
 * Where the time goes (the MNIST CNN's training step, batch 32, one core,
 * profiled with perf): about 40 % in the GEMM micro-kernel, 10 % packing
 * A, 12 % building the weight gradient's patches (im2row), 5 % col2im; the
 * second convolution (16 -> 32 channels, 14 x 14) is three quarters of it.  Its
 * products are skinny (M = 32 output channels, or K = 32 for dx), so the
 * copies around them weigh as much as a third of the arithmetic.  Tried and
 * not kept, measured in thread CPU time on that step: dw with im2col's
 * matrix as A (dw^T = cols @ dy^T) instead of the patches, and dw with the
 * patches and dy of several images side by side in one GEMM (K = m*OH*OW,
 * 1-4 MiB of patches): both within the noise (+-3 %) of one GEMM per image.
 * The second measured again after the forward and dx took several images
 * per GEMM, this time with the number of images switched at run time and
 * interleaved step by step in one process (60 of each): the CNN's second
 * convolution's forward + dw took 6.05, 6.04, 6.06, 6.03 ms for 1, 2, 4, 8
 * images per dw GEMM (and the step 11.55-11.70 ms for all four): no gain,
 * so dw keeps one GEMM per image (its K = OH*OW is already long enough for
 * the kernel, and the M = 32 x N = 400 result is written in the same tiles).
 * Also not kept: im2col copying its short rows (14 elements) with a loop
 * instead of memcpy (forward 2.82 -> 3.11 ms).  After the batching, perf
 * on the one-thread step (batch 32): 41 % micro-kernel, 15 % dw_range
 * (mostly im2row, inlined), 9 % packing, 5 % memmove (im2col rows and the
 * y/dy copies), 5 % pooling, 3 % im2col.  The implicit-GEMM packer
 * (above) then removed im2col and pack_b from the forward and dw products.
 *
 * Pooling splits its N*C planes between the threads.  The 2x2 window with
 * stride 2 has its own loop (maxpool2x2_*): four windows at a time with
 * SSE2, taps compared with masks instead of branches, which a random
 * comparison mispredicted half the time (2.1 ms -> 0.13 ms for the CNN's
 * first pool, batch 32); a row's last windows in a group overlapping the
 * previous one and the indices computed in vector registers too (the
 * second pool's rows of 7 left 3 windows to the scalar loop: 0.255 ->
 * 0.084 ms with indices, the first pool 0.254 -> 0.159 ms).
 *
 * Session 7 (one thread, batch 32, interleaved in one process, best of
 * 25-40; thread CPU time where the machine was loaded).  perf on the step:
 * 44 % micro-kernel, 17 % implicit_pack (34 % of the weight gradient, 20 %
 * of the forward), 8 % dx_range (col2im: 30 % of the input gradient), 4 %
 * memmove, 3 % pooling.  Kept: the weight gradient's 5-tap runs copied as
 * 8 floats (IMPLICIT_PACK): conv2's dw 2.86 -> 2.39 ms, conv1's 0.60 ->
 * 0.50.  Tried and not kept:
 *   - col2im as a gather (for one (c, kh) and output row, the KW taps added
 *     to a vector of dx in registers, the same order): 2.65 against 2.47 ms
 *     for conv2's input gradient (the scalar row ends, 6 of 14 columns
 *     with padding 2, cost more than the saved loads and stores);
 *   - the input gradient as a forward convolution of dy with the flipped,
 *     transposed weights (stride 1: no col2im, K = O*KH*KW): 2.60 against
 *     2.59 ms for conv2 (its B panels, 800 rows, are packed for only 16
 *     output channels), 3.5 against 0.65 ms for conv1 (one channel: M = 1);
 *   - images per GEMM re-measured with the implicit B: conv2 forward 2.35,
 *     2.20, 2.12, 2.11 ms and input gradient 2.85, 2.69, 2.57, 2.56 ms for
 *     1, 2, 4, 8; conv1's forward 0.33-0.35 ms for all (kept: up to 8);
 *   - the 2x2 max pooling's backward writing each window's 4 elements once
 *     (dy or +0 by bit masks on the index) instead of zeroing the plane and
 *     scattering: 0.232 against 0.094 ms for the first pool, 0.123 against
 *     0.048 for the second (the memset and the scatter are cheap).
 *
 * Winograd (session 8; csrc/kernels/winograd.c tells how it works).  Even
 * at the core's peak, a direct product for the CNN's second convolution
 * (480 of the step's 560 MFLOP) left the step above issue 16's 0.6 of
 * PyTorch: only fewer multiplications could get there.  float32 5x5
 * convolutions with stride 1, dilation 1, one group and at least
 * WINO_MIN_CHANNELS channels in and out now compute all three products
 * by F(3x3, 5x5) (wino_geom decides, from the shapes only; the input
 * gradient is the forward convolution of dy with the flipped kernel).
 * TAPEGRAD_CONV=implicit keeps the exact direct path, winograd2 /
 * winograd3 / winograd4 force a tile wherever it applies.  Measured (batch 32, one
 * thread, the paths interleaved in one process, best of 12; time relative
 * to the implicit path, F(2x2) / F(3x3)):
 *
 *   channels in -> out, size   forward      input grad   weight grad
 *    1 -> 16, 28x28  (conv1)   3.30 / 2.76  5.40 / 4.28  7.19 / 5.41
 *    4 ->  4, 14x14            1.12 / 0.99  0.85 / 1.00  2.66 / 1.00
 *    4 -> 16, 14x14            1.25 / 1.09  1.16 / 1.02  2.25 / 1.66
 *    8 ->  8, 14x14            0.73 / 0.65  0.48 / 0.43  1.19 / 0.93
 *   16 -> 32, 14x14  (conv2)   0.55 / 0.45  0.57 / 0.50  0.55 / 0.44
 *   32 -> 32, 14x14            0.49 / 0.41  0.38 / 0.32  0.44 / 0.36
 *   64 -> 64, 14x14            0.47 / 0.37  0.40 / 0.32  0.43 / 0.34
 *   32 -> 64,  7x7             0.78 / 0.66  0.54 / 0.51  0.66 / 0.54
 *
 * so the crossover is at about 8 channels (kept: both >= 8), one input
 * channel (conv1) loses by 3-7x (its products have K = 1 or N = 1), and
 * F(3x3) beats F(2x2) everywhere by 10-20 % although its 14 x 14 outputs
 * are 15 x 15 of tiles.  Its rounding is about 1.5 times F(2x2)'s (worst
 * seen 58 against 36 float32 epsilons of the window's sum |x||w|, both
 * far inside what training notices; tests/python/test_conv_winograd.py),
 * so F(3x3) is kept.  The training step (batch 32, one thread, the paths
 * and PyTorch interleaved step by step, best of 30, loaded machine): 9.58
 * ms implicit, 6.04 ms Winograd, PyTorch 10.72 ms (batch 128: 37.3, 24.4,
 * 36.4 ms).  benchmarks/cnn.py --torch after the transforms' two passes
 * and 4 dw parts (best of 15, loaded machine), tapegrad / PyTorch: batch 32
 * one thread 5.73 / 10.53 ms (0.54; implicit 0.91 in the same conditions),
 * two threads 3.85 / 5.83 (0.66; implicit 0.94); batch 128 one thread
 * 23.8 / 38.0 (0.63).  Tried on the way (conv2, batch 32, one thread): the
 * transforms written by gcc's vectoriser only after the loop over the
 * tiles was declared free of dependences (2.23 -> 1.35 ms forward: it had
 * stayed scalar); 1 -> 10 images per batch (4 MiB of scratch: forward 1.32
 * -> 1.12 ms); products by rows or by columns (winograd.c).
 *
 * 3x3 kernels (session 15) take the same code with F(4x4, 3x3) (36
 * multiplications per 16 outputs instead of 144) under the same rule.
 * Measured (ms, one thread, best of 15; forward / input grad / weight grad;
 * implicit -> F(2x2, 3x3) -> F(4x4, 3x3), PyTorch 2.13 in the same run):
 *
 *   (16, 64, 32x32) -> 64    12.7 13.9 17.7 -> 7.7 7.9 8.0 -> 5.2 5.3 5.6  (11.4 20.6 13.8)
 *   (32, 16, 32x32) -> 32    3.7 4.7 6.7 -> 3.1 3.9 3.7 -> 2.2 2.9 2.5     (3.1 3.4 4.0)
 *   (16, 128, 16x16) -> 128  12.0 13.8 13.4 -> 7.6 7.5 6.7 -> 4.1 4.2 4.6  (10.2 10.7 12.3)
 *   (32, 32, 28x28) -> 32    5.8 7.1 6.7 -> 3.6 3.7 4.0 -> 2.7 2.7 3.0     (4.5 5.1 5.1)
 *   (32, 8, 16x16) -> 8      0.19 0.35 0.39 -> 0.23 0.23 0.43 -> 0.17 0.18 0.26
 *
 * so F(4x4) is kept for 3x3 (WINO_TILE_3X3; its rounding: worst 55 float32
 * epsilons of the window's sum against F(2x2)'s 11, test_conv_winograd.py)
 * and the 8-channel crossover holds.  The weight gradient's partial sums
 * live in the transform domain ((m+r-1)^2 x O x C floats, rewritten by every
 * batch): (16, 192, 16x16) -> 192 took 21.6 ms against the implicit GEMM's
 * 27.9 (5.1 MiB of sums), (16, 256, 8x8) -> 256 27.3 against 14.6 (9 MiB),
 * 5x5 with 256 channels 48.7 against 40.8 (12 MiB), while 2.3-3.1 MiB still
 * gained 3x: the default weight gradient keeps Winograd up to
 * WINO_DW_MAX_BYTES (4 MiB).
 *
 * Few input channels (session 9; csrc/kernels/conv_small.c tells how).
 * The CNN's first convolution (1 -> 16, 5x5, padding 2, 28x28) as a GEMM
 * has K = 25 (forward) or M = 16, N = 25 (weight gradient): the implicit
 * path ran it at 53 and 36 GFLOP/s, and Winograd is 3-7x slower still
 * (table above).  float32 convolutions with stride 1, dilation 1, one
 * group, kernels up to 8 wide and at most SMALL_MAX_CHANNELS input
 * channels now compute the forward pass and the weight gradient by a
 * direct kernel along the output row (16 outputs x 16 output channels in
 * AVX-512 registers; dw: 4 output channels x 5 taps of 16 lanes); the input
 * gradient keeps the GEMM (an image needs none).  TAPEGRAD_CONV=small
 * forces it wherever it applies, implicit / im2col never use it.  Its
 * forward outputs are the GEMM's bits (the same FMAs in the same order);
 * its weight gradient differs in rounding only (per-image lane sums, then
 * over the images: 7.6e-5 against the GEMM's 1.1e-4 worst error from
 * float64 on conv1 at batch 32).  Measured (batch 32 unless said, 5x5,
 * padding 2, the paths interleaved in one process, best of 25-60, ms,
 * loaded machine; dw = forward + dw minus forward, bias-free):
 *
 *   C -> O, size           threads   direct fwd / dw     implicit fwd / dw
 *   1 -> 16, 28x28 (conv1)    1       0.228 / 0.233        0.344 / 0.485
 *   1 -> 16, 28x28 (conv1)    2       0.127 / 0.140        0.172 / 0.247
 *   1 -> 16, 28x28, b128      1       1.05  / 1.27         1.49  / 2.14
 *   2 -> 16, 28x28            1       0.47  / 0.57         0.71  / 0.97
 *   3 -> 16, 28x28            1       0.67  / 0.79         0.90  / 1.33
 *   4 -> 16, 28x28            1       0.88  / 1.08         1.23  / 1.77
 *   6 -> 16, 28x28            1       1.36  / 1.60         1.78  / 2.38
 *   3 -> 64, 32x32            1       3.16  / 3.72         3.85  / 8.27
 *   1 ->  6, 32x32            1       0.26  / 0.13         0.29  / 0.53
 *
 * (the forward at about 86 % of the 2 x 28-of-32-lane chunks' FMA bound;
 * unrolling the kernel row's taps made no difference).  It wins up to 6
 * channels in these runs; SMALL_MAX_CHANNELS is 4, where the margin is
 * still 30 %, and Winograd takes over from 8.
 *
 * Second derivatives.  The VJPs are ops too.  conv2d_input_grad(dy, w) (dx,
 * a transposed convolution) and conv2d_weight_grad(x, dy) (dw) are
 * registered ops; all three are bilinear and adjoint to one another, so the
 * VJP of each is again one of the three:
 *
 *   conv2d(x, w):              dx = input_grad(dy, w),   dw = weight_grad(x, dy)
 *   input_grad(g, w) = dx:     dg = conv2d(u, w),        dw = weight_grad(u, g)
 *   weight_grad(x, g) = dw:    dx = input_grad(g, v),    dg = conv2d(x, v)
 *
 * (u, v: the gradients flowing into dx and dw).  Pooling works the same way:
 * max_pool2d saves the position of each window's maximum and its VJP is the
 * op max_pool2d_backward (scatter-add to those positions), whose VJP is a
 * gather; avg_pool2d and avg_pool2d_backward are each other's VJP.
 *
 * Dilation moves the taps of a window apart (tap k reads input k*d), which
 * changes only the offsets im2col/col2im copy from.  Groups cut the channels
 * into G blocks: the GEMMs run once per group on contiguous blocks of w,
 * cols, y and dy (one call with the whole matrices when G == 1, the path
 * without groups).  All geometry lives in one 9-number parameter list (see
 * CV_*), stored in each entry, so that the three ops stay adjoint for every
 * combination.
 *
 * Composites at the end of the file: conv1d (conv2d on H = 1),
 * conv_transpose2d (conv2d_input_grad with PyTorch's interface),
 * max_unpool2d (max_pool2d_backward), interpolate (index_select, mul, add)
 * and adaptive_avg_pool2d (two matmuls with averaging matrices).
 */
#include "ops_internal.h"
#include "../kernels/scratch.h"
#include "../kernels/gemm.h"
#include "../kernels/threadpool.h"
#include "../kernels/platform.h"
#include "../kernels/winograd.h"
#include "../kernels/conv_small.h"

#include <math.h>
#include <stdlib.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "../kernels/compiler.h"
#include "../kernels/dispatch.h"
#ifdef TG_X86_INTRIN
#include <immintrin.h>
#endif


/* Work (multiply-adds) below which a parallel loop is not worth waking the
 * pool for; a chunk of images gets at least this much. */
#define CONV_MIN_WORK_PER_CHUNK 262144.0
/* The same for pooling, whose work (window taps and input elements) costs
 * a few times less than a convolution's multiply-adds would suggest only in
 * GEMM terms: a tap is a compare, a plane's backward a memset and a
 * scatter.  At 262144 the MNIST CNN's second pool (1024 planes of 14 x 14)
 * was one chunk, its forward and backward serial on two threads; 16384 taps
 * is about 15 us of work, several times the cost of waking a worker. */
#define POOL_MIN_WORK_PER_CHUNK 16384.0
/* dw is accumulated in at most this many partial sums (see weight_grad). */
#define CONV_MAX_DW_PARTS 8

/* ===================================================================== */
/* Geometry                                                               */
/* ===================================================================== */

/* The shape of one convolution or pooling: input (N, C, H, W), window
 * (KH, KW), stride, padding before (ph, pw: top, left) and after (ph1, pw1:
 * bottom, right), dilation (dh, dw: the distance between two taps of the
 * window), groups G (input channels C = G*Cg, output channels O = G*Og, each
 * group of Og outputs sees its own Cg inputs), output (OH, OW).  O: output
 * channels of a convolution (= C for pooling). */
typedef struct {
    int64_t N, C, H, W;
    int64_t O, KH, KW;
    int64_t sh, sw, ph, pw;
    int64_t OH, OW;
    int64_t ph1, pw1, dh, dw, G;
    int64_t count_pad, divisor; /* average pooling: count_include_pad, divisor_override (0: none) */
} geom;

/* The geometry parameters of the three convolution ops, in the order of
 * their params.ints: stride (h, w), padding top, left, dilation (h, w),
 * groups, padding bottom, right. */
enum { CV_SH, CV_SW, CV_PH, CV_PW, CV_DH, CV_DW, CV_G, CV_PH1, CV_PW1, CV_NPARAMS };

/* Fill g from the input shape xs (4 sizes), the window and the convolution
 * parameters cv (CV_NPARAMS values); checks the values and that the
 * (dilated) window fits in the padded input.  TG_ERR_VALUE naming `who`
 * otherwise. */
static tg_status make_geom(const char *who, const int64_t *xs, int64_t O, int64_t KH, int64_t KW,
                           const int64_t *cv, geom *g) {
    int64_t sh = cv[CV_SH], sw = cv[CV_SW], ph = cv[CV_PH], pw = cv[CV_PW];
    int64_t ph1 = cv[CV_PH1], pw1 = cv[CV_PW1], dh = cv[CV_DH], dw = cv[CV_DW];
    if (sh <= 0 || sw <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: stride must be positive, got (%lld, %lld)", who,
                            (long long)sh, (long long)sw);
    if (ph < 0 || pw < 0 || ph1 < 0 || pw1 < 0) {
        if (ph == ph1 && pw == pw1)
            return tg_error_set(TG_ERR_VALUE, "%s: padding must be non-negative, got (%lld, %lld)",
                                who, (long long)ph, (long long)pw);
        return tg_error_set(TG_ERR_VALUE, "%s: padding must be non-negative, got (top %lld, bottom "
                            "%lld, left %lld, right %lld)", who, (long long)ph, (long long)ph1,
                            (long long)pw, (long long)pw1);
    }
    if (dh <= 0 || dw <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: dilation must be positive, got (%lld, %lld)", who,
                            (long long)dh, (long long)dw);
    if (KH <= 0 || KW <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: kernel size must be positive, got (%lld, %lld)", who,
                            (long long)KH, (long long)KW);
    int64_t Hp, Wp, EKH, EKW; /* padded input, dilated kernel */
    if (__builtin_add_overflow(ph, ph1, &Hp) || __builtin_add_overflow(Hp, xs[2], &Hp) ||
        __builtin_add_overflow(pw, pw1, &Wp) || __builtin_add_overflow(Wp, xs[3], &Wp))
        return tg_error_set(TG_ERR_VALUE, "%s: padding (%lld, %lld) is out of range (the padded "
                            "size overflows int64)", who, (long long)ph, (long long)pw);
    if (__builtin_mul_overflow(KH - 1, dh, &EKH) || __builtin_add_overflow(EKH, 1, &EKH) ||
        __builtin_mul_overflow(KW - 1, dw, &EKW) || __builtin_add_overflow(EKW, 1, &EKW))
        return tg_error_set(TG_ERR_VALUE, "%s: dilation (%lld, %lld) is out of range for a (%lld, "
                            "%lld) kernel", who, (long long)dh, (long long)dw, (long long)KH,
                            (long long)KW);
    if (EKH > Hp || EKW > Wp) {
        if (dh == 1 && dw == 1)
            return tg_error_set(TG_ERR_VALUE,
                                "%s: kernel size (%lld, %lld) is larger than the padded input size "
                                "(%lld, %lld) (input shape %s, padding (%lld, %lld))",
                                who, (long long)KH, (long long)KW, (long long)Hp, (long long)Wp,
                                tg__shp2(4, xs), (long long)ph, (long long)pw);
        return tg_error_set(TG_ERR_VALUE,
                            "%s: kernel size (%lld, %lld) with dilation (%lld, %lld) spans (%lld, "
                            "%lld), larger than the padded input size (%lld, %lld) (input shape %s, "
                            "padding (%lld, %lld))",
                            who, (long long)KH, (long long)KW, (long long)dh, (long long)dw,
                            (long long)EKH, (long long)EKW, (long long)Hp, (long long)Wp,
                            tg__shp2(4, xs), (long long)ph, (long long)pw);
    }
    *g = (geom){.N = xs[0], .C = xs[1], .H = xs[2], .W = xs[3], .O = O, .KH = KH, .KW = KW,
                .sh = sh, .sw = sw, .ph = ph, .pw = pw,
                .OH = (Hp - EKH) / sh + 1, .OW = (Wp - EKW) / sw + 1,
                .ph1 = ph1, .pw1 = pw1, .dh = dh, .dw = dw, .G = cv[CV_G]};
    /* the per-image im2col buffer (C*KH*KW, OH*OW) in float64 must be addressable */
    int64_t n;
    if (__builtin_mul_overflow(g->C, KH, &n) || __builtin_mul_overflow(n, KW, &n) ||
        __builtin_mul_overflow(n, g->OH, &n) || __builtin_mul_overflow(n, g->OW, &n) ||
        __builtin_mul_overflow(n, (int64_t)sizeof(double), &n) ||
        __builtin_mul_overflow(g->OH, g->OW, &n) || __builtin_mul_overflow(n, O, &n)) {
        if (ph > xs[2] || pw > xs[3] || ph1 > xs[2] || pw1 > xs[3]) /* the padding makes it huge */
            return tg_error_set(TG_ERR_VALUE,
                                "%s: padding (%lld, %lld) is out of range for input %s with a "
                                "(%lld, %lld) kernel: the output would have (%lld, %lld) positions "
                                "per channel, too many to compute (expected a padding of at most "
                                "a few kernel sizes)",
                                who, (long long)ph, (long long)pw, tg__shp2(4, xs), (long long)KH,
                                (long long)KW, (long long)g->OH, (long long)g->OW);
        return tg_error_set(TG_ERR_MEMORY, "%s: input %s with a (%lld, %lld) kernel is too large", who,
                            tg__shp2(4, xs), (long long)KH, (long long)KW);
    }
    return TG_OK;
}

/* The outputs o in [0, on) whose window tap k lands inside [0, n):
 * 0 <= o*s - p + k < n  <=>  o in [*o0, *o1). */
static void valid_range(int64_t k, int64_t p, int64_t s, int64_t n, int64_t on, int64_t *o0,
                        int64_t *o1) {
    int64_t lo = p - k, hi = n + p - k;
    /* ceil(v / s) for v > 0 as (v - 1) / s + 1: no overflow for any stride */
    int64_t a = lo <= 0 ? 0 : (lo - 1) / s + 1;
    int64_t b = hi <= 0 ? 0 : (hi - 1) / s + 1;
    if (b > on) b = on;
    if (a > b) a = b;
    *o0 = a;
    *o1 = b;
}

/* A 1x1 window with stride 1 and no padding: the image itself is cols. */
static bool is_pointwise(const geom *g) {
    return g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
           g->ph1 == 0 && g->pw1 == 0;
}

/* x converted to dt and made C-contiguous (a new reference; x itself when
 * it already is).  No autograd. */
static tg_tensor *dense(tg_tensor *x, tg_dtype dt) {
    tg_tensor *c = tg__as_dtype(x, dt);
    if (!c || tg_tensor_is_contiguous(c)) return c;
    tg_tensor *d = tg__copy(c);
    tg_tensor_release(c);
    return d;
}

/* Scratch memory for worker threads (64-byte aligned; NULL on failure).
 * Not tg__alloc: that one reports errors in the caller's thread state. */
static void *scratch(size_t nbytes) { return tg_scratch_alloc_slack(nbytes); }

/* ===================================================================== */
/* Kernels: im2col, col2im, pooling loops (float and double)              */
/* ===================================================================== */

#ifdef TG_X86_INTRIN
/* Whether the AVX2 loops below (the 2x2 pooling, stride-2 packing and col2im) run:
 * tg_cpu_has (TAPEGRAD_DISABLE_CPU_FEATURES), read once. */
static bool cpu_avx2(void) {
    static tg_atomic_int st; /* 0 unknown, 1 yes, 2 no */
    int s = tg_atomic_load_acquire_int(&st);
    if (!s) {
        s = tg_cpu_has(TG_CPU_AVX2) ? 1 : 2;
        tg_atomic_store_release_int(&st, s);
    }
    return s == 1;
}

/* xr[2 i] += r[i] for i < n, 8 at a time with AVX2; returns how many were
 * done (the caller's scalar loop does the rest, at least the last one).
 * Each even element gets the one rounded add the scalar loop gives it (r
 * spread to the even lanes, added, the sums blended in), and the odd
 * elements between are stored back unchanged, never added to (x + 0 would
 * turn -0 into +0).  The last vector ends before the last element, so no
 * element past the row's span is touched: the next image may belong to
 * another thread.  col2im with stride 2 (conv_transpose2d with stride 2,
 * the input gradient of a stride-2 convolution) spent most of its time in
 * the scalar scatter.  Not kept: the row's last values by masked loads and
 * stores, which made conv_transpose2d 1.3 times slower (vmaskmovps stores
 * are slow on this AMD core). */
TG_TARGET("avx2")
static int64_t add_stride2_avx2_f32(float *xr, const float *r, int64_t n) {
    const __m256i lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256i hi = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    int64_t i = 0;
    for (; i + 9 <= n; i += 8) {
        __m256 rv = _mm256_loadu_ps(r + i);
        __m256 x0 = _mm256_loadu_ps(xr + 2 * i), x1 = _mm256_loadu_ps(xr + 2 * i + 8);
        __m256 s0 = _mm256_add_ps(x0, _mm256_permutevar8x32_ps(rv, lo));
        __m256 s1 = _mm256_add_ps(x1, _mm256_permutevar8x32_ps(rv, hi));
        _mm256_storeu_ps(xr + 2 * i, _mm256_blend_ps(x0, s0, 0x55));
        _mm256_storeu_ps(xr + 2 * i + 8, _mm256_blend_ps(x1, s1, 0x55));
    }
    return i;
}

/* d[i] = q[2 i] for i < n, 8 at a time with AVX2 (two loads, the even
 * lanes shuffled together: pure copies, the same values); returns how many
 * were done.  A vector reads q up to q[2 i + 15], one past the last value it
 * needs: with `slack` (the padded scratch copy, 64 spare bytes after its
 * end) up to the last value of the run, else ending one value earlier so
 * that nothing past the run is read.  The forward pass of a stride-2
 * convolution packs its windows this way (the implicit GEMM's runs). */
TG_TARGET("avx2")
static int64_t gather_stride2_avx2_f32(float *d, const float *q, int64_t n, bool slack) {
    int64_t i = 0, stop = slack ? n - 8 : n - 9;
    for (; i <= stop; i += 8) {
        __m256 a = _mm256_loadu_ps(q + 2 * i), b = _mm256_loadu_ps(q + 2 * i + 8);
        __m256 t = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
        t = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
        _mm256_storeu_ps(d + i, t);
    }
    return i;
}
#endif

/* d[i] = q[i * s] for i < n (the implicit GEMM's strided runs); slack: q's
 * buffer has 64 bytes to spare after the run's end. */
static inline void gather_strided_f32(float *d, const float *q, int32_t n, int64_t s, bool slack) {
    int64_t i = 0;
#ifdef TG_X86_INTRIN
    if (s == 2 && n >= 8 && cpu_avx2()) i = gather_stride2_avx2_f32(d, q, n, slack);
#endif
    for (; i < n; i++) d[i] = q[i * s];
}
static inline void gather_strided_f64(double *d, const double *q, int32_t n, int64_t s, bool slack) {
    (void)slack;
    for (int32_t i = 0; i < n; i++) d[i] = q[i * s];
}

/* xr[i * s] += r[i] for i < n (col2im's strided scatter). */
static void add_strided_f32(float *xr, const float *r, int64_t n, int64_t s) {
    int64_t i = 0;
#ifdef TG_X86_INTRIN
    if (s == 2 && n > 8 && cpu_avx2()) i = add_stride2_avx2_f32(xr, r, n);
#endif
    for (; i < n; i++) xr[i * s] += r[i];
}
static void add_strided_f64(double *xr, const double *r, int64_t n, int64_t s) {
    for (int64_t i = 0; i < n; i++) xr[i * s] += r[i];
}

/* im2col: x one image (C, H, W) contiguous -> cols (C*KH*KW, OH*OW).
 * col2im: the adjoint, dx (C, H, W) += cols scattered back to the windows. */
#define IM2COL(SFX, T)                                                                    \
    static void im2col_##SFX(const geom *g, const T *x, T *cols, int64_t ld) {            \
        const int64_t OHW = ld;                                                           \
        for (int64_t c = 0; c < g->C; c++)                                                \
            for (int64_t kh = 0; kh < g->KH; kh++) {                                      \
                int64_t oh0, oh1;                                                         \
                valid_range(kh * g->dh, g->ph, g->sh, g->H, g->OH, &oh0, &oh1);                   \
                for (int64_t kw = 0; kw < g->KW; kw++) {                                  \
                    T *row = cols + ((c * g->KH + kh) * g->KW + kw) * OHW;                \
                    int64_t ow0, ow1;                                                     \
                    valid_range(kw * g->dw, g->pw, g->sw, g->W, g->OW, &ow0, &ow1);               \
                    for (int64_t oh = 0; oh < g->OH; oh++) {                              \
                        T *r = row + oh * g->OW;                                          \
                        if (oh < oh0 || oh >= oh1) {                                      \
                            memset(r, 0, (size_t)g->OW * sizeof(T));                      \
                            continue;                                                     \
                        }                                                                 \
                        int64_t base = (c * g->H + oh * g->sh - g->ph + kh * g->dh) * g->W + kw * g->dw - g->pw; \
                        for (int64_t ow = 0; ow < ow0; ow++) r[ow] = 0;                   \
                        if (g->sw == 1)                                                   \
                            memcpy(r + ow0, x + base + ow0, (size_t)(ow1 - ow0) * sizeof(T)); \
                        else                                                              \
                            for (int64_t ow = ow0; ow < ow1; ow++) r[ow] = x[base + ow * g->sw]; \
                        for (int64_t ow = ow1; ow < g->OW; ow++) r[ow] = 0;               \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
    }                                                                                     \
    static void col2im_##SFX(const geom *g, const T *cols, int64_t ld, T *x) {            \
        const int64_t OHW = ld;                                                           \
        for (int64_t c = 0; c < g->C; c++)                                                \
            for (int64_t kh = 0; kh < g->KH; kh++) {                                      \
                int64_t oh0, oh1;                                                         \
                valid_range(kh * g->dh, g->ph, g->sh, g->H, g->OH, &oh0, &oh1);                   \
                for (int64_t kw = 0; kw < g->KW; kw++) {                                  \
                    const T *row = cols + ((c * g->KH + kh) * g->KW + kw) * OHW;          \
                    int64_t ow0, ow1;                                                     \
                    valid_range(kw * g->dw, g->pw, g->sw, g->W, g->OW, &ow0, &ow1);               \
                    for (int64_t oh = oh0; oh < oh1; oh++) {                              \
                        const T *r = row + oh * g->OW;                                    \
                        int64_t base = (c * g->H + oh * g->sh - g->ph + kh * g->dh) * g->W + kw * g->dw - g->pw; \
                        if (g->sw == 1) {                                                 \
                            /* by 4, all loads before the stores: the compiler makes  \
                             * vector instructions of it even at -O2 */               \
                            T *xr = x + base;                                             \
                            int64_t ow = ow0;                                             \
                            for (; ow + 4 <= ow1; ow += 4) {                              \
                                T s0 = xr[ow] + r[ow], s1 = xr[ow + 1] + r[ow + 1];       \
                                T s2 = xr[ow + 2] + r[ow + 2], s3 = xr[ow + 3] + r[ow + 3]; \
                                xr[ow] = s0;                                              \
                                xr[ow + 1] = s1;                                          \
                                xr[ow + 2] = s2;                                          \
                                xr[ow + 3] = s3;                                          \
                            }                                                             \
                            for (; ow < ow1; ow++) xr[ow] += r[ow];                       \
                        } else if (ow1 > ow0) { /* (no window: no pointer to form) */     \
                            add_strided_##SFX(x + (base + ow0 * g->sw), r + ow0, ow1 - ow0, g->sw); \
                        }                                                                 \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
    }
IM2COL(f32, float)
IM2COL(f64, double)

/* im2row: the transpose of im2col, x one image (C, H, W) -> patches
 * (OH*OW, C*KH*KW): row p holds the window of output position p.  Its rows
 * are made of whole kernel rows (KW elements contiguous in x), and as the
 * B operand of dw = dy_n @ patches it is read row by row, which packs
 * faster than im2col's transpose. */
#define IM2ROW(SFX, T)                                                                    \
    static void im2row_##SFX(const geom *g, const T *x, T *patches) {                     \
        const int64_t CKK = g->C * g->KH * g->KW;                                         \
        for (int64_t oh = 0; oh < g->OH; oh++)                                            \
            for (int64_t ow = 0; ow < g->OW; ow++) {                                      \
                T *prow = patches + (oh * g->OW + ow) * CKK;                              \
                int64_t iw0 = ow * g->sw - g->pw;                                         \
                bool inside = g->dw == 1 && iw0 >= 0 && iw0 + g->KW <= g->W;             \
                for (int64_t c = 0; c < g->C; c++)                                        \
                    for (int64_t kh = 0; kh < g->KH; kh++) {                              \
                        T *d = prow + (c * g->KH + kh) * g->KW;                           \
                        int64_t ih = oh * g->sh - g->ph + kh * g->dh;                     \
                        if (ih < 0 || ih >= g->H) {                                       \
                            for (int64_t kw = 0; kw < g->KW; kw++) d[kw] = 0;             \
                            continue;                                                     \
                        }                                                                 \
                        const T *xr = x + (c * g->H + ih) * g->W;                         \
                        if (inside) { /* no memcpy: KW is small, a call costs more */ \
                            const T *src = xr + iw0;                                      \
                            int64_t kw = 0;                                               \
                            for (; kw + 4 <= g->KW; kw += 4) {                            \
                                T a0 = src[kw], a1 = src[kw + 1], a2 = src[kw + 2], a3 = src[kw + 3]; \
                                d[kw] = a0;                                               \
                                d[kw + 1] = a1;                                           \
                                d[kw + 2] = a2;                                           \
                                d[kw + 3] = a3;                                           \
                            }                                                             \
                            for (; kw < g->KW; kw++) d[kw] = src[kw];                     \
                        } else {                                                          \
                            for (int64_t kw = 0; kw < g->KW; kw++) {                      \
                                int64_t iw = iw0 + kw * g->dw;                            \
                                d[kw] = (iw >= 0 && iw < g->W) ? xr[iw] : 0;              \
                            }                                                             \
                        }                                                                 \
                    }                                                                     \
            }                                                                             \
    }
IM2ROW(f32, float)
IM2ROW(f64, double)

/* cols: row r of the image's matrix at cols + r * ld (ld >= OH*OW: the
 * image's columns inside a matrix of several images' columns). */
static void im2col(tg_dtype dt, const geom *g, const void *x, void *cols, int64_t ld) {
    if (dt == TG_FLOAT32) im2col_f32(g, x, cols, ld);
    else im2col_f64(g, x, cols, ld);
}
/* cols: row r of the image's matrix at cols + r * ld (ld >= OH*OW: the
 * image's columns inside a matrix of several images' columns). */
static void col2im(tg_dtype dt, const geom *g, const void *cols, int64_t ld, void *x) {
    if (dt == TG_FLOAT32) col2im_f32(g, cols, ld, x);
    else col2im_f64(g, cols, ld, x);
}
static void im2row(tg_dtype dt, const geom *g, const void *x, void *patches) {
    if (dt == TG_FLOAT32) im2row_f32(g, x, patches);
    else im2row_f64(g, x, patches);
}

/* C (M, N), row stride rsc, = A @ B + beta C in dtype dt (see gemm.h). */
static void gemm(tg_dtype dt, int64_t M, int64_t N, int64_t K, const void *A, int64_t rsa,
                 int64_t csa, const void *B, int64_t rsb, int64_t csb, double beta, void *C,
                 int64_t rsc) {
    if (dt == TG_FLOAT32)
        tg_gemm_f32(M, N, K, 1.0f, A, rsa, csa, B, rsb, csb, (float)beta, C, rsc, 1);
    else
        tg_gemm_f64(M, N, K, 1.0, A, rsa, csa, B, rsb, csb, beta, C, rsc, 1);
}

/* Implicit GEMM: the B operand of a product read straight from the image
 * (or dy) into gemm.c's packed panels (tg_gemm_packb_*), never formed.
 * Every B here has the form
 *
 *     B(p, j) = src[rowoff[p] + coloff(j)]
 *
 * where the columns come in runs of L that are s apart in src (a row of
 * output positions, a kernel row), run t starting at (t / T) * S1 +
 * (t % T) * S2:
 *
 *   forward  B = cols (C*KH*KW, m*OH*OW) of m zero-padded images xp:
 *            rowoff[(c, kh, kw)] = c*Hp*Wp + kh*dh*Wp + kw*dw,
 *            runs = output rows: L = OW, s = sw, T = OH, S1 = C*Hp*Wp, S2 = sh*Wp
 *   dw       B = patches (OH*OW, C*KH*KW) of one padded image:
 *            rowoff[(oh, ow)] = oh*sh*Wp + ow*sw,
 *            runs = kernel rows: L = KW, s = dw, T = KH, S1 = Hp*Wp, S2 = dh*Wp
 *          (S2 is used only when T > 1, where sh*(OH-1) or dh*(KH-1) lies inside the
 *          padded image, so the product fits; with T = 1 a stride or dilation near
 *          2^63 would overflow it: S2 = 0 then)
 *
 * The packed panels hold exactly the values pack_b would copy from the
 * formed matrix, and gemm.c computes the rest as tg_gemm_* does: the bits
 * are those of im2col + tg_gemm_* (TAPEGRAD_CONV=im2col, for tests and
 * benchmarks, takes that path).  Padding is one zero-padded copy of the
 * image (C*Hp*Wp, a few per cent of the columns' size), so the packer has
 * no bounds to check. */
typedef struct {
    const void *src;
    const int64_t *rowoff; /* offset of B's row p in src */
    int64_t L, s, T, S1, S2;
    bool slack; /* src is a scratch copy with 64 bytes to spare after its end (pad_images) */
} implicit_b;

/* o[0:len) = q[0:len), for the packer's short runs: a few fixed-size
 * copies (vector moves), the last one overlapping the previous, instead of
 * a loop or a memcpy call per run. */
#define COPY_RUN(SFX, T_)                                                                 \
    static inline void copy_run_##SFX(T_ *restrict o, const T_ *restrict q, int32_t len) { \
        if (len >= 8) {                                                                   \
            if (len <= 16) {                                                              \
                memcpy(o, q, 8 * sizeof(T_));                                             \
                memcpy(o + len - 8, q + len - 8, 8 * sizeof(T_));                         \
                return;                                                                   \
            }                                                                             \
            int32_t e = 0;                                                                \
            for (; e + 16 <= len; e += 16) memcpy(o + e, q + e, 16 * sizeof(T_));        \
            if (e < len) memcpy(o + len - 16, q + len - 16, 16 * sizeof(T_));             \
        } else if (len >= 4) {                                                            \
            memcpy(o, q, 4 * sizeof(T_));                                                 \
            memcpy(o + len - 4, q + len - 4, 4 * sizeof(T_));                             \
        } else {                                                                          \
            for (int32_t e = 0; e < len; e++) o[e] = q[e];                                \
        }                                                                                 \
    }
COPY_RUN(f32, float)
COPY_RUN(f64, double)

#define IMPLICIT_PACK(SFX, T_)                                                            \
    static void implicit_pack_##SFX(void *vctx, int64_t pc, int64_t kc, int64_t jc,       \
                                    int64_t nc, int nr, T_ *Bp) {                         \
        const implicit_b *b = vctx;                                                       \
        const T_ *src = b->src;                                                           \
        const int64_t *ro = b->rowoff + pc, s = b->s;                                     \
        int32_t rj[256], rl[256]; /* a panel's runs: first column, length, source */      \
        int64_t rb[256];                                                                  \
        for (int64_t jr = 0; jr < nc; jr += nr) {                                         \
            int64_t w = nc - jr < nr ? nc - jr : nr;                                      \
            int nrun = 0;                                                                 \
            for (int64_t j = 0, col = jc + jr; j < w && nrun < 256; nrun++) {             \
                int64_t t = col / b->L, u = col % b->L;                                   \
                int64_t len = b->L - u < w - j ? b->L - u : w - j;                        \
                rj[nrun] = (int32_t)j;                                                    \
                rl[nrun] = (int32_t)len;                                                  \
                rb[nrun] = (t / b->T) * b->S1 + (t % b->T) * b->S2 + u * s;               \
                j += len;                                                                 \
                col += len;                                                               \
            }                                                                             \
            T_ *d = Bp + jr * kc;                                                         \
            /* Short runs (the weight gradient's KW taps) of float32 from   \
             * the padded copy: the first nspill runs of a row copy 8 values \
             * (two vector moves) from their start, those past the run's    \
             * end being overwritten by the row's next runs (the run starts  \
             * at least 8 before the panel's w columns end); the source      \
             * reads past the run stay in the scratch copy's 64 spare bytes. \
             * Measured (batch 32, one thread, interleaved, best of 25): the \
             * CNN's weight gradients 0.835 and 0.833 of copy_run's time.    \
             * Forward runs (an output row) gained nothing from 16. */       \
            int nspill = 0;                                                               \
            if (sizeof(T_) == 4 && s == 1 && b->slack && b->L <= 8)                       \
                while (nspill < nrun && rj[nspill] + 8 <= w) nspill++;                    \
            for (int64_t p = 0; p < kc; p++, d += nr) {                                   \
                const T_ *sp = src + ro[p];                                               \
                if (nspill) {                                                             \
                    int r = 0;                                                            \
                    for (; r < nspill; r++) memcpy(d + rj[r], sp + rb[r], 8 * sizeof(T_)); \
                    for (; r < nrun; r++) copy_run_##SFX(d + rj[r], sp + rb[r], rl[r]);  \
                } else if (s == 1)                                                        \
                    for (int r = 0; r < nrun; r++) copy_run_##SFX(d + rj[r], sp + rb[r], rl[r]); \
                else                                                                      \
                    for (int r = 0; r < nrun; r++)                                        \
                        gather_strided_##SFX(d + rj[r], sp + rb[r], rl[r], s, b->slack);  \
                for (int64_t j = w; j < nr; j++) d[j] = 0;                                \
            }                                                                             \
        }                                                                                 \
    }
IMPLICIT_PACK(f32, float)
IMPLICIT_PACK(f64, double)

/* C (M, N), row stride rsc, = A @ B + beta C with B given by ib (see
 * above); false (C untouched) when gemm.c would not run its packed kernel
 * on these sizes or has no memory: the caller forms B. */
static bool gemm_implicit(tg_dtype dt, int64_t M, int64_t N, int64_t K, const void *A, int64_t rsa,
                          int64_t csa, const implicit_b *ib, double beta, void *C, int64_t rsc) {
    if (dt == TG_FLOAT32)
        return tg_gemm_packb_f32(M, N, K, 1.0f, A, rsa, csa, implicit_pack_f32, (void *)ib,
                                 (float)beta, C, rsc) == 0;
    return tg_gemm_packb_f64(M, N, K, 1.0, A, rsa, csa, implicit_pack_f64, (void *)ib, beta, C,
                             rsc) == 0;
}

/* The path TAPEGRAD_CONV selects (read once per call, so that tests and
 * benchmarks may switch it in one process): unset or "auto", Winograd
 * where it applies and measured faster (wino_geom), the few-channel direct
 * kernel where it does (small_geom), else the implicit GEMM; "implicit":
 * the implicit GEMM, never Winograd nor the direct kernel; "im2col": the
 * columns formed, likewise; "small": the direct kernel wherever it applies
 * (any channel count); "winograd": Winograd wherever it applies (any
 * channel counts), with the default tile; "winograd2" / "winograd3": with
 * the 2x2 / 3x3 output tile (for tests and measurements).  Other values:
 * auto. */
typedef enum { CONV_AUTO, CONV_IMPLICIT, CONV_IM2COL, CONV_WINOGRAD, CONV_SMALL } conv_path;
static conv_path conv_mode(int *tile) {
    const char *e = getenv("TAPEGRAD_CONV");
    *tile = 0;
    if (!e) return CONV_AUTO;
    if (!strcmp(e, "implicit")) return CONV_IMPLICIT;
    if (!strcmp(e, "im2col")) return CONV_IM2COL;
    if (!strcmp(e, "small")) return CONV_SMALL;
    if (!strncmp(e, "winograd", 8)) {
        if (!strcmp(e + 8, "2")) *tile = 2;
        else if (!strcmp(e + 8, "3")) *tile = 3;
        else if (!strcmp(e + 8, "4")) *tile = 4;
        return CONV_WINOGRAD;
    }
    return CONV_AUTO;
}

/* TAPEGRAD_CONV, read once per call: the path and a forced Winograd tile. */
typedef struct {
    conv_path mode;
    int tile;
} conv_choice;
static conv_choice conv_choose(void) {
    conv_choice c;
    c.mode = conv_mode(&c.tile);
    return c;
}

/* Padded size of the image for the implicit path. */
static int64_t padded_h(const geom *g) { return g->H + g->ph + g->ph1; }
static int64_t padded_w(const geom *g) { return g->W + g->pw + g->pw1; }
static bool has_padding(const geom *g) { return g->ph || g->pw || g->ph1 || g->pw1; }

/* Whether the implicit path may make its zero-padded copy of an image: no
 * larger than the columns it replaces (so never for a padding far larger
 * than the window, e.g. a strided 1x1 convolution with padding, whose
 * padded size may not even fit in int64: then the columns are formed). */
static bool padded_copy_ok(const geom *g) {
    double padded = (double)g->C * (double)padded_h(g) * (double)padded_w(g);
    return !has_padding(g) ||
           padded <= (double)(g->C * g->KH * g->KW) * (double)(g->OH * g->OW);
}

/* xp (m, C, Hp, Wp) = the m images at x, zero-padded. */
static void pad_images(const geom *g, size_t isz, int64_t m, const char *x, char *xp) {
    int64_t Hp = padded_h(g), Wp = padded_w(g);
    memset(xp, 0, (size_t)(m * g->C * Hp * Wp) * isz);
    for (int64_t pl = 0; pl < m * g->C; pl++)
        for (int64_t h = 0; h < g->H; h++)
            memcpy(xp + (size_t)((pl * Hp + h + g->ph) * Wp + g->pw) * isz,
                   x + (size_t)((pl * g->H + h) * g->W) * isz, (size_t)g->W * isz);
}

/* Pooling over planes [p0, p1) of (N*C) planes (H, W) -> (OH, OW).  The
 * window of output (oh, ow) starts at (hs, ws) = (oh*sh - ph, ow*sw - pw);
 * its taps are dh (dw) apart; those outside the input are padding.
 * max: out = window max (padding is -inf), idx = flat position h*W + w of
 *      the first maximum (a NaN counts as the maximum), idx may be NULL.
 * avg: out = window sum / divisor (dilation 1): divisor_override if set,
 *      else the window's size clipped to the padded input
 *      (count_include_pad) or the number of its inputs (not).
 * max_bw: dx plane = 0, then dx[idx[o]] += dy[o].
 * avg_bw: dx plane = 0, then dy[o] / divisor added to each input of window o. */

/* The taps [*i0, *i1) (tap i at s + i*d) of a window of k taps starting at s
 * that land in [0, n). */
static void taps(int64_t s, int64_t k, int64_t d, int64_t n, int64_t *i0, int64_t *i1) {
    int64_t a = s >= 0 ? 0 : (-s + d - 1) / d;
    int64_t b = s >= n ? 0 : (n - 1 - s) / d + 1;
    if (b > k) b = k;
    if (a > b) a = b;
    *i0 = a;
    *i1 = b;
}

/* The divisor of average-pooling window (hs, ws), inputs [h0, h1) x [w0, w1). */
static double avg_divisor(const geom *g, int64_t hs, int64_t ws, int64_t h0, int64_t h1, int64_t w0,
                          int64_t w1) {
    if (g->divisor > 0) return (double)g->divisor;
    if (!g->count_pad) return (double)((h1 - h0) * (w1 - w0));
    int64_t he = hs + g->KH < g->H + g->ph ? hs + g->KH : g->H + g->ph;
    int64_t we = ws + g->KW < g->W + g->pw ? ws + g->KW : g->W + g->pw;
    return (double)((he - hs) * (we - ws));
}

/* The 2x2 window with stride 2 inside the input (no padding, no dilation,
 * floor mode or a ceil mode that adds no window): the pooling of every CNN
 * tutorial.  Its own loop, without the general loop's per-window tap
 * ranges; the same taps in the same order, so the same maxima and indices. */
static bool is_pool2x2(const geom *g) {
    return g->KH == 2 && g->KW == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
           g->dh == 1 && g->dw == 1 && 2 * g->OH <= g->H && 2 * g->OW <= g->W;
}

/* One tap of the max: v replaces best when larger, or NaN over a number.
 * Bit masks, not a branch: on real data the comparison is a coin toss, and
 * a mispredicted branch per tap cost more than the rest of the loop (the
 * compiler turns a ?: of floats back into branches).  U: the unsigned
 * integer type of T's size. */
#define MAXTAP(T, U, v, at)                                                               \
    {                                                                                     \
        T v_ = (v);                                                                       \
        int take_ = (v_ > best) | ((v_ != v_) & (best == best));                          \
        U m_ = (U)0 - (U)take_;                                                           \
        int64_t mi_ = -(int64_t)take_;                                                    \
        U bb_, vb_;                                                                       \
        memcpy(&bb_, &best, sizeof bb_);                                                  \
        memcpy(&vb_, &v_, sizeof vb_);                                                    \
        bb_ = (bb_ & ~m_) | (vb_ & m_);                                                   \
        memcpy(&best, &bb_, sizeof bb_);                                                  \
        bi = (bi & ~mi_) | ((at) & mi_);                                                  \
    }

/* Four windows at a time with SSE2 (every x86-64 has it): the even and odd
 * columns of the two rows are the four taps, compared in the same order
 * with the same rule; the tap number k (0..3) that won gives the index,
 * computed in vector registers too (position r0 + 2 ow + (k & 1) + (k >> 1)
 * W, in int64).  A row whose width is not a multiple of 4 ends with a group
 * that overlaps the previous one (the same windows computed again, the same
 * values stored): the CNN's second pool has rows of 7, whose 3 scalar
 * windows took half the time, and the scalar index bookkeeping as much
 * again.  Returns the number of windows done: OW, or 0 when OW < 4, without
 * SSE2 and for float64. */
#ifdef TG_X86_INTRIN
/* The same with AVX2, eight windows at a time (rows of at least 8
 * windows): the taps' even and odd columns deinterleaved within each
 * 128-bit half (windows 0 1 4 5 | 2 3 6 7), compared in that order by the
 * same rule, the maxima and tap numbers put back in window order at the
 * end.  Measured (max_pool2d with indices, the SSE2 and AVX2 loops
 * switched at run time and interleaved, best of 30-60, one thread): the
 * CNN's first pool (16 x 28 x 28) 0.262 -> 0.193 ms at batch 32, 1.05 ->
 * 0.87 ms at batch 128; the second (rows of 7 windows) keeps SSE2. */
TG_TARGET("avx2")
static int64_t maxpool2x2_avx2_f32(const float *a, const float *c, int64_t OW, int64_t r0,
                                   int64_t W, float *o, int64_t *ix) {
    const __m256i one = _mm256_set1_epi32(1), two = _mm256_set1_epi32(2);
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i Wv = _mm256_set1_epi64x(W);
    for (int64_t ow = 0;; ow += 8) {
        if (ow + 8 > OW) ow = OW - 8; /* the overlapping last group */
        __m256 a0 = _mm256_loadu_ps(a + 2 * ow), a1 = _mm256_loadu_ps(a + 2 * ow + 8);
        __m256 c0 = _mm256_loadu_ps(c + 2 * ow), c1 = _mm256_loadu_ps(c + 2 * ow + 8);
        __m256 tap[3] = {_mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)),
                         _mm256_shuffle_ps(c0, c1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm256_shuffle_ps(c0, c1, _MM_SHUFFLE(3, 1, 3, 1))};
        __m256 best = _mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
        __m256i k = _mm256_setzero_si256();
        for (int t = 0; t < 3; t++) {
            __m256 v = tap[t];
            __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),
                                       _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q),
                                                     _mm256_cmp_ps(best, best, _CMP_ORD_Q)));
            best = _mm256_blendv_ps(best, v, take);
            k = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(k),
                                                     _mm256_castsi256_ps(_mm256_set1_epi32(t + 1)), take));
        }
        /* 64-bit pairs (w0 w1)(w4 w5)(w2 w3)(w6 w7) -> window order */
        best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), _MM_SHUFFLE(3, 1, 2, 0)));
        _mm256_storeu_ps(o + ow, best);
        if (ix) {
            k = _mm256_permute4x64_epi64(k, _MM_SHUFFLE(3, 1, 2, 0));
            /* 2 i + (k & 1) in int32, then + W where k >= 2 and + r0 + 2 ow in int64 */
            __m256i lo32 = _mm256_add_epi32(even, _mm256_and_si256(k, one));
            __m256i row2 = _mm256_cmpgt_epi32(two, k); /* all ones where k < 2 */
            __m256i base = _mm256_set1_epi64x(r0 + 2 * ow);
            __m256i lo = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(lo32)), base);
            __m256i hi = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(lo32, 1)), base);
            lo = _mm256_add_epi64(lo, _mm256_andnot_si256(
                                          _mm256_cvtepi32_epi64(_mm256_castsi256_si128(row2)), Wv));
            hi = _mm256_add_epi64(hi, _mm256_andnot_si256(
                                          _mm256_cvtepi32_epi64(_mm256_extracti128_si256(row2, 1)), Wv));
            _mm256_storeu_si256((__m256i *)(ix + ow), lo);
            _mm256_storeu_si256((__m256i *)(ix + ow + 4), hi);
        }
        if (ow + 8 >= OW) return OW;
    }
}

#endif

static int64_t maxpool2x2_simd_f32(const float *a, const float *c, int64_t OW, int64_t r0,
                                   int64_t W, float *o, int64_t *ix) {
#ifdef TG_X86_INTRIN
    if (OW >= 8 && cpu_avx2()) return maxpool2x2_avx2_f32(a, c, OW, r0, W, o, ix);
#endif
#if defined(__SSE2__)
    if (OW < 4) return 0;
    const __m128i one = _mm_set1_epi32(1), two = _mm_set1_epi32(2);
    const __m128i even = _mm_set_epi32(6, 4, 2, 0), zero = _mm_setzero_si128();
    const __m128i Wv = _mm_set1_epi64x(W);
    for (int64_t ow = 0;; ow += 4) {
        if (ow + 4 > OW) ow = OW - 4; /* the overlapping last group */
        __m128 a0 = _mm_loadu_ps(a + 2 * ow), a1 = _mm_loadu_ps(a + 2 * ow + 4);
        __m128 c0 = _mm_loadu_ps(c + 2 * ow), c1 = _mm_loadu_ps(c + 2 * ow + 4);
        __m128 tap[3] = {_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)),
                         _mm_shuffle_ps(c0, c1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm_shuffle_ps(c0, c1, _MM_SHUFFLE(3, 1, 3, 1))};
        __m128 best = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
        __m128i k = _mm_setzero_si128();
        for (int t = 0; t < 3; t++) {
            __m128 v = tap[t];
            __m128 take = _mm_or_ps(_mm_cmpgt_ps(v, best),
                                    _mm_and_ps(_mm_cmpunord_ps(v, v), _mm_cmpord_ps(best, best)));
            best = _mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, best));
            __m128i tk = _mm_castps_si128(take);
            k = _mm_or_si128(_mm_and_si128(tk, _mm_set1_epi32(t + 1)), _mm_andnot_si128(tk, k));
        }
        _mm_storeu_ps(o + ow, best);
        if (ix) {
            /* 2 i + (k & 1) in int32, then + W where k >= 2 and + r0 + 2 ow in int64 */
            __m128i lo32 = _mm_add_epi32(even, _mm_and_si128(k, one));
            __m128i row2 = _mm_cmpgt_epi32(two, k); /* all ones where k < 2 */
            __m128i base = _mm_set1_epi64x(r0 + 2 * ow);
            __m128i lo = _mm_add_epi64(_mm_unpacklo_epi32(lo32, zero), base);
            __m128i hi = _mm_add_epi64(_mm_unpackhi_epi32(lo32, zero), base);
            lo = _mm_add_epi64(lo, _mm_andnot_si128(_mm_unpacklo_epi32(row2, row2), Wv));
            hi = _mm_add_epi64(hi, _mm_andnot_si128(_mm_unpackhi_epi32(row2, row2), Wv));
            _mm_storeu_si128((__m128i *)(ix + ow), lo);
            _mm_storeu_si128((__m128i *)(ix + ow + 2), hi);
        }
        if (ow + 4 >= OW) return OW;
    }
#else
    (void)a, (void)c, (void)OW, (void)r0, (void)W, (void)o, (void)ix;
    return 0;
#endif
}
static int64_t maxpool2x2_simd_f64(const double *a, const double *c, int64_t OW, int64_t r0,
                                   int64_t W, double *o, int64_t *ix) {
    (void)a, (void)c, (void)OW, (void)r0, (void)W, (void)o, (void)ix;
    return 0;
}

#define POOL(SFX, T, U)                                                                   \
    static void maxpool2x2_##SFX(const geom *g, int64_t p0, int64_t p1, const T *x, T *out, \
                                 int64_t *idx) {                                          \
        const int64_t W = g->W, HW = g->H * g->W, OW = g->OW, OHW = g->OH * g->OW;        \
        for (int64_t p = p0; p < p1; p++)                                                 \
            for (int64_t oh = 0; oh < g->OH; oh++) {                                      \
                const int64_t r0 = 2 * oh * W;                                            \
                const T *a = x + p * HW + r0, *c = a + W;                                 \
                T *o = out + p * OHW + oh * OW;                                           \
                int64_t *ix = idx ? idx + p * OHW + oh * OW : NULL;                       \
                for (int64_t ow = maxpool2x2_simd_##SFX(a, c, OW, r0, W, o, ix); ow < OW; ow++) { \
                    T best = a[2 * ow];                                                   \
                    int64_t bi = r0 + 2 * ow;                                             \
                    MAXTAP(T, U, a[2 * ow + 1], r0 + 2 * ow + 1)                                \
                    MAXTAP(T, U, c[2 * ow], r0 + W + 2 * ow)                                    \
                    MAXTAP(T, U, c[2 * ow + 1], r0 + W + 2 * ow + 1)                            \
                    o[ow] = best;                                                         \
                    if (ix) ix[ow] = bi;                                                  \
                }                                                                         \
            }                                                                             \
    }                                                                                     \
    static void maxpool_##SFX(const geom *g, int64_t p0, int64_t p1, const T *x, T *out,   \
                              int64_t *idx) {                                             \
        if (is_pool2x2(g)) {                                                              \
            maxpool2x2_##SFX(g, p0, p1, x, out, idx);                                     \
            return;                                                                       \
        }                                                                                 \
        const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;                              \
        for (int64_t p = p0; p < p1; p++) {                                               \
            const T *xp = x + p * HW;                                                     \
            for (int64_t oh = 0; oh < g->OH; oh++) {                                      \
                int64_t hs = oh * g->sh - g->ph, i0, i1;                                  \
                taps(hs, g->KH, g->dh, g->H, &i0, &i1);                                   \
                for (int64_t ow = 0; ow < g->OW; ow++) {                                  \
                    int64_t ws = ow * g->sw - g->pw, j0, j1;                              \
                    taps(ws, g->KW, g->dw, g->W, &j0, &j1);                               \
                    int64_t bi = (hs + i0 * g->dh) * g->W + ws + j0 * g->dw;              \
                    T best = xp[bi];                                                      \
                    for (int64_t i = i0; i < i1; i++)                                     \
                        for (int64_t j = j0; j < j1; j++) {                               \
                            int64_t at = (hs + i * g->dh) * g->W + ws + j * g->dw;        \
                            T v = xp[at];                                                 \
                            if (v > best || (v != v && best == best)) {                   \
                                best = v;                                                 \
                                bi = at;                                                  \
                            }                                                             \
                        }                                                                 \
                    out[p * OHW + oh * g->OW + ow] = best;                                \
                    if (idx) idx[p * OHW + oh * g->OW + ow] = bi;                         \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    static void avgpool_##SFX(const geom *g, int64_t p0, int64_t p1, const T *x, T *out) { \
        const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;                              \
        for (int64_t p = p0; p < p1; p++) {                                               \
            const T *xp = x + p * HW;                                                     \
            for (int64_t oh = 0; oh < g->OH; oh++) {                                      \
                int64_t hs = oh * g->sh - g->ph, h0 = hs < 0 ? 0 : hs;                    \
                int64_t h1 = hs + g->KH < g->H ? hs + g->KH : g->H;                       \
                for (int64_t ow = 0; ow < g->OW; ow++) {                                  \
                    int64_t ws = ow * g->sw - g->pw, w0 = ws < 0 ? 0 : ws;                \
                    int64_t w1 = ws + g->KW < g->W ? ws + g->KW : g->W;                   \
                    double s = 0;                                                         \
                    for (int64_t h = h0; h < h1; h++)                                     \
                        for (int64_t w = w0; w < w1; w++) s += xp[h * g->W + w];          \
                    double inv = 1.0 / avg_divisor(g, hs, ws, h0, h1, w0, w1);            \
                    out[p * OHW + oh * g->OW + ow] = (T)(s * inv);                        \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    static void maxpool_bw_##SFX(const geom *g, int64_t p0, int64_t p1, const T *dy,       \
                                 const int64_t *idx, T *dx) {                             \
        const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;                              \
        for (int64_t p = p0; p < p1; p++) {                                               \
            T *d = dx + p * HW;                                                           \
            memset(d, 0, (size_t)HW * sizeof(T));                                         \
            for (int64_t o = 0; o < OHW; o++) d[idx[p * OHW + o]] += dy[p * OHW + o];     \
        }                                                                                 \
    }                                                                                     \
    static void avgpool_bw_##SFX(const geom *g, int64_t p0, int64_t p1, const T *dy, T *dx) { \
        const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;                              \
        for (int64_t p = p0; p < p1; p++) {                                               \
            T *d = dx + p * HW;                                                           \
            memset(d, 0, (size_t)HW * sizeof(T));                                         \
            for (int64_t oh = 0; oh < g->OH; oh++) {                                      \
                int64_t hs = oh * g->sh - g->ph, h0 = hs < 0 ? 0 : hs;                    \
                int64_t h1 = hs + g->KH < g->H ? hs + g->KH : g->H;                       \
                for (int64_t ow = 0; ow < g->OW; ow++) {                                  \
                    int64_t ws = ow * g->sw - g->pw, w0 = ws < 0 ? 0 : ws;                \
                    int64_t w1 = ws + g->KW < g->W ? ws + g->KW : g->W;                   \
                    T inv = (T)(1.0 / avg_divisor(g, hs, ws, h0, h1, w0, w1));            \
                    T v = dy[p * OHW + oh * g->OW + ow] * inv;                            \
                    for (int64_t h = h0; h < h1; h++)                                     \
                        for (int64_t w = w0; w < w1; w++) d[h * g->W + w] += v;           \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }
POOL(f32, float, uint32_t)
POOL(f64, double, uint64_t)

/* ===================================================================== */
/* The three convolution drivers (no autograd): contiguous buffers of     */
/* dtype dt in, a new contiguous tensor out.                              */
/* ===================================================================== */

typedef struct {
    const geom *g;
    tg_dtype dt;
    const char *x;  /* (N, C, H, W) */
    const char *w;  /* (O, C*KH*KW) */
    const char *b;  /* (O,) or NULL */
    const char *dy; /* (N, O, OH, OW) */
    char *out;      /* y, dx or the dw partial sums */
    int64_t nparts; /* weight_grad: number of partial sums */
    bool implicit;  /* pack the windows straight from the images (implicit_b) */
    tg_atomic_int failed; /* a worker could not get its scratch buffer */
} conv_job;

/* Images per chunk so that a chunk is worth a thread. */
static int64_t image_grain(const geom *g) {
    double work = (double)g->O * (double)(g->C / g->G * g->KH * g->KW) * (double)(g->OH * g->OW);
    if (work <= 0) return g->N > 0 ? g->N : 1;
    double grain = ceil(CONV_MIN_WORK_PER_CHUNK / work);
    return grain < 1 ? 1 : grain > (double)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)grain;
}

/* With groups, each GEMM below is one per group: group k's Og = O/G output
 * channels are its weight rows (Og, Cg*KH*KW) times its Cg input channels'
 * rows of cols (Cg*KH*KW, OH*OW), which are contiguous blocks of cols, w,
 * y and dy.  G == 1 is one call with the whole matrices. */

/* Images per GEMM of the forward and input-gradient products: cols of
 * several images side by side, (C*KH*KW, m*OH*OW), so that w is packed once
 * per m images and the product is wide (see the header).  At most
 * CONV_BATCH images and about CONV_BATCH_BYTES of cols; depends on
 * the shapes only.  Each element of cols is the same sum in the same order
 * whatever m is (the K blocking depends on K only), so the batching does
 * not change a bit of y or dx. */
#define CONV_BATCH 8
#define CONV_BATCH_BYTES (4.0 * 1024 * 1024)
static int64_t img_batch(const geom *g, size_t isz) {
    double per = (double)(g->C * g->KH * g->KW) * (double)(g->OH * g->OW) * (double)isz;
    int64_t m = per > 0 ? (int64_t)(CONV_BATCH_BYTES / per) : 1;
    return m < 1 ? 1 : m > CONV_BATCH ? CONV_BATCH : m;
}

/* The offsets of the implicit B's rows of the forward product: rowoff[(c,
 * kh, kw)] in the padded image (see implicit_b).  out: C*KH*KW values. */
static void window_offsets(const geom *g, int64_t *out) {
    int64_t Hp = padded_h(g), Wp = padded_w(g);
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t kh = 0; kh < g->KH; kh++)
            for (int64_t kw = 0; kw < g->KW; kw++)
                *out++ = (c * Hp + kh * g->dh) * Wp + kw * g->dw;
}

/* y_n = w @ im2col(x_n) (+ b), images [n0, n1), m images per GEMM (into
 * yb (O, m*OH*OW), then copied to the images' planes of y).  The columns
 * are packed from the (padded) images directly (implicit_b) unless gemm.c
 * declines; then they are formed by im2col. */
static void fwd_range(int64_t n0, int64_t n1, void *vjob) {
    conv_job *j = vjob;
    const geom *g = j->g;
    size_t isz = tg_dtype_size(j->dt);
    int64_t CKK = g->C * g->KH * g->KW, OHW = g->OH * g->OW, CHW = g->C * g->H * g->W;
    int64_t Og = g->O / g->G, CgKK = CKK / g->G, CgHW = CHW / g->G;
    bool direct = is_pointwise(g), implicit = !direct && j->implicit && padded_copy_ok(g);
    bool pad = has_padding(g);
    int64_t CHWp = implicit ? g->C * padded_h(g) * padded_w(g) : 0;
    int64_t m = direct ? 1 : img_batch(g, isz);
    if (m > n1 - n0) m = n1 - n0;
    void *cols = NULL; /* im2col's columns: allocated when first needed */
    void *yb = m > 1 ? scratch((size_t)(g->O * OHW * m) * isz) : NULL;
    int64_t *roff = implicit ? scratch((size_t)CKK * sizeof(int64_t)) : NULL;
    void *xp = implicit && pad ? scratch((size_t)(CHWp * m) * isz) : NULL;
    if ((m > 1 && !yb) || (implicit && (!roff || (pad && !xp)))) {
        tg_scratch_free(roff);
        tg_scratch_free(xp);
        roff = xp = NULL;
        implicit = false;
        if (m > 1 && !yb) goto fail;
    }
    if (implicit) window_offsets(g, roff);
    for (int64_t n = n0; n < n1; n += m) {
        int64_t mb = n1 - n < m ? n1 - n : m, ld = mb * OHW;
        const char *xn = j->x + (size_t)(n * CHW) * isz;
        char *yn = mb > 1 ? yb : j->out + (size_t)(n * g->O * OHW) * isz;
        bool formed = false; /* cols holds these images' columns */
        if (implicit && pad) pad_images(g, isz, mb, xn, xp);
        if (j->b) { /* start from the bias, then C = W cols + C */
            for (int64_t o = 0; o < g->O; o++) {
                if (j->dt == TG_FLOAT32) {
                    float v = ((const float *)j->b)[o], *r = (float *)yn + o * ld;
                    for (int64_t k = 0; k < ld; k++) r[k] = v;
                } else {
                    double v = ((const double *)j->b)[o], *r = (double *)yn + o * ld;
                    for (int64_t k = 0; k < ld; k++) r[k] = v;
                }
            }
        }
        for (int64_t k = 0; k < g->G; k++) {
            const char *wk = j->w + (size_t)(k * Og * CgKK) * isz;
            char *yk = yn + (size_t)(k * Og * ld) * isz;
            double beta = j->b ? 1.0 : 0.0;
            if (implicit) {
                implicit_b ib = {.src = pad ? (const char *)xp : xn, .rowoff = roff + k * CgKK,
                                 .L = g->OW, .s = g->sw, .T = g->OH, .S1 = CHWp,
                                 .S2 = g->OH > 1 ? g->sh * padded_w(g) : 0, .slack = pad};
                if (gemm_implicit(j->dt, Og, ld, CgKK, wk, CgKK, 1, &ib, beta, yk, ld)) continue;
            }
            if (!direct && !formed) {
                if (!cols && !(cols = scratch((size_t)(CKK * OHW * m) * isz))) goto fail;
                for (int64_t i = 0; i < mb; i++)
                    im2col(j->dt, g, xn + (size_t)(i * CHW) * isz,
                           (char *)cols + (size_t)(i * OHW) * isz, ld);
                formed = true;
            }
            const char *B = direct ? xn + (size_t)(k * CgHW) * isz
                                   : (const char *)cols + (size_t)(k * CgKK * ld) * isz;
            gemm(j->dt, Og, ld, CgKK, wk, CgKK, 1, B, ld, 1, beta, yk, ld);
        }
        if (mb > 1) /* yb (O, mb*OHW) -> y[n + i] (O, OHW) */
            for (int64_t i = 0; i < mb; i++)
                for (int64_t o = 0; o < g->O; o++)
                    memcpy(j->out + (size_t)(((n + i) * g->O + o) * OHW) * isz,
                           (const char *)yb + (size_t)(o * ld + i * OHW) * isz, (size_t)OHW * isz);
    }
    goto done;
fail:
    tg_atomic_store_relaxed_int(&j->failed, 1);
done:
    tg_scratch_free(cols);
    tg_scratch_free(yb);
    tg_scratch_free(roff);
    tg_scratch_free(xp);
}

/* dx_n = col2im(w^T @ dy_n), images [n0, n1), m images per GEMM. */
static void dx_range(int64_t n0, int64_t n1, void *vjob) {
    conv_job *j = vjob;
    const geom *g = j->g;
    size_t isz = tg_dtype_size(j->dt);
    int64_t CKK = g->C * g->KH * g->KW, OHW = g->OH * g->OW, CHW = g->C * g->H * g->W;
    int64_t Og = g->O / g->G, CgKK = CKK / g->G, CgHW = CHW / g->G;
    bool direct = is_pointwise(g);
    int64_t m = direct ? 1 : img_batch(g, isz);
    if (m > n1 - n0) m = n1 - n0;
    void *cols = direct ? NULL : scratch((size_t)(CKK * OHW * m) * isz);
    /* dy of m images as one (O, m*OH*OW) matrix */
    void *dyb = m > 1 ? scratch((size_t)(g->O * OHW * m) * isz) : NULL;
    if ((!direct && !cols) || (m > 1 && !dyb)) {
        tg_atomic_store_relaxed_int(&j->failed, 1);
        tg_scratch_free(cols);
        tg_scratch_free(dyb);
        return;
    }
    for (int64_t n = n0; n < n1; n += m) {
        int64_t mb = n1 - n < m ? n1 - n : m, ld = mb * OHW;
        char *dxn = j->out + (size_t)(n * CHW) * isz;
        const char *dyn = j->dy + (size_t)(n * g->O * OHW) * isz;
        if (mb > 1) {
            for (int64_t i = 0; i < mb; i++)
                for (int64_t o = 0; o < g->O; o++)
                    memcpy((char *)dyb + (size_t)(o * ld + i * OHW) * isz,
                           dyn + (size_t)((i * g->O + o) * OHW) * isz, (size_t)OHW * isz);
            dyn = dyb;
        }
        for (int64_t k = 0; k < g->G; k++) {
            char *C = direct ? dxn + (size_t)(k * CgHW) * isz
                             : (char *)cols + (size_t)(k * CgKK * ld) * isz;
            gemm(j->dt, CgKK, ld, Og, j->w + (size_t)(k * Og * CgKK) * isz, 1, CgKK,
                 dyn + (size_t)(k * Og * ld) * isz, ld, 1, 0.0, C, ld);
        }
        if (!direct) {
            memset(dxn, 0, (size_t)(CHW * mb) * isz);
            for (int64_t i = 0; i < mb; i++)
                col2im(j->dt, g, (const char *)cols + (size_t)(i * OHW) * isz, ld,
                       dxn + (size_t)(i * CHW) * isz);
        }
    }
    tg_scratch_free(cols);
    tg_scratch_free(dyb);
}

/* Partial sum k of dw = sum_n dy_n @ im2col(x_n)^T over its share of the
 * images (parts [k0, k1)).  The windows are packed from the (padded) image
 * directly (implicit_b: B = the patches) unless gemm.c declines; then they
 * are formed by im2row or im2col. */
static void dw_range(int64_t k0, int64_t k1, void *vjob) {
    conv_job *j = vjob;
    const geom *g = j->g;
    size_t isz = tg_dtype_size(j->dt);
    int64_t CKK = g->C * g->KH * g->KW, OHW = g->OH * g->OW;
    int64_t Og = g->O / g->G, CgKK = CKK / g->G, CgHW = g->C / g->G * g->H * g->W;
    int64_t Hp = padded_h(g), Wp = padded_w(g);
    /* Which layout of the windows the GEMM reads faster depends on the
     * shape; measured on LeNet-like layers: the patches (im2row) for kernels
     * at least 4 wide, im2col's transpose for narrower ones (3x3), whose
     * patch rows are too short to copy efficiently.  The same holds for the
     * implicit patches (runs of KW taps): used for KW >= 4 only (3x3 layers,
     * 3-64 channels, 16x16 and 32x32 images: 1.07-1.12 times im2col's time;
     * 5x5: 0.82-0.87). */
    bool rows = g->KW >= 4;
    bool direct = is_pointwise(g), pad = has_padding(g);
    bool implicit = !direct && j->implicit && rows && padded_copy_ok(g);
    void *cols = NULL; /* im2col's columns or im2row's patches, when needed */
    int64_t *roff = implicit ? scratch((size_t)OHW * sizeof(int64_t)) : NULL;
    void *xp = implicit && pad ? scratch((size_t)(g->C * Hp * Wp) * isz) : NULL;
    if (implicit && (!roff || (pad && !xp))) implicit = false;
    for (int64_t oh = 0; implicit && oh < g->OH; oh++)
        for (int64_t ow = 0; ow < g->OW; ow++) roff[oh * g->OW + ow] = oh * g->sh * Wp + ow * g->sw;
    for (int64_t k = k0; k < k1; k++) {
        int64_t n0 = g->N * k / j->nparts, n1 = g->N * (k + 1) / j->nparts;
        char *part = j->out + (size_t)(k * g->O * CgKK) * isz;
        if (n0 == n1) memset(part, 0, (size_t)(g->O * CgKK) * isz);
        for (int64_t n = n0; n < n1; n++) {
            const char *xn = j->x + (size_t)(n * g->C * g->H * g->W) * isz;
            const char *dyn = j->dy + (size_t)(n * g->O * OHW) * isz;
            bool formed = false;
            if (implicit && pad) pad_images(g, isz, 1, xn, xp);
            for (int64_t q = 0; q < g->G; q++) {
                const char *dq = dyn + (size_t)(q * Og * OHW) * isz;
                char *pq = part + (size_t)(q * Og * CgKK) * isz;
                double beta = n == n0 ? 0.0 : 1.0;
                if (implicit) {
                    implicit_b ib = {.src = (pad ? (const char *)xp : xn) +
                                            (size_t)(q * (g->C / g->G) * Hp * Wp) * isz,
                                     .rowoff = roff, .L = g->KW, .s = g->dw, .T = g->KH,
                                     .S1 = Hp * Wp, .S2 = g->KH > 1 ? g->dh * Wp : 0, .slack = pad};
                    if (gemm_implicit(j->dt, Og, CgKK, OHW, dq, OHW, 1, &ib, beta, pq, CgKK))
                        continue;
                }
                if (!direct && !formed) {
                    if (!cols && !(cols = scratch((size_t)(CKK * OHW) * isz))) goto fail;
                    if (rows) im2row(j->dt, g, xn, cols);
                    else im2col(j->dt, g, xn, cols, OHW);
                    formed = true;
                }
                if (direct || !rows) /* B = cols^T: x_n itself in the pointwise case */
                    gemm(j->dt, Og, CgKK, OHW, dq, OHW, 1,
                         direct ? xn + (size_t)(q * CgHW) * isz
                                : (const char *)cols + (size_t)(q * CgKK * OHW) * isz,
                         1, OHW, beta, pq, CgKK);
                else /* B = the patches, row-major: group q's columns of each row */
                    gemm(j->dt, Og, CgKK, OHW, dq, OHW, 1, (const char *)cols + (size_t)(q * CgKK) * isz,
                         CKK, 1, beta, pq, CgKK);
            }
        }
    }
    goto done;
fail:
    tg_atomic_store_relaxed_int(&j->failed, 1);
done:
    tg_scratch_free(cols);
    tg_scratch_free(roff);
    tg_scratch_free(xp);
}

/* Run fn over the images: in parallel chunks when there are enough images
 * to keep the threads busy, else one call (the GEMMs then use the threads). */
static void over_images(const geom *g, tg_range_fn fn, conv_job *j) {
    if (g->N >= tg_get_num_threads() && g->N > 1)
        tg_parallel_for(g->N, image_grain(g), fn, j);
    else
        fn(0, g->N, j);
}

/* Winograd (winograd.c): which of the three products. */
enum { WINO_FWD, WINO_DX, WINO_DW };
/* The output tile of the default path for 5x5 kernels, F(3x3, 5x5), and
 * for 3x3 kernels (see the header). */
#define WINO_TILE 3
#define WINO_TILE_3X3 4
/* The weight gradient by default only while its partial sums in the
 * transform domain ((m+r-1)^2 x O x C floats, each rewritten by every batch
 * of images) stay this small (measured: see the header). */
#define WINO_DW_MAX_BYTES (4.0 * 1024 * 1024)
/* Channels (input and output) below which the direct path is kept in the
 * default mode (measured: see the header). */
#define WINO_MIN_CHANNELS 8

/* Whether Winograd computes product `which` of g in dtype dt; if so, *wg is
 * its geometry (for the input gradient: the forward convolution of dy with
 * the flipped kernel, padded r-1-p).  From the shapes and TAPEGRAD_CONV
 * only: float32, a 5x5 or 3x3 kernel, stride 1, dilation 1, one group, sizes
 * for which the products go through gemm.c's packed kernel whatever the
 * batch (so that an image's result does not depend on its batch). */
static bool wino_geom(const geom *g, tg_dtype dt, int which, conv_choice ch, tg_wino_geom *wg) {
    int tile = ch.tile;
    conv_path mode = ch.mode;
    if (!(mode == CONV_AUTO || mode == CONV_WINOGRAD) || dt != TG_FLOAT32) return false;
    if (g->G != 1 || g->sh != 1 || g->sw != 1 || g->dh != 1 || g->dw != 1 || g->KH != g->KW)
        return false;
    int m = tile ? tile : g->KH == 3 ? WINO_TILE_3X3 : WINO_TILE;
    if (!tg_wino_supported(m, (int)g->KH)) return false;
    if (mode == CONV_AUTO && (g->C < WINO_MIN_CHANNELS || g->O < WINO_MIN_CHANNELS)) return false;
    int64_t r = g->KH;
    if (which == WINO_DX) {
        if (g->ph > r - 1 || g->ph1 > r - 1 || g->pw > r - 1 || g->pw1 > r - 1) return false;
        *wg = (tg_wino_geom){.N = g->N, .C = g->O, .H = g->OH, .W = g->OW, .O = g->C, .r = r,
                             .pt = r - 1 - g->ph, .pb = r - 1 - g->ph1, .pl = r - 1 - g->pw,
                             .pr = r - 1 - g->pw1, .OH = g->H, .OW = g->W, .m = m};
    } else {
        *wg = (tg_wino_geom){.N = g->N, .C = g->C, .H = g->H, .W = g->W, .O = g->O, .r = r,
                             .pt = g->ph, .pb = g->ph1, .pl = g->pw, .pr = g->pw1,
                             .OH = g->OH, .OW = g->OW, .m = m};
    }
    double tiles = (double)((wg->OH + m - 1) / m) * (double)((wg->OW + m - 1) / m);
    double bytes = tg_wino_bytes_per_image(wg);
    if (!(bytes > 0 && bytes <= 64.0 * 1024 * 1024)) return false;
    if (which == WINO_DW && mode == CONV_AUTO &&
        (double)((m + r - 1) * (m + r - 1)) * (double)wg->O * (double)wg->C * 4.0 > WINO_DW_MAX_BYTES)
        return false;
    /* By default only products that gemm.c computes with its packed kernel
     * for any number of images (not its loops for tiny or vector products),
     * so that an image's result never depends on its batch; forced, any
     * size (the tests and the fuzzers reach the odd geometries). */
    return mode == CONV_WINOGRAD || (tiles >= 2 && tiles * (double)wg->O * (double)wg->C > 512);
}

/* Input channels up to which the direct few-channel kernel (conv_small.c)
 * computes the forward pass and the weight gradient by default (measured:
 * see the header). */
#define SMALL_MAX_CHANNELS 4

/* Whether conv_small.c computes g's forward pass and weight gradient in
 * dtype dt; if so, *sg is its geometry.  From the shapes and TAPEGRAD_CONV
 * only: float32, stride 1, dilation 1, one group, kernels up to 8 wide, at
 * most SMALL_MAX_CHANNELS input channels (any with TAPEGRAD_CONV=small). */
static bool small_geom(const geom *g, tg_dtype dt, conv_choice ch, tg_csmall_geom *sg) {
    if (dt != TG_FLOAT32 || !(ch.mode == CONV_AUTO || ch.mode == CONV_SMALL)) return false;
    if (g->G != 1 || g->sh != 1 || g->sw != 1 || g->dh != 1 || g->dw != 1) return false;
    if (ch.mode == CONV_AUTO && g->C > SMALL_MAX_CHANNELS) return false;
    *sg = (tg_csmall_geom){.N = g->N, .C = g->C, .H = g->H, .W = g->W, .O = g->O, .KH = g->KH,
                           .KW = g->KW, .pt = g->ph, .pb = g->ph1, .pl = g->pw, .pr = g->pw1,
                           .OH = g->OH, .OW = g->OW};
    return tg_csmall_supported(sg) != 0;
}

/* A Winograd result is kept only when it is all finite.  Otherwise the
 * call is computed again by the direct path: an inf or NaN among the
 * inputs reaches every output of its tile through the transforms (NaN
 * where the direct sum is finite, or inf - inf), and inputs near the top of
 * the float range can overflow in the transforms where the direct sum does
 * not; the direct path puts non-finite values exactly where the
 * definition does.  The Winograd calls check their outputs themselves,
 * each chunk on the part it has just written, and return 1 when one is not
 * finite (session 10: the check here was a serial read of the whole output
 * on the calling thread, about 1 % of the MNIST CNN's step). */
static bool wino_kept(int status) { return status == 0; }

static tg_tensor *job_failed(tg_tensor *out, const char *who) {
    tg_tensor_release(out);
    return TG_FAIL(TG_ERR_MEMORY, "%s: out of memory for the im2col buffer", who);
}

/* y = conv(x, w) + b; x, w, b contiguous of dtype dt.  New reference. */
static tg_tensor *conv_forward(const geom *g, tg_dtype dt, tg_tensor *x, tg_tensor *w, tg_tensor *b) {
    int64_t sh[4] = {g->N, g->O, g->OH, g->OW};
    tg_tensor *y = tg_tensor_empty(4, sh, dt);
    if (!y || y->numel == 0) return y;
    tg_wino_geom wg;
    tg_csmall_geom sg;
    conv_choice ch = conv_choose();
    if (wino_geom(g, dt, WINO_FWD, ch, &wg) &&
        wino_kept(tg_wino_conv_f32(&wg, tg_tensor_data(x), tg_tensor_data(w), 0,
                                   b ? tg_tensor_data(b) : NULL, tg_tensor_data(y))))
        return y;
    if (small_geom(g, dt, ch, &sg) &&
        tg_csmall_conv_f32(&sg, tg_tensor_data(x), tg_tensor_data(w), b ? tg_tensor_data(b) : NULL,
                           tg_tensor_data(y)) == 0)
        return y;
    conv_job j = {.g = g, .dt = dt, .x = tg_tensor_data(x), .w = tg_tensor_data(w),
                  .b = b ? tg_tensor_data(b) : NULL, .out = tg_tensor_data(y),
                  .implicit = ch.mode != CONV_IM2COL};
    over_images(g, fwd_range, &j);
    return j.failed ? job_failed(y, "conv2d") : y;
}

/* dx = conv^T(dy, w).  New reference. */
static tg_tensor *conv_input_grad(const geom *g, tg_dtype dt, tg_tensor *dy, tg_tensor *w) {
    int64_t sh[4] = {g->N, g->C, g->H, g->W};
    tg_tensor *dx = tg_tensor_empty(4, sh, dt);
    if (!dx || dx->numel == 0) return dx;
    tg_wino_geom wg;
    if (wino_geom(g, dt, WINO_DX, conv_choose(), &wg) &&
        wino_kept(tg_wino_conv_f32(&wg, tg_tensor_data(dy), tg_tensor_data(w), 1, NULL,
                                   tg_tensor_data(dx))))
        return dx;
    conv_job j = {.g = g, .dt = dt, .w = tg_tensor_data(w), .dy = tg_tensor_data(dy),
                  .out = tg_tensor_data(dx)};
    over_images(g, dx_range, &j);
    return j.failed ? job_failed(dx, "conv2d_input_grad") : dx;
}

/* dw = sum_n dy_n @ im2col(x_n)^T.  New reference. */
static tg_tensor *conv_weight_grad(const geom *g, tg_dtype dt, tg_tensor *x, tg_tensor *dy) {
    int64_t sh[4] = {g->O, g->C / g->G, g->KH, g->KW};
    if (g->N == 0) return tg_tensor_zeros(4, sh, dt);
    tg_tensor *dw = tg_tensor_empty(4, sh, dt);
    if (!dw || dw->numel == 0) return dw;
    tg_wino_geom wg;
    tg_csmall_geom sg;
    conv_choice ch = conv_choose();
    if (wino_geom(g, dt, WINO_DW, ch, &wg) &&
        wino_kept(tg_wino_weight_grad_f32(&wg, tg_tensor_data(x), tg_tensor_data(dy), tg_tensor_data(dw))))
        return dw;
    if (small_geom(g, dt, ch, &sg) &&
        tg_csmall_weight_grad_f32(&sg, tg_tensor_data(x), tg_tensor_data(dy), tg_tensor_data(dw)) == 0)
        return dw;
    size_t isz = tg_dtype_size(dt);
    int64_t nw = dw->numel;
    /* The number of partial sums depends on the shapes only (never on the
     * thread count), so the result is the same with any number of threads. */
    int64_t nparts = g->N < CONV_MAX_DW_PARTS ? g->N : CONV_MAX_DW_PARTS;
    int64_t per_part = (g->N + nparts - 1) / nparts;
    int64_t want = image_grain(g); /* images a chunk should have */
    while (nparts > 1 && (per_part < want || (double)nparts * (double)nw * (double)isz > 64e6)) {
        nparts--;
        per_part = (g->N + nparts - 1) / nparts;
    }
    char *parts = nparts == 1 ? tg_tensor_data(dw) : tg__alloc((size_t)(nparts * nw) * isz, "conv2d_weight_grad");
    if (!parts) {
        tg_tensor_release(dw);
        return NULL;
    }
    conv_job j = {.g = g, .dt = dt, .x = tg_tensor_data(x), .dy = tg_tensor_data(dy), .out = parts,
                  .nparts = nparts, .implicit = ch.mode != CONV_IM2COL};
    if (nparts > 1) tg_parallel_for(nparts, 1, dw_range, &j);
    else dw_range(0, 1, &j);
    if (nparts > 1) {
        if (!j.failed) { /* sum the parts in a fixed order */
            if (dt == TG_FLOAT32) {
                float *d = tg_tensor_data(dw);
                const float *p = (const float *)parts;
                for (int64_t i = 0; i < nw; i++) {
                    float s = p[i];
                    for (int64_t k = 1; k < nparts; k++) s += p[k * nw + i];
                    d[i] = s;
                }
            } else {
                double *d = tg_tensor_data(dw);
                const double *p = (const double *)parts;
                for (int64_t i = 0; i < nw; i++) {
                    double s = p[i];
                    for (int64_t k = 1; k < nparts; k++) s += p[k * nw + i];
                    d[i] = s;
                }
            }
        }
        tg__free(parts, (size_t)(nparts * nw) * isz);
    }
    return j.failed ? job_failed(dw, "conv2d_weight_grad") : dw;
}

/* ===================================================================== */
/* Argument checks                                                        */
/* ===================================================================== */

static tg_status need_float(const char *who, const char *what, const tg_tensor *t) {
    if (!t) return tg_error_set(TG_ERR_VALUE, "%s: %s is NULL", who, what);
    if (!tg_dtype_is_float(t->dtype))
        return tg_error_set(TG_ERR_TYPE, "%s: expected a float32 or float64 %s, got %s (shape %s)",
                            who, what, tg_dtype_name(t->dtype), tg__shp(t));
    return TG_OK;
}

static tg_status need_4d(const char *who, const char *what, const char *layout, const tg_tensor *t) {
    if (t->ndim != 4)
        return tg_error_set(TG_ERR_VALUE, "%s: expected a 4-D %s %s, got shape %s%s", who, what,
                            layout, tg__shp(t),
                            t->ndim == 3 && !strcmp(what, "input")
                                ? " (add a batch axis of size 1 for a single image)"
                                : "");
    return TG_OK;
}

/* The geometry of conv(x of shape xs, w of shape ws) with parameters cv;
 * checks the groups and the channels. */
static tg_status conv_geom(const char *who, const int64_t *xs, const int64_t *ws, const int64_t *cv,
                           geom *g) {
    int64_t G = cv[CV_G];
    if (G <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: groups must be positive, got %lld", who, (long long)G);
    if (xs[1] % G || ws[0] % G)
        return tg_error_set(TG_ERR_VALUE,
                            "%s: groups=%lld must divide both the input channels (%lld, input shape "
                            "%s) and the output channels (%lld, weight shape %s)",
                            who, (long long)G, (long long)xs[1], tg__shp2(4, xs), (long long)ws[0],
                            tg__shp2(4, ws));
    int64_t cin;
    if (__builtin_mul_overflow(ws[1], G, &cin) || xs[1] != cin) {
        if (G == 1)
            return tg_error_set(TG_ERR_VALUE,
                                "%s: input has %lld channels but weight expects %lld (weight shape "
                                "%s); input shape %s",
                                who, (long long)xs[1], (long long)ws[1], tg__shp2(4, ws),
                                tg__shp2(4, xs));
        return tg_error_set(TG_ERR_VALUE,
                            "%s: input has %lld channels but weight expects groups (%lld) x %lld "
                            "(weight shape %s); input shape %s",
                            who, (long long)xs[1], (long long)G, (long long)ws[1], tg__shp2(4, ws),
                            tg__shp2(4, xs));
    }
    return make_geom(who, xs, ws[0], ws[2], ws[3], cv, g);
}

/* dy must have the shape of conv's output for geometry g. */
static tg_status check_dy(const char *who, const tg_tensor *dy, const geom *g) {
    int64_t want[4] = {g->N, g->O, g->OH, g->OW};
    if (!tg__same_shape(dy->ndim, dy->shape, 4, want))
        return tg_error_set(TG_ERR_VALUE,
                            "%s: grad_output has shape %s but the convolution's output has shape %s "
                            "(input %s, weight (%lld, %lld, %lld, %lld), stride (%lld, %lld), "
                            "padding (%lld, %lld), dilation (%lld, %lld), groups %lld)",
                            who, tg__shp(dy), tg__shp2(4, want),
                            tg__shp2(4, (int64_t[]){g->N, g->C, g->H, g->W}), (long long)g->O,
                            (long long)(g->C / g->G), (long long)g->KH, (long long)g->KW,
                            (long long)g->sh, (long long)g->sw, (long long)g->ph, (long long)g->pw,
                            (long long)g->dh, (long long)g->dw, (long long)g->G);
    return TG_OK;
}

/* Record `out` for op with inputs in[0..n), saving in[0] and in[1]; the
 * entry keeps the shape pshape (4 sizes) and the parameters cv. */
static tg_tensor *finish_conv(const tg_opdef *op, int n, tg_tensor **in, tg_tensor *out,
                              const int64_t *pshape, const int64_t *cv) {
    tg_entry *e;
    out = tg__finish(op, n, in, out, &e);
    if (e) {
        memcpy(e->params.ints, cv, CV_NPARAMS * sizeof *cv);
        e->params.ndim = 4;
        memcpy(e->params.shape, pshape, 4 * sizeof *pshape);
        if (tg__save(e, in[0]) || tg__save(e, in[1])) {
            tg_tensor_release(out);
            return NULL;
        }
    }
    return out;
}

/* The parameters of a convolution with no dilation, no groups and the same
 * padding on both sides (the classic four-number API). */
static void classic_params(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t *cv) {
    int64_t v[CV_NPARAMS] = {sh, sw, ph, pw, 1, 1, 1, ph, pw};
    memcpy(cv, v, sizeof v);
}

/* ===================================================================== */
/* conv2d                                                                 */
/* ===================================================================== */

/* y (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C/G, KH, KW)) + b (O,) or
 * no bias (b NULL), parameters cv (CV_NPARAMS).  Returns a NEW reference
 * (recorded on the tape when an input requires grad; x and w are saved for
 * backward); NULL with TG_ERR_TYPE (int64) or TG_ERR_VALUE (shapes, stride,
 * padding, dilation, groups) or TG_ERR_MEMORY set.  Arguments borrowed. */
tg_tensor *tg_conv2d_ex(tg_tensor *x, tg_tensor *w, tg_tensor *b, const int64_t *cv) {
    const char *who = "conv2d";
    if (need_float(who, "input", x) || need_float(who, "weight", w) ||
        (b && need_float(who, "bias", b)))
        return NULL;
    if (need_4d(who, "input", "(N, C, H, W)", x) ||
        need_4d(who, "weight", "(out_channels, in_channels / groups, kH, kW)", w))
        return NULL;
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return TG_FAIL(TG_ERR_VALUE, "conv2d: bias has shape %s but the weight %s has %lld output "
                                     "channels (expected shape (%lld,))",
                       tg__shp(b), tg__shp(w), (long long)w->shape[0], (long long)w->shape[0]);
    geom g;
    if (conv_geom(who, x->shape, w->shape, cv, &g)) return NULL;
    tg_dtype dt = tg_dtype_promote(x->dtype, w->dtype);
    if (b) dt = tg_dtype_promote(dt, b->dtype);
    tg_tensor *xc = dense(x, dt), *wc = xc ? dense(w, dt) : NULL;
    tg_tensor *bc = (wc && b) ? dense(b, dt) : NULL;
    tg_tensor *y = (wc && (bc || !b)) ? conv_forward(&g, dt, xc, wc, bc) : NULL;
    tg_tensor_release(xc);
    tg_tensor_release(wc);
    tg_tensor_release(bc);
    tg_tensor *in[3] = {x, w, b};
    return finish_conv(&tg_opdef_conv2d, b ? 3 : 2, in, y, x->shape, cv);
}

tg_tensor *tg_conv2d(tg_tensor *x, tg_tensor *w, tg_tensor *b, int64_t sh, int64_t sw, int64_t ph,
                     int64_t pw) {
    int64_t cv[CV_NPARAMS];
    classic_params(sh, sw, ph, pw, cv);
    return tg_conv2d_ex(x, w, b, cv);
}

/* db[o] = the sum of dy[n, o, :, :] over n, for channels [o0, o1): float64
 * accumulators, eight per channel (element p of a row goes to p mod 8, so
 * the loop vectorizes and the order is fixed), added pairwise at the end.
 * Channels are independent: the same bits on any number of threads. */
typedef struct {
    const void *dy;
    void *db;
    int64_t N, O, OHW;
    tg_dtype dt;
} bias_job;

static void bias_range(int64_t o0, int64_t o1, void *vjob) {
    const bias_job *j = vjob;
    for (int64_t o = o0; o < o1; o++) {
        double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t n = 0; n < j->N; n++) {
            int64_t base = (n * j->O + o) * j->OHW, p = 0;
            if (j->dt == TG_FLOAT32) {
                const float *r = (const float *)j->dy + base;
                for (; p + 8 <= j->OHW; p += 8)
                    for (int q = 0; q < 8; q++) acc[q] += (double)r[p + q];
                for (; p < j->OHW; p++) acc[p & 7] += (double)r[p];
            } else {
                const double *r = (const double *)j->dy + base;
                for (; p + 8 <= j->OHW; p += 8)
                    for (int q = 0; q < 8; q++) acc[q] += r[p + q];
                for (; p < j->OHW; p++) acc[p & 7] += r[p];
            }
        }
        double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        if (j->dt == TG_FLOAT32) ((float *)j->db)[o] = (float)s;
        else ((double *)j->db)[o] = s;
    }
}

/* conv2d's bias gradient sum(dy, (0, 2, 3)) without building a graph: the
 * general reduction over those non-adjacent axes is a serial strided loop
 * (3 % of the MNIST CNN's step, all of it on one thread).  For a contiguous
 * float dy (bias_grad_applies); a new reference, NULL on out of memory. */
static bool bias_grad_applies(const tg_tensor *dy) {
    return dy->ndim == 4 && tg_tensor_is_contiguous(dy) && tg_dtype_is_float(dy->dtype);
}
static tg_tensor *bias_grad(tg_tensor *dy) {
    int64_t O = dy->shape[1];
    tg_tensor *db = tg_tensor_empty(1, &O, dy->dtype);
    if (!db || O == 0) return db;
    bias_job j = {tg_tensor_data(dy), tg_tensor_data(db), dy->shape[0], O,
                  dy->shape[2] * dy->shape[3], dy->dtype};
    double per = (double)j.N * (double)j.OHW; /* elements per channel */
    double gr = ceil(POOL_MIN_WORK_PER_CHUNK / (per > 0 ? per : 1));
    tg_parallel_for(O, gr > (double)O ? O : (int64_t)gr, bias_range, &j);
    return db;
}

static tg_status conv2d_vjp(tg_entry *e, tg_tensor *g, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = tg_entry_saved(e, 0), *w = x ? tg_entry_saved(e, 1) : NULL;
    CHECK(w);
    const int64_t *p = e->params.ints;
    if (tg_entry_needs_grad(e, 0)) CHECK(gi[0] = tg_conv2d_input_grad_ex(g, w, x->shape, p));
    if (tg_entry_needs_grad(e, 1)) CHECK(gi[1] = tg_conv2d_weight_grad_ex(x, g, w->shape, p));
    if (e->n_inputs == 3 && tg_entry_needs_grad(e, 2)) {
        int64_t axes[3] = {0, 2, 3};
        if (!tg_grad_enabled() && bias_grad_applies(g)) {
            CHECK(gi[2] = bias_grad(g));
            return TG_OK;
        }
        CHECK(gi[2] = tg_sum(g, axes, 3, false));
    }
    return TG_OK;
}
static tg_tensor *apply_conv2d(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 2 && n != 3) return TG_FAIL(TG_ERR_VALUE, "conv2d: expected 2 or 3 inputs, got %d", n);
    return tg_conv2d_ex(in[0], in[1], n == 3 ? in[2] : NULL, p->ints);
}
TG_DEFINE_OP(conv2d, .arity = -1, .diff_mask = 7, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_CONV, 2, 2, true},
             .forward = "y[n,o,i,j] = b[o] + sum_{c,p,q} w[o,c,p,q] x[n, (o div Og) Cg + c, i*sh + p*dh - ph, j*sw + q*dw - pw]",
             .forward_tex = "y_{noij} = b_o + \\sum_{c,p,q} w_{ocpq}\\, x_{n,\\,\\lfloor o/O_g \\rfloor C_g + c,\\,i s_h + p d_h - p_h,\\,j s_w + q d_w - p_w}",
             .vjp = "dx = conv2d_input_grad(dy, w), dw = conv2d_weight_grad(x, dy), db = sum(dy, (0, 2, 3))",
             .vjp_tex = "\\bar x = \\bar y \\star^{\\top} w,\\quad \\bar w = \\sum_n \\bar y_n \\star x_n,"
                        "\\quad \\bar b_o = \\sum_{n,i,j} \\bar y_{noij}",
             .doc = "2-D convolution (cross-correlation) of x (N, C, H, W) with w (O, C/groups, kH, kW) "
                    "and an optional bias (O,), by im2col + GEMM; ints = stride (h, w), padding (top, "
                    "left), dilation (h, w), groups, padding (bottom, right).",
             .backward = conv2d_vjp, .apply = apply_conv2d,
             .examples = "2x3x6x5,4x3x3x2,4|ints=1,2,1,0,1,1,1,1,0;"
                         "2x2x7x6,3x2x3x3|ints=2,2,0,1,1,1,1,0,1;"
                         "T2x3x5x4,2x3x1x1,2|ints=1,1,0,0,1,1,1,0,0;"
                         "1x2x4x5,3x2x2x3,3|ints=3,1,2,2,1,1,1,2,2;"
                         "1x2x5x6,2x2x3x4,2|ints=2,1,1,2,1,1,1,1,2;"
                         "2x4x7x6,6x2x3x2,6|ints=1,2,1,0,2,1,2,2,1;"
                         "1x6x6x7,3x2x2x3|ints=2,1,1,0,2,2,3,0,1;"
                         "1x2x5x4,3x2x2x3|ints=1,1,0,1,1,1,1,1,1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x;\\bar w;\\bar b");

/* ===================================================================== */
/* conv2d_input_grad (dx, a transposed convolution)                       */
/* ===================================================================== */

/* dx (x_shape) = the transposed convolution of dy (N, O, OH, OW) with w
 * (O, C/G, KH, KW); dy must have conv2d's output shape for x_shape.  A NEW
 * reference (recorded, differentiable in dy and w) or NULL with the error
 * set.  Arguments borrowed; x_shape: 4 sizes, read only. */
tg_tensor *tg_conv2d_input_grad_ex(tg_tensor *dy, tg_tensor *w, const int64_t *x_shape,
                                   const int64_t *cv) {
    const char *who = "conv2d_input_grad";
    if (need_float(who, "grad_output", dy) || need_float(who, "weight", w)) return NULL;
    if (need_4d(who, "grad_output", "(N, O, OH, OW)", dy) ||
        need_4d(who, "weight", "(out_channels, in_channels / groups, kH, kW)", w))
        return NULL;
    if (!x_shape) return TG_FAIL(TG_ERR_VALUE, "%s: the input shape is NULL", who);
    for (int d = 0; d < 4; d++)
        if (x_shape[d] < 0)
            return TG_FAIL(TG_ERR_VALUE, "%s: invalid input shape %s", who, tg__shp2(4, x_shape));
    geom g;
    if (conv_geom(who, x_shape, w->shape, cv, &g) || check_dy(who, dy, &g)) return NULL;
    tg_dtype dt = tg_dtype_promote(dy->dtype, w->dtype);
    tg_tensor *dc = dense(dy, dt), *wc = dc ? dense(w, dt) : NULL;
    tg_tensor *dx = wc ? conv_input_grad(&g, dt, dc, wc) : NULL;
    tg_tensor_release(dc);
    tg_tensor_release(wc);
    tg_tensor *in[2] = {dy, w};
    return finish_conv(&tg_opdef_conv2d_input_grad, 2, in, dx, x_shape, cv);
}

tg_tensor *tg_conv2d_input_grad(tg_tensor *dy, tg_tensor *w, const int64_t *x_shape, int64_t sh,
                                int64_t sw, int64_t ph, int64_t pw) {
    int64_t cv[CV_NPARAMS];
    classic_params(sh, sw, ph, pw, cv);
    return tg_conv2d_input_grad_ex(dy, w, x_shape, cv);
}

static tg_status conv2d_input_grad_vjp(tg_entry *e, tg_tensor *u, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *dy = tg_entry_saved(e, 0), *w = dy ? tg_entry_saved(e, 1) : NULL;
    CHECK(w);
    const int64_t *p = e->params.ints;
    if (tg_entry_needs_grad(e, 0)) CHECK(gi[0] = tg_conv2d_ex(u, w, NULL, p));
    if (tg_entry_needs_grad(e, 1)) CHECK(gi[1] = tg_conv2d_weight_grad_ex(u, dy, w->shape, p));
    return TG_OK;
}
static tg_tensor *apply_conv2d_input_grad(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    if (p->ndim != 4) return TG_FAIL(TG_ERR_VALUE, "conv2d_input_grad: shape= must give the 4-D input shape");
    return tg_conv2d_input_grad_ex(in[0], in[1], p->shape, p->ints);
}
TG_DEFINE_OP(conv2d_input_grad, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_CONV_GRAD, 2, 2, true},
             .forward = "dx = col2im(w^T dy) per group: the gradient of conv2d with respect to its input",
             .forward_tex = "\\bar x_{n,\\,\\lfloor o/O_g \\rfloor C_g + c,\\,i s_h + p d_h - p_h,\\,j s_w + q d_w - p_w} \\mathrel{+}= \\sum_o w_{ocpq}\\, \\bar y_{noij}",
             .vjp = "d(dy) = conv2d(u, w), dw = conv2d_weight_grad(u, dy)",
             .vjp_tex = "\\bar{\\bar y} = u \\star w,\\quad \\bar w = \\sum_n \\bar y_n \\star u_n",
             .doc = "Transposed convolution: the VJP of conv2d for its input (inputs dy, w); shape = "
                    "the input's shape, ints = conv2d's.",
             .backward = conv2d_input_grad_vjp, .apply = apply_conv2d_input_grad,
             .examples = "2x4x6x2,4x3x3x2|shape=2,3,6,5 ints=1,2,1,0,1,1,1,1,0;"
                         "2x3x2x3,3x2x3x3|shape=2,2,6,6 ints=2,2,0,1,1,1,1,0,1;"
                         "T2x2x3x4,2x3x1x1|shape=2,3,3,4 ints=1,1,0,0,1,1,1,0,0;"
                         "2x6x6x3,6x2x3x2|shape=2,4,7,6 ints=1,2,1,0,2,1,2,2,1;"
                         "1x3x3x4,3x2x2x3|shape=1,6,6,7 ints=2,1,1,0,2,2,3,0,1",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar y;\\bar w");

/* ===================================================================== */
/* conv2d_weight_grad (dw)                                                */
/* ===================================================================== */

/* dw (w_shape = (O, C/G, KH, KW)) = sum over the images of dy_n correlated
 * with x_n; x (N, C, H, W), dy (N, O, OH, OW) the output shape of that
 * convolution.  A NEW reference (recorded, differentiable in x and dy) or
 * NULL with the error set.  Arguments borrowed; w_shape read only. */
tg_tensor *tg_conv2d_weight_grad_ex(tg_tensor *x, tg_tensor *dy, const int64_t *w_shape,
                                    const int64_t *cv) {
    const char *who = "conv2d_weight_grad";
    if (need_float(who, "input", x) || need_float(who, "grad_output", dy)) return NULL;
    if (need_4d(who, "input", "(N, C, H, W)", x) || need_4d(who, "grad_output", "(N, O, OH, OW)", dy))
        return NULL;
    if (!w_shape) return TG_FAIL(TG_ERR_VALUE, "%s: the weight shape is NULL", who);
    for (int d = 0; d < 4; d++)
        if (w_shape[d] < 0)
            return TG_FAIL(TG_ERR_VALUE, "%s: invalid weight shape %s", who, tg__shp2(4, w_shape));
    geom g;
    if (conv_geom(who, x->shape, w_shape, cv, &g) || check_dy(who, dy, &g)) return NULL;
    tg_dtype dt = tg_dtype_promote(x->dtype, dy->dtype);
    tg_tensor *xc = dense(x, dt), *dc = xc ? dense(dy, dt) : NULL;
    tg_tensor *dw = dc ? conv_weight_grad(&g, dt, xc, dc) : NULL;
    tg_tensor_release(xc);
    tg_tensor_release(dc);
    tg_tensor *in[2] = {x, dy};
    return finish_conv(&tg_opdef_conv2d_weight_grad, 2, in, dw, w_shape, cv);
}

tg_tensor *tg_conv2d_weight_grad(tg_tensor *x, tg_tensor *dy, const int64_t *w_shape, int64_t sh,
                                 int64_t sw, int64_t ph, int64_t pw) {
    int64_t cv[CV_NPARAMS];
    classic_params(sh, sw, ph, pw, cv);
    return tg_conv2d_weight_grad_ex(x, dy, w_shape, cv);
}

static tg_status conv2d_weight_grad_vjp(tg_entry *e, tg_tensor *v, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *x = tg_entry_saved(e, 0), *dy = x ? tg_entry_saved(e, 1) : NULL;
    CHECK(dy);
    const int64_t *p = e->params.ints;
    if (tg_entry_needs_grad(e, 0)) CHECK(gi[0] = tg_conv2d_input_grad_ex(dy, v, x->shape, p));
    if (tg_entry_needs_grad(e, 1)) CHECK(gi[1] = tg_conv2d_ex(x, v, NULL, p));
    return TG_OK;
}
static tg_tensor *apply_conv2d_weight_grad(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    if (p->ndim != 4) return TG_FAIL(TG_ERR_VALUE, "conv2d_weight_grad: shape= must give the 4-D weight shape");
    return tg_conv2d_weight_grad_ex(in[0], in[1], p->shape, p->ints);
}
TG_DEFINE_OP(conv2d_weight_grad, .arity = 2, .diff_mask = 3, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_CONV_GRAD, 2, 2, true},
             .forward = "dw = sum_n dy_n im2col(x_n)^T per group: the gradient of conv2d with respect to its weight",
             .forward_tex = "\\bar w_{ocpq} = \\sum_{n,i,j} \\bar y_{noij}\\, x_{n,\\,\\lfloor o/O_g \\rfloor C_g + c,\\,i s_h + p d_h - p_h,\\,j s_w + q d_w - p_w}",
             .vjp = "dx = conv2d_input_grad(dy, v), d(dy) = conv2d(x, v)",
             .vjp_tex = "\\bar x = \\bar y \\star^{\\top} v,\\quad \\bar{\\bar y} = x \\star v",
             .doc = "The VJP of conv2d for its weight (inputs x, dy); shape = the weight's shape, "
                    "ints = conv2d's.",
             .backward = conv2d_weight_grad_vjp, .apply = apply_conv2d_weight_grad,
             .examples = "2x3x6x5,2x4x6x2|shape=4,3,3,2 ints=1,2,1,0,1,1,1,1,0;"
                         "3x2x6x6,3x3x2x3|shape=3,2,3,3 ints=2,2,0,1,1,1,1,0,1;"
                         "T2x3x3x4,2x2x3x4|shape=2,3,1,1 ints=1,1,0,0,1,1,1,0,0;"
                         "2x2x5x7,2x3x6x3|shape=3,2,2,4 ints=1,2,1,1,1,1,1,1,1;"
                         "2x4x7x6,2x6x6x3|shape=6,2,3,2 ints=1,2,1,0,2,1,2,2,1",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar x;\\bar y");

/* ===================================================================== */
/* Pooling                                                                */
/* ===================================================================== */

/* The parameters of the pooling ops, in the order of their params.ints. */
enum { PL_KH, PL_KW, PL_SH, PL_SW, PL_PH, PL_PW, PL_DH, PL_DW, PL_CEIL, PL_COUNT_PAD, PL_DIVISOR,
       PL_NPARAMS };

/* The output size of pooling along one axis (PyTorch's rule): floor (or
 * ceil, in ceil mode) of (n + 2p - d(k-1) - 1) / s, plus 1; in ceil mode
 * the last window must start inside the input or its left padding.  The
 * numerator may be negative (a window larger than the padded input still
 * gives one output in ceil mode when the stride covers the gap, as in
 * PyTorch); <= 0 when no window fits.  No overflow for any stride. */
static int64_t pool_out_size(int64_t n, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
    int64_t num = n + 2 * p - d * (k - 1) - 1;
    int64_t q = num / s, r = num % s; /* C truncates toward zero */
    if (r != 0 && num < 0) q--;       /* floor */
    if (ceil_mode && r != 0) q++;     /* ceil */
    int64_t o = q + 1;
    if (ceil_mode && o > 1 && (o - 1) >= (n + p) / s + ((n + p) % s != 0)) o--; /* (o-1)*s >= n+p */
    return o;
}

/* Checks shared by the pooling ops; fills g (O = C) from the input shape xs
 * and the parameters pp (PL_NPARAMS). */
static tg_status pool_geom(const char *who, const int64_t *xs, const int64_t *pp, geom *g) {
    int64_t kh = pp[PL_KH], kw = pp[PL_KW], sh = pp[PL_SH], sw = pp[PL_SW], ph = pp[PL_PH],
            pw = pp[PL_PW], dh = pp[PL_DH], dw = pp[PL_DW];
    if (kh <= 0 || kw <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: kernel size must be positive, got (%lld, %lld)", who,
                            (long long)kh, (long long)kw);
    if (sh <= 0 || sw <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: stride must be positive, got (%lld, %lld)", who,
                            (long long)sh, (long long)sw);
    if (dh <= 0 || dw <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: dilation must be positive, got (%lld, %lld)", who,
                            (long long)dh, (long long)dw);
    if (pp[PL_DIVISOR] < 0)
        return tg_error_set(TG_ERR_VALUE, "%s: divisor_override must be positive, got %lld", who,
                            (long long)pp[PL_DIVISOR]);
    if (ph < 0 || pw < 0)
        return tg_error_set(TG_ERR_VALUE, "%s: padding must be non-negative, got (%lld, %lld)", who,
                            (long long)ph, (long long)pw);
    /* bounded so that the sizes below cannot overflow (any stride is fine) */
    const int64_t big = (int64_t)1 << 40;
    if (kh > big || kw > big || dh > big || dw > big || ph > big || pw > big)
        return tg_error_set(TG_ERR_VALUE, "%s: kernel size, padding or dilation out of range "
                            "(kernel (%lld, %lld), padding (%lld, %lld), dilation (%lld, %lld))",
                            who, (long long)kh, (long long)kw, (long long)ph, (long long)pw,
                            (long long)dh, (long long)dw);
    int64_t ekh, ekw; /* the dilated window */
    if (__builtin_mul_overflow(dh, kh - 1, &ekh) || __builtin_mul_overflow(dw, kw - 1, &ekw) ||
        ekh > big || ekw > big)
        return tg_error_set(TG_ERR_VALUE, "%s: kernel size (%lld, %lld) with dilation (%lld, %lld) "
                            "is out of range", who, (long long)kh, (long long)kw, (long long)dh,
                            (long long)dw);
    ekh++, ekw++;
    if (ph > kh / 2 || pw > kw / 2) /* PyTorch's rule: half the kernel, dilation or not */
        return tg_error_set(TG_ERR_VALUE,
                            "%s: padding (%lld, %lld) must be at most half of the kernel size "
                            "(%lld, %lld)",
                            who, (long long)ph, (long long)pw, (long long)kh, (long long)kw);
    if (xs[2] <= 0 || xs[3] <= 0)
        return tg_error_set(TG_ERR_VALUE, "%s: the input's height and width must be positive, got "
                                          "shape %s", who, tg__shp2(4, xs));
    if (xs[2] > big || xs[3] > big)
        return tg_error_set(TG_ERR_VALUE, "%s: input %s is too large", who, tg__shp2(4, xs));
    bool cm = pp[PL_CEIL] != 0;
    int64_t OH = pool_out_size(xs[2], kh, sh, ph, dh, cm), OW = pool_out_size(xs[3], kw, sw, pw, dw, cm);
    if (OH <= 0 || OW <= 0) {
        if (dh == 1 && dw == 1)
            return tg_error_set(TG_ERR_VALUE,
                                "%s: kernel size (%lld, %lld) is larger than the padded input size "
                                "(%lld, %lld) (input shape %s, padding (%lld, %lld))",
                                who, (long long)kh, (long long)kw, (long long)(xs[2] + 2 * ph),
                                (long long)(xs[3] + 2 * pw), tg__shp2(4, xs), (long long)ph,
                                (long long)pw);
        return tg_error_set(TG_ERR_VALUE,
                            "%s: kernel size (%lld, %lld) with dilation (%lld, %lld) spans (%lld, "
                            "%lld), larger than the padded input size (%lld, %lld) (input shape %s)",
                            who, (long long)kh, (long long)kw, (long long)dh, (long long)dw,
                            (long long)ekh, (long long)ekw, (long long)(xs[2] + 2 * ph),
                            (long long)(xs[3] + 2 * pw), tg__shp2(4, xs));
    }
    /* every window must see at least one input (a dilated window can step
     * over a small input entirely) */
    for (int ax = 0; ax < 2; ax++) {
        int64_t n = xs[2 + ax], on = ax ? OW : OH, s = ax ? sw : sh, p = ax ? pw : ph;
        int64_t k = ax ? kw : kh, d = ax ? dw : dh;
        for (int64_t o = 0; o < on; o++) {
            /* with n >= d (or k == 1) a window that reaches into the input has a tap in
             * it, and every window between two that do reaches into it: only the edge
             * windows can miss (and a shape= of 2**40 must not loop 2**40 times) */
            if (o == 1 && on > 2 && (n >= d || k == 1)) o = on - 1;
            int64_t i0, i1;
            taps(o * s - p, k, d, n, &i0, &i1);
            if (i0 >= i1)
                return tg_error_set(TG_ERR_VALUE,
                                    "%s: output position %lld along the %s covers only padding "
                                    "(input shape %s, kernel (%lld, %lld), stride (%lld, %lld), "
                                    "padding (%lld, %lld), dilation (%lld, %lld))",
                                    who, (long long)o, ax ? "width" : "height", tg__shp2(4, xs),
                                    (long long)kh, (long long)kw, (long long)sh, (long long)sw,
                                    (long long)ph, (long long)pw, (long long)dh, (long long)dw);
        }
    }
    *g = (geom){.N = xs[0], .C = xs[1], .H = xs[2], .W = xs[3], .O = xs[1], .KH = kh, .KW = kw,
                .sh = sh, .sw = sw, .ph = ph, .pw = pw, .OH = OH, .OW = OW, .dh = dh, .dw = dw,
                .G = 1, .count_pad = pp[PL_COUNT_PAD] != 0, .divisor = pp[PL_DIVISOR]};
    return TG_OK;
}

static void store_pool_params(tg_entry *e, const int64_t *pp, const geom *g) {
    memcpy(e->params.ints, pp, PL_NPARAMS * sizeof *pp);
    e->params.ndim = 4;
    int64_t xs[4] = {g->N, g->C, g->H, g->W};
    memcpy(e->params.shape, xs, sizeof xs);
}

/* The parameters of the classic pooling calls (no dilation, floor mode,
 * count_include_pad, no divisor override). */
static void classic_pool(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                         int64_t *pp) {
    int64_t v[PL_NPARAMS] = {kh, kw, sh, sw, ph, pw, 1, 1, 0, 1, 0};
    memcpy(pp, v, sizeof v);
}

/* Pooling job: planes [p0, p1) of N*C. */
typedef struct {
    const geom *g;
    tg_dtype dt;
    int kind; /* 0 max, 1 avg, 2 max backward, 3 avg backward */
    const void *in;
    const int64_t *idx_in;
    void *out;
    int64_t *idx_out;
} pool_job;

static void pool_range(int64_t p0, int64_t p1, void *vjob) {
    const pool_job *j = vjob;
    bool f = j->dt == TG_FLOAT32;
    switch (j->kind) {
    case 0:
        if (f) maxpool_f32(j->g, p0, p1, j->in, j->out, j->idx_out);
        else maxpool_f64(j->g, p0, p1, j->in, j->out, j->idx_out);
        break;
    case 1:
        if (f) avgpool_f32(j->g, p0, p1, j->in, j->out);
        else avgpool_f64(j->g, p0, p1, j->in, j->out);
        break;
    case 2:
        if (f) maxpool_bw_f32(j->g, p0, p1, j->in, j->idx_in, j->out);
        else maxpool_bw_f64(j->g, p0, p1, j->in, j->idx_in, j->out);
        break;
    default:
        if (f) avgpool_bw_f32(j->g, p0, p1, j->in, j->out);
        else avgpool_bw_f64(j->g, p0, p1, j->in, j->out);
        break;
    }
}

static void run_pool(pool_job *j) {
    const geom *g = j->g;
    int64_t planes = g->N * g->C;
    double work = (double)(g->OH * g->OW) * (double)(g->KH * g->KW) + (double)(g->H * g->W);
    double gr = ceil(POOL_MIN_WORK_PER_CHUNK / (work > 0 ? work : 1));
    tg_parallel_for(planes, gr > (double)planes ? planes : (int64_t)gr, pool_range, j);
}

/* ---- max_pool2d ---------------------------------------------------------- */

static tg_tensor *max_pool2d_backward(tg_tensor *dy, tg_tensor *idx, const geom *g);

/* y (N, C, OH, OW) = the max of each window of x (N, C, H, W), padding
 * -inf, parameters pp (PL_NPARAMS; the average-pooling ones are ignored).
 * A NEW reference (recorded with the int64 positions of the maxima saved)
 * or NULL with the error set.  indices non-NULL: *indices = a NEW
 * reference to those positions (int64, y's shape, flat h*W + w within each
 * plane, as PyTorch's return_indices), not differentiable.  x borrowed. */
tg_tensor *tg_max_pool2d_ex(tg_tensor *x, const int64_t *pp, tg_tensor **indices) {
    const char *who = "max_pool2d";
    if (indices) *indices = NULL;
    if (need_float(who, "input", x) || need_4d(who, "input", "(N, C, H, W)", x)) return NULL;
    int64_t mp[PL_NPARAMS];
    memcpy(mp, pp, sizeof mp);
    mp[PL_COUNT_PAD] = 1;
    mp[PL_DIVISOR] = 0;
    geom g;
    if (pool_geom(who, x->shape, mp, &g)) return NULL;
    int64_t os[4] = {g.N, g.C, g.OH, g.OW};
    bool rec = tg__should_record(1, &x);
    tg_tensor *xc = dense(x, x->dtype);
    tg_tensor *out = xc ? tg_tensor_empty(4, os, x->dtype) : NULL;
    tg_tensor *idx = (out && (rec || indices)) ? tg_tensor_empty(4, os, TG_INT64) : NULL;
    if (!out || ((rec || indices) && !idx)) {
        tg_tensor_release(xc);
        tg_tensor_release(out);
        return NULL;
    }
    if (out->numel > 0) {
        pool_job j = {.g = &g, .dt = x->dtype, .kind = 0, .in = tg_tensor_data(xc),
                      .out = tg_tensor_data(out), .idx_out = idx ? tg_tensor_data(idx) : NULL};
        run_pool(&j);
    }
    tg_tensor_release(xc);
    tg_entry *e;
    out = tg__finish(&tg_opdef_max_pool2d, 1, &x, out, &e);
    if (e) {
        store_pool_params(e, mp, &g);
        if (tg__save(e, idx)) {
            tg_tensor_release(out);
            out = NULL;
        }
    }
    if (out && indices) *indices = idx;
    else tg_tensor_release(idx);
    return out;
}

tg_tensor *tg_max_pool2d(tg_tensor *x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                         int64_t pw) {
    int64_t pp[PL_NPARAMS];
    classic_pool(kh, kw, sh, sw, ph, pw, pp);
    return tg_max_pool2d_ex(x, pp, NULL);
}

static tg_status max_pool2d_vjp(tg_entry *e, tg_tensor *dy, tg_tensor **gi, void *ctx) {
    (void)ctx;
    tg_tensor *idx = tg_entry_saved(e, 0);
    CHECK(idx);
    geom g;
    CHECK(pool_geom("max_pool2d", e->params.shape, e->params.ints, &g) == TG_OK);
    CHECK(gi[0] = max_pool2d_backward(dy, idx, &g));
    return TG_OK;
}
static tg_tensor *apply_max_pool2d(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_max_pool2d_ex(in[0], p->ints, NULL);
}
TG_DEFINE_OP(max_pool2d, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_INPUT, 1, 1},
             .forward = "y[n,c,i,j] = max over the taps (i*sh - ph + p*dh, j*sw - pw + q*dw), p < kh, q < kw, of x, padding -inf",
             .forward_tex = "y_{ncij} = \\max_{p<k_h,\\,q<k_w} x_{n,c,\\,i s_h + p d_h - p_h,\\,j s_w + q d_w - p_w}",
             .vjp = "dx = max_pool2d_backward(dy, argmax): dy goes to the (first) maximum of each window",
             .vjp_tex = "\\bar x_{nc,\\,\\arg\\max(i,j)} \\mathrel{+}= \\bar y_{ncij}",
             .doc = "2-D max pooling of x (N, C, H, W); ints = kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode "
                    "(then two ignored: count_include_pad, divisor_override); padding at most half the "
                    "dilated kernel, as in PyTorch.",
             .backward = max_pool2d_vjp, .apply = apply_max_pool2d,
             .examples = "2x3x6x5|ints=2,2,2,2,0,0,1,1,0,1,0;2x2x7x6|ints=3,2,2,1,1,1,1,1,0,1,0;"
                         "T2x3x5x4|ints=3,3,1,1,1,0,1,1,0,1,0;2x2x7x8|ints=3,2,2,2,1,1,1,1,1,1,0;"
                         "1x2x9x8|ints=2,3,2,1,1,1,3,2,0,1,0;1x2x8x7|ints=3,2,3,2,1,0,2,1,1,1,0",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* dx (N, C, H, W) = 0; dx[n, c, idx] += dy[n, c, ...].  Records max_pool2d_backward. */
static tg_tensor *max_pool2d_backward(tg_tensor *dy, tg_tensor *idx, const geom *g) {
    int64_t xs[4] = {g->N, g->C, g->H, g->W};
    tg_tensor *dc = dense(dy, dy->dtype);
    tg_tensor *ic = dc ? dense(idx, TG_INT64) : NULL;
    tg_tensor *dx = ic ? tg_tensor_empty(4, xs, dy->dtype) : NULL;
    if (dx && dx->numel > 0) {
        pool_job j = {.g = g, .dt = dy->dtype, .kind = 2, .in = tg_tensor_data(dc),
                      .idx_in = tg_tensor_data(ic), .out = tg_tensor_data(dx)};
        run_pool(&j);
    }
    tg_tensor_release(dc);
    tg_tensor_release(ic);
    tg_tensor *in[2] = {dy, idx};
    tg_entry *e;
    dx = tg__finish(&tg_opdef_max_pool2d_backward, 2, in, dx, &e);
    if (e) {
        int64_t pp[PL_NPARAMS];
        classic_pool(g->KH, g->KW, g->sh, g->sw, g->ph, g->pw, pp);
        store_pool_params(e, pp, g);
    }
    return dx;
}
static tg_status max_pool2d_backward_vjp(tg_entry *e, tg_tensor *u, tg_tensor **gi, void *ctx) {
    (void)ctx;
    /* d(dy)[n, c, o] = u[n, c, idx[n, c, o]]: a gather over the flattened planes */
    tg_tensor *dy = e->inputs[0], *idx = e->inputs[1];
    int64_t N = e->params.shape[0], C = e->params.shape[1];
    int64_t us[2] = {N * C, e->params.shape[2] * e->params.shape[3]};
    int64_t is[2] = {N * C, dy->shape[2] * dy->shape[3]};
    tg_tensor *u2 = tg_reshape(u, 2, us);
    tg_tensor *i2 = u2 ? tg_reshape(idx, 2, is) : NULL;
    tg_tensor *g2 = i2 ? tg_gather(u2, 1, i2) : NULL;
    tg_tensor_release(u2);
    tg_tensor_release(i2);
    CHECK(g2);
    gi[0] = tg_reshape(g2, 4, dy->shape);
    tg_tensor_release(g2);
    CHECK(gi[0]);
    return TG_OK;
}

/* The scatter-add of dy (N, C, h, w) to the flat positions idx (int64, dy's
 * shape) of planes of shape s (N, C, H, W), after checking them all; names
 * `who` in errors.  Records max_pool2d_backward. */
static tg_tensor *checked_scatter(const char *who, tg_tensor *dy, tg_tensor *idx, const int64_t *s) {
    if (need_float(who, who[4] == 'u' ? "input" : "grad_output", dy) ||
        need_4d(who, who[4] == 'u' ? "input" : "grad_output", "(N, C, H, W)", dy))
        return NULL;
    if (idx->dtype != TG_INT64 || !tg__same_shape(idx->ndim, idx->shape, 4, dy->shape))
        return TG_FAIL(TG_ERR_VALUE, "%s: indices must be int64 of shape %s, got %s %s", who,
                       tg__shp(dy), tg_dtype_name(idx->dtype), tg__shp(idx));
    if (s[0] != dy->shape[0] || s[1] != dy->shape[1] || s[2] < 0 || s[3] < 0)
        return TG_FAIL(TG_ERR_VALUE, "%s: output shape %s does not match input %s", who,
                       tg__shp2(4, s), tg__shp(dy));
    int64_t plane;
    if (__builtin_mul_overflow(s[2], s[3], &plane))
        return TG_FAIL(TG_ERR_VALUE, "%s: output shape %s is too large", who, tg__shp2(4, s));
    for (int64_t i = 0; i < idx->numel; i++) {
        int64_t v = tg__get_flat_i64(idx, i);
        if (v < 0 || v >= plane)
            return TG_FAIL(TG_ERR_INDEX, "%s: index %lld is outside a %lld x %lld plane", who,
                           (long long)v, (long long)s[2], (long long)s[3]);
    }
    /* only the plane sizes matter to the scatter: a geometry whose output is dy's */
    geom g = {.N = s[0], .C = s[1], .H = s[2], .W = s[3], .O = s[1], .KH = 1, .KW = 1, .sh = 1,
              .sw = 1, .OH = dy->shape[2], .OW = dy->shape[3], .dh = 1, .dw = 1, .G = 1};
    return max_pool2d_backward(dy, idx, &g);
}

static tg_tensor *apply_max_pool2d_backward(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    const char *who = "max_pool2d_backward";
    if (p->ndim != 4) return TG_FAIL(TG_ERR_VALUE, "%s: shape= must give the 4-D input shape", who);
    return checked_scatter(who, in[0], in[1], p->shape);
}
TG_DEFINE_OP(max_pool2d_backward, .arity = 2, .diff_mask = 1, .dtypes = "float32,float64; indices int64",
             .flops = {TG_FLOPS_INPUT, 1, 1},
             .forward = "dx = zeros(x.shape); dx[n, c, idx[n,c,i,j]] += dy[n,c,i,j]",
             .forward_tex = "\\bar x_{nc,\\,\\mathrm{idx}_{ncij}} \\mathrel{+}= \\bar y_{ncij}",
             .vjp = "d(dy)[n,c,i,j] = u[n, c, idx[n,c,i,j]] (a gather)",
             .vjp_tex = "\\bar{\\bar y}_{ncij} = u_{nc,\\,\\mathrm{idx}_{ncij}}",
             .doc = "The VJP of max_pool2d: scatter-add dy to the saved flat positions h*W + w of "
                    "the maxima (inputs dy, idx int64); shape = the input's shape.",
             .backward = max_pool2d_backward_vjp, .apply = apply_max_pool2d_backward,
             .examples = "2x3x3x2,i30:2x3x3x2|shape=2,3,6,5;1x2x2x2,i4:1x2x2x2|shape=1,2,2,2",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar y");

/* ---- max_unpool2d (composite) --------------------------------------------- */

/* y (N, C, OH, OW) = zeros with y[n, c, indices[n, c, i, j]] = x[n, c, i, j]:
 * the partial inverse of max_pool2d (x, indices (N, C, h, w) as
 * max_pool2d(..., return_indices=True) gives them).  The output size is
 * (h - 1) * stride - 2 * padding + kernel unless out_hw (2 sizes) is given,
 * which must lie within a stride of it.  Indices that repeat add up. */
tg_tensor *tg_max_unpool2d(tg_tensor *x, tg_tensor *indices, const int64_t *kp,
                           const int64_t *out_hw) {
    const char *who = "max_unpool2d";
    if (need_float(who, "input", x) || need_4d(who, "input", "(N, C, H, W)", x)) return NULL;
    if (!indices) return TG_FAIL(TG_ERR_VALUE, "%s: indices is NULL", who);
    int64_t s[4] = {x->shape[0], x->shape[1], 0, 0}, def[2], st[2] = {kp[PL_SH], kp[PL_SW]};
    for (int ax = 0; ax < 2; ax++) {
        int64_t k = kp[PL_KH + ax], p = kp[PL_PH + ax];
        const int64_t big = (int64_t)1 << 40;
        if (k <= 0 || st[ax] <= 0 || p < 0 || k > big || st[ax] > big || p > big ||
            __builtin_mul_overflow(x->shape[2 + ax] - 1, st[ax], &def[ax]) || def[ax] > big * 4)
            return TG_FAIL(TG_ERR_VALUE, "%s: expected a positive kernel size and stride and a "
                           "non-negative padding of reasonable size for input %s, got kernel (%lld, "
                           "%lld), stride (%lld, %lld), padding (%lld, %lld)", who, tg__shp(x),
                           (long long)kp[PL_KH], (long long)kp[PL_KW], (long long)kp[PL_SH],
                           (long long)kp[PL_SW], (long long)kp[PL_PH], (long long)kp[PL_PW]);
        def[ax] += k - 2 * p; /* (h - 1) * stride - 2 * padding + kernel */
    }
    for (int ax = 0; ax < 2; ax++) {
        s[2 + ax] = out_hw ? out_hw[ax] : def[ax];
        if (out_hw && (out_hw[ax] <= def[ax] - st[ax] || out_hw[ax] >= def[ax] + st[ax]))
            return TG_FAIL(TG_ERR_VALUE, "%s: output_size (%lld, %lld) is not valid for input %s: "
                           "expected sizes between (%lld, %lld) and (%lld, %lld)", who,
                           (long long)out_hw[0], (long long)out_hw[1], tg__shp(x),
                           (long long)(def[0] - st[0] + 1), (long long)(def[1] - st[1] + 1),
                           (long long)(def[0] + st[0] - 1), (long long)(def[1] + st[1] - 1));
        if (s[2 + ax] <= 0)
            return TG_FAIL(TG_ERR_VALUE, "%s: the output would have size %lld along the %s (input "
                           "%s, kernel (%lld, %lld), stride (%lld, %lld), padding (%lld, %lld))", who,
                           (long long)s[2 + ax], ax ? "width" : "height", tg__shp(x),
                           (long long)kp[PL_KH], (long long)kp[PL_KW], (long long)kp[PL_SH],
                           (long long)kp[PL_SW], (long long)kp[PL_PH], (long long)kp[PL_PW]);
    }
    return checked_scatter(who, x, indices, s);
}
static tg_tensor *apply_max_unpool2d(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_max_unpool2d(in[0], in[1], p->ints, p->ndim == 2 ? p->shape : NULL);
}
TG_DEFINE_OP(max_unpool2d, .arity = 2, .composite = true, .diff_mask = 1,
             .dtypes = "float32,float64; indices int64",
             .forward = "y = zeros(N, C, OH, OW); y[n, c, idx[n,c,i,j]] += x[n,c,i,j]",
             .forward_tex = "y_{nc,\\,\\mathrm{idx}_{ncij}} \\mathrel{+}= x_{ncij}",
             .vjp = "dx[n,c,i,j] = dy[n, c, idx[n,c,i,j]] (a gather)",
             .vjp_tex = "\\bar x_{ncij} = \\bar y_{nc,\\,\\mathrm{idx}_{ncij}}",
             .doc = "The partial inverse of max_pool2d: x (N, C, h, w) put at the flat positions "
                    "indices of zero planes; ints = kh, kw, sh, sw, ph, pw; shape = the output (OH, OW) "
                    "or none; a composite (its entry is max_pool2d_backward).",
             .apply = apply_max_unpool2d,
             .examples = "2x3x3x2,i12:2x3x3x2|ints=2,2,2,2,0,0;1x2x2x3,i40:1x2x2x3|ints=3,3,3,3,1,1 shape=5,8",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- avg_pool2d ---------------------------------------------------------- */

static tg_tensor *avg_pool2d_backward(tg_tensor *dy, const int64_t *pp, const geom *g);

/* y (N, C, OH, OW) = the mean of each window of x (N, C, H, W), parameters
 * pp (PL_NPARAMS, dilation 1).  A NEW reference (recorded) or NULL with the
 * error set.  x borrowed. */
tg_tensor *tg_avg_pool2d_ex(tg_tensor *x, const int64_t *pp) {
    const char *who = "avg_pool2d";
    if (need_float(who, "input", x) || need_4d(who, "input", "(N, C, H, W)", x)) return NULL;
    if (pp[PL_DH] != 1 || pp[PL_DW] != 1)
        return TG_FAIL(TG_ERR_VALUE, "%s: dilation must be (1, 1) (average pooling has none), got "
                       "(%lld, %lld)", who, (long long)pp[PL_DH], (long long)pp[PL_DW]);
    geom g;
    if (pool_geom(who, x->shape, pp, &g)) return NULL;
    int64_t os[4] = {g.N, g.C, g.OH, g.OW};
    tg_tensor *xc = dense(x, x->dtype);
    tg_tensor *out = xc ? tg_tensor_empty(4, os, x->dtype) : NULL;
    if (out && out->numel > 0) {
        pool_job j = {.g = &g, .dt = x->dtype, .kind = 1, .in = tg_tensor_data(xc),
                      .out = tg_tensor_data(out)};
        run_pool(&j);
    }
    tg_tensor_release(xc);
    tg_entry *e;
    out = tg__finish(&tg_opdef_avg_pool2d, 1, &x, out, &e);
    if (e) store_pool_params(e, pp, &g);
    return out;
}

tg_tensor *tg_avg_pool2d(tg_tensor *x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                         int64_t pw) {
    int64_t pp[PL_NPARAMS];
    classic_pool(kh, kw, sh, sw, ph, pw, pp);
    return tg_avg_pool2d_ex(x, pp);
}

static tg_status avg_pool2d_vjp(tg_entry *e, tg_tensor *dy, tg_tensor **gi, void *ctx) {
    (void)ctx;
    geom g;
    CHECK(pool_geom("avg_pool2d", e->params.shape, e->params.ints, &g) == TG_OK);
    CHECK(gi[0] = avg_pool2d_backward(dy, e->params.ints, &g));
    return TG_OK;
}
static tg_tensor *apply_avg_pool2d(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_avg_pool2d_ex(in[0], p->ints);
}
TG_DEFINE_OP(avg_pool2d, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_INPUT, 1, 1},
             .forward = "y[n,c,i,j] = sum over the window of x / divisor (kh*kw with count_include_pad, clipped to the padded input; the inputs counted otherwise; or divisor_override)",
             .forward_tex = "y_{ncij} = \\frac{1}{D_{ij}} \\sum_{p<k_h,\\,q<k_w} x_{n,c,\\,i s_h + p - p_h,\\,j s_w + q - p_w}",
             .vjp = "dx = avg_pool2d_backward(dy): dy / divisor spread over each window",
             .vjp_tex = "\\bar x_{nc,\\,i s_h + p - p_h,\\,j s_w + q - p_w} \\mathrel{+}= \\bar y_{ncij} / D_{ij}",
             .doc = "2-D average pooling of x (N, C, H, W); ints = kh, kw, sh, sw, ph, pw, 1, 1 (no "
                    "dilation), ceil_mode, count_include_pad, divisor_override (0: none).",
             .backward = avg_pool2d_vjp, .apply = apply_avg_pool2d,
             .examples = "2x3x6x5|ints=2,2,2,2,0,0,1,1,0,1,0;2x2x7x6|ints=3,2,2,1,1,1,1,1,0,1,0;"
                         "T2x3x5x4|ints=3,3,1,1,1,0,1,1,0,1,0;2x2x7x8|ints=3,2,2,2,1,1,1,1,1,1,0;"
                         "1x2x7x8|ints=3,3,2,3,1,1,1,1,1,0,0;1x2x6x5|ints=2,3,2,2,1,1,1,1,0,0,5",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* dx = the adjoint of avg_pool2d applied to dy.  Records avg_pool2d_backward. */
static tg_tensor *avg_pool2d_backward(tg_tensor *dy, const int64_t *pp, const geom *g) {
    int64_t xs[4] = {g->N, g->C, g->H, g->W};
    tg_tensor *dc = dense(dy, dy->dtype);
    tg_tensor *dx = dc ? tg_tensor_empty(4, xs, dy->dtype) : NULL;
    if (dx && dx->numel > 0) {
        pool_job j = {.g = g, .dt = dy->dtype, .kind = 3, .in = tg_tensor_data(dc),
                      .out = tg_tensor_data(dx)};
        run_pool(&j);
    }
    tg_tensor_release(dc);
    tg_entry *e;
    dx = tg__finish(&tg_opdef_avg_pool2d_backward, 1, &dy, dx, &e);
    if (e) store_pool_params(e, pp, g);
    return dx;
}
static tg_status avg_pool2d_backward_vjp(tg_entry *e, tg_tensor *u, tg_tensor **gi, void *ctx) {
    (void)ctx;
    CHECK(gi[0] = tg_avg_pool2d_ex(u, e->params.ints));
    return TG_OK;
}
static tg_tensor *apply_avg_pool2d_backward(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    const char *who = "avg_pool2d_backward";
    tg_tensor *dy = in[0];
    if (p->ndim != 4) return TG_FAIL(TG_ERR_VALUE, "%s: shape= must give the 4-D input shape", who);
    if (need_float(who, "grad_output", dy) || need_4d(who, "grad_output", "(N, C, OH, OW)", dy)) return NULL;
    for (int d = 0; d < 4; d++)
        if (p->shape[d] < 0) return TG_FAIL(TG_ERR_VALUE, "%s: invalid input shape %s", who, tg__shp2(4, p->shape));
    if (p->ints[PL_DH] != 1 || p->ints[PL_DW] != 1)
        return TG_FAIL(TG_ERR_VALUE, "%s: dilation must be (1, 1)", who);
    geom g;
    if (pool_geom(who, p->shape, p->ints, &g)) return NULL;
    int64_t want[4] = {g.N, g.C, g.OH, g.OW};
    if (!tg__same_shape(4, dy->shape, 4, want))
        return TG_FAIL(TG_ERR_VALUE, "%s: grad_output has shape %s, expected %s for input %s", who,
                       tg__shp(dy), tg__shp2(4, want), tg__shp2(4, p->shape));
    return avg_pool2d_backward(dy, p->ints, &g);
}
TG_DEFINE_OP(avg_pool2d_backward, .arity = 1, .diff_mask = 1, .dtypes = "float32,float64",
             .flops = {TG_FLOPS_INPUT, 1, 1},
             .forward = "dx = zeros(x.shape); each window of dx += dy[n,c,i,j] / divisor",
             .forward_tex = "\\bar x_{nc,\\,i s_h + p - p_h,\\,j s_w + q - p_w} \\mathrel{+}= \\bar y_{ncij} / D_{ij}",
             .vjp = "d(dy) = avg_pool2d(u)", .vjp_tex = "\\bar{\\bar y} = \\operatorname{avgpool}(u)",
             .doc = "The VJP of avg_pool2d (input dy); shape = the input's shape, ints = avg_pool2d's.",
             .backward = avg_pool2d_backward_vjp, .apply = apply_avg_pool2d_backward,
             .examples = "2x3x3x2|shape=2,3,6,5 ints=2,2,2,2,0,0,1,1,0,1,0;"
                         "2x2x4x7|shape=2,2,7,6 ints=3,2,2,1,1,1,1,1,0,1,0;"
                         "1x2x4x3|shape=1,2,7,8 ints=3,3,2,3,1,1,1,1,1,0,0;"
                         "1x2x4x3|shape=1,2,6,5 ints=2,3,2,2,1,1,1,1,0,0,5",
             .grad_out_tex = NULL, .grad_in_tex = "\\bar y");

/* ===================================================================== */
/* Composites: conv1d, conv_transpose2d, interpolate, adaptive_avg_pool2d */
/* ===================================================================== */

/* y + bias viewed as (1, O, 1, ...) over y's ndim (a new reference; y
 * released).  bias NULL: y itself. */
static tg_tensor *add_channel_bias(tg_tensor *y, tg_tensor *bias) {
    if (!y || !bias) return y;
    int64_t s[4] = {1, bias->numel, 1, 1};
    tg_tensor *b = tg_reshape(bias, y->ndim, s);
    tg_tensor *r = b ? tg_add(y, b) : NULL;
    tg_tensor_release(b);
    tg_tensor_release(y);
    return r;
}

static tg_status need_bias(const char *who, tg_tensor *b, int64_t n) {
    if (!b) return TG_OK;
    if (need_float(who, "bias", b)) return TG_ERR_TYPE;
    if (b->ndim != 1 || b->shape[0] != n)
        return tg_error_set(TG_ERR_VALUE, "%s: bias has shape %s, expected (%lld,) (one per output "
                            "channel)", who, tg__shp(b), (long long)n);
    return TG_OK;
}

/* ---- conv1d ---------------------------------------------------------------- */

/* y (N, O, OL) = conv1d(x (N, C, L), w (O, C/groups, K)) + bias (O,) or
 * none; c1 = stride, padding left, dilation, groups, padding right.  conv2d
 * on (N, C, 1, L): a composite. */
tg_tensor *tg_conv1d(tg_tensor *x, tg_tensor *w, tg_tensor *b, const int64_t *c1) {
    const char *who = "conv1d";
    if (need_float(who, "input", x) || need_float(who, "weight", w) || need_bias(who, b, w ? w->shape[0] : 0))
        return NULL;
    if (x->ndim != 3)
        return TG_FAIL(TG_ERR_VALUE, "%s: expected a 3-D input (N, C, L), got shape %s%s", who,
                       tg__shp(x), x->ndim == 2 ? " (add a batch axis of size 1 for a single sequence)" : "");
    if (w->ndim != 3)
        return TG_FAIL(TG_ERR_VALUE, "%s: expected a 3-D weight (out_channels, in_channels / groups, "
                       "kL), got shape %s", who, tg__shp(w));
    int64_t cv[CV_NPARAMS] = {1, c1[0], 0, c1[1], 1, c1[2], c1[3], 0, c1[4]};
    int64_t xs[4] = {x->shape[0], x->shape[1], 1, x->shape[2]};
    int64_t ws[4] = {w->shape[0], w->shape[1], 1, w->shape[2]};
    geom g; /* the checks, with conv1d's name */
    if (conv_geom(who, xs, ws, cv, &g)) return NULL;
    tg_tensor *x4 = tg_reshape(x, 4, xs), *w4 = x4 ? tg_reshape(w, 4, ws) : NULL;
    tg_tensor *y4 = w4 ? tg_conv2d_ex(x4, w4, b, cv) : NULL;
    tg_tensor_release(x4);
    tg_tensor_release(w4);
    if (!y4) return NULL;
    int64_t ys[3] = {y4->shape[0], y4->shape[1], y4->shape[3]};
    tg_tensor *y = tg_reshape(y4, 3, ys);
    tg_tensor_release(y4);
    return y;
}
static tg_tensor *apply_conv1d(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 2 && n != 3) return TG_FAIL(TG_ERR_VALUE, "conv1d: expected 2 or 3 inputs, got %d", n);
    return tg_conv1d(in[0], in[1], n == 3 ? in[2] : NULL, p->ints);
}
TG_DEFINE_OP(conv1d, .arity = -1, .composite = true, .diff_mask = 7, .dtypes = "float32,float64",
             .forward = "y[n,o,i] = b[o] + sum_{c,p} w[o,c,p] x[n, (o div Og) Cg + c, i*s + p*d - pl]",
             .forward_tex = "y_{noi} = b_o + \\sum_{c,p} w_{ocp}\\, x_{n,\\,\\lfloor o/O_g \\rfloor C_g + c,\\,i s + p d - p_l}",
             .vjp = "dx, dw, db: those of conv2d on (N, C, 1, L) (conv2d_input_grad, conv2d_weight_grad, sum)",
             .vjp_tex = "\\bar x = \\bar y \\star^{\\top} w,\\quad \\bar w = \\sum_n \\bar y_n \\star x_n,"
                        "\\quad \\bar b_o = \\sum_{n,i} \\bar y_{noi}",
             .doc = "1-D convolution of x (N, C, L) with w (O, C/groups, kL) and an optional bias; ints = "
                    "stride, padding left, dilation, groups, padding right; a composite (conv2d on H = 1).",
             .apply = apply_conv1d,
             .examples = "2x3x9,4x3x3,4|ints=1,1,1,1,1;T2x4x7,6x2x2|ints=2,1,3,2,1;1x4x8,4x1x3,4|ints=1,2,2,4,2;"
                         "2x2x6,3x2x4|ints=1,1,1,1,2",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x;\\bar w;\\bar b");

/* ---- conv_transpose2d ----------------------------------------------------- */

/* y (N, Cout, OH, OW) = the transposed convolution of x (N, Cin, H, W) with w
 * (Cin, Cout/groups, KH, KW) (PyTorch's layout) + bias (Cout,) or none;
 * ct = stride (h, w), padding (h, w), output_padding (h, w), groups,
 * dilation (h, w);  OH = (H-1)*sh - 2*ph + dh*(KH-1) + oph + 1.
 * conv2d_input_grad with a public face: a composite. */
tg_tensor *tg_conv_transpose2d(tg_tensor *x, tg_tensor *w, tg_tensor *b, const int64_t *ct) {
    const char *who = "conv_transpose2d";
    if (need_float(who, "input", x) || need_float(who, "weight", w)) return NULL;
    if (need_4d(who, "input", "(N, C_in, H, W)", x) ||
        need_4d(who, "weight", "(in_channels, out_channels / groups, kH, kW)", w))
        return NULL;
    int64_t G = ct[6];
    if (G <= 0) return TG_FAIL(TG_ERR_VALUE, "%s: groups must be positive, got %lld", who, (long long)G);
    if (x->shape[1] != w->shape[0])
        return TG_FAIL(TG_ERR_VALUE, "%s: input has %lld channels but the weight %s expects %lld "
                       "(weight layout (in_channels, out_channels / groups, kH, kW)); input shape %s",
                       who, (long long)x->shape[1], tg__shp(w), (long long)w->shape[0], tg__shp(x));
    if (w->shape[0] % G)
        return TG_FAIL(TG_ERR_VALUE, "%s: groups=%lld must divide the input channels (%lld)", who,
                       (long long)G, (long long)w->shape[0]);
    int64_t cout;
    if (__builtin_mul_overflow(w->shape[1], G, &cout))
        return TG_FAIL(TG_ERR_VALUE, "%s: weight %s is too large", who, tg__shp(w));
    if (need_bias(who, b, cout)) return NULL;
    int64_t out[2];
    for (int ax = 0; ax < 2; ax++) {
        int64_t s = ct[ax], p = ct[2 + ax], op = ct[4 + ax], d = ct[7 + ax], k = w->shape[2 + ax];
        const int64_t big = (int64_t)1 << 40;
        if (s <= 0 || d <= 0 || p < 0 || op < 0 || s > big || d > big || p > big)
            return TG_FAIL(TG_ERR_VALUE, "%s: expected positive stride and dilation and non-negative "
                           "padding and output_padding, got stride (%lld, %lld), padding (%lld, %lld), "
                           "output_padding (%lld, %lld), dilation (%lld, %lld)", who,
                           (long long)ct[0], (long long)ct[1], (long long)ct[2], (long long)ct[3],
                           (long long)ct[4], (long long)ct[5], (long long)ct[7], (long long)ct[8]);
        if (op >= s)
            return TG_FAIL(TG_ERR_VALUE, "%s: output_padding (%lld, %lld) must be smaller than the "
                           "stride (%lld, %lld)", who, (long long)ct[4], (long long)ct[5],
                           (long long)ct[0], (long long)ct[1]);
        int64_t span; /* (H - 1) * s + d * (k - 1), checked: empty tensors may have huge sizes */
        if (__builtin_mul_overflow(x->shape[2 + ax] - 1, s, &out[ax]) ||
            __builtin_mul_overflow(d, k - 1, &span) || __builtin_add_overflow(out[ax], span, &out[ax]) ||
            out[ax] > big * 4)
            return TG_FAIL(TG_ERR_VALUE, "%s: the output size overflows (input %s, weight %s, stride "
                           "(%lld, %lld), dilation (%lld, %lld))", who, tg__shp(x), tg__shp(w),
                           (long long)ct[0], (long long)ct[1], (long long)ct[7], (long long)ct[8]);
        out[ax] += op + 1 - 2 * p;
        if (out[ax] <= 0)
            return TG_FAIL(TG_ERR_VALUE, "%s: the output would have size %lld along the %s (input "
                           "%s, weight %s, stride (%lld, %lld), padding (%lld, %lld), dilation (%lld, "
                           "%lld))", who, (long long)out[ax], ax ? "width" : "height", tg__shp(x),
                           tg__shp(w), (long long)ct[0], (long long)ct[1], (long long)ct[2],
                           (long long)ct[3], (long long)ct[7], (long long)ct[8]);
    }
    int64_t ys[4] = {x->shape[0], cout, out[0], out[1]};
    int64_t numel;
    if (__builtin_mul_overflow(ys[0], ys[1], &numel) || __builtin_mul_overflow(numel, ys[2], &numel) ||
        __builtin_mul_overflow(numel, ys[3], &numel))
        return TG_FAIL(TG_ERR_MEMORY, "%s: the output %s is too large (input %s, weight %s)", who,
                       tg__shp2(4, ys), tg__shp(x), tg__shp(w));
    int64_t cv[CV_NPARAMS] = {ct[0], ct[1], ct[2], ct[3], ct[7], ct[8], G, ct[2], ct[3]};
    tg_tensor *y = tg_conv2d_input_grad_ex(x, w, ys, cv);
    return add_channel_bias(y, b);
}
static tg_tensor *apply_conv_transpose2d(tg_tensor *const *in, int n, const tg_params *p) {
    if (n != 2 && n != 3) return TG_FAIL(TG_ERR_VALUE, "conv_transpose2d: expected 2 or 3 inputs, got %d", n);
    return tg_conv_transpose2d(in[0], in[1], n == 3 ? in[2] : NULL, p->ints);
}
TG_DEFINE_OP(conv_transpose2d, .arity = -1, .composite = true, .diff_mask = 7, .dtypes = "float32,float64",
             .forward = "y = conv2d_input_grad(x, w) + b: y[n, (c div Cg) Og + o, i*sh + p*dh - ph, j*sw + q*dw - pw] += w[c,o,p,q] x[n,c,i,j]",
             .forward_tex = "y_{n,\\,\\lfloor c/C_g \\rfloor O_g + o,\\,i s_h + p d_h - p_h,\\,j s_w + q d_w - p_w} \\mathrel{+}= w_{copq}\\, x_{ncij}",
             .vjp = "dx = conv2d(dy, w), dw = conv2d_weight_grad(dy, x), db = sum(dy, (0, 2, 3))",
             .vjp_tex = "\\bar x = \\bar y \\star w,\\quad \\bar w = \\sum_n x_n \\star \\bar y_n,"
                        "\\quad \\bar b_o = \\sum_{n,i,j} \\bar y_{noij}",
             .doc = "Transposed convolution of x (N, Cin, H, W) with w (Cin, Cout/groups, kH, kW); ints = "
                    "stride (h, w), padding (h, w), output_padding (h, w), groups, dilation (h, w); a "
                    "composite (conv2d_input_grad plus the bias).",
             .apply = apply_conv_transpose2d,
             .examples = "2x3x4x3,3x2x3x2,2|ints=2,1,1,0,1,0,1,1,1;T2x4x3x3,4x2x2x3,4|ints=1,2,0,1,0,1,2,2,1;"
                         "1x4x3x4,4x3x3x3|ints=2,2,1,1,1,0,2,1,1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x;\\bar w;\\bar b");

/* ---- interpolate -------------------------------------------------------- */

/* The source indices (i0, i1) and weights (l0, l1) of output positions
 * [0, out) along an axis of size in, by PyTorch's rules: nearest
 * (floor(dst * scale) in float arithmetic, clamped) or linear
 * (align_corners: dst * (in-1)/(out-1); else (dst + 0.5) * scale - 0.5,
 * at least 0); scale = 1/scale_factor when given (sf > 0), else in/out.
 * Linear weights are computed in double or float as the dtype. */
/* A source position v as an index in [0, in): floor for v in range, the
 * nearest end otherwise -- also for inf and NaN, which a tiny scale_factor
 * makes (1 / 1e-300 is inf in float; found by the fuzzer): converting them
 * to int64_t was undefined. */
static int64_t clamp_index(double v, int64_t in) {
    if (!(v >= 0)) return 0;
    if (v >= (double)(in - 1)) return in - 1;
    return (int64_t)v;
}

static void resample_axis(int64_t in, int64_t out, double sf, int mode, bool align, bool f32,
                          int64_t *i0, int64_t *i1, double *l1) {
    for (int64_t o = 0; o < out; o++) {
        if (mode == 0 || mode == 3) { /* nearest, nearest-exact */
            int64_t src;
            float sc = sf > 0 ? (float)(1.0 / sf) : (float)in / (float)out;
            if (mode == 3) src = clamp_index(floorf(((float)o + 0.5f) * sc), in);
            else if (out == in) src = o;
            else if (out == 2 * in) src = o >> 1;
            else src = clamp_index(floorf((float)o * sc), in);
            if (src > in - 1) src = in - 1;
            i0[o] = i1[o] = src;
            l1[o] = 0;
            continue;
        }
        double src;
        if (f32) {
            float sc = align ? (out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f)
                             : (sf > 0 ? (float)(1.0 / sf) : (float)in / (float)out);
            float s = align ? sc * (float)o : sc * ((float)o + 0.5f) - 0.5f;
            src = s < 0 ? 0 : s;
        } else {
            double sc = align ? (out > 1 ? (double)(in - 1) / (double)(out - 1) : 0.0)
                              : (sf > 0 ? 1.0 / sf : (double)in / (double)out);
            double s = align ? sc * (double)o : sc * ((double)o + 0.5) - 0.5;
            src = s < 0 ? 0 : s;
        }
        int64_t a = clamp_index(src, in);
        double l = src - (double)a;
        if (f32) l = (double)((float)src - (float)a);
        i0[o] = a;
        i1[o] = a < in - 1 ? a + 1 : a;
        l1[o] = l > 0 ? (l < 1 ? l : 1) : 0; /* (inf - a = inf: 1; NaN: 0) */
    }
}

/* x resampled along axis ax (2 or 3) to `out` positions: index_select at
 * i0 (nearest), or l0 * x[i0] + l1 * x[i1] (linear).  New reference. */
static tg_tensor *resample(tg_tensor *x, int ax, int64_t out, double sf, int mode, bool align) {
    bool linear = mode == 1 || mode == 2;
    int64_t in = x->shape[ax];
    bool f32 = x->dtype == TG_FLOAT32;
    tg_tensor *t0 = tg_tensor_empty(1, &out, TG_INT64), *t1 = tg_tensor_empty(1, &out, TG_INT64);
    double *l1 = malloc((size_t)(out > 0 ? out : 1) * sizeof *l1);
    tg_tensor *r = NULL;
    if (!t0 || !t1 || !l1) {
        if (!l1) tg_error_set(TG_ERR_MEMORY, "interpolate: out of memory");
        goto done;
    }
    resample_axis(in, out, sf, mode, align, f32, tg_tensor_data(t0), tg_tensor_data(t1), l1);
    tg_tensor *a = tg_index_select(x, ax, t0);
    if (!linear || !a) {
        r = a;
        goto done;
    }
    tg_tensor *b = tg_index_select(x, ax, t1);
    /* weights of shape (out, 1) for the height axis, (out,) for the width */
    int64_t ws[2] = {out, 1};
    int wnd = ax == x->ndim - 1 ? 1 : 2;
    tg_tensor *w0 = b ? tg_tensor_empty(wnd, ws, x->dtype) : NULL;
    tg_tensor *w1 = w0 ? tg_tensor_empty(wnd, ws, x->dtype) : NULL;
    if (w1) {
        for (int64_t o = 0; o < out; o++) {
            if (f32) {
                ((float *)tg_tensor_data(w1))[o] = (float)l1[o];
                ((float *)tg_tensor_data(w0))[o] = 1.0f - (float)l1[o];
            } else {
                ((double *)tg_tensor_data(w1))[o] = l1[o];
                ((double *)tg_tensor_data(w0))[o] = 1.0 - l1[o];
            }
        }
        tg_tensor *p0 = tg_mul(a, w0), *p1 = p0 ? tg_mul(b, w1) : NULL;
        r = p1 ? tg_add(p0, p1) : NULL;
        tg_tensor_release(p0);
        tg_tensor_release(p1);
    }
    tg_tensor_release(a);
    tg_tensor_release(b);
    tg_tensor_release(w0);
    tg_tensor_release(w1);
done:
    tg_tensor_release(t0);
    tg_tensor_release(t1);
    free(l1);
    return r;
}

/* y = x (N, C, H, W) or (N, C, L) resampled to size (ndim - 2 sizes) by
 * mode (0 nearest, 1 linear (3-D), 2 bilinear (4-D), 3 nearest-exact); scales: the scale
 * factors used for the source indices (0: in/out), ndim - 2 of them or
 * NULL.  A composite of index_select, mul and add. */
tg_tensor *tg_interpolate(tg_tensor *x, const int64_t *size, const double *scales, int mode,
                          bool align_corners) {
    const char *who = "interpolate";
    static const char *const names[] = {"nearest", "linear", "bilinear", "nearest-exact"};
    if (need_float(who, "input", x)) return NULL;
    if (mode < 0 || mode > 3) return TG_FAIL(TG_ERR_VALUE, "%s: unknown mode %d", who, mode);
    if (x->ndim != 3 && x->ndim != 4)
        return TG_FAIL(TG_ERR_VALUE, "%s: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got "
                       "shape %s", who, tg__shp(x));
    if ((mode == 1 && x->ndim != 3) || (mode == 2 && x->ndim != 4))
        return TG_FAIL(TG_ERR_VALUE, "%s: mode '%s' needs a %d-D input, got shape %s", who,
                       names[mode], mode == 1 ? 3 : 4, tg__shp(x));
    if ((mode == 0 || mode == 3) && align_corners)
        return TG_FAIL(TG_ERR_VALUE, "%s: align_corners only applies to the linear modes, not "
                       "'%s'", who, names[mode]);
    int nsp = x->ndim - 2;
    for (int d = 0; d < nsp; d++) {
        if (size[d] <= 0 || size[d] > ((int64_t)1 << 40))
            return TG_FAIL(TG_ERR_VALUE, "%s: output size must be positive, got %lld (input shape %s)",
                           who, (long long)size[d], tg__shp(x));
        if (x->shape[2 + d] <= 0)
            return TG_FAIL(TG_ERR_VALUE, "%s: the input's spatial sizes must be positive, got shape %s",
                           who, tg__shp(x));
        if (scales && !(scales[d] >= 0 && isfinite(scales[d])))
            return TG_FAIL(TG_ERR_VALUE, "%s: scale_factor must be positive, got %g", who, scales[d]);
    }
    tg_tensor *cur = x;
    tg_tensor_retain(cur);
    for (int d = nsp - 1; d >= 0 && cur; d--) { /* the width first, as PyTorch */
        tg_tensor *nx = resample(cur, 2 + d, size[d], scales ? scales[d] : 0, mode, align_corners);
        tg_tensor_release(cur);
        cur = nx;
    }
    return cur;
}
static tg_tensor *apply_interpolate(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    double sc[2] = {p->f[0], p->f[1]};
    return tg_interpolate(in[0], p->ints + 2, sc, tg__int_param(p->ints[0]), p->ints[1] != 0);
}
TG_DEFINE_OP(interpolate, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "nearest: y[..., i, j] = x[..., h(i), w(j)]; bilinear: y = sum of the 4 neighbours of the source point weighted by (1 - a)(1 - b), ...",
             .forward_tex = "y_{ij} = \\sum_{a,b \\in \\{0,1\\}} \\lambda^h_{ia} \\lambda^w_{jb}\\, x_{h_a(i),\\,w_b(j)}",
             .vjp = "dx = index_add of dy weighted by the same lambdas (the VJPs of index_select and mul)",
             .vjp_tex = "\\bar x_{h_a(i),\\,w_b(j)} \\mathrel{+}= \\lambda^h_{ia} \\lambda^w_{jb}\\, \\bar y_{ij}",
             .doc = "Resampling of x (N, C, L) or (N, C, H, W) (PyTorch's index rules); ints = mode (0 "
                    "nearest, 1 linear, 2 bilinear, 3 nearest-exact), align_corners, output size; f0, f1 = scale factors "
                    "(0: in/out); a composite of index_select, mul and add.",
             .apply = apply_interpolate,
             .examples = "2x3x5x4|ints=0,0,7,9;T2x3x4x5|ints=0,0,3,2;2x3x5x4|ints=2,0,7,9;"
                         "1x2x5x4|ints=2,1,7,3;1x2x6x4|ints=2,0,3,10 f0=0.5 f1=2.5;2x3x5|ints=1,0,9;"
                         "2x3x6|ints=1,1,4;2x3x5|ints=0,0,11;1x2x5x3|ints=3,0,7,8;2x3x7|ints=3,0,3",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");

/* ---- adaptive_avg_pool2d -------------------------------------------------- */

/* The (out, in) matrix of adaptive average pooling along one axis: row i
 * averages [floor(i*in/out), ceil((i+1)*in/out)). */
static tg_tensor *adaptive_matrix(int64_t in, int64_t out, tg_dtype dt) {
    int64_t s[2] = {out, in};
    tg_tensor *m = tg_tensor_zeros(2, s, dt);
    if (!m) return NULL;
    for (int64_t i = 0; i < out; i++) {
        int64_t a = i * in / out, b = ((i + 1) * in + out - 1) / out;
        for (int64_t k = a; k < b; k++) {
            if (dt == TG_FLOAT32) ((float *)tg_tensor_data(m))[i * in + k] = 1.0f / (float)(b - a);
            else ((double *)tg_tensor_data(m))[i * in + k] = 1.0 / (double)(b - a);
        }
    }
    return m;
}

/* y (N, C, OH, OW) = the average of each of PyTorch's adaptive windows of
 * x (N, C, H, W): Ph @ x @ Pw^T with the averaging matrices (a composite of
 * two matmuls). */
tg_tensor *tg_adaptive_avg_pool2d(tg_tensor *x, int64_t oh, int64_t ow) {
    const char *who = "adaptive_avg_pool2d";
    if (need_float(who, "input", x) || need_4d(who, "input", "(N, C, H, W)", x)) return NULL;
    if (oh <= 0 || ow <= 0 || oh > ((int64_t)1 << 31) || ow > ((int64_t)1 << 31))
        return TG_FAIL(TG_ERR_VALUE, "%s: output size must be positive, got (%lld, %lld)", who,
                       (long long)oh, (long long)ow);
    if (x->shape[2] <= 0 || x->shape[3] <= 0 || x->shape[2] > ((int64_t)1 << 31) || x->shape[3] > ((int64_t)1 << 31))
        return TG_FAIL(TG_ERR_VALUE, "%s: the input's height and width must be positive, got shape %s",
                       who, tg__shp(x));
    tg_tensor *ph = adaptive_matrix(x->shape[2], oh, x->dtype);
    tg_tensor *pw = ph ? adaptive_matrix(x->shape[3], ow, x->dtype) : NULL;
    tg_tensor *pwt = pw ? tg_transpose(pw, 0, 1) : NULL;
    tg_tensor *a = pwt ? tg_matmul(ph, x) : NULL;
    tg_tensor *y = a ? tg_matmul(a, pwt) : NULL;
    tg_tensor_release(ph);
    tg_tensor_release(pw);
    tg_tensor_release(pwt);
    tg_tensor_release(a);
    return y;
}
static tg_tensor *apply_adaptive_avg_pool2d(tg_tensor *const *in, int n, const tg_params *p) {
    (void)n;
    return tg_adaptive_avg_pool2d(in[0], p->ints[0], p->ints[1]);
}
TG_DEFINE_OP(adaptive_avg_pool2d, .arity = 1, .composite = true, .diff_mask = 1, .dtypes = "float32,float64",
             .forward = "y[n,c,i,j] = mean of x[n, c, floor(i H/OH) .. ceil((i+1) H/OH), floor(j W/OW) .. ceil((j+1) W/OW)] = (Ph @ x @ Pw^T)",
             .forward_tex = "y = P_h\\, x\\, P_w^{\\top}",
             .vjp = "dx = Ph^T @ dy @ Pw (the VJPs of the two matmuls)",
             .vjp_tex = "\\bar x = P_h^{\\top}\\, \\bar y\\, P_w",
             .doc = "Adaptive average pooling of x (N, C, H, W) to (OH, OW) = ints[0], ints[1] (PyTorch's "
                    "windows); a composite of two matmuls with averaging matrices.",
             .apply = apply_adaptive_avg_pool2d,
             .examples = "2x3x7x5|ints=3,2;T2x3x4x6|ints=4,4;1x2x5x5|ints=7,1",
             .grad_out_tex = "\\bar y", .grad_in_tex = "\\bar x");
