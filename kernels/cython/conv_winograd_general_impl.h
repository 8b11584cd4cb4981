/* Body of conv_winograd_general.h's tiles, included (by conv_winograd_general_type.h) once per tile
 * WG_TILE (tile side WG_A, kernel side WG_R, input transform WG_BT; its output transform is
 * wg_at_<tile>) and element type WINO_T (suffix WINO_S); it undefines the tile's macros. Every loop over the matrices' entries
 * is unrolled, so each transform is straight-line code over a vector of tiles with its zero
 * coefficients dropped (the compiler cannot drop 0 * x itself: x may be inf or NaN). */
#define WG_CAT3(a, b, c) a##_##b##_##c
#define WG_CAT(a, b, c) WG_CAT3(a, b, c)
#define WG_FN(name) WG_CAT(name, WG_TILE, WINO_S)
#define WG_MAT2(name, tile) name##_##tile
#define WG_MAT(name, tile) WG_MAT2(name, tile)
#define WG_AT WG_MAT(wg_at, WG_TILE)
#define WG_M (WG_A - WG_R + 1)
#define WG_UNROLL _Pragma("GCC unroll 8")
/* helpers are inlined into the FNN_CLONES functions, so each is built for all of their targets */
#define WG_INLINE static inline __attribute__((always_inline))

/* The sum over k < n of c[k * cs] x[k * xs], c a constant matrix's row or column: its zero entries
 * are dropped, its others folded into the code. */
WG_INLINE WINO_T WG_FN(wg_dot)(const double *c, int cs, int n, const WINO_T *x, ptrdiff_t xs)
{
    WINO_T acc = 0;
    int first = 1, k;
    WG_UNROLL
    for (k = 0; k < n; k++)
        if (c[k * cs] != 0) {
            WINO_T term = (WINO_T)c[k * cs] * x[k * xs];
            acc = first ? term : acc + term;
            first = 0;
        }
    return acc;
}

/* v[(i a + q) * vs + j] = (rows of e[i a + k][j], k < a) times the matrix c's rows q (c[q][k]), j < n:
 * the second pass of a two-sided transform, one row of the tile at a time. */
WG_INLINE void WG_FN(wg_columns)(const double c[][WG_A], int rows, int cols, int terms, const WINO_T *e,
                                 ptrdiff_t es, WINO_T *v, ptrdiff_t vs, int n)
{
    int i, j, q;
    for (i = 0; i < rows; i++)
        FNN_IVDEP
        for (j = 0; j < n; j++)
            WG_UNROLL
            for (q = 0; q < cols; q++)
                v[(i * cols + q) * vs + j] = WG_FN(wg_dot)(c[q], 1, terms, e + i * terms * es + j, es);
}

/* T[(i * cols + col) * WINO_CB + l] = channel l (l < nc; 0 beyond) of plane rows row0 + i (i < a),
 * columns lo + col (col < cols) of the image x (channels of H x W), zero outside the plane. */
WG_INLINE void WG_FN(wg_transpose_rows)(const WINO_T *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t row0, ptrdiff_t lo,
                                        ptrdiff_t cols, int nc, WINO_T *T)
{
    ptrdiff_t col, a0 = lo < 0 ? -lo : 0, b0 = W - lo < cols ? W - lo : cols;
    int i, l;
    if (b0 < a0)
        b0 = a0;
    for (i = 0; i < WG_A; i++) {
        WINO_T *row = T + i * cols * WINO_CB;
        if (row0 + i < 0 || row0 + i >= H) {
            memset(row, 0, cols * WINO_CB * sizeof(WINO_T));
            continue;
        }
        memset(row, 0, a0 * WINO_CB * sizeof(WINO_T));
        memset(row + b0 * WINO_CB, 0, (cols - b0) * WINO_CB * sizeof(WINO_T));
        col = a0;
#ifdef WINO_VEC16
        if (nc == WINO_CB)  /* 16 x 16 blocks transposed in registers */
            for (; col + 16 <= b0; col += 16)
                wg_transpose16(x + (row0 + i) * W + lo + col, H * W, row + col * WINO_CB);
#endif
        for (l = 0; l < nc; l++) {
            const WINO_T *src = x + (l * H + row0 + i) * W + lo;
            for (ptrdiff_t c = col; c < b0; c++)
                row[c * WINO_CB + l] = src[c];
        }
        for (l = nc; l < WINO_CB; l++)
            for (ptrdiff_t c = col; c < b0; c++)
                row[c * WINO_CB + l] = 0;
    }
}

