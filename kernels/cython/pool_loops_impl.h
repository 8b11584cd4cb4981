/* Body of pool_loops.h, included once per element type POOL_T with suffix POOL_S. */
#define POOL_CAT2(a, b) a##_##b
#define POOL_CAT(a, b) POOL_CAT2(a, b)
#define POOL_FN(name) POOL_CAT(name, POOL_S)

/* x's plane into the interior of the padded plane (fnn_pool_rows(g) rows of fnn_pool_span(g),
 * polyphase), whose padding the caller filled once for all planes. Columns past the last window
 * are not needed. */
static inline void POOL_FN(fnn_pool_interior)(const POOL_T *restrict x, const fnn_pool_geometry *g,
                                              POOL_T *restrict plane)
{
    ptrdiff_t span = fnn_pool_span(g), wq = fnn_pool_phase(g), pw = g->pw, W = g->width;
    ptrdiff_t copied = W < span - pw ? W : span - pw, r_end = fnn_pool_rows(g) - g->ph;
    for (ptrdiff_t ih = 0; ih < (g->height < r_end ? g->height : r_end); ih++) {
        const POOL_T *restrict src = x + ih * W;
        POOL_T *restrict dst = plane + (ih + g->ph) * span;
        FNN_POOL_BY_STRIDE(g->sw,
            for (ptrdiff_t q = 0; q < S; q++) {
                /* phase q's element k is column k * S + q - pw of x */
                ptrdiff_t k_lo = (pw - q + S - 1) / S;
                ptrdiff_t k_hi = (pw + copied - q + S - 1) / S;
                for (ptrdiff_t k = k_lo > 0 ? k_lo : 0; k < k_hi; k++)
                    dst[q * wq + k] = src[k * S + q - pw];
            })
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
        for (ow = 0; ow < lo; ow++)  /* the clipped windows, at the ends of the row */
            row[ow] = row[ow] / (POOL_T)(rows * fnn_pool_columns(ow, g));
        for (ow = hi; ow < g->out_w; ow++)
            row[ow] = row[ow] / (POOL_T)(rows * fnn_pool_columns(ow, g));
        divisor = rows * g->kw;
    }
    for (ow = lo; ow < hi; ow++)
        row[ow] = row[ow] / (POOL_T)divisor;
}

/* One window tap over a plane's windows (rows rows of n, the tap's values b_stride apart): the
 * running maxima m and offsets k, and the tap's values b (offset c), into m_out and k_out. Restrict
 * holds for parameters: on local pointers gcc checked aliasing at run time, per block. */
static inline void POOL_FN(fnn_pool_tap)(const POOL_T *restrict b, ptrdiff_t b_stride, POOL_T c, ptrdiff_t rows,
                                         ptrdiff_t n, const POOL_T *restrict m, const POOL_T *restrict k,
                                         POOL_T *restrict m_out, POOL_T *restrict k_out)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        const POOL_T *restrict br = b + r * b_stride;
        ptrdiff_t at = r * n;
        FNN_POOL_BLOCKS(n, o,
            int wins = FNN_POOL_WINS(br[o], m[at + o]);
            m_out[at + o] = wins ? br[o] : m[at + o];
            k_out[at + o] = wins ? c : k[at + o];)
    }
}

/* The plane's windows' maxima and their offsets i * W + j in their windows, from the -inf padded
 * plane: out_h rows of fnn_pool_round(out_w), the rule as selects, one tap at a time over all the
 * windows. Each tap reads the running pair and writes the other (a select into the same array
 * became a masked store, reloaded by the next tap through a failed store forward); rows: four
 * such arrays. Returns the pair holding the result (maxima, then offsets). */
