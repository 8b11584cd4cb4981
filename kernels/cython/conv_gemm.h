/* A float32 product for kernels/cython/conv.pyx where sgemm's packing costs: M = U V, U read in
 * place through its two strides.
 *
 * sgemm copies its operands into its own layout on every call. Where a call's operand is large and
 * its other side narrow, that copy is paid again per call: F(2x2, 3x3)'s transformed kernels U_k
 * (1 MiB per position with 512 -> 512 channels, read from L3) once per block of 64 tiles, 21% of a
 * 32x512->512 7x7 forward's samples beside the kernel's 40%; w^T once per image in a strided input
 * gradient's column matrix, 11% of 16x128->256 16x16 stride 2's backward (perf). Here a register
 * block holds CONV_GEMM_RB rows x CONV_GEMM_CV vectors of 16 columns over the whole reduction: per
 * step, CONV_GEMM_CV vector loads of V and CONV_GEMM_RB broadcasts of U feed 28 FMAs. V's columns
 * (tiles, pixels) are contiguous in both callers, so neither operand is copied. */
#ifndef FASTNN_CONV_GEMM_H
#define FASTNN_CONV_GEMM_H

#include <stddef.h>
#include <string.h>

#include "simd.h"

FNN_BEGIN_LOOPS

#define CONV_GEMM_RB 7 /* rows per register block: 7 x 4 vectors = 28 accumulators */
#define CONV_GEMM_CV 4 /* vectors of 16 columns per register block */

static inline __attribute__((always_inline)) void
conv_gemm_block(const float *U, ptrdiff_t su_row, ptrdiff_t su_red, const float *V, ptrdiff_t ldv, float *M,
                ptrdiff_t ldm, ptrdiff_t red, const int RB, const int CV)
{
    fnn_v16 acc[CONV_GEMM_RB][CONV_GEMM_CV], b[CONV_GEMM_CV];
    ptrdiff_t k;
    int i, v;
    for (i = 0; i < RB; i++)
        for (v = 0; v < CV; v++)
            acc[i][v] = (fnn_v16){0};
    for (k = 0; k < red; k++) {
        for (v = 0; v < CV; v++)
            memcpy(&b[v], V + k * ldv + 16 * v, sizeof b[v]);
        for (i = 0; i < RB; i++) {
            const float a = U[i * su_row + k * su_red];
            for (v = 0; v < CV; v++)
                acc[i][v] += a * b[v];
        }
    }
    for (i = 0; i < RB; i++)
        for (v = 0; v < CV; v++)
            memcpy(M + i * ldm + 16 * v, &acc[i][v], sizeof acc[i][v]);
}

#define CONV_GEMM_AT(RB, CV)                                                                        \
    conv_gemm_block(U + r0 * su_row, su_row, su_red, V + j0, ldv, M + r0 * ldm + j0, ldm, red, RB, CV)
#define CONV_GEMM_BLOCKS(RB)                                                                        \
    switch (cv) {                                                                                   \
    case 4: CONV_GEMM_AT(RB, 4); break;                                                             \
    case 3: CONV_GEMM_AT(RB, 3); break;                                                             \
    case 2: CONV_GEMM_AT(RB, 2); break;                                                             \
    default: CONV_GEMM_AT(RB, 1); break;                                                            \
    }

/* M (rows x cols, rows ldm apart) = U (rows x red, U(i, k) at U[i * su_row + k * su_red]) V (red x
 * cols, rows ldv apart); cols a multiple of 16. */
FNN_CLONES
static void conv_gemm_f(const float *U, ptrdiff_t su_row, ptrdiff_t su_red, const float *V, ptrdiff_t ldv,
                        float *M, ptrdiff_t ldm, ptrdiff_t rows, ptrdiff_t red, ptrdiff_t cols)
{
    ptrdiff_t j0, r0;
    for (j0 = 0; j0 < cols; j0 += 16 * CONV_GEMM_CV) {  /* V's columns stay in L2 over all of U */
        const int cv = cols - j0 >= 16 * CONV_GEMM_CV ? CONV_GEMM_CV : (int)((cols - j0) / 16);
        for (r0 = 0; r0 + CONV_GEMM_RB <= rows; r0 += CONV_GEMM_RB)
            CONV_GEMM_BLOCKS(CONV_GEMM_RB)
        switch (rows - r0) {
        case 6: CONV_GEMM_BLOCKS(6) break;
        case 5: CONV_GEMM_BLOCKS(5) break;
        case 4: CONV_GEMM_BLOCKS(4) break;
        case 3: CONV_GEMM_BLOCKS(3) break;
        case 2: CONV_GEMM_BLOCKS(2) break;
        case 1: CONV_GEMM_BLOCKS(1) break;
        default: break;
        }
    }
}

FNN_END_LOOPS

#endif
