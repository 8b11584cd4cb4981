/* Body of pool_loops.h, included once per element type POOL_T with suffix POOL_S. */
#define POOL_CAT2(a, b) a##_##b
#define POOL_CAT(a, b) POOL_CAT2(a, b)
#define POOL_FN(name) POOL_CAT(name, POOL_S)

/* The padded plane (fnn_pool_rows(g) rows of fnn_pool_span(g), polyphase), `fill` outside x; row:
 * scratch for a padded row in plain order. */
static inline void POOL_FN(fnn_pool_pad)(const POOL_T *restrict x, const fnn_pool_geometry *g, POOL_T fill,
                                         POOL_T *restrict plane, POOL_T *restrict row)
{
    ptrdiff_t span = fnn_pool_span(g), wq = fnn_pool_phase(g), pw = g->pw, W = g->width, c;
    ptrdiff_t copied = W < span - pw ? W : span - pw;  /* columns past the last window are not needed */
    for (ptrdiff_t r = 0; r < fnn_pool_rows(g); r++) {
        POOL_T *restrict dst = plane + r * span;
        ptrdiff_t ih = r - g->ph;
        if (ih < 0 || ih >= g->height) {
            for (c = 0; c < span; c++)
                dst[c] = fill;
            continue;
        }
        POOL_T *restrict plain = g->sw == 1 ? dst : row;
        for (c = 0; c < pw; c++)
            plain[c] = fill;
        memcpy(plain + pw, x + ih * W, copied * sizeof(POOL_T));
        for (c = pw + copied; c < span; c++)
            plain[c] = fill;
        if (g->sw > 1) {
            FNN_POOL_BY_STRIDE(g->sw,
                for (ptrdiff_t q = 0; q < S; q++)
                    for (ptrdiff_t k = 0; k < wq; k++)
                        dst[q * wq + k] = row[k * S + q];)
        }
    }
}

/* v[0:W] = the max (sum) of x's rows [r0, r1) (at least one). Plain loops: their scalar remainders
 * are branch-free but for FNN_POOL_MAX's NaN test, which predicts well. */
static inline void POOL_FN(fnn_pool_vertical)(const POOL_T *restrict x, ptrdiff_t W, ptrdiff_t r0, ptrdiff_t r1,
                                              int sum, POOL_T *restrict v)
{
    const POOL_T *restrict a = x + r0 * W, *restrict b = a + W;
    if (r1 - r0 == 1) {
        memcpy(v, a, W * sizeof(POOL_T));
        return;
    }
    if (sum)
        for (ptrdiff_t iw = 0; iw < W; iw++)
            v[iw] = a[iw] + b[iw];
    else
        for (ptrdiff_t iw = 0; iw < W; iw++)
            v[iw] = FNN_POOL_MAX(b[iw], a[iw]);
    for (ptrdiff_t r = r0 + 2; r < r1; r++) {
        const POOL_T *restrict src = x + r * W;
        if (sum)
            for (ptrdiff_t iw = 0; iw < W; iw++)
                v[iw] += src[iw];
        else
            for (ptrdiff_t iw = 0; iw < W; iw++)
                v[iw] = FNN_POOL_MAX(src[iw], v[iw]);
    }
}

/* row[ow] = the max (sum) of buf[ow * sw + j], j < kw, ow < n. */
static inline void POOL_FN(fnn_pool_across)(const POOL_T *restrict buf, ptrdiff_t n, ptrdiff_t sw, ptrdiff_t kw,
                                            int sum, POOL_T *restrict row)
{
    FNN_POOL_BY_STRIDE(sw,
        for (ptrdiff_t ow = 0; ow < n; ow++)
            row[ow] = buf[ow * S];
        for (ptrdiff_t j = 1; j < kw; j++) {
            const POOL_T *restrict b = buf + j;
            if (sum)
                for (ptrdiff_t ow = 0; ow < n; ow++)
                    row[ow] += b[ow * S];
            else
                for (ptrdiff_t ow = 0; ow < n; ow++)
                    row[ow] = FNN_POOL_MAX(b[ow * S], row[ow]);
        })
}

