/* Winograd F(m x m, r x r) on the tiles of the table below, float and double: F(4x4, 3x3), F(4x4, 5x5),
 * F(2x2, 7x7). The same three stages as conv_winograd.h's F(2x2, 3x3), whose transforms are written
 * out by hand; here they are compiled from the matrices (conv_winograd_general_impl.h, once per tile
 * and type). Tiles are a = m + r - 1 wide; transform position k of input tile j and channel c goes
 * to v[k * vs + j * ldv + c] (channels in the vector lanes), of output-gradient tile j to
 * v[k * vs + j].
 *
 * The matrices (correlation form, y = AT [(G g G^T) * (BT d BT^T)] AT^T) come from Toom-Cook on the
 * points listed and infinity: BT's row j holds the coefficients of the product of (x - p_l) over
 * l != j, G's row j is p_j^k over that product's value at p_j, AT's column j is p_j^i; infinity's row
 * and column pick the leading coefficients. float32 error of the transformed sum over 64 channels
 * against the float64 direct sum, relative to the kernel's norm (200 random tiles, numpy): F(4x4, 3x3)
 * 1.7e-5, F(4x4, 5x5) 2.6e-5, F(2x2, 7x7) 1.9e-5, against 8.7e-7 for F(2x2, 3x3). tests/test_conv.py
 * holds every tile's shapes to the float64 reference.
 */
#ifndef FASTNN_CONV_WINOGRAD_GENERAL_H
#define FASTNN_CONV_WINOGRAD_GENERAL_H

#include <stddef.h>
#include <string.h>

#include "simd.h"

#define WINO_MAX_A 8     /* widest tile */
#define WINO_ORUN 128    /* output and output-gradient tiles transformed at once */
#define WINO_KB 32       /* kernels transformed at once */
#define WINO_CB 16       /* channels transformed at once (the vector lanes of wg_input_channels) */
#define WINO_SEG 16      /* tiles of a tile row transposed at once (wg_input_channels) */

