/* Body of conv_winograd.h, included once per element type WINO_T with suffix WINO_S. */
#define WINO_CAT2(a, b) a##_##b
#define WINO_CAT(a, b) WINO_CAT2(a, b)
#define WINO_FN(name) WINO_CAT(name, WINO_S)

/* B^T d B of the 4x4 input tiles r0 .. r0 + cnt - 1 (row-major over tw tiles per row) of one
 * plane (H, W); tile (ti, tj) reads rows 2 ti - ph .. + 3, columns 2 tj - pw .. + 3, zero-padded. */
FNN_CLONES
static void WINO_FN(wino_input_run)(const WINO_T *plane, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph,
                                    ptrdiff_t pw, ptrdiff_t tw, ptrdiff_t r0, ptrdiff_t cnt, WINO_T *v,
                                    ptrdiff_t vs)
{
    WINO_T d[16][WINO_RUN], padded[4][2 * WINO_RUN + 2];
    ptrdiff_t ti = r0 / tw, tj = r0 % tw;
    while (cnt > 0) {
        int n = cnt < WINO_RUN ? (int)cnt : WINO_RUN, j, i, q;
        /* gather d[4 i + q][j] = element (i, q) of tile j, one tile-row segment at a time, from
         * the segment's 4 input rows copied into zero-padded buffers (no bounds tests per tile) */
        for (j = 0; j < n;) {
            int seg = tw - tj < n - j ? (int)(tw - tj) : n - j, len = 2 * seg + 2, jj;
            ptrdiff_t ih = 2 * ti - ph, c0 = 2 * tj - pw;
            ptrdiff_t a = c0 < 0 ? -c0 : 0, b = W - c0 < len ? W - c0 : len;
            for (i = 0; i < 4; i++) {
                WINO_T *pr = padded[i], *d0 = d[4 * i] + j, *d1 = d[4 * i + 1] + j;
                WINO_T *d2 = d[4 * i + 2] + j, *d3 = d[4 * i + 3] + j;
                if (ih + i < 0 || ih + i >= H || a >= b) {
                    memset(pr, 0, len * sizeof(WINO_T));
                } else {
                    memset(pr, 0, a * sizeof(WINO_T));
                    memcpy(pr + a, plane + (ih + i) * W + c0 + a, (b - a) * sizeof(WINO_T));
                    memset(pr + b, 0, (len - b) * sizeof(WINO_T));
                }
                for (jj = 0; jj < seg; jj++) {
                    d0[jj] = pr[2 * jj];
                    d1[jj] = pr[2 * jj + 1];
                    d2[jj] = pr[2 * jj + 2];
                    d3[jj] = pr[2 * jj + 3];
                }
            }
            j += seg;
            tj += seg;
            if (tj == tw) { tj = 0; ti++; }
        }
        FNN_IVDEP  /* the 16 output streams never overlap: vectorize without alias checks */
        for (j = 0; j < n; j++) {
            WINO_T e[16];
            for (q = 0; q < 4; q++) {  /* B^T d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3 */
                WINO_T d0 = d[q][j], d1 = d[4 + q][j], d2 = d[8 + q][j], d3 = d[12 + q][j];
                e[q] = d0 - d2; e[4 + q] = d1 + d2; e[8 + q] = d2 - d1; e[12 + q] = d1 - d3;
            }
            for (i = 0; i < 4; i++) {  /* (B^T d) B: the same on columns */
                WINO_T e0 = e[4 * i], e1 = e[4 * i + 1], e2 = e[4 * i + 2], e3 = e[4 * i + 3];
                v[(4 * i) * vs + j] = e0 - e2;
                v[(4 * i + 1) * vs + j] = e1 + e2;
                v[(4 * i + 2) * vs + j] = e2 - e1;
                v[(4 * i + 3) * vs + j] = e1 - e3;
            }
        }
        v += n;
        cnt -= n;
    }
}

/* A dy A^T, A = [[1, 0], [1, 1], [1, -1], [0, -1]], of the 2x2 output-gradient tiles r0 .. r0 +
 * cnt - 1 of one plane (Ho, Wo); tile (ti, tj) covers rows 2 ti, 2 ti + 1, columns 2 tj, 2 tj + 1. */
FNN_CLONES
static void WINO_FN(wino_grad_run)(const WINO_T *plane, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t tw,
                                   ptrdiff_t r0, ptrdiff_t cnt, WINO_T *v, ptrdiff_t vs)
{
    WINO_T d[4][WINO_RUN];
    ptrdiff_t ti = r0 / tw, tj = r0 % tw;
    while (cnt > 0) {
        int n = cnt < WINO_RUN ? (int)cnt : WINO_RUN, j;
        for (j = 0; j < n; j++) {
            ptrdiff_t oh = 2 * ti, ow = 2 * tj;
            const WINO_T *p = plane + oh * Wo + ow;
            int right = ow + 1 < Wo, below = oh + 1 < Ho;
            d[0][j] = p[0];
            d[1][j] = right ? p[1] : 0;
            d[2][j] = below ? p[Wo] : 0;
            d[3][j] = right && below ? p[Wo + 1] : 0;
            if (++tj == tw) { tj = 0; ti++; }
        }
        FNN_IVDEP
        for (j = 0; j < n; j++) {
            WINO_T a0 = d[0][j], a1 = d[1][j], a2 = d[2][j], a3 = d[3][j];
            /* A dy: rows (a0 a1), (a0 + a2, a1 + a3), (a0 - a2, a1 - a3), (-a2, -a3); then columns
             * (u, w) -> u, u + w, u - w, -w */
            WINO_T u[4] = {a0, a0 + a2, a0 - a2, -a2}, w[4] = {a1, a1 + a3, a1 - a3, -a3};
            int i;
            for (i = 0; i < 4; i++) {
                v[(4 * i) * vs + j] = u[i];
                v[(4 * i + 1) * vs + j] = u[i] + w[i];
                v[(4 * i + 2) * vs + j] = u[i] - w[i];
                v[(4 * i + 3) * vs + j] = -w[i];
            }
        }
        v += n;
        cnt -= n;
    }
}

