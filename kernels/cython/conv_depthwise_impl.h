/* Body of conv_depthwise.h, included once per element type DW_T with suffix DW_S and its shuffle
 * masks (DW_MASK, DW_EVENS, DW_ODDS, DW_ZIP_LO, DW_ZIP_HI, DW_LANE_INDEX), all undefined at the end. */
#define DW_CAT2(a, b) a##_##b
#define DW_CAT(a, b) DW_CAT2(a, b)
#define DW_FN(name) DW_CAT(name, DW_S)

/* One vector of 64 bytes (16 floats, 8 doubles): GCC's vector extension keeps the accumulators in
 * registers (as plain arrays across the loops over taps they stayed on the stack, 10x slower); the
 * unaligned type loads from any element. The ISA clones split it into the vectors they have. */
typedef DW_T DW_FN(fnn_dw_vec) __attribute__((vector_size(64)));
typedef DW_T DW_FN(fnn_dw_vec_u) __attribute__((vector_size(64), aligned(sizeof(DW_T))));
#define DW_VEC DW_FN(fnn_dw_vec)
#define DW_LOAD(p) (*(const DW_FN(fnn_dw_vec_u) *)(p))
#define DW_VLANES ((ptrdiff_t)(64 / sizeof(DW_T)))
/* A vector's lanes in double (the weight gradient's sums across planes), unaligned in the scratch. */
typedef double DW_FN(fnn_dw_acc) __attribute__((vector_size(8 * 64 / sizeof(DW_T))));
typedef double DW_FN(fnn_dw_acc_u) __attribute__((vector_size(8 * 64 / sizeof(DW_T)), aligned(8)));
#define DW_ACC DW_FN(fnn_dw_acc)
#define DW_ACC_U DW_FN(fnn_dw_acc_u)

/* v's lanes [n, DW_VLANES) zeroed (they may hold inf * 0 or another row's values). */
FNN_DW_INLINE void DW_FN(fnn_dw_lanes)(DW_VEC *v, ptrdiff_t n)
{
    DW_MASK lane = DW_LANE_INDEX;
    __typeof__(lane[0]) count = n;
    *v = (DW_VEC)((DW_MASK)*v & (lane < count));
}

/* Stride 2's columns of x's row [a, a + 2 * DW_VLANES), even ones into e and odd ones into o (vector
 * shuffles: the strided scalar copies of short rows did not vectorize and cost 60% of the forward). */
FNN_DW_INLINE void DW_FN(fnn_dw_split)(const DW_T *src, DW_VEC *e, DW_VEC *o)
{
    DW_VEC lo = DW_LOAD(src), hi = DW_LOAD(src + DW_VLANES);
    *e = __builtin_shuffle(lo, hi, (DW_MASK)DW_EVENS);
    *o = __builtin_shuffle(lo, hi, (DW_MASK)DW_ODDS);
}

/* A stride-2 padded row's even and odd columns e and o, interleaved into x's row at `at`: `n` of its
 * columns, stored whole while `readable` elements remain in the plane (the spare lanes land on the
 * row's tail, zeroed after, or the next rows, written after), else through a staging row. */
FNN_DW_INLINE void DW_FN(fnn_dw_store_pair)(DW_T *at, const DW_VEC *e, const DW_VEC *o, ptrdiff_t n,
                                           ptrdiff_t readable)
{
    DW_VEC lo = __builtin_shuffle(*e, *o, (DW_MASK)DW_ZIP_LO), hi = __builtin_shuffle(*e, *o, (DW_MASK)DW_ZIP_HI);
    if (2 * DW_VLANES <= readable) {
        *(DW_FN(fnn_dw_vec_u) *)at = lo;
        *(DW_FN(fnn_dw_vec_u) *)(at + DW_VLANES) = hi;
    } else {
        DW_T stage[2 * DW_VLANES] __attribute__((aligned(64)));
        *(DW_VEC *)stage = lo;
        *(DW_VEC *)(stage + DW_VLANES) = hi;
        memcpy(at, stage, (n < 2 * DW_VLANES ? n : 2 * DW_VLANES) * sizeof(DW_T));
    }
}

/* x's row's `copied` columns into the two phases of a stride-2 padded row (phase wq elements), or
 * (to_x) back, a pair of vectors at a time. Into the phases, the last pair's spare lanes are zeros
 * read past the row (within the plane's `readable` elements, else staged) and zeroed, so they write
 * zeros into the phase's padding (fnn_dw_phase keeps a pair's slack in each phase). Back into x:
 * fnn_dw_store_pair. */