static inline POOL_T *POOL_FN(fnn_pool_winners)(const POOL_T *restrict plane, const fnn_pool_geometry *g,
                                                POOL_T *restrict rows)
{
    ptrdiff_t n = fnn_pool_round(g->out_w), span = fnn_pool_span(g), wq = fnn_pool_phase(g), size = g->out_h * n;
    POOL_T *best = rows, *code = rows + size, *next = rows + 2 * size;
    FNN_POOL_BLOCKS(size, o, best[o] = -INFINITY; code[o] = 0;)
    for (ptrdiff_t i = 0; i < g->kh; i++)
        for (ptrdiff_t j = 0, phase = 0, shift = 0; j < g->kw; j++) {
            /* tap j: phase j % sw, shifted by j / sw (counted, not divided) */
            const POOL_T *restrict b = plane + i * span + phase * wq + shift;
            POOL_FN(fnn_pool_tap)(b, g->sh * span, (POOL_T)(i * g->width + j), g->out_h, n, best, code, next,
                                  next + size);
            code = next + size;
            next = best;
            best = code - size;
            phase = phase + 1 == g->sw ? 0 : phase + 1;
            shift += phase == 0;
        }
    for (ptrdiff_t oh = 0; oh < g->out_h; oh++)
        for (ptrdiff_t ow = 0; ow < g->out_w; ow++)  /* all -inf: torch's index, the window's first element in x */
            if (best[oh * n + ow] == -INFINITY) {
                ptrdiff_t i = g->ph - oh * g->sh, j = g->pw - ow * g->sw;
                code[oh * n + ow] = (POOL_T)((i > 0 ? i : 0) * g->width + (j > 0 ? j : 0));
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

/* Max values and torch's flat indices of `planes` planes; scratch: fnn_pool_winners_scratch(g)
 * elements. */
FNN_CLONES
static void POOL_FN(fnn_pool_max_indices)(const POOL_T *restrict x, POOL_T *restrict y, int64_t *restrict indices,
                                          ptrdiff_t planes, const fnn_pool_geometry *g, POOL_T *restrict scratch)
{
    ptrdiff_t n = g->out_w, n_blocks = fnn_pool_round(n), span = fnn_pool_span(g), rows = fnn_pool_rows(g);
    ptrdiff_t outputs = g->out_h * n;
    for (ptrdiff_t c = 0; c < rows * span; c++)
        scratch[c] = -INFINITY;
    for (ptrdiff_t p = 0; p < planes; p++) {
        POOL_FN(fnn_pool_interior)(x + p * g->height * g->width, g, scratch);
        const POOL_T *best = POOL_FN(fnn_pool_winners)(scratch, g, scratch + rows * span);
        const POOL_T *code = best + g->out_h * n_blocks;
        for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
            int64_t base = (oh * g->sh - g->ph) * g->width - g->pw, *restrict out = indices + p * outputs + oh * n;
            memcpy(y + p * outputs + oh * n, best + oh * n_blocks, n * sizeof(POOL_T));
            for (ptrdiff_t ow = 0; ow < n; ow++)
                out[ow] = base + ow * g->sw + (int64_t)code[oh * n_blocks + ow];
        }
    }
}

/* dx of the max over `planes` planes; scratch: fnn_pool_winners_scratch(g) elements. */
FNN_CLONES
static void POOL_FN(fnn_pool_max_backward)(const POOL_T *restrict dy, const POOL_T *restrict x, POOL_T *restrict dx,
                                           ptrdiff_t planes, const fnn_pool_geometry *g, POOL_T *restrict scratch)
{
    ptrdiff_t n = g->out_w, n_blocks = fnn_pool_round(n), span = fnn_pool_span(g), rows = fnn_pool_rows(g);
    ptrdiff_t size = g->height * g->width;
    for (ptrdiff_t c = 0; c < rows * span; c++)
        scratch[c] = -INFINITY;
    for (ptrdiff_t p = 0; p < planes; p++) {
        POOL_T *restrict dplane = dx + p * size;
        POOL_FN(fnn_pool_interior)(x + p * size, g, scratch);
        const POOL_T *code = POOL_FN(fnn_pool_winners)(scratch, g, scratch + rows * span) + g->out_h * n_blocks;
        memset(dplane, 0, size * sizeof(POOL_T));
        for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
            POOL_T *d = dplane + (oh * g->sh - g->ph) * g->width - g->pw;
            const POOL_T *restrict grad = dy + (p * g->out_h + oh) * n, *restrict k = code + oh * n_blocks;
            for (ptrdiff_t ow = 0; ow < n; ow++)
                d[ow * g->sw + (ptrdiff_t)k[ow]] += grad[ow];
        }
    }
}

/* dx of the average; scratch: fnn_pool_avg_backward_scratch(g) elements. Each row of windows' shares
 * (dy / divisor) are spread across the windows' columns for the whole plane at once, in polyphase
 * order (phase q's column t gets the windows t - m, m < ceil((kw - q) / sw): shifted unit-stride
 * reads of ext, the rows of shares R = lead + T apart after `lead` zeros each), then interleaved;
 * each dx row is then written once, the sum of the spreads of the windows covering it. Strided
 * scatter-adds into a zeroed plane took most of a 28x28 k3s2 plane's backward; spreading a row of
 * windows at a time, its loops' set-up. */
