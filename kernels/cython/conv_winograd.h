/* Winograd F(2x2, 3x3) tile transforms for kernels/cython/conv.pyx, float and double.
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

FNN_END_LOOPS

#endif
