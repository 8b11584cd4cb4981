/* Body of conv_im2col.h, included once per element type IM2COL_T with suffix IM2COL_S. */
#define IM2COL_CAT2(a, b) a##_##b
#define IM2COL_CAT(a, b) IM2COL_CAT2(a, b)
#define IM2COL_FN(name) IM2COL_CAT(name, IM2COL_S)

/* col[(c*KH + kh)*KW + kw][oh*Wo + ow] = x[c][oh*sh - ph + kh*dh][ow*sw - pw + kw*dw], 0 outside. */
IM2COL_TARGETS
static void IM2COL_FN(im2col)(const IM2COL_T *x, IM2COL_T *col, const im2col_geometry *g)
{
    int c, kh, kw, oh, ow, lo, hi;
    for (c = 0; c < g->Cg; c++)
        for (kh = 0; kh < g->KH; kh++)
            for (kw = 0; kw < g->KW; kw++) {
                int iw0 = kw * g->dw - g->pw;
                im2col_valid(g->Wo, iw0, g->sw, g->W, &lo, &hi);
                for (oh = 0; oh < g->Ho; oh++) {
                    IM2COL_T *dst = col + ((ptrdiff_t)((c * g->KH + kh) * g->KW + kw) * g->Ho + oh) * g->Wo;
                    int ih = oh * g->sh - g->ph + kh * g->dh;
                    const IM2COL_T *src;
                    if (ih < 0 || ih >= g->H || lo == hi) {
                        memset(dst, 0, g->Wo * sizeof(IM2COL_T));
                        continue;
                    }
                    src = x + ((ptrdiff_t)c * g->H + ih) * g->W + iw0;
                    for (ow = 0; ow < lo; ow++) dst[ow] = 0;
                    if (g->sw == 1) {
                        memcpy(dst + lo, src + lo, (hi - lo) * sizeof(IM2COL_T));
                    } else if (g->sw == 2) {
                        for (ow = lo; ow < hi; ow++) dst[ow] = src[2 * ow];
                    } else {
                        for (ow = lo; ow < hi; ow++) dst[ow] = src[(ptrdiff_t)ow * g->sw];
                    }
                    for (ow = hi; ow < g->Wo; ow++) dst[ow] = 0;
                }
            }
}

/* The adjoint: dx[c][ih][iw] += col[...] over every column entry that im2col read from there. */
IM2COL_TARGETS
static void IM2COL_FN(col2im)(const IM2COL_T *col, IM2COL_T *dx, const im2col_geometry *g)
{
    int c, kh, kw, oh, ow, lo, hi;
    for (c = 0; c < g->Cg; c++)
        for (kh = 0; kh < g->KH; kh++)
            for (kw = 0; kw < g->KW; kw++) {
                int iw0 = kw * g->dw - g->pw;
                im2col_valid(g->Wo, iw0, g->sw, g->W, &lo, &hi);
                for (oh = 0; oh < g->Ho; oh++) {
                    const IM2COL_T *src = col + ((ptrdiff_t)((c * g->KH + kh) * g->KW + kw) * g->Ho + oh) * g->Wo;
                    int ih = oh * g->sh - g->ph + kh * g->dh;
                    IM2COL_T *dst;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    dst = dx + ((ptrdiff_t)c * g->H + ih) * g->W + iw0;
                    if (g->sw == 1) {
                        for (ow = lo; ow < hi; ow++) dst[ow] += src[ow];
                    } else if (g->sw == 2) {
                        for (ow = lo; ow < hi; ow++) dst[2 * ow] += src[ow];
                    } else {
                        for (ow = lo; ow < hi; ow++) dst[(ptrdiff_t)ow * g->sw] += src[ow];
                    }
                }
            }
}

#undef IM2COL_FN
#undef IM2COL_CAT
#undef IM2COL_CAT2