FNN_CLONES
static void POOL_FN(fnn_pool_avg_backward)(const POOL_T *restrict dy, POOL_T *restrict dx, const fnn_pool_geometry *g,
                                           POOL_T *restrict scratch)
{
    ptrdiff_t n = g->out_w, W = g->width, sw = g->sw, lead = (g->kw - 1) / sw, R = lead + fnn_pool_avg_phase(g);
    ptrdiff_t size = g->out_h * R, span = sw * R;  /* a row of spreads: R columns of each phase */
    POOL_T *restrict ext = scratch, *restrict phases = ext + size + lead, *restrict spreads = phases + sw * size;
    memset(ext, 0, (size + lead) * sizeof(POOL_T));
    for (ptrdiff_t oh = 0; oh < g->out_h; oh++) {
        memcpy(ext + oh * R + lead, dy + oh * n, n * sizeof(POOL_T));
        POOL_FN(fnn_pool_divide)(ext + oh * R + lead, oh, g);
    }
    for (ptrdiff_t q = 0; q < sw; q++) {
        POOL_T *restrict phase = phases + q * size;
        if (q >= g->kw) {
            memset(phase, 0, size * sizeof(POOL_T));
            continue;
        }
        for (ptrdiff_t i = 0; i < size; i++)
            phase[i] = ext[i + lead];
        for (ptrdiff_t m = 1; m * sw + q < g->kw; m++)
            for (ptrdiff_t i = 0; i < size; i++)
                phase[i] += ext[i + lead - m];
    }
    FNN_POOL_BY_STRIDE(sw,  /* spreads[i * S + q] = phase q's [i] */
        for (ptrdiff_t i = 0; i < size; i++)
            for (ptrdiff_t q = 0; q < S; q++)
                spreads[i * S + q] = phases[q * size + i];)
    for (ptrdiff_t ih = 0; ih < g->height; ih++) {
        /* the windows oh with oh * sh - ph <= ih < oh * sh - ph + kh */
        ptrdiff_t top = ih + g->ph, lo = top - g->kh + 1, hi = top / g->sh;
        POOL_T *restrict row = dx + ih * W;
        lo = lo <= 0 ? 0 : (lo + g->sh - 1) / g->sh;
        hi = hi < g->out_h - 1 ? hi : g->out_h - 1;
        if (lo > hi) {
            memset(row, 0, W * sizeof(POOL_T));
            continue;
        }
        memcpy(row, spreads + lo * span + g->pw, W * sizeof(POOL_T));
        for (ptrdiff_t oh = lo + 1; oh <= hi; oh++) {
            const POOL_T *restrict add = spreads + oh * span + g->pw;
            for (ptrdiff_t iw = 0; iw < W; iw++)
                row[iw] += add[iw];
        }
    }
}

/* Exact tilings (fnn_pool_tiled: disjoint windows covering x, no padding): output row k of the
 * planes taken end to end reads the kh whole rows k * kh.. of x, and a row of x is out_w windows
 * exactly, so `groups` output rows of consecutive planes run as one: each row of windows reduced
 * vertically into buf, then across in one flat pass over a batch of rows (27x27 k3s3 planes spent
 * most of their time in the per-row loops' set-up: 9 outputs a row). buf: FNN_POOL_TILED_ELEMS. */
FNN_CLONES
static void POOL_FN(fnn_pool_tiled_values)(const POOL_T *restrict x, POOL_T *restrict y, ptrdiff_t groups,
                                           const fnn_pool_geometry *g, int average, POOL_T *restrict buf)
{
    ptrdiff_t W = g->width, n = g->out_w, batch = fnn_pool_tiled_batch(g);
    POOL_T divisor = (POOL_T)(g->divisor ? g->divisor : g->kh * g->kw);
    for (ptrdiff_t g0 = 0; g0 < groups; g0 += batch) {
        ptrdiff_t b = groups - g0 < batch ? groups - g0 : batch;
        for (ptrdiff_t k = 0; k < b; k++)
            POOL_FN(fnn_pool_vertical)(x + (g0 + k) * g->kh * W, W, 0, g->kh, average, buf + k * W);
        POOL_T *restrict out = y + g0 * n;
        POOL_FN(fnn_pool_across)(buf, b * n, g->sw, g->kw, average, out);
        if (average)
            for (ptrdiff_t o = 0; o < b * n; o++)
                out[o] = out[o] / divisor;
    }
}

/* dx of the average on an exact tiling, `groups` rows of windows as fnn_pool_tiled_values: each
 * window's share spread across its columns in one flat pass over a batch of rows, then copied into
 * the window's kh rows. buf: FNN_POOL_TILED_ELEMS. */