/* A^T m A (+ bias, then relu if asked) of the output tiles r0 .. r0 + cnt - 1 of one plane
 * (Ho, Wo), m[k * ms + j]; tiles are clipped at the bottom and right edges. Returns 0 when a
 * tile's output (before relu, clipped parts included) is inf or NaN: the caller recomputes. */
FNN_CLONES
static int WINO_FN(wino_output_run)(const WINO_T *m, ptrdiff_t ms, WINO_T *plane, ptrdiff_t Ho,
                                     ptrdiff_t Wo, ptrdiff_t tw, ptrdiff_t r0, ptrdiff_t cnt, WINO_T bias,
                                     int relu)
{
    WINO_T o[4][WINO_RUN];
    int bad = 0;  /* y - y != 0 only for NaN and +-inf; an integer OR keeps the loop vectorized
                   * (a floating-point sum would be a serial chain without reassociation) */
    ptrdiff_t ti = r0 / tw, tj = r0 % tw;
    while (cnt > 0) {
        int n = cnt < WINO_RUN ? (int)cnt : WINO_RUN, j, k;
        for (j = 0; j < n; j++) {
            const WINO_T *p = m + j;
            /* A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]: rows then columns */
            WINO_T s0 = p[0] + p[4 * ms] + p[8 * ms];
            WINO_T s1 = p[ms] + p[5 * ms] + p[9 * ms];
            WINO_T s2 = p[2 * ms] + p[6 * ms] + p[10 * ms];
            WINO_T s3 = p[3 * ms] + p[7 * ms] + p[11 * ms];
            WINO_T t0 = p[4 * ms] - p[8 * ms] - p[12 * ms];
            WINO_T t1 = p[5 * ms] - p[9 * ms] - p[13 * ms];
            WINO_T t2 = p[6 * ms] - p[10 * ms] - p[14 * ms];
            WINO_T t3 = p[7 * ms] - p[11 * ms] - p[15 * ms];
            WINO_T y[4] = {s0 + s1 + s2 + bias, s1 - s2 - s3 + bias,
                           t0 + t1 + t2 + bias, t1 - t2 - t3 + bias};
            for (k = 0; k < 4; k++)
                o[k][j] = y[k];
        }
        for (k = 0; k < 4; k++)  /* apart: these two loops vectorize, the one above does not */
            for (j = 0; j < n; j++)
                bad |= o[k][j] - o[k][j] != 0;
        if (relu)
            for (k = 0; k < 4; k++)
                for (j = 0; j < n; j++)  /* NaN passes (NaN < 0 is false) */
                    o[k][j] = o[k][j] < 0 ? 0 : o[k][j];
        for (j = 0; j < n; j++) {
            ptrdiff_t oh = 2 * ti, ow = 2 * tj;
            WINO_T *q = plane + oh * Wo + ow;
            if (oh + 1 < Ho && ow + 1 < Wo) {
                q[0] = o[0][j]; q[1] = o[1][j]; q[Wo] = o[2][j]; q[Wo + 1] = o[3][j];
            } else {
                q[0] = o[0][j];
                if (ow + 1 < Wo) q[1] = o[1][j];
                if (oh + 1 < Ho) {
                    q[Wo] = o[2][j];
                    if (ow + 1 < Wo) q[Wo + 1] = o[3][j];
                }
            }
            if (++tj == tw) { tj = 0; ti++; }
        }
        m += n;
        cnt -= n;
    }
    return !bad;
}

/* 1 when every x[i] is finite (the weight gradient's check; see wino_output_run). */
FNN_CLONES
static int WINO_FN(wino_all_finite)(const WINO_T *x, ptrdiff_t n)
{
    WINO_T acc[16] = {0};  /* x - x is 0, or NaN for NaN and +-inf; 16 lanes vectorize */
    ptrdiff_t i = 0;
    int l;
    for (; i + 16 <= n; i += 16)
        for (l = 0; l < 16; l++)
            acc[l] += x[i + l] - x[i + l];
    for (; i < n; i++)
        acc[0] += x[i] - x[i];
    for (l = 1; l < 16; l++)
        acc[0] += acc[l];
    return acc[0] == 0;
}

#undef WINO_FN
#undef WINO_CAT
#undef WINO_CAT2