#if WG_A == 6
/* t[k * ts] = (BT d)[k] for F(4x4, 3x3)'s BT (wg_bt_a6), d[i * ds]: its rows share terms, 14
 * operations instead of wg_dot's 22 (the compiler may not regroup floating-point sums itself).
 * Rounding differs from wg_dot's; inf or NaN inputs still give non-finite outputs, which the
 * callers' finiteness check sends to im2col + GEMM. */
WG_INLINE void WG_FN(wg_bt6)(const WINO_T *d, ptrdiff_t ds, WINO_T *t, ptrdiff_t ts)
{
    const WINO_T d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
    const WINO_T s12 = d1 + d2, s34 = d3 + d4, m12 = d1 - d2, m43 = d4 - d3, m42 = d4 - d2, m31 = d3 - d1;
    t[0] = 4 * d0 - 5 * d2 + d4;
    t[ts] = s34 - 4 * s12;
    t[2 * ts] = m43 + 4 * m12;
    t[3 * ts] = m42 + 2 * m31;
    t[4 * ts] = m42 - 2 * m31;
    t[5 * ts] = 4 * d1 - 5 * d3 + d5;
}
#endif

/* BT d BT^T of one tile of T (rows of `cols` columns of WINO_CB channels, from `tile`) into
 * out[k * vs + l], channels l < nc. nc is a constant in each inlined copy: the usual full block's
 * stores are whole vectors, not loops with a remainder (~5% of F(4x4, 3x3)'s input transform, a C
 * harness on 64 channels of 32x32). */
WG_INLINE void WG_FN(wg_input_tile)(const WINO_T *tile, ptrdiff_t cols, WINO_T *out, ptrdiff_t vs, const int nc)
{
    WINO_T e[WG_A * WG_A][WINO_CB];
    int l, ip, q;
#if WG_A == 6
    WG_UNROLL
    for (q = 0; q < WG_A; q++)  /* BT d: rows */
        for (l = 0; l < WINO_CB; l++)
            WG_FN(wg_bt6)(tile + q * WINO_CB + l, cols * WINO_CB, &e[q][l], WG_A * WINO_CB);
    WG_UNROLL
    for (ip = 0; ip < WG_A; ip++)  /* (BT d) BT^T: columns; the six rows of out never overlap */
        FNN_IVDEP
        for (l = 0; l < nc; l++)
            WG_FN(wg_bt6)(&e[ip * WG_A][l], WINO_CB, out + ip * WG_A * vs + l, vs);
#else
    WG_UNROLL
    for (ip = 0; ip < WG_A; ip++)  /* BT d: rows */
        WG_UNROLL
        for (q = 0; q < WG_A; q++)
            for (l = 0; l < WINO_CB; l++)
                e[ip * WG_A + q][l] = WG_FN(wg_dot)(WG_BT[ip], 1, WG_A, tile + q * WINO_CB + l, cols * WINO_CB);
    WG_UNROLL
    for (ip = 0; ip < WG_A; ip++)  /* (BT d) BT^T: columns */
        WG_UNROLL
        for (q = 0; q < WG_A; q++) {
            WINO_T *dst = out + (ip * WG_A + q) * vs;
            for (l = 0; l < nc; l++)
                dst[l] = WG_FN(wg_dot)(WG_BT[q], 1, WG_A, &e[ip * WG_A][l], WINO_CB);
        }
#endif
}

/* BT d BT^T of the input tiles r0 .. r0 + cnt - 1 (row-major over tw tiles per row) of the image x (C
 * planes of H x W) into v[k * vs + j * ldv + c], channels in the vector lanes: WINO_CB channels of a
 * tile-row segment are transposed into T (rows x columns x channels), then each tile's a^2 elements
 * are whole vectors, whatever the image's width. */