FNN_DW_INLINE void DW_FN(fnn_dw_stride2_row)(DW_T *restrict row, DW_T *restrict padded, ptrdiff_t wq,
                                            ptrdiff_t pw, ptrdiff_t copied, ptrdiff_t readable, int to_x)
{
    const ptrdiff_t pair = 2 * DW_VLANES;
    for (ptrdiff_t a = 0; a < copied; a += pair) {
        /* column a + 2t of x is padded column pw + a + 2t: phase (pw + a) & 1, element (pw + a) / 2 + t */
        ptrdiff_t n = copied - a < pair ? copied - a : pair;
        DW_T *even = padded + ((pw + a) & 1) * wq + (pw + a) / 2;
        DW_T *odd = padded + ((pw + a + 1) & 1) * wq + (pw + a + 1) / 2;
        if (to_x) {
            DW_VEC e = DW_LOAD(even), o = DW_LOAD(odd);
            DW_FN(fnn_dw_store_pair)(row + a, &e, &o, n, readable - a);
        } else {
            const DW_T *src = row + a;
            DW_T stage[2 * DW_VLANES] __attribute__((aligned(64)));
            if (n < pair && a + pair > readable) {  /* past the plane: staged */
                memset(stage, 0, sizeof(stage));
                memcpy(stage, row + a, n * sizeof(DW_T));
                src = stage;
            }
            DW_VEC e, o;
            DW_FN(fnn_dw_split)(src, &e, &o);
            if (n < pair && src != stage) {  /* read past the row, inside the plane: zero those lanes */
                DW_MASK lane = DW_LANE_INDEX;
                __typeof__(lane[0]) count = n;
                e = (DW_VEC)((DW_MASK)e & (2 * lane < count));
                o = (DW_VEC)((DW_MASK)o & (2 * lane + 1 < count));
            }
            *(DW_FN(fnn_dw_vec_u) *)even = e;
            *(DW_FN(fnn_dw_vec_u) *)odd = o;
        }
    }
}

/* Tap column j's offset in a padded row: phase (j * dw) % sw, from (j * dw) / sw (no divisions in the
 * loops over taps: tens of cycles each). */
#define DW_FOR_TAP_COLUMNS(g, wq, J, COL, STMT)                                                     \
    for (ptrdiff_t J = 0, phase_ = 0, from_ = 0; J < (g)->KW; J++) {                              \
        const ptrdiff_t COL = phase_ * (wq) + from_;                                               \
        STMT                                                                                       \
        for (phase_ += (g)->dw; phase_ >= (g)->sw; phase_ -= (g)->sw)                              \
            from_++;                                                                               \
    }

/* x's row's `copied` columns into a padded row at its padding (dst), or (to_x) back, a vector at a
 * time (libc's copy per short row cost a third of the forward). Into the padded row, spare lanes are
 * read past the row inside the plane's `readable` elements (else staged) and zeroed: they land on the
 * row's right padding or the next rows' left (zero) or interior (written after); fnn_dw_plane keeps
 * a vector's slack past the last row. Back into x, as fnn_dw_stride2_row. */
FNN_DW_INLINE void DW_FN(fnn_dw_stride1_row)(DW_T *restrict row, DW_T *restrict dst, ptrdiff_t copied,
                                            ptrdiff_t readable, int to_x)
{
    for (ptrdiff_t a = 0; a < copied; a += DW_VLANES) {
        ptrdiff_t n = copied - a;
        if (to_x) {
            if (n >= DW_VLANES || a + DW_VLANES <= readable)
                *(DW_FN(fnn_dw_vec_u) *)(row + a) = DW_LOAD(dst + a);
            else
                memcpy(row + a, dst + a, n * sizeof(DW_T));
            continue;
        }
        DW_VEC v;
        if (n >= DW_VLANES) {
            v = DW_LOAD(row + a);
        } else if (a + DW_VLANES <= readable) {
            v = DW_LOAD(row + a);
            DW_FN(fnn_dw_lanes)(&v, n);
        } else {
            DW_T stage[DW_VLANES] __attribute__((aligned(64))) = {0};
            memcpy(stage, row + a, n * sizeof(DW_T));
            v = *(DW_VEC *)stage;
        }
        *(DW_FN(fnn_dw_vec_u) *)(dst + a) = v;
    }
}

/* A phase of a padded row and its columns of x's row, n of them S apart: into the phase, or (to_x)
 * back. */
