/* C loops for the Cython losses (float32 rows use simd_math.h's vectorizable exp). */
#ifndef FASTNN_LOSSES_LOOPS_H
#define FASTNN_LOSSES_LOOPS_H

#include <stddef.h>
#include "simd_math.h"

FNN_BEGIN_LOOPS

/* out[j] = e^(logits[j] - top) for a row whose maximum is top; returns the sum of out. */
FNN_CLONES static double fnn_softmax_exp_row_f(const float *logits, float top, float *out, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++)
        out[j] = fnn_exp_nonpos_f(logits[j] - top);
    double total = 0.0;
    for (ptrdiff_t j = 0; j < n; j++)
        total += out[j];
    return total;
}

FNN_END_LOOPS

#endif
