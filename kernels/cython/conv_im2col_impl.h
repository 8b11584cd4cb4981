/* Body of conv_im2col.h, included once per element type IM2COL_T with suffix IM2COL_S. */
#define IM2COL_CAT2(a, b) a##_##b
#define IM2COL_CAT(a, b) IM2COL_CAT2(a, b)
#define IM2COL_FN(name) IM2COL_CAT(name, IM2COL_S)

/* The columns of output pixels p0 <= p < p0 + count (p = oh*Wo + ow), a block of the image's:
 * col[(c*KH + kh)*KW + kw][p - p0] = x[c][oh*sh - ph + kh*dh][ow*sw - pw + kw*dw], 0 outside.
 * Blocks bound the workspace (K * count values) whatever the output size. */
FNN_CLONES
static void IM2COL_FN(im2col)(const IM2COL_T *x, IM2COL_T *col, const im2col_geometry *g,
                              ptrdiff_t p0, ptrdiff_t count)
{
    ptrdiff_t c, kh, kw, oh, ow, lo, hi, p1 = p0 + count;
    for (c = 0; c < g->Cg; c++)
        for (kh = 0; kh < g->KH; kh++)
            for (kw = 0; kw < g->KW; kw++) {
                ptrdiff_t iw0 = kw * g->dw - g->pw;
                IM2COL_T *row = col + ((c * g->KH + kh) * g->KW + kw) * count - p0;  /* row[p] */
                im2col_valid(g->Wo, iw0, g->sw, g->W, &lo, &hi);
                for (oh = p0 / g->Wo; oh * g->Wo < p1; oh++) {
                    /* this output row's pixels in the block: ow in [a, b) */
                    ptrdiff_t a = p0 > oh * g->Wo ? p0 - oh * g->Wo : 0;
                    ptrdiff_t b = p1 - oh * g->Wo < g->Wo ? p1 - oh * g->Wo : g->Wo;
                    ptrdiff_t ih = oh * g->sh - g->ph + kh * g->dh;
                    ptrdiff_t l = lo > a ? lo : a, h = hi < b ? hi : b;
                    IM2COL_T *dst = row + oh * g->Wo;
                    const IM2COL_T *src;
                    if (ih < 0 || ih >= g->H || l >= h) {
                        memset(dst + a, 0, (b - a) * sizeof(IM2COL_T));
                        continue;
                    }
                    src = x + (c * g->H + ih) * g->W + iw0;
                    for (ow = a; ow < l; ow++) dst[ow] = 0;
                    if (g->sw == 1) {
                        memcpy(dst + l, src + l, (h - l) * sizeof(IM2COL_T));
                    } else if (g->sw == 2) {
                        for (ow = l; ow < h; ow++) dst[ow] = src[2 * ow];
                    } else {
                        for (ow = l; ow < h; ow++) dst[ow] = src[ow * g->sw];
                    }
                    for (ow = h; ow < b; ow++) dst[ow] = 0;
                }
            }
}

/* The adjoint for the same block: dx[c][ih][iw] += col[...] over every column entry that im2col
 * read from there. */
FNN_CLONES
static void IM2COL_FN(col2im)(const IM2COL_T *col, IM2COL_T *dx, const im2col_geometry *g,
                              ptrdiff_t p0, ptrdiff_t count)
{
    ptrdiff_t c, kh, kw, oh, ow, lo, hi, p1 = p0 + count;
    for (c = 0; c < g->Cg; c++)
        for (kh = 0; kh < g->KH; kh++)
            for (kw = 0; kw < g->KW; kw++) {
                ptrdiff_t iw0 = kw * g->dw - g->pw;
                const IM2COL_T *row = col + ((c * g->KH + kh) * g->KW + kw) * count - p0;
                im2col_valid(g->Wo, iw0, g->sw, g->W, &lo, &hi);
                for (oh = p0 / g->Wo; oh * g->Wo < p1; oh++) {
                    ptrdiff_t a = p0 > oh * g->Wo ? p0 - oh * g->Wo : 0;
                    ptrdiff_t b = p1 - oh * g->Wo < g->Wo ? p1 - oh * g->Wo : g->Wo;
                    ptrdiff_t ih = oh * g->sh - g->ph + kh * g->dh;
                    ptrdiff_t l = lo > a ? lo : a, h = hi < b ? hi : b;
                    const IM2COL_T *src = row + oh * g->Wo;
                    IM2COL_T *dst;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    dst = dx + (c * g->H + ih) * g->W + iw0;
                    if (g->sw == 1) {
                        for (ow = l; ow < h; ow++) dst[ow] += src[ow];
                    } else if (g->sw == 2) {
                        for (ow = l; ow < h; ow++) dst[2 * ow] += src[ow];
                    } else {
                        for (ow = l; ow < h; ow++) dst[ow * g->sw] += src[ow];
                    }
                }
            }
}

#undef IM2COL_FN
#undef IM2COL_CAT
#undef IM2COL_CAT2