/* F(4x4, 3x3), points 0, 1, -1, 2, -2, infinity */
static const double wg_bt_a6[6][6] = {
    { 4.0,  0.0, -5.0,  0.0,  1.0,  0.0},
    { 0.0, -4.0, -4.0,  1.0,  1.0,  0.0},
    { 0.0,  4.0, -4.0, -1.0,  1.0,  0.0},
    { 0.0, -2.0, -1.0,  2.0,  1.0,  0.0},
    { 0.0,  2.0, -1.0, -2.0,  1.0,  0.0},
    { 0.0,  4.0,  0.0, -5.0,  0.0,  1.0},
};
static const double wg_at_f4r3[4][6] = {
    { 1.0,  1.0,  1.0,  1.0,  1.0,  0.0},
    { 0.0,  1.0, -1.0,  2.0, -2.0,  0.0},
    { 0.0,  1.0,  1.0,  4.0,  4.0,  0.0},
    { 0.0,  1.0, -1.0,  8.0, -8.0,  1.0},
};
static const double wg_g_f4r3[6][3] = {
    {  1.0 / 4,       0.0,       0.0},
    { -1.0 / 6,  -1.0 / 6,  -1.0 / 6},
    { -1.0 / 6,   1.0 / 6,  -1.0 / 6},
    { 1.0 / 24,  1.0 / 12,   1.0 / 6},
    { 1.0 / 24, -1.0 / 12,   1.0 / 6},
    {      0.0,       0.0,       1.0},
};
/* F(4x4, 5x5), points 0, 1, -1, 2, -2, 1/2, -1/2, infinity (BT is every 8-wide tile's) */
static const double wg_bt_a8[8][8] = {
    {     -1.0,       0.0,  21.0 / 4,       0.0, -21.0 / 4,       0.0,       1.0,       0.0},
    {      0.0,       1.0,       1.0, -17.0 / 4, -17.0 / 4,       1.0,       1.0,       0.0},
    {      0.0,      -1.0,       1.0,  17.0 / 4, -17.0 / 4,      -1.0,       1.0,       0.0},
    {      0.0,   1.0 / 2,   1.0 / 4,  -5.0 / 2,  -5.0 / 4,       2.0,       1.0,       0.0},
    {      0.0,  -1.0 / 2,   1.0 / 4,   5.0 / 2,  -5.0 / 4,      -2.0,       1.0,       0.0},
    {      0.0,       2.0,       4.0,  -5.0 / 2,      -5.0,   1.0 / 2,       1.0,       0.0},
    {      0.0,      -2.0,       4.0,   5.0 / 2,      -5.0,  -1.0 / 2,       1.0,       0.0},
    {      0.0,      -1.0,       0.0,  21.0 / 4,       0.0, -21.0 / 4,       0.0,       1.0},
};
static const double wg_at_f4r5[4][8] = {
    {     1.0,      1.0,      1.0,      1.0,      1.0,      1.0,      1.0,      0.0},
    {     0.0,      1.0,     -1.0,      2.0,     -2.0,  1.0 / 2, -1.0 / 2,      0.0},
    {     0.0,      1.0,      1.0,      4.0,      4.0,  1.0 / 4,  1.0 / 4,      0.0},
    {     0.0,      1.0,     -1.0,      8.0,     -8.0,  1.0 / 8, -1.0 / 8,      1.0},
};
static const double wg_g_f4r5[8][5] = {
    {      -1.0,        0.0,        0.0,        0.0,        0.0},
    {  -2.0 / 9,   -2.0 / 9,   -2.0 / 9,   -2.0 / 9,   -2.0 / 9},
    {  -2.0 / 9,    2.0 / 9,   -2.0 / 9,    2.0 / 9,   -2.0 / 9},
    {  1.0 / 90,   1.0 / 45,   2.0 / 45,   4.0 / 45,   8.0 / 45},
    {  1.0 / 90,  -1.0 / 45,   2.0 / 45,  -4.0 / 45,   8.0 / 45},
    { 32.0 / 45,  16.0 / 45,   8.0 / 45,   4.0 / 45,   2.0 / 45},
    { 32.0 / 45, -16.0 / 45,   8.0 / 45,  -4.0 / 45,   2.0 / 45},
    {       0.0,        0.0,        0.0,        0.0,        1.0},
};
/* F(2x2, 7x7), the same points (and input transform) as F(4x4, 5x5) */
static const double wg_at_f2r7[2][8] = {
    {     1.0,      1.0,      1.0,      1.0,      1.0,      1.0,      1.0,      0.0},
    {     0.0,      1.0,     -1.0,      2.0,     -2.0,  1.0 / 2, -1.0 / 2,      1.0},
};
static const double wg_g_f2r7[8][7] = {
    {      -1.0,        0.0,        0.0,        0.0,        0.0,        0.0,        0.0},
    {  -2.0 / 9,   -2.0 / 9,   -2.0 / 9,   -2.0 / 9,   -2.0 / 9,   -2.0 / 9,   -2.0 / 9},
    {  -2.0 / 9,    2.0 / 9,   -2.0 / 9,    2.0 / 9,   -2.0 / 9,    2.0 / 9,   -2.0 / 9},
    {  1.0 / 90,   1.0 / 45,   2.0 / 45,   4.0 / 45,   8.0 / 45,  16.0 / 45,  32.0 / 45},
    {  1.0 / 90,  -1.0 / 45,   2.0 / 45,  -4.0 / 45,   8.0 / 45, -16.0 / 45,  32.0 / 45},
    { 32.0 / 45,  16.0 / 45,   8.0 / 45,   4.0 / 45,   2.0 / 45,   1.0 / 45,   1.0 / 90},
    { 32.0 / 45, -16.0 / 45,   8.0 / 45,  -4.0 / 45,   2.0 / 45,  -1.0 / 45,   1.0 / 90},
    {       0.0,        0.0,        0.0,        0.0,        0.0,        0.0,        1.0},
};

enum { WG_F4R3, WG_F4R5, WG_F2R7 };

typedef struct {
    int id, m, r, a;    /* tile (the enum), outputs per tile side, kernel side, tile side */
    const double *G;    /* a x r, the kernel transform */
} wino_spec;