/* row[ow] /= its window's divisor (torch's), ow < out_w: the outputs [full_lo, full_hi) share one. */
static inline void POOL_FN(fnn_pool_divide)(POOL_T *restrict row, ptrdiff_t oh, const fnn_pool_geometry *g)
{
    ptrdiff_t lo = 0, hi = g->out_w, divisor = g->divisor, ow, rows;
    if (divisor == 0) {
        rows = fnn_pool_count(oh * g->sh - g->ph, g->kh, g->height, g->ph, g->include_pad);
        lo = g->full_lo;
        hi = g->full_hi;
        for (ow = 0; ow < g->out_w; ow++)  /* the clipped windows, at the ends of the row */
            if (ow < lo || ow >= hi)
                row[ow] = row[ow] / (POOL_T)(rows * fnn_pool_count(ow * g->sw - g->pw, g->kw, g->width, g->pw,
                                                                  g->include_pad));
        divisor = rows * g->kw;
    }
    for (ow = lo; ow < hi; ow++)
        row[ow] = row[ow] / (POOL_T)divisor;
}

/* One window tap over blocks of n windows: the running maxima m and offsets k, and the tap's
 * values b (offset c), into m_out and k_out. Restrict holds for parameters: on local pointers gcc
 * checked aliasing at run time, per block. */
static inline void POOL_FN(fnn_pool_tap)(const POOL_T *restrict b, POOL_T c, ptrdiff_t n, const POOL_T *restrict m,
                                         const POOL_T *restrict k, POOL_T *restrict m_out, POOL_T *restrict k_out)
{
    FNN_POOL_BLOCKS(n, o,
        int wins = FNN_POOL_WINS(b[o], m[o]);
        m_out[o] = wins ? b[o] : m[o];
        k_out[o] = wins ? c : k[o];)
}

/* best[ow], code[ow]: output row oh's maxima and their offsets i * W + j in their windows (blocks
 * covering out_w windows, the rule as selects), from the -inf padded plane. Each tap reads the
 * running rows and writes the other pair (rows + 2 n, rows + 3 n), whole: a select into the same
 * array became a masked store, reloaded by the next tap through a failed store forward. Returns
 * the pair holding the result (best, then code). */
static inline POOL_T *POOL_FN(fnn_pool_winners)(const POOL_T *restrict plane, ptrdiff_t oh, const fnn_pool_geometry *g,
                                                POOL_T *restrict rows)
{
    ptrdiff_t n = fnn_pool_round(g->out_w), span = fnn_pool_span(g), wq = fnn_pool_phase(g), ow;
    POOL_T *best = rows, *code = rows + n, *next = rows + 2 * n;
    FNN_POOL_BLOCKS(n, o, best[o] = -INFINITY; code[o] = 0;)
    for (ptrdiff_t i = 0; i < g->kh; i++)
        for (ptrdiff_t j = 0, phase = 0, shift = 0; j < g->kw; j++) {
            /* tap j: phase j % sw, shifted by j / sw (counted: a division per tap cost more than
             * the tap's loop on small planes) */
            const POOL_T *restrict b = plane + (oh * g->sh + i) * span + phase * wq + shift;
            const POOL_T c = (POOL_T)(i * g->width + j);
            phase = phase + 1 == g->sw ? 0 : phase + 1;
            shift += phase == 0;
            POOL_FN(fnn_pool_tap)(b, c, n, best, code, next, next + n);
            code = next + n;
            next = best;
            best = code - n;
        }
    for (ow = 0; ow < g->out_w; ow++)  /* all -inf: torch's index, the window's first element in x */
        if (best[ow] == -INFINITY) {
            ptrdiff_t i = g->ph - oh * g->sh, j = g->pw - ow * g->sw;
            code[ow] = (POOL_T)((i > 0 ? i : 0) * g->width + (j > 0 ? j : 0));
        }
    return best;
}

/* Max (average = 0) or average values of a plane; buf: fnn_pool_values_scratch(g) elements. */
FNN_CLONES
static void POOL_FN(fnn_pool_values)(const POOL_T *restrict x, POOL_T *restrict y, const fnn_pool_geometry *g,
                                     int average, POOL_T *restrict buf)
{
    ptrdiff_t width = fnn_pool_width(g), iw;
    POOL_T fill = average ? (POOL_T)0 : (POOL_T)-INFINITY;
    for (iw = 0; iw < g->pw; iw++)
        buf[iw] = fill;
    for (iw = g->pw + g->width; iw < width; iw++)
        buf[iw] = fill;
    for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
        ptrdiff_t h0 = oh * g->sh - g->ph, r1 = h0 + g->kh < g->height ? h0 + g->kh : g->height;
        POOL_FN(fnn_pool_vertical)(x, g->width, h0 > 0 ? h0 : 0, r1, average, buf + g->pw);
        POOL_FN(fnn_pool_across)(buf, g->out_w, g->sw, g->kw, average, y + oh * g->out_w);
        if (average)
            POOL_FN(fnn_pool_divide)(y + oh * g->out_w, oh, g);
    }
}