FNN_DW_INLINE void DW_FN(fnn_dw_phase_copy)(DW_T *restrict x, DW_T *restrict phase, ptrdiff_t n, ptrdiff_t S,
                                            int to_x)
{
    if (to_x)
        for (ptrdiff_t k = 0; k < n; k++)
            x[k * S] = phase[k];
    else
        for (ptrdiff_t k = 0; k < n; k++)
            phase[k] = x[k * S];
}

/* x's plane into the padded plane's interior (its padding zero), or (to_x) the padded plane's interior
 * back into x's plane, 0 where no window reaches. */
FNN_DW_INLINE void DW_FN(fnn_dw_interior)(DW_T *restrict x, DW_T *restrict plane, const fnn_dw_geometry *g,
                                          int to_x)
{
    ptrdiff_t wq = fnn_dw_phase(g), span = g->sw * wq, pw = g->pw, W = g->W, S = g->sw;
    ptrdiff_t copied = W < span - pw ? W : span - pw, rows = fnn_dw_rows(g);
    if (copied < 0)
        copied = 0;
    for (ptrdiff_t ih = 0; ih < g->H; ih++) {
        DW_T *restrict row = x + ih * W;
        if (ih + g->ph >= rows) {
            if (to_x)
                memset(row, 0, W * sizeof(DW_T));
            continue;
        }
        DW_T *restrict padded = plane + (ih + g->ph) * span;
        if (S == 1) {
            DW_FN(fnn_dw_stride1_row)(row, padded + pw, copied, (g->H - ih) * W, to_x);
            if (to_x)
                memset(row + copied, 0, (W - copied) * sizeof(DW_T));
            continue;
        }
        if (S == 2) {
            DW_FN(fnn_dw_stride2_row)(row, padded, wq, pw, copied, (g->H - ih) * W, to_x);
            if (to_x)
                memset(row + copied, 0, (W - copied) * sizeof(DW_T));
            continue;
        }
        for (ptrdiff_t q = 0; q < S; q++) {
            /* phase q's element k is column k * S + q - pw of x */
            ptrdiff_t k_lo = (pw - q + S - 1) / S, k_hi = (pw + copied - q + S - 1) / S;
            if (k_lo < 0)
                k_lo = 0;
            DW_FN(fnn_dw_phase_copy)(row + S * k_lo + q - pw, padded + q * wq + k_lo, k_hi - k_lo, S, to_x);
        }
        if (to_x)
            memset(row + copied, 0, (W - copied) * sizeof(DW_T));
    }
}


FNN_DW_INLINE void DW_FN(fnn_dw_store)(DW_T *restrict out, const DW_VEC *acc, DW_T bias,
                                                                     int relu, ptrdiff_t n)
{
    if (relu)
        for (ptrdiff_t l = 0; l < n; l++) {
            DW_T v = (*acc)[l] + bias;
            out[l] = v < 0 ? 0 : v;  /* NaN stays NaN */
        }
    else
        for (ptrdiff_t l = 0; l < n; l++)
            out[l] = (*acc)[l] + bias;
}

/* Output rows [oh, oh + RB) of filter wf from the padded plane, a vector of columns at a time, all
 * taps accumulated in registers (RB a literal at the call: RB independent chains). */
FNN_DW_INLINE void DW_FN(fnn_dw_rows_out)(
    const DW_T *restrict plane, const DW_T *restrict wf, DW_T bias, int relu, DW_T *restrict y,
    ptrdiff_t oh, const int RB, const fnn_dw_geometry *g)
{
    const ptrdiff_t wq = fnn_dw_phase(g), span = g->sw * wq, row_step = g->sh * span;
    for (ptrdiff_t ob = 0; ob < g->Wo; ob += DW_VLANES) {
        DW_VEC acc[FNN_DW_ROWS];
        for (int k = 0; k < RB; k++)
            acc[k] = (DW_VEC){0};
        for (ptrdiff_t i = 0; i < g->KH; i++) {
            const DW_T *restrict row = plane + (oh * g->sh + i * g->dh) * span + ob;
            DW_FOR_TAP_COLUMNS(g, wq, j, col,
                DW_T wv = wf[i * g->KW + j];
                for (int k = 0; k < RB; k++)
                    acc[k] += wv * DW_LOAD(row + k * row_step + col);)
        }
        ptrdiff_t n = g->Wo - ob < DW_VLANES ? g->Wo - ob : DW_VLANES;
        for (int k = 0; k < RB; k++) {
            DW_T *restrict out = y + (oh + k) * g->Wo + ob;
            /* A row shorter than a vector is stored whole while that stays inside the plane: the
             * spare lanes land on the next rows' starts, stored after it (element stores of short
             * rows cost more than their taps). */
            if (n == DW_VLANES || (g->Wo < DW_VLANES && (oh + k) * g->Wo + DW_VLANES <= g->Ho * g->Wo))
                DW_FN(fnn_dw_store)(out, &acc[k], bias, relu, DW_VLANES);
            else
                DW_FN(fnn_dw_store)(out, &acc[k], bias, relu, n);
        }
    }
}

