/* Winograd F(2x2, 3x3) for kernels/cython/conv.pyx: tile transforms (float and double), and in
 * float32 the kernel transforms (further down; its product is conv_gemm.h's).
 *
 * Each function handles a run of `cnt` horizontally adjacent tiles of one tile row and writes
 * transform position k of tile j to v[k * vs + j], so runs stream into the 16 GEMM operands.
 * Rows are gathered once into even/odd column buffers (zero-padded), which turns the tile
 * transforms into unit-stride loops the compiler vectorizes; FNN_CLONES picks AVX-512/AVX2
 * at load time (the wheel itself targets baseline x86-64).
 */
#ifndef FASTNN_CONV_WINOGRAD_H
#define FASTNN_CONV_WINOGRAD_H

#include <stddef.h>
#include <string.h>

#include "simd.h"

/* Longest run handled at once; longer runs are split. */
#define WINO_RUN 64

FNN_BEGIN_LOOPS

#define WINO_T float
#define WINO_S f
#include "conv_winograd_impl.h"
#undef WINO_T
#undef WINO_S

#define WINO_T double
#define WINO_S d
#include "conv_winograd_impl.h"
#undef WINO_T
#undef WINO_S

/* F(2x2, 3x3)'s kernel transforms in float32, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]: a
 * handful of adds and halvings per kernel in place of the general specs' double products
 * (wg_kernels, wg_kernel_grads: 10% of a 32x512->512 7x7 forward's samples, 13% of its backward's).
 * Halving is exact: only the sums round, two to four of them in a chain. */

/* u[k * us + t] = (G g_t G^T)[k] for t < cnt, g_t[i, j] = g[t * gs + i * gi + j * gj], WINO_F2_KB
 * kernels at a time through local rows (k, o): read or written in place, the 9 strided loads and 16
 * output rows kept gcc from vectorizing over the kernels. */
#define WINO_F2_KB 32
FNN_CLONES
static void wino_f2_kernels_f(const float *g, ptrdiff_t gs, ptrdiff_t gi, ptrdiff_t gj, ptrdiff_t cnt,
                              float *u, ptrdiff_t us)
{
    float k[9][WINO_F2_KB] = {{0}}, o[16][WINO_F2_KB];  /* lanes past nb: computed, never stored */
    ptrdiff_t t0;
    int i, t, nb;
    for (t0 = 0; t0 < cnt; t0 += WINO_F2_KB) {
        nb = cnt - t0 < WINO_F2_KB ? (int)(cnt - t0) : WINO_F2_KB;
        for (t = 0; t < nb; t++)
            for (i = 0; i < 9; i++)
                k[i][t] = g[(t0 + t) * gs + i / 3 * gi + i % 3 * gj];
        for (t = 0; t < WINO_F2_KB; t++) {  /* all lanes: a fixed trip count vectorizes whole */
            float e[4][3];
            int j;
            for (j = 0; j < 3; j++) {  /* G g, a column at a time */
                const float a = k[j][t], b = k[3 + j][t], c = k[6 + j][t];
                e[0][j] = a;
                e[1][j] = 0.5f * (a + b + c);
                e[2][j] = 0.5f * (a - b + c);
                e[3][j] = c;
            }
            for (i = 0; i < 4; i++) {  /* (G g) G^T, a row at a time */
                const float a = e[i][0], b = e[i][1], c = e[i][2];
                o[i * 4 + 0][t] = a;
                o[i * 4 + 1][t] = 0.5f * (a + b + c);
                o[i * 4 + 2][t] = 0.5f * (a - b + c);
                o[i * 4 + 3][t] = c;
            }
        }
        for (i = 0; i < 16; i++)
            memcpy(u + i * us + t0, o[i], (size_t)nb * sizeof(float));
    }
}

/* dw_t (3 x 3, at dw + t * ds) = G^T m_t G for t < cnt, m_t[k] = M[k * ms + t] (4 x 4). */
FNN_CLONES
static void wino_f2_kernel_grads_f(const float *M, ptrdiff_t ms, ptrdiff_t cnt, float *dw, ptrdiff_t ds)
{
    ptrdiff_t t;
    int i, j;
    for (t = 0; t < cnt; t++) {
        float e[3][4];
        for (j = 0; j < 4; j++) {  /* G^T m, a column at a time */
            const float a = M[j * ms + t], b = M[(4 + j) * ms + t], c = M[(8 + j) * ms + t],
                        d = M[(12 + j) * ms + t];
            e[0][j] = a + 0.5f * (b + c);
            e[1][j] = 0.5f * (b - c);
            e[2][j] = 0.5f * (b + c) + d;
        }
        for (i = 0; i < 3; i++) {  /* (G^T m) G, a row at a time */
            const float a = e[i][0], b = e[i][1], c = e[i][2], d = e[i][3];
            dw[t * ds + i * 3 + 0] = a + 0.5f * (b + c);
            dw[t * ds + i * 3 + 1] = 0.5f * (b - c);
            dw[t * ds + i * 3 + 2] = 0.5f * (b + c) + d;
        }
    }
}

FNN_END_LOOPS

#endif
