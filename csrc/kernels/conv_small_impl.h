/* conv_small_impl.h -- the body of conv_small.c's kernels, included once per
 * instruction set with CS_NAME(n), CS_ATTR, the vector type VF of 16 float
 * lanes and its operations (VZERO, VLD, VLDN, VBC, VADD, VFMA, VFMAN, VST,
 * VSTN), OBF (output channels per forward block) and OBW(kw) (per weight
 * gradient block) defined.  Every build computes the same operations (one
 * rounding per multiply-add) in the same order (a lane is a lane, whatever
 * holds it): the same bits.  Its end undefines all of them, ready for the
 * next build's definitions. */

/* y (O, OH, OW) of one image from its padded copy xp (C, Hx, Wx) and the
 * packed weights wt (O rounded up to OBF, C, KH, KW, OBF). */
CS_ATTR static TG_ALWAYS_INLINE void CS_NAME(fwd_kw)(const cs_dims *d, const float *restrict xp,
                                                     const float *restrict wt, const float *restrict b,
                                                     float *restrict y, const int KW) {
    const int64_t C = d->C, KH = d->KH, OH = d->OH, OW = d->OW, Hx = d->Hx, Wx = d->Wx;
    for (int64_t ob = 0; ob < d->O; ob += OBF) {
        int64_t ov = d->O - ob < OBF ? d->O - ob : OBF;
        const float *wb = wt + ob * C * KH * KW;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t c0 = 0; c0 < OW; c0 += 16) {
                VF acc[OBF];
                CS_UNROLL for (int o = 0; o < OBF; o++) acc[o] = VZERO();
                for (int64_t c = 0; c < C; c++)
                    for (int64_t kh = 0; kh < KH; kh++) {
                        const float *xr = xp + (c * Hx + oh + kh) * Wx + c0;
                        const float *wr = wb + (c * KH + kh) * KW * OBF;
                        CS_UNROLL for (int kw = 0; kw < KW; kw++, wr += OBF) {
                            VF xv = VLD(xr + kw);
                            CS_UNROLL for (int o = 0; o < OBF; o++)
                                acc[o] = VFMA(xv, VBC(wr + o), acc[o]);
                        }
                    }
                int n = OW - c0 < 16 ? (int)(OW - c0) : 16;
                CS_UNROLL for (int o = 0; o < OBF; o++) {
                    if (o < ov) {
                        VF v = b ? VADD(acc[o], VBC(b + ob + o)) : acc[o];
                        float *yo = y + ((ob + o) * OH + oh) * OW + c0;
                        if (n == 16) VST(yo, v);
                        else VSTN(yo, v, n);
                    }
                }
            }
    }
}

CS_ATTR static void CS_NAME(fwd)(const cs_dims *d, const float *restrict xp,
                                 const float *restrict wt, const float *restrict b,
                                 float *restrict y) {
    switch (d->KW) { /* the taps of a kernel row unrolled */
    case 3: CS_NAME(fwd_kw)(d, xp, wt, b, y, 3); break;
    case 5: CS_NAME(fwd_kw)(d, xp, wt, b, y, 5); break;
    case 7: CS_NAME(fwd_kw)(d, xp, wt, b, y, 7); break;
    default: CS_NAME(fwd_kw)(d, xp, wt, b, y, (int)d->KW); break;
    }
}

/* The weight gradient's lanes for output channels o0 + [0, ov) (ov <= 4)
 * of one image, kernel width KWC: the products of dy's rows (the image's
 * dy at dy) with xp's, lane j of a row chunk holding output column c0 + j,
 * summed over the image's rows from zero and then added to accm (4, C, KH,
 * KWC, 16) (first: stored), so that a lane's sum is a sum over images of
 * per-image sums, as the GEMM path's (a single running sum over 32 images
 * of conv1 had 4.5 times its error against float64). */