/* Planes [p0, p1) of the (image, channel) planes: y's m planes of each. w (C * m, KH * KW), b (C * m)
 * or NULL. */
FNN_CLONES void DW_FN(fnn_dw_forward)(const DW_T *x, const DW_T *w, const DW_T *b, DW_T *y, ptrdiff_t p0,
                                      ptrdiff_t p1, const fnn_dw_geometry *g, int relu, DW_T *scratch)
{
    ptrdiff_t taps = g->KH * g->KW, oplane = g->Ho * g->Wo;
    memset(scratch, 0, fnn_dw_plane(g) * sizeof(DW_T));
    for (ptrdiff_t p = p0; p < p1; p++) {
        DW_FN(fnn_dw_interior)((DW_T *)(x + p * g->H * g->W), scratch, g, 0);
        for (ptrdiff_t k = 0; k < g->m; k++) {
            ptrdiff_t f = (p % g->C) * g->m + k;
            DW_T *yf = y + (p * g->m + k) * oplane, bias = b ? b[f] : 0;
            ptrdiff_t oh = 0;
            for (; oh + FNN_DW_ROWS <= g->Ho; oh += FNN_DW_ROWS)
                DW_FN(fnn_dw_rows_out)(scratch, w + f * taps, bias, relu, yf, oh, FNN_DW_ROWS, g);
            for (; oh < g->Ho; oh++)
                DW_FN(fnn_dw_rows_out)(scratch, w + f * taps, bias, relu, yf, oh, 1, g);
        }
    }
}


/* dy's plane into the padded dy plane's rows (pitch elements apart, zero past each row), a vector at
 * a time: read past a row inside the plane and its spare lanes zeroed, else staged (libc's copy per
 * short row cost more than the weight gradient of a small plane). */
FNN_DW_INLINE void DW_FN(fnn_dw_pad_dy)(const DW_T *dyf, DW_T *dyp, ptrdiff_t pitch,
                                                                       const fnn_dw_geometry *g)
{
    const ptrdiff_t size = g->Ho * g->Wo;
    for (ptrdiff_t oh = 0; oh < g->Ho; oh++)
        for (ptrdiff_t ob = 0; ob < g->Wo; ob += DW_VLANES) {
            ptrdiff_t n = g->Wo - ob, at = oh * g->Wo + ob;
            DW_VEC v;
            if (at + DW_VLANES <= size) {
                v = DW_LOAD(dyf + at);
                if (n < DW_VLANES)
                    DW_FN(fnn_dw_lanes)(&v, n);
            } else {
                DW_T stage[DW_VLANES] __attribute__((aligned(64))) = {0};
                memcpy(stage, dyf + at, n * sizeof(DW_T));
                v = *(DW_VEC *)stage;
            }
            *(DW_FN(fnn_dw_vec_u) *)(dyp + oh * pitch + ob) = v;
        }
}

/* acc[k] += over rows [oh, oh + RB): dy's row (dyp: the padded dy plane past its margin) times the
 * tap's run, a vector of columns at a time (the last one's spare lanes zeroed: the run's hold x). */
FNN_DW_INLINE void DW_FN(fnn_dw_tap_rows)(
    const DW_T *restrict run, const DW_T *restrict dyp, ptrdiff_t oh, const int RB, DW_VEC acc[FNN_DW_ROWS],
    const fnn_dw_geometry *g)
{
    const ptrdiff_t row_step = g->sh * g->sw * fnn_dw_phase(g), pitch = fnn_dw_dy_pitch(g);
    for (ptrdiff_t ob = 0; ob < g->Wo; ob += DW_VLANES) {
        ptrdiff_t n = g->Wo - ob;
        for (int k = 0; k < RB; k++) {
            DW_VEC v = DW_LOAD(dyp + (oh + k) * pitch + ob) * DW_LOAD(run + (oh + k) * row_step + ob);
            if (n < DW_VLANES)
                DW_FN(fnn_dw_lanes)(&v, n);
            acc[k] += v;
        }
    }
}