FNN_CLONES
static void POOL_FN(fnn_pool_tiled_avg_backward)(const POOL_T *restrict dy, POOL_T *restrict dx, ptrdiff_t groups,
                                                 const fnn_pool_geometry *g, POOL_T *restrict buf)
{
    ptrdiff_t W = g->width, n = g->out_w, batch = fnn_pool_tiled_batch(g);
    POOL_T divisor = (POOL_T)(g->divisor ? g->divisor : g->kh * g->kw);
    for (ptrdiff_t g0 = 0; g0 < groups; g0 += batch) {
        ptrdiff_t b = groups - g0 < batch ? groups - g0 : batch;
        const POOL_T *restrict grad = dy + g0 * n;
        FNN_POOL_BY_STRIDE(g->sw,
            for (ptrdiff_t o = 0; o < b * n; o++) {
                POOL_T share = grad[o] / divisor;
                for (ptrdiff_t j = 0; j < S; j++)
                    buf[o * S + j] = share;
            })
        for (ptrdiff_t k = 0; k < b; k++)
            for (ptrdiff_t i = 0; i < g->kh; i++)
                memcpy(dx + ((g0 + k) * g->kh + i) * W, buf + k * W, W * sizeof(POOL_T));
    }
}

/* row[ow] = the max of top and bottom's columns 2 ow and 2 ow + 1, for the block of windows at `at`. */
static inline void POOL_FN(fnn_pool_max_2x2_block)(const POOL_T *restrict top, const POOL_T *restrict bottom,
                                                   ptrdiff_t at, POOL_T *restrict row)
{
    FNN_POOL_BLOCKS(FNN_POOL_LANES, l,
        ptrdiff_t ow = at + l;
        POOL_T m = FNN_POOL_WINS(top[2 * ow + 1], top[2 * ow]) ? top[2 * ow + 1] : top[2 * ow];
        m = FNN_POOL_WINS(bottom[2 * ow], m) ? bottom[2 * ow] : m;
        row[ow] = FNN_POOL_WINS(bottom[2 * ow + 1], m) ? bottom[2 * ow + 1] : m;)
}

/* The same over n windows in whole blocks: a last partial block is the one ending at n, overlapping
 * the one before (or, in a row under one block, copies padded with -inf). A scalar remainder
 * branched on the data: 12 of a 28-wide row's windows took most of its time. */
static inline void POOL_FN(fnn_pool_max_2x2_row)(const POOL_T *restrict top, const POOL_T *restrict bottom,
                                                 ptrdiff_t n, POOL_T *restrict row)
{
    POOL_T t[2 * FNN_POOL_LANES], b[2 * FNN_POOL_LANES], out[FNN_POOL_LANES];
    ptrdiff_t at;
    for (at = 0; at + FNN_POOL_LANES <= n; at += FNN_POOL_LANES)
        POOL_FN(fnn_pool_max_2x2_block)(top, bottom, at, row);
    if (at == n)
        return;
    if (n >= FNN_POOL_LANES) {
        POOL_FN(fnn_pool_max_2x2_block)(top, bottom, n - FNN_POOL_LANES, row);
        return;
    }
    for (int l = 0; l < 2 * FNN_POOL_LANES; l++)
        t[l] = b[l] = -INFINITY;
    memcpy(t, top, 2 * n * sizeof(POOL_T));
    memcpy(b, bottom, 2 * n * sizeof(POOL_T));
    POOL_FN(fnn_pool_max_2x2_block)(t, b, 0, out);
    memcpy(row, out, n * sizeof(POOL_T));
}

/* 2x2 stride 2, unpadded: max values, each x element read once; ceil_mode's hanging last column
 * and row (one element of x across) in the same pass. */
FNN_CLONES
static void POOL_FN(fnn_pool_max_2x2)(const POOL_T *restrict x, POOL_T *restrict y, const fnn_pool_geometry *g)
{
    ptrdiff_t W = g->width, n = g->out_w, full_h = g->height / 2, full_w = W / 2, last = 2 * full_w;
    for (ptrdiff_t oh = 0; oh < full_h; oh++) {
        const POOL_T *restrict top = x + 2 * oh * W, *restrict bottom = top + W;
        POOL_T *restrict row = y + oh * n;
        POOL_FN(fnn_pool_max_2x2_row)(top, bottom, full_w, row);
        if (n > full_w)
            row[full_w] = FNN_POOL_MAX(bottom[last], top[last]);
    }
    if (g->out_h > full_h) {
        const POOL_T *restrict top = x + 2 * full_h * W;
        POOL_T *restrict row = y + full_h * n;
        POOL_FN(fnn_pool_max_2x2_row)(top, top, full_w, row);  /* a window of x's row twice: its max */
        if (n > full_w)
            row[full_w] = top[last];
    }
}

#undef POOL_CAT2
#undef POOL_CAT
#undef POOL_FN