CS_ATTR static TG_ALWAYS_INLINE void CS_NAME(dw_kw)(const cs_dims *d, const float *restrict xp,
                                                    const float *restrict dy, int64_t o0,
                                                    int64_t ov, float *restrict accm, int first,
                                                    const int KWC) {
    const int64_t C = d->C, KH = d->KH, OH = d->OH, OW = d->OW, Hx = d->Hx, Wx = d->Wx;
    const int ob = OBW(KWC);
    for (int64_t os = 0; os < ov; os += ob)
        for (int64_t c = 0; c < C; c++)
            for (int64_t kh = 0; kh < KH; kh++) {
                VF acc[4][8];
                float *am[4];
                const float *dr[4];
                CS_UNROLL for (int i = 0; i < ob; i++) {
                    int64_t oi = os + i < ov ? os + i : ov - 1; /* past ov: a copy, not kept */
                    am[i] = accm + (((os + i) * C + c) * KH + kh) * KWC * 16;
                    dr[i] = dy + (o0 + oi) * OH * OW;
                    CS_UNROLL for (int kw = 0; kw < KWC; kw++) acc[i][kw] = VZERO();
                }
                for (int64_t oh = 0; oh < OH; oh++) {
                    const float *xr = xp + (c * Hx + oh + kh) * Wx;
                    int64_t c0 = 0;
                    for (; c0 + 16 <= OW; c0 += 16) {
                        VF dv[4];
                        CS_UNROLL for (int i = 0; i < ob; i++) dv[i] = VLD(dr[i] + oh * OW + c0);
                        CS_UNROLL for (int kw = 0; kw < KWC; kw++) {
                            VF xv = VLD(xr + c0 + kw);
                            CS_UNROLL for (int i = 0; i < ob; i++)
                                acc[i][kw] = VFMA(dv[i], xv, acc[i][kw]);
                        }
                    }
                    if (c0 < OW) { /* the row's last columns: lanes past OW stay as they are */
                        int n = (int)(OW - c0);
                        VF dv[4];
                        CS_UNROLL for (int i = 0; i < ob; i++) dv[i] = VLDN(dr[i] + oh * OW + c0, n);
                        CS_UNROLL for (int kw = 0; kw < KWC; kw++) {
                            VF xv = VLD(xr + c0 + kw);
                            CS_UNROLL for (int i = 0; i < ob; i++)
                                acc[i][kw] = VFMAN(dv[i], xv, acc[i][kw], n);
                        }
                    }
                }
                CS_UNROLL for (int i = 0; i < ob; i++)
                    if (os + i < ov)
                        CS_UNROLL for (int kw = 0; kw < KWC; kw++)
                            VST(am[i] + kw * 16, first ? acc[i][kw] : VADD(VLD(am[i] + kw * 16), acc[i][kw]));
            }
}

CS_ATTR static void CS_NAME(dw)(const cs_dims *d, const float *restrict xp, const float *restrict dy,
                                int64_t o0, int64_t ov, float *restrict accm, int first) {
    switch (d->KW) {
    case 1: CS_NAME(dw_kw)(d, xp, dy, o0, ov, accm, first, 1); break;
    case 2: CS_NAME(dw_kw)(d, xp, dy, o0, ov, accm, first, 2); break;
    case 3: CS_NAME(dw_kw)(d, xp, dy, o0, ov, accm, first, 3); break;
    case 4: CS_NAME(dw_kw)(d, xp, dy, o0, ov, accm, first, 4); break;
    case 5: CS_NAME(dw_kw)(d, xp, dy, o0, ov, accm, first, 5); break;
    case 6: CS_NAME(dw_kw)(d, xp, dy, o0, ov, accm, first, 6); break;
    case 7: CS_NAME(dw_kw)(d, xp, dy, o0, ov, accm, first, 7); break;
    default: CS_NAME(dw_kw)(d, xp, dy, o0, ov, accm, first, 8); break;
    }
}

#undef CS_NAME
#undef CS_ATTR
#undef VF
#undef VZERO
#undef VLD
#undef VLDN
#undef VBC
#undef VADD
#undef VFMA
#undef VFMAN
#undef VST
#undef VSTN
#undef OBF
#undef OBW