/* sums[tap] (a vector of double lanes per tap) += the weight gradient of a filter's padded dy plane
 * (past its margin) against the padded x plane. Lanes in T within a plane, in double across planes. */
FNN_DW_INLINE void DW_FN(fnn_dw_weight_grad)(const DW_T *plane, const DW_T *dyp,
                                                                            DW_ACC_U *sums, const fnn_dw_geometry *g)
{
    const ptrdiff_t wq = fnn_dw_phase(g), span = g->sw * wq;
    for (ptrdiff_t i = 0; i < g->KH; i++)
        DW_FOR_TAP_COLUMNS(g, wq, j, col,
            const DW_T *run = plane + i * g->dh * span + col;
            DW_VEC acc[FNN_DW_ROWS] = {{0}};
            ptrdiff_t oh = 0;
            for (; oh + FNN_DW_ROWS <= g->Ho; oh += FNN_DW_ROWS)
                DW_FN(fnn_dw_tap_rows)(run, dyp, oh, FNN_DW_ROWS, acc, g);
            for (; oh < g->Ho; oh++)
                DW_FN(fnn_dw_tap_rows)(run, dyp, oh, 1, acc, g);
            sums[i * g->KW + j] += __builtin_convertvector((acc[0] + acc[1]) + (acc[2] + acc[3]), DW_ACC);)
}

/* fnn_dw_weight_grad for a K x K kernel (K a literal at the call: 3, and 5 on rows of one vector): the
 * taps' sums in registers, each vector of dy loaded once for all of them (a tap at a time, each tap's
 * few short rows paid their own loops: a quarter of a 28 x 28 stride-2 plane's backward; 1 thread, per
 * plane: 3 x 3 on 32 x 32 640 -> 450 ns, on 112 x 112 13.1 -> 8.5 us; 5 x 5 on 14 x 14 560 -> 420 ns,
 * on 32 x 32 1610 -> 1710 ns). The last vector's spare lanes are zeroed. */
FNN_DW_INLINE void DW_FN(fnn_dw_weight_grad_k)(const DW_T *plane, const DW_T *dyp, DW_ACC_U *sums,
                                              const fnn_dw_geometry *g, const int K)
{
    const ptrdiff_t wq = fnn_dw_phase(g), span = g->sw * wq, row_step = g->sh * span, pitch = fnn_dw_dy_pitch(g);
    const ptrdiff_t whole = g->Wo / DW_VLANES * DW_VLANES;
    ptrdiff_t off[K * K];
    for (ptrdiff_t i = 0; i < K; i++)
        DW_FOR_TAP_COLUMNS(g, wq, j, col, off[i * K + j] = i * g->dh * span + col;)
    DW_MASK lane = DW_LANE_INDEX;
    __typeof__(lane[0]) spare = g->Wo - whole;
    const DW_MASK keep = lane < spare;
    DW_VEC acc[K * K];
    for (int t = 0; t < K * K; t++)
        acc[t] = (DW_VEC){0};
    for (ptrdiff_t oh = 0; oh < g->Ho; oh++) {
        const DW_T *restrict dyr = dyp + oh * pitch, *restrict xr = plane + oh * row_step;
        for (ptrdiff_t ob = 0; ob < whole; ob += DW_VLANES) {
            DW_VEC d = DW_LOAD(dyr + ob);
            for (int t = 0; t < K * K; t++)
                acc[t] += d * DW_LOAD(xr + off[t] + ob);
        }
        if (whole < g->Wo) {
            DW_VEC d = DW_LOAD(dyr + whole);
            for (int t = 0; t < K * K; t++)
                acc[t] += (DW_VEC)((DW_MASK)(d * DW_LOAD(xr + off[t] + whole)) & keep);
        }
    }
    for (int t = 0; t < K * K; t++)
        sums[t] += __builtin_convertvector(acc[t], DW_ACC);
}

/* The padded dx plane += a filter's padded dy plane (past its margin) scattered through wf, a vector of
 * columns at a time; the last one's spare lanes add +0 to the phase's spare columns. */