/* Max values and torch's flat indices; scratch: fnn_pool_winners_scratch(g) elements. */
FNN_CLONES
static void POOL_FN(fnn_pool_max_indices)(const POOL_T *restrict x, POOL_T *restrict y, int64_t *restrict indices,
                                          const fnn_pool_geometry *g, POOL_T *restrict scratch)
{
    ptrdiff_t n = g->out_w, span = fnn_pool_span(g);
    POOL_T *restrict tmp = scratch + fnn_pool_rows(g) * span;
    POOL_FN(fnn_pool_pad)(x, g, (POOL_T)-INFINITY, scratch, tmp);
    for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
        int64_t base = (oh * g->sh - g->ph) * g->width - g->pw;
        const POOL_T *best = POOL_FN(fnn_pool_winners)(scratch, oh, g, tmp + span);
        const POOL_T *code = best + fnn_pool_round(n);
        memcpy(y + oh * n, best, n * sizeof(POOL_T));
        for (ptrdiff_t ow = 0; ow < n; ow++)
            indices[oh * n + ow] = base + ow * g->sw + (int64_t)code[ow];
    }
}

/* dx of the max; scratch: fnn_pool_winners_scratch(g) elements. */
FNN_CLONES
static void POOL_FN(fnn_pool_max_backward)(const POOL_T *restrict dy, const POOL_T *restrict x, POOL_T *restrict dx,
                                           const fnn_pool_geometry *g, POOL_T *restrict scratch)
{
    ptrdiff_t n = g->out_w, span = fnn_pool_span(g);
    POOL_T *restrict tmp = scratch + fnn_pool_rows(g) * span;
    POOL_FN(fnn_pool_pad)(x, g, (POOL_T)-INFINITY, scratch, tmp);
    memset(dx, 0, g->height * g->width * sizeof(POOL_T));
    for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
        POOL_T *d = dx + (oh * g->sh - g->ph) * g->width - g->pw;
        const POOL_T *restrict grad = dy + oh * n;
        const POOL_T *code = POOL_FN(fnn_pool_winners)(scratch, oh, g, tmp + span) + fnn_pool_round(n);
        for (ptrdiff_t ow = 0; ow < n; ow++)
            d[ow * g->sw + (ptrdiff_t)code[ow]] += grad[ow];
    }
}

/* dx of the average; scratch: fnn_pool_avg_backward_scratch(g) elements. */
FNN_CLONES
static void POOL_FN(fnn_pool_avg_backward)(const POOL_T *restrict dy, POOL_T *restrict dx, const fnn_pool_geometry *g,
                                           POOL_T *restrict scratch)
{
    ptrdiff_t width = fnn_pool_width(g), n = g->out_w, W = g->width;
    POOL_T *restrict spread = scratch, *restrict share = scratch + width;
    memset(dx, 0, g->height * W * sizeof(POOL_T));
    for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
        ptrdiff_t h0 = oh * g->sh - g->ph, r1 = h0 + g->kh < g->height ? h0 + g->kh : g->height;
        memcpy(share, dy + oh * n, n * sizeof(POOL_T));
        POOL_FN(fnn_pool_divide)(share, oh, g);
        memset(spread, 0, width * sizeof(POOL_T));
        for (ptrdiff_t j = 0; j < g->kw; j++) {
            POOL_T *restrict b = spread + j;
            FNN_POOL_BY_STRIDE(g->sw,
                for (ptrdiff_t ow = 0; ow < n; ow++)
                    b[ow * S] += share[ow];)
        }
        for (ptrdiff_t r = h0 > 0 ? h0 : 0; r < r1; r++)
            for (ptrdiff_t iw = 0; iw < W; iw++)
                dx[r * W + iw] += spread[g->pw + iw];
    }
}

#undef POOL_CAT2
#undef POOL_CAT
#undef POOL_FN
