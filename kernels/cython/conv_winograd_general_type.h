/* Part of conv_winograd_general.h, included once per element type WINO_T (suffix WINO_S): each tile's
 * transforms (conv_winograd_general_impl.h), the functions that pick one by spec, and the kernel
 * transforms, which take the spec's matrix at run time (once per call, not per tile). */
#define WGT_CAT2(a, b) a##_##b
#define WGT_CAT(a, b) WGT_CAT2(a, b)
#define WGT_FN(name) WGT_CAT(name, WINO_S)

#define WG_TILE f4r3
#define WG_BT wg_bt_a6
#define WG_A 6
#define WG_R 3
#include "conv_winograd_general_impl.h"

#define WG_TILE f4r5
#define WG_BT wg_bt_a8
#define WG_A 8
#define WG_R 5
#include "conv_winograd_general_impl.h"

#define WG_TILE f2r7
#define WG_BT wg_bt_a8
#define WG_A 8
#define WG_R 7
#include "conv_winograd_general_impl.h"

/* The run functions of spec s's tile (see conv_winograd_general_impl.h). */
#define WGT_PICK(call)                                    \
    switch (s->id) {                                      \
    case WG_F4R3: return WGT_CAT(call##_f4r3, WINO_S);    \
    case WG_F4R5: return WGT_CAT(call##_f4r5, WINO_S);    \
    default: return WGT_CAT(call##_f2r7, WINO_S);         \
    }

typedef void (*WGT_CAT(wg_grad_fn, WINO_S))(const WINO_T *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                             WINO_T *, ptrdiff_t);
typedef void (*WGT_CAT(wg_input_fn, WINO_S))(const WINO_T *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                                 ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, WINO_T *, ptrdiff_t,
                                                 ptrdiff_t);
typedef int (*WGT_CAT(wg_output_fn, WINO_S))(const WINO_T *, ptrdiff_t, WINO_T *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                              ptrdiff_t, ptrdiff_t, WINO_T, int);

static inline WGT_CAT(wg_grad_fn, WINO_S) WGT_FN(wg_grad_of)(const wino_spec *s) { WGT_PICK(wg_grad_run) }
static inline WGT_CAT(wg_output_fn, WINO_S) WGT_FN(wg_output_of)(const wino_spec *s) { WGT_PICK(wg_output_run) }
static inline WGT_CAT(wg_input_fn, WINO_S) WGT_FN(wg_input_of)(const wino_spec *s)
{
    WGT_PICK(wg_input_channels)
}

static void WGT_FN(wg_input_channels)(const wino_spec *s, const WINO_T *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
                                       ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t tw, ptrdiff_t r0, ptrdiff_t cnt,
                                       WINO_T *v, ptrdiff_t vs, ptrdiff_t ldv)
{
    WGT_FN(wg_input_of)(s)(x, C, H, W, ph, pw, tw, r0, cnt, v, vs, ldv);
}

static void WGT_FN(wg_grad_run)(const wino_spec *s, const WINO_T *plane, ptrdiff_t Ho, ptrdiff_t Wo, ptrdiff_t tw,
                                 ptrdiff_t r0, ptrdiff_t cnt, WINO_T *v, ptrdiff_t vs)
{
    WGT_FN(wg_grad_of)(s)(plane, Ho, Wo, tw, r0, cnt, v, vs);
}

static int WGT_FN(wg_output_run)(const wino_spec *s, const WINO_T *M, ptrdiff_t ms, WINO_T *plane, ptrdiff_t Ho,
                                  ptrdiff_t Wo, ptrdiff_t tw, ptrdiff_t r0, ptrdiff_t cnt, WINO_T bias, int relu)
{
    return WGT_FN(wg_output_of)(s)(M, ms, plane, Ho, Wo, tw, r0, cnt, bias, relu);
}

/* u[k * us + t] = (G g_t G^T)[k] (a x a) for t < cnt, g_t[i, j] = g[t * gs + i * gi + j * gj] (r x r);
 * in double, WINO_KB kernels at a time (the vector lanes). */
FNN_CLONES
static void WGT_FN(wg_kernels)(const wino_spec *s, const WINO_T *g, ptrdiff_t gs, ptrdiff_t gi, ptrdiff_t gj,
                                ptrdiff_t cnt, WINO_T *u, ptrdiff_t us)
{
    const int r = s->r, a = s->a;
    double gt[WINO_MAX_A * WINO_MAX_A][WINO_KB], e[WINO_MAX_A * WINO_MAX_A][WINO_KB], acc[WINO_KB];
    ptrdiff_t t0;
    int i, j, t, nb;
    for (t0 = 0; t0 < cnt; t0 += WINO_KB) {
        nb = cnt - t0 < WINO_KB ? (int)(cnt - t0) : WINO_KB;
        for (i = 0; i < r * r; i++)
            for (t = 0; t < nb; t++)
                gt[i][t] = g[(t0 + t) * gs + i / r * gi + i % r * gj];
        for (i = 0; i < a; i++)  /* G g */
            for (j = 0; j < r; j++)
                wg_lanes(s->G + i * r, 1, r, gt + j, r, e[i * r + j], nb);
        for (i = 0; i < a; i++)  /* (G g) G^T */
            for (j = 0; j < a; j++) {
                wg_lanes(s->G + j * r, 1, r, e + i * r, 1, acc, nb);
                for (t = 0; t < nb; t++)
                    u[(i * a + j) * us + t0 + t] = (WINO_T)acc[t];
            }
    }
}

/* dw_t (r x r, at dw + t * ds) = G^T m_t G for t < cnt, m_t[k] = M[k * ms + t] (a x a); in double,
 * WINO_KB at a time. */
FNN_CLONES
static void WGT_FN(wg_kernel_grads)(const wino_spec *s, const WINO_T *M, ptrdiff_t ms, ptrdiff_t cnt, WINO_T *dw,
                                     ptrdiff_t ds)
{
    const int r = s->r, a = s->a;
    double mt[WINO_MAX_A * WINO_MAX_A][WINO_KB], e[WINO_MAX_A * WINO_MAX_A][WINO_KB], acc[WINO_KB];
    ptrdiff_t t0;
    int i, j, t, nb;
    for (t0 = 0; t0 < cnt; t0 += WINO_KB) {
        nb = cnt - t0 < WINO_KB ? (int)(cnt - t0) : WINO_KB;
        for (i = 0; i < a * a; i++)
            for (t = 0; t < nb; t++)
                mt[i][t] = M[i * ms + t0 + t];
        for (i = 0; i < r; i++)  /* G^T m */
            for (j = 0; j < a; j++)
                wg_lanes(s->G + i, r, a, mt + j, a, e[i * a + j], nb);
        for (i = 0; i < r; i++)  /* (G^T m) G */
            for (j = 0; j < r; j++) {
                wg_lanes(s->G + j, r, a, e + i * a, 1, acc, nb);
                for (t = 0; t < nb; t++)
                    dw[(t0 + t) * ds + i * r + j] = (WINO_T)acc[t];
            }
    }
}

#undef WGT_PICK
#undef WGT_FN
#undef WGT_CAT
#undef WGT_CAT2