FNN_DW_INLINE void DW_FN(fnn_dw_scatter)(DW_T *dplane, const DW_T *wf, const DW_T *dyp,
                                                                        const fnn_dw_geometry *g)
{
    const ptrdiff_t wq = fnn_dw_phase(g), span = g->sw * wq, pitch = fnn_dw_dy_pitch(g);
    for (ptrdiff_t oh = 0; oh < g->Ho; oh++)
        for (ptrdiff_t ob = 0; ob < g->Wo; ob += DW_VLANES) {
            ptrdiff_t n = g->Wo - ob;
            DW_VEC grad = DW_LOAD(dyp + oh * pitch + ob);
            for (ptrdiff_t i = 0; i < g->KH; i++) {
                DW_T *restrict row = dplane + (oh * g->sh + i * g->dh) * span + ob;
                DW_FOR_TAP_COLUMNS(g, wq, j, col,
                    DW_VEC v = wf[i * g->KW + j] * grad;
                    if (n < DW_VLANES)
                        DW_FN(fnn_dw_lanes)(&v, n);
                    *(DW_FN(fnn_dw_vec_u) *)(row + col) += v;)
            }
        }
}

/* One vector of phase q's padded dx row from element k: the sum over the row's taps (kernel rows t,
 * kernel columns c of phase q) of the weight times dy's run. */
FNN_DW_INLINE void DW_FN(fnn_dw_tap_sum)(DW_VEC *acc, const DW_T *wf, const DW_T *dyp, const ptrdiff_t *row_tap,
                                        const ptrdiff_t *row_of, ptrdiff_t rows, const ptrdiff_t *column,
                                        const ptrdiff_t *from, ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t k)
{
    DW_VEC sum = {0};
    for (ptrdiff_t t = 0; t < rows; t++)
        for (ptrdiff_t c = c0; c < c1; c++)
            sum += wf[row_tap[t] + column[c]] * DW_LOAD(dyp + row_of[t] + k - from[c]);
    *acc = sum;
}

/* dx's plane gathered from the taps that reach it through one filter's padded dy plane and wf (finite:
 * the margin's zeros meet every weight). The taps are listed first (kernel columns by phase, kernel
 * rows per dx row), so the loops over a vector's taps hold no tests (a test per tap and vector cost
 * more than its multiply-add), their dy rows stepped (fnn_dw_dy_row), not divided.
 *   Stride 2 (dxp not NULL): straight into x's plane dxp, each pair of x's column vectors gathered as
 *   its even and odd padded columns (the two phases' vectors at fnn_dw_stride2_row's offsets) and
 *   interleaved; columns and rows no window reaches gather dy's zeros (fnn_dw_phase keeps every
 *   column's read inside the padded dy row). Copying a padded dx plane out cost as much as the gather.
 *   Else: the padded dx plane dplane, every vector of it that x's columns reach. */
FNN_DW_INLINE void DW_FN(fnn_dw_gather)(DW_T *dplane, DW_T *dxp, const DW_T *wf, const DW_T *dyp,
                                       const fnn_dw_geometry *g)
{
    const ptrdiff_t wq = fnn_dw_phase(g), pitch = fnn_dw_dy_pitch(g), margin = fnn_dw_dy_margin(g);
    const ptrdiff_t reach = (g->pw + g->W + g->sw - 1) / g->sw, cols = reach < wq ? reach : wq;
    const ptrdiff_t r0 = dxp ? g->ph : 0, r1 = dxp ? g->ph + g->H : fnn_dw_rows(g);
    ptrdiff_t column[g->KW], from[g->KW], first[g->sw + 1], row_tap[g->KH], row_of[g->KH];
    ptrdiff_t quot[g->KH], rem[g->KH];
    first[0] = 0;
    for (ptrdiff_t q = 0, n = 0; q < g->sw; q++) {  /* kernel column j reads phase (j dw) % sw at (j dw) / sw */
        for (ptrdiff_t j = 0, phase = 0, at = 0; j < g->KW; j++) {
            if (phase == q) {
                column[n] = j;
                from[n++] = at;
            }
            for (phase += g->dw; phase >= g->sw; phase -= g->sw)
                at++;
        }
        first[q + 1] = n;
    }
    fnn_dw_dy_rows_at(quot, rem, g->KH, r0, g);
    for (ptrdiff_t r = r0; r < r1; r++) {
        ptrdiff_t rows = 0;
        for (ptrdiff_t i = 0; i < g->KH; i++) {
            ptrdiff_t at = fnn_dw_dy_row(&quot[i], &rem[i], g);
            if (at >= 0) {
                row_tap[rows] = i * g->KW;
                row_of[rows++] = at * pitch + margin;
            }
        }
        if (dxp) {
            /* x's column a + 2t is padded column pw + a + 2t: phase (pw + a) & 1, element (pw + a) / 2 + t */
            DW_T *restrict row = dxp + (r - g->ph) * g->W;
            const ptrdiff_t pair = 2 * DW_VLANES, qe = g->pw & 1, readable = (g->ph + g->H - r) * g->W;
            for (ptrdiff_t a = 0; a < g->W; a += pair) {
                DW_VEC e, o;
                DW_FN(fnn_dw_tap_sum)(&e, wf, dyp, row_tap, row_of, rows, column, from, first[qe], first[qe + 1],
                                      (g->pw + a) / 2);
                DW_FN(fnn_dw_tap_sum)(&o, wf, dyp, row_tap, row_of, rows, column, from, first[1 - qe], first[2 - qe],
                                      (g->pw + a + 1) / 2);
                DW_FN(fnn_dw_store_pair)(row + a, &e, &o, g->W - a, readable - a);
            }
            continue;
        }
        for (ptrdiff_t q = 0; q < g->sw; q++)
            for (ptrdiff_t k0 = 0; k0 < cols; k0 += DW_VLANES) {
                DW_VEC acc;
                DW_FN(fnn_dw_tap_sum)(&acc, wf, dyp, row_tap, row_of, rows, column, from, first[q], first[q + 1], k0);
                *(DW_FN(fnn_dw_vec_u) *)(dplane + (r * g->sw + q) * wq + k0) = acc;
            }
    }
}