FNN_CLONES
static void WG_FN(wg_input_channels)(const WINO_T *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph,
                                      ptrdiff_t pw, ptrdiff_t tw, ptrdiff_t r0, ptrdiff_t cnt, WINO_T *v,
                                      ptrdiff_t vs, ptrdiff_t ldv)
{
    WINO_T T[WG_A * (WG_M * WINO_SEG + WG_A) * WINO_CB];
    ptrdiff_t ti = r0 / tw, tj = r0 % tw, j = 0, c0;
    int u;
    while (j < cnt) {
        int seg = tw - tj < cnt - j ? (int)(tw - tj) : (int)(cnt - j);
        ptrdiff_t cols;
        seg = seg < WINO_SEG ? seg : WINO_SEG;
        cols = WG_M * seg + WG_A - WG_M;
        for (c0 = 0; c0 < C; c0 += WINO_CB) {
            int nc = C - c0 < WINO_CB ? (int)(C - c0) : WINO_CB;
            WG_FN(wg_transpose_rows)(x + c0 * H * W, H, W, WG_M * ti - ph, WG_M * tj - pw, cols, nc, T);
            if (nc == WINO_CB)
                for (u = 0; u < seg; u++)
                    WG_FN(wg_input_tile)(T + WG_M * u * WINO_CB, cols, v + (j + u) * ldv + c0, vs, WINO_CB);
            else
                for (u = 0; u < seg; u++)
                    WG_FN(wg_input_tile)(T + WG_M * u * WINO_CB, cols, v + (j + u) * ldv + c0, vs, nc);
        }
        j += seg;
        tj += seg;
        if (tj == tw) { tj = 0; ti++; }
    }
}

/* d[m i + q][j] = element (i, q) of the m x m output-gradient tiles r0 .. r0 + n - 1 of one plane
 * (Ho, Wo), zero outside it; returns the tile after the last. */
WG_INLINE ptrdiff_t WG_FN(wg_grad_gather)(const WINO_T *plane, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t tw, ptrdiff_t r0,
                                          int n, WINO_T d[][WINO_ORUN])
{
    ptrdiff_t ti = r0 / tw, tj = r0 % tw;
    int j, i, q, u;
    for (j = 0; j < n;) {  /* one tile-row segment at a time, whole tiles first */
        int seg = tw - tj < n - j ? (int)(tw - tj) : n - j;
        ptrdiff_t oh = WG_M * ti, ow = WG_M * tj;
        int full = oh + WG_M <= Ho ? seg - (ow + WG_M * seg > Wo) : 0;
        WG_UNROLL
        for (i = 0; i < WG_M; i++) {
            const WINO_T *src = plane + (oh + i) * Wo + ow;
            for (u = 0; u < full; u++)
                WG_UNROLL
                for (q = 0; q < WG_M; q++)
                    d[i * WG_M + q][j + u] = src[WG_M * u + q];
        }
        for (u = full; u < seg; u++) {
            ptrdiff_t c0 = ow + WG_M * u;
            for (i = 0; i < WG_M; i++)
                for (q = 0; q < WG_M; q++)
                    d[i * WG_M + q][j + u] = oh + i < Ho && c0 + q < Wo ? plane[(oh + i) * Wo + c0 + q] : 0;
        }
        j += seg;
        tj += seg;
        if (tj == tw) { tj = 0; ti++; }
    }
    return r0 + n;
}

/* AT^T dy AT of the m x m output-gradient tiles r0 .. r0 + cnt - 1 of one plane (Ho, Wo) into
 * v[k * vs + j]; tile (ti, tj) covers rows m ti .., columns m tj .. (clipped: outside is 0). */
FNN_CLONES
static void WG_FN(wg_grad_run)(const WINO_T *plane, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t tw, ptrdiff_t r0,
                                ptrdiff_t cnt, WINO_T *v, ptrdiff_t vs)
{
    WINO_T d[WG_M * WG_M][WINO_ORUN], e[WG_A * WG_M][WINO_ORUN];
    const double *at = &WG_AT[0][0];  /* AT^T's rows are AT's columns */
    while (cnt > 0) {
        int n = cnt < WINO_ORUN ? (int)cnt : WINO_ORUN, j, q, ip, i;
        r0 = WG_FN(wg_grad_gather)(plane, Ho, Wo, tw, r0, n, d);
        FNN_IVDEP
        for (j = 0; j < n; j++)  /* AT^T dy: rows */
            WG_UNROLL
            for (ip = 0; ip < WG_A; ip++)
                WG_UNROLL
                for (q = 0; q < WG_M; q++)
                    e[ip * WG_M + q][j] = WG_FN(wg_dot)(at + ip, WG_A, WG_M, &d[q][j], WG_M * WINO_ORUN);
        for (ip = 0; ip < WG_A; ip++)  /* (AT^T dy) AT: columns, a row of the tile at a time */
            FNN_IVDEP
            for (j = 0; j < n; j++)
                WG_UNROLL
                for (i = 0; i < WG_A; i++)
                    v[(ip * WG_A + i) * vs + j] = WG_FN(wg_dot)(at + i, WG_A, WG_M, &e[ip * WG_M][j], WINO_ORUN);
        v += n;
        cnt -= n;
    }
}