static const wino_spec wino_specs[] = {
    {WG_F4R3, 4, 3, 6, &wg_g_f4r3[0][0]},
    {WG_F4R5, 4, 5, 8, &wg_g_f4r5[0][0]},
    {WG_F2R7, 2, 7, 8, &wg_g_f2r7[0][0]},
};

/* F(2x2, 3x3)'s kernel transform, for the float64 wg_kernels and wg_kernel_grads only (float32 runs
 * conv_winograd.h's wino_f2_kernels_f and wino_f2_kernel_grads_f; its tile transforms are
 * conv_winograd.h's too, written for Lavin's matrices: this G, and their BT and AT). */
static const double wg_g_f2r3[4][3] = {{1.0, 0.0, 0.0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0.0, 0.0, 1.0}};
static const wino_spec wino_f2r3_kernels = {-1, 2, 3, 4, &wg_g_f2r3[0][0]};

/* The spec of F(m x m, r x r), or NULL when the table has none. */
static inline const wino_spec *wino_spec_for(int m, int r)
{
    size_t i;
    for (i = 0; i < sizeof wino_specs / sizeof wino_specs[0]; i++)
        if (wino_specs[i].m == m && wino_specs[i].r == r)
            return &wino_specs[i];
    return NULL;
}

FNN_BEGIN_LOOPS

/* dst[l] = sum over k < terms of c[k * cs] src[k * ss][l], l < nb: one entry of a kernel transform
 * for WINO_KB kernels in the lanes (inlined into the FNN_CLONES callers). */
static inline __attribute__((always_inline)) void wg_lanes(const double *c, ptrdiff_t cs, int terms,
                                                           const double (*src)[WINO_KB], ptrdiff_t ss,
                                                           double *dst, int nb)
{
    int k, l;
    for (l = 0; l < nb; l++)
        dst[l] = 0;
    for (k = 0; k < terms; k++)
        for (l = 0; l < nb; l++)
            dst[l] += c[k * cs] * src[k * ss][l];
}

#if defined(__GNUC__) && !defined(__clang__)
#define WINO_VEC16 1
typedef float wg_v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int wg_i16 __attribute__((vector_size(64)));

/* dst[k * 16 + l] = src[l * ld + k], k, l < 16: a 16 x 16 float block transposed in four rounds of
 * two-source shuffles (round b swaps the off-diagonal b x b blocks of every 2b x 2b block). Inlined
 * into the FNN_CLONES callers: AVX-512 permutes there, 256-bit or SSE ones on the other targets. */
static inline __attribute__((always_inline)) void wg_transpose16(const float *src, ptrdiff_t ld, float *dst)
{
    static const wg_i16 lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    static const wg_i16 hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
    static const wg_i16 lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
    static const wg_i16 hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
    static const wg_i16 lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
    static const wg_i16 hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
    static const wg_i16 lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
    static const wg_i16 hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
    wg_v16 r[16], t;
    int i, b;
    for (i = 0; i < 16; i++)
        r[i] = *(const wg_v16 *)(src + i * ld);
    for (b = 8; b >= 1; b >>= 1) {
        const wg_i16 lo = b == 8 ? lo8 : b == 4 ? lo4 : b == 2 ? lo2 : lo1;
        const wg_i16 hi = b == 8 ? hi8 : b == 4 ? hi4 : b == 2 ? hi2 : hi1;
        for (i = 0; i < 16; i++)
            if (!(i & b)) {
                t = __builtin_shuffle(r[i], r[i + b], lo);
                r[i + b] = __builtin_shuffle(r[i], r[i + b], hi);
                r[i] = t;
            }
    }
    for (i = 0; i < 16; i++)
        *(wg_v16 *)(dst + i * 16) = r[i];
}
#endif

#define WINO_T float
#define WINO_S f
#include "conv_winograd_general_type.h"
#undef WINO_T
#undef WINO_S
#undef WINO_VEC16

#define WINO_T double
#define WINO_S d
#include "conv_winograd_general_type.h"
#undef WINO_T
#undef WINO_S

FNN_END_LOOPS

#endif