/* fnn_dw_gather into x's plane for a K x K kernel (K a literal at the call: 3 and 5), stride 2 across,
 * dilation 1 across: every kernel row reads a dy row, the zero row after dy's (fnn_dw_dy_pitch) where
 * the row does not reach dy, so each pair of x's column vectors is the same K * K multiply-adds, the
 * weights in registers (the lists' short loops of 1 to 4 taps cost 4x their multiply-adds). Kernel
 * column j reads padded phase j & 1 from j / 2 elements back. */
FNN_DW_INLINE void DW_FN(fnn_dw_gather_s2)(DW_T *dxp, const DW_T *wf, const DW_T *dyp, const fnn_dw_geometry *g,
                                          const int K)
{
    const ptrdiff_t pitch = fnn_dw_dy_pitch(g), margin = fnn_dw_dy_margin(g), pair = 2 * DW_VLANES;
    const DW_T *zero_row = dyp + g->Ho * pitch + margin;
    DW_T wv[K * K];
    ptrdiff_t quot[K], rem[K];
    for (int t = 0; t < K * K; t++)
        wv[t] = wf[t];
    fnn_dw_dy_rows_at(quot, rem, K, g->ph, g);  /* x's row 0 is padded row ph */
    for (ptrdiff_t ih = 0; ih < g->H; ih++) {
        const DW_T *rows[K];
        for (int i = 0; i < K; i++) {
            ptrdiff_t at = fnn_dw_dy_row(&quot[i], &rem[i], g);
            rows[i] = at >= 0 ? dyp + at * pitch + margin : zero_row;
        }
        DW_T *restrict row = dxp + ih * g->W;
        const ptrdiff_t readable = (g->H - ih) * g->W;
        for (ptrdiff_t a = 0; a < g->W; a += pair) {
            /* x's column a + 2t is padded column pw + a + 2t: phase 0's vector from element
             * (pw + a + 1) / 2, phase 1's from (pw + a) / 2, interleaved from phase pw & 1 */
            const ptrdiff_t k0 = (g->pw + a + 1) / 2, k1 = (g->pw + a) / 2;
            DW_VEC p0 = {0}, p1 = {0};
            for (int i = 0; i < K; i++) {
                for (int j = 0; j < K; j += 2)
                    p0 += wv[i * K + j] * DW_LOAD(rows[i] + k0 - j / 2);
                for (int j = 1; j < K; j += 2)
                    p1 += wv[i * K + j] * DW_LOAD(rows[i] + k1 - j / 2);
            }
            DW_VEC e = g->pw & 1 ? p1 : p0, o = g->pw & 1 ? p0 : p1;
            DW_FN(fnn_dw_store_pair)(row + a, &e, &o, g->W - a, readable - a);
        }
    }
}

/* Planes [p0, p1) of the (image, channel) planes, in memory order: dx's plane of each if dx is not
 * NULL (gathered: one filter per channel, finite weights, the caller checks; else scattered), and
 * each filter's weight gradient added into sums (a vector of double lanes per filter and tap, all
 * C * m filters: fnn_dw_merge adds the threads' up). Walking a channel's images instead, a plane
 * apart, ran the weight gradient 1.5x slower out of cache. Scratch: fnn_dw_backward_scratch. */