/* Stores o[i m + q][j] (tile j of r0 .. r0 + n - 1, m x m) into the plane (Ho, Wo), clipped at the
 * bottom and right edges; whole tiles of a tile row interleave their m columns. Returns the next tile. */
WG_INLINE ptrdiff_t WG_FN(wg_store_tiles)(WINO_T o[][WINO_ORUN], int n, WINO_T *plane, ptrdiff_t Ho, ptrdiff_t Wo,
                                          ptrdiff_t tw, ptrdiff_t r0)
{
    ptrdiff_t ti = r0 / tw, tj = r0 % tw;
    int j, i, q, u;
    for (j = 0; j < n;) {
        int seg = tw - tj < n - j ? (int)(tw - tj) : n - j;
        ptrdiff_t oh = WG_M * ti, ow = WG_M * tj;
        int full = oh + WG_M <= Ho ? seg - (ow + WG_M * seg > Wo) : 0;
        WG_UNROLL
        for (i = 0; i < WG_M; i++) {
            WINO_T *row = plane + (oh + i) * Wo + ow;
            for (u = 0; u < full; u++)
                WG_UNROLL
                for (q = 0; q < WG_M; q++)
                    row[WG_M * u + q] = o[i * WG_M + q][j + u];
        }
        for (u = full; u < seg; u++) {
            ptrdiff_t c0 = ow + WG_M * u;
            int rows = Ho - oh < WG_M ? (int)(Ho - oh) : WG_M, cols = Wo - c0 < WG_M ? (int)(Wo - c0) : WG_M;
            for (i = 0; i < rows; i++)
                for (q = 0; q < cols; q++)
                    plane[(oh + i) * Wo + c0 + q] = o[i * WG_M + q][j + u];
        }
        j += seg;
        tj += seg;
        if (tj == tw) { tj = 0; ti++; }
    }
    return r0 + n;
}

/* AT M AT^T (+ bias, then relu if asked) of the output tiles r0 .. r0 + cnt - 1 of one plane (Ho, Wo),
 * M[k * ms + j]; tiles are clipped at the bottom and right edges. Returns 0 when a tile's output
 * (before relu, clipped parts included) is inf or NaN: the caller recomputes. */
FNN_CLONES
static int WG_FN(wg_output_run)(const WINO_T *M, ptrdiff_t ms, WINO_T *plane, ptrdiff_t Ho, ptrdiff_t Wo,
                                 ptrdiff_t tw, ptrdiff_t r0, ptrdiff_t cnt, WINO_T bias, int relu)
{
    WINO_T e[WG_M * WG_A][WINO_ORUN], o[WG_M * WG_M][WINO_ORUN];
    int bad = 0;  /* y - y != 0 only for NaN and +-inf, ORed as integers (see conv_winograd_impl.h) */
    while (cnt > 0) {
        int n = cnt < WINO_ORUN ? (int)cnt : WINO_ORUN, j, i, q, k;
        for (q = 0; q < WG_A; q++) {  /* AT M: rows; a column of M at a time keeps a pointers live */
            const WINO_T *mq = M + q * ms;
            FNN_IVDEP
            for (j = 0; j < n; j++)
                WG_UNROLL
                for (i = 0; i < WG_M; i++)
                    e[i * WG_A + q][j] = WG_FN(wg_dot)(WG_AT[i], 1, WG_A, mq + j, WG_A * ms);
        }
        WG_FN(wg_columns)(WG_AT, WG_M, WG_M, WG_A, e[0], WINO_ORUN, o[0], WINO_ORUN, n);  /* (AT M) AT^T */
        for (k = 0; k < WG_M * WG_M; k++)
            for (j = 0; j < n; j++) {
                o[k][j] += bias;
                bad |= o[k][j] - o[k][j] != 0;
            }
        if (relu)
            for (k = 0; k < WG_M * WG_M; k++)
                for (j = 0; j < n; j++)  /* NaN passes (NaN < 0 is false) */
                    o[k][j] = o[k][j] < 0 ? 0 : o[k][j];
        r0 = WG_FN(wg_store_tiles)(o, n, plane, Ho, Wo, tw, r0);
        M += n;
        cnt -= n;
    }
    return !bad;
}

#undef WG_INLINE
#undef WG_UNROLL
#undef WG_M
#undef WG_AT
#undef WG_BT
#undef WG_MAT
#undef WG_MAT2
#undef WG_FN
#undef WG_CAT
#undef WG_CAT3
#undef WG_TILE
#undef WG_A
#undef WG_R