FNN_CLONES void DW_FN(fnn_dw_backward)(const DW_T *x, const DW_T *dy, const DW_T *w, DW_T *dx, ptrdiff_t p0,
                                       ptrdiff_t p1, const fnn_dw_geometry *g, int gather, DW_T *scratch)
{
    ptrdiff_t taps = g->KH * g->KW, oplane = g->Ho * g->Wo, iplane = g->H * g->W, psize = fnn_dw_plane(g);
    ptrdiff_t pitch = fnn_dw_dy_pitch(g), margin = fnn_dw_dy_margin(g);
    DW_ACC_U *sums = (DW_ACC_U *)scratch;
    DW_T *plane = scratch + fnn_dw_sums(g, sizeof(DW_T)), *dplane = plane + psize;
    DW_T *dyp = dplane + (dx ? psize : 0);
    memset(sums, 0, g->C * g->m * taps * sizeof(DW_ACC));
    memset(plane, 0, psize * sizeof(DW_T));
    memset(dyp, 0, (g->Ho + 1) * pitch * sizeof(DW_T));
    for (ptrdiff_t p = p0; p < p1; p++) {
        ptrdiff_t c = p % g->C;
        DW_FN(fnn_dw_interior)((DW_T *)(x + p * iplane), plane, g, 0);
        if (dx && !gather)
            memset(dplane, 0, psize * sizeof(DW_T));
        for (ptrdiff_t k = 0; k < g->m; k++) {
            const DW_T *dyf = dy + (p * g->m + k) * oplane, *wf = w + (c * g->m + k) * taps;
            DW_FN(fnn_dw_pad_dy)(dyf, dyp + margin, pitch, g);
            if (g->KH == 3 && g->KW == 3)
                DW_FN(fnn_dw_weight_grad_k)(plane, dyp + margin, sums + (c * g->m + k) * taps, g, 3);
            else if (g->KH == 5 && g->KW == 5 && g->Wo <= DW_VLANES)  /* wider, its 25 sums ran 5% slower */
                DW_FN(fnn_dw_weight_grad_k)(plane, dyp + margin, sums + (c * g->m + k) * taps, g, 5);
            else
                DW_FN(fnn_dw_weight_grad)(plane, dyp + margin, sums + (c * g->m + k) * taps, g);
            if (dx && gather && g->sw == 2 && g->KH == 3 && g->KW == 3 && g->dw == 1)
                DW_FN(fnn_dw_gather_s2)(dx + p * iplane, wf, dyp, g, 3);
            else if (dx && gather && g->sw == 2 && g->KH == 5 && g->KW == 5 && g->dw == 1)
                DW_FN(fnn_dw_gather_s2)(dx + p * iplane, wf, dyp, g, 5);
            else if (dx && gather)
                DW_FN(fnn_dw_gather)(dplane, g->sw == 2 ? dx + p * iplane : NULL, wf, dyp, g);
            else if (dx)
                DW_FN(fnn_dw_scatter)(dplane, wf, dyp + margin, g);
        }
        if (dx && !(gather && g->sw == 2))
            DW_FN(fnn_dw_interior)(dx + p * iplane, dplane, g, 1);
    }
}

/* dw[i] for i in [i0, i1) of the C * m * KH * KW weights: the lanes of every thread's sums (each
 * thread's scratch starts with them, `stride` elements apart), added in double. */
FNN_CLONES void DW_FN(fnn_dw_merge)(const DW_T *scratch, ptrdiff_t stride, int threads, ptrdiff_t i0, ptrdiff_t i1,
                                    DW_T *dw)
{
    for (ptrdiff_t i = i0; i < i1; i++) {
        double sum = 0;
        for (int t = 0; t < threads; t++) {
            const DW_ACC_U *sums = (const DW_ACC_U *)(scratch + t * stride);
            for (ptrdiff_t l = 0; l < DW_VLANES; l++)
                sum += sums[i][l];
        }
        dw[i] = (DW_T)sum;
    }
}

#undef DW_FOR_TAP_COLUMNS
#undef DW_VEC
#undef DW_LOAD
#undef DW_VLANES
#undef DW_ACC
#undef DW_ACC_U
#undef DW_CAT2
#undef DW_CAT
#undef DW_FN
#undef DW_T
#undef DW_S
#undef DW_MASK
#undef DW_EVENS
#undef DW_ODDS
#undef DW_ZIP_LO
#undef DW_ZIP_HI
#undef DW_LANE_INDEX
