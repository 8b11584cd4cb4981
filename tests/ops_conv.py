"""OpInfo entries: conv2d, conv2d_backward, conv2d_relu."""
import numpy as np

import fastnn
from opinfo import OpInfo, Sample, Terms, randn, register

# (x shape, w shape, parameters, with bias): odd sizes, every parameter alone and combined, and
# sizes that reach the compiled backends' fast paths (Winograd 3x3, 1x1 GEMM, 3-channel 7x7).
CASES = [
    ((2, 3, 7, 9), (4, 3, 3, 3), {}, True),
    ((2, 3, 4, 5), (4, 3, 6, 7), {"padding": 1}, True),  # kernel as big as the padded input
    ((2, 8, 5, 7), (6, 8, 1, 1), {}, True),  # 1x1
    ((2, 3, 11, 10), (4, 3, 2, 2), {"stride": 3}, False),  # stride > kernel
    ((2, 3, 13, 12), (5, 3, 3, 3), {"stride": 2, "dilation": 2, "padding": 2}, True),
    ((2, 4, 9, 11), (3, 4, 2, 5), {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2)}, True),
    ((2, 4, 7, 7), (6, 2, 3, 3), {"padding": 1, "groups": 2}, True),
    ((2, 6, 8, 9), (6, 1, 3, 3), {"padding": 1, "groups": 6}, True),  # depthwise
    ((2, 3, 6, 5), (6, 1, 3, 2), {"padding": (0, 1), "groups": 3}, False),  # depthwise, 2 filters each
    ((1, 5, 8, 8), (7, 5, 3, 3), {"padding": 1}, True),  # a batch of one
    ((0, 3, 5, 5), (4, 3, 3, 3), {}, True),  # an empty batch
    ((3, 2, 1, 1), (3, 2, 1, 1), {}, False),  # 1x1 images
    ((2, 5, 6, 7), (4, 5, 3, 3), {"padding": 3}, True),  # padding wider than the kernel reaches
    ((8, 32, 15, 13), (32, 32, 3, 3), {"padding": 1}, True),  # 3x3 stride 1 (Winograd), partial tiles
    ((6, 4, 23, 21), (5, 4, 3, 3), {}, True),  # Winograd with few channels
    ((2, 16, 9, 9), (24, 16, 1, 1), {"stride": 2}, True),  # strided 1x1
    ((2, 8, 10, 10), (16, 8, 3, 3), {"stride": 2, "padding": 1}, True),
    # Cython's filters-in-lanes forward (16k filters a group, strided or grouped): 2 vectors of 16 a
    # block, rows of 19 in runs of 10 + 9; 1 vector (48 filters), 5x5, a batch of one; 16 filters a
    # group on planes under 16 outputs (no whole-vector stores), its dx the same kernel on dy
    ((2, 5, 13, 37), (32, 5, 3, 3), {"stride": 2, "padding": 1}, True),
    ((1, 3, 17, 15), (48, 3, 5, 5), {"stride": 2, "padding": 2}, False),
    ((2, 32, 3, 4), (32, 16, 3, 3), {"padding": 1, "groups": 2}, True),
    ((2, 6, 9, 31), (32, 3, 3, 3), {"padding": 1, "groups": 2}, False),
    ((3, 3, 19, 17), (8, 3, 7, 7), {"padding": 3}, True),  # 3-channel stem
    ((2, 3, 20, 40), (8, 3, 7, 7), {"padding": 3}, True),  # wide rows: Cython's direct stem kernel
    ((2, 3, 21, 20), (8, 3, 7, 7), {"stride": 2, "padding": 3}, False),
    ((2, 64, 6, 5), (64, 64, 3, 3), {"padding": 1}, True),
    ((3, 3, 9, 32), (8, 3, 7, 7), {"padding": 3}, True),  # rows of 32: Cython's direct weight gradient
    ((2, 2, 9, 33), (4, 2, 7, 9), {"stride": 2, "padding": (2, 3)}, False),  # the same, KW = 9, stride 2
    ((2, 3, 13, 64), (4, 3, 7, 7), {"stride": 2, "padding": 3}, True),  # direct kernels, odd output rows
    # torch's padding strings: "same" with an even total (the symmetric kernels), with an odd one (an
    # even kernel, or an odd dilation times an odd k - 1: the extra row/column at the bottom/right), "valid"
    ((2, 3, 7, 9), (4, 3, 3, 5), {"padding": "same"}, True),
    ((2, 3, 7, 9), (4, 3, 4, 2), {"padding": "same"}, True),
    ((2, 4, 8, 7), (4, 2, 2, 3), {"padding": "same", "dilation": (3, 2), "groups": 2}, False),
    ((2, 3, 6, 7), (5, 3, 1, 4), {"padding": "same", "dilation": 2}, True),  # totals 0 and 6
    ((8, 32, 15, 13), (32, 32, 3, 3), {"padding": "same"}, True),  # Winograd
    # the Cython backend's Winograd tiles (8 or more channels, C + F >= 24): F(2x2, 3x3) (outputs
    # from 4x4 to under 8x8), F(4x4, 3x3) (forward from 8x8, backward from 12x12), F(4x4, 5x5)
    # (outputs from 8x8) and F(2x2, 7x7) (from 12x12); partial tiles, paddings 0 to r - 1, fewer
    # filters than channels and more than twice as many
    ((4, 16, 7, 9), (16, 16, 3, 3), {"padding": 1}, True),
    ((2, 16, 16, 20), (16, 16, 3, 3), {"padding": 1}, True),
    ((2, 16, 14, 14), (20, 16, 3, 3), {"padding": 2}, False),
    ((2, 16, 17, 19), (16, 16, 5, 5), {"padding": 1}, True),
    ((2, 16, 20, 18), (24, 16, 5, 5), {"padding": 4}, False),
    ((3, 16, 12, 13), (16, 16, 5, 5), {}, True),
    ((2, 8, 13, 11), (16, 8, 7, 7), {"padding": 3}, True),
    ((2, 8, 25, 30), (16, 8, 7, 7), {"padding": (3, 6)}, False),
    ((1, 16, 4, 5), (8, 16, 3, 3), {"padding": 1}, True),
    ((2, 8, 6, 6), (32, 8, 3, 3), {"padding": 1}, False),
    ((2, 8, 8, 9), (16, 8, 5, 5), {"padding": 2}, True),
    ((1, 16, 12, 13), (8, 16, 7, 7), {"padding": 3}, False),
    ((2, 3, 7, 9), (4, 3, 3, 5), {"padding": "valid", "stride": 2}, True),
    # unbatched (C, H, W) inputs
    ((3, 7, 9), (4, 3, 3, 3), {"padding": 1}, True),
    ((3, 7, 9), (4, 3, 2, 2), {"padding": "same"}, True),
    ((4, 6, 5), (4, 1, 3, 3), {"stride": 2, "groups": 4}, False),
    # depthwise (groups == C: the Numba backend's direct path): stride 2, paddings 0 and 2, dilation 2,
    # multiplier 2, kernels 3 and 5, odd sizes, a batch of one, one channel (groups 1 is depthwise too)
    ((2, 8, 11, 9), (8, 1, 3, 3), {"stride": 2, "padding": 1, "groups": 8}, True),
    ((1, 5, 9, 10), (5, 1, 3, 3), {"groups": 5}, True),
    ((2, 4, 10, 9), (8, 1, 5, 5), {"stride": 2, "padding": 2, "groups": 4}, False),
    ((2, 3, 12, 11), (3, 1, 3, 3), {"padding": 2, "dilation": 2, "groups": 3}, True),
    ((1, 4, 13, 7), (8, 1, 5, 3), {"stride": (2, 1), "padding": (2, 1), "dilation": (1, 2), "groups": 4}, True),
    ((2, 3, 7, 8), (3, 1, 3, 3), {"stride": 3, "padding": 1, "groups": 3}, True),
    ((2, 6, 9, 7), (6, 1, 5, 5), {"padding": 2, "groups": 6}, True),
    ((2, 1, 9, 9), (4, 1, 3, 3), {"padding": 1}, True),
    ((2, 4, 7, 6), (4, 1, 4, 3), {"padding": "same", "dilation": 2, "groups": 4}, False),
    # grouped, stride 1, rows of more than 16 outputs: the Cython backend's wide direct forward per
    # (image, group), and dx as the direct forward of dy (when the groups' input channels are a multiple of 4)
    ((2, 8, 9, 20), (8, 4, 3, 3), {"padding": 1, "groups": 2}, True),
    ((2, 12, 10, 19), (24, 4, 5, 5), {"padding": 2, "groups": 3}, False),
    ((1, 8, 7, 33), (8, 4, 3, 2), {"padding": (1, 0), "groups": 2}, True),
    ((2, 4, 6, 17), (8, 2, 3, 3), {"padding": 1, "groups": 2}, True),  # dx by im2col (2 channels a group)
    # rows of 8 to 16 outputs: the narrow direct kernel (blocks of 4 rows, a partial one last)
    ((2, 8, 9, 11), (8, 4, 3, 3), {"padding": 1, "groups": 2}, True),
    ((1, 8, 7, 14), (8, 4, 3, 3), {"padding": 1, "groups": 2}, False),
    # strided, outputs a multiple of 16 a plane: Cython's float32 dcol by conv_gemm.h (rows of K in
    # blocks of 7 with 3 and 1 left over; 1 and 4 + 2 vectors of 16 pixels)
    ((2, 5, 8, 8), (6, 5, 3, 3), {"stride": 2, "padding": 1}, True),
    ((2, 4, 16, 24), (5, 4, 3, 3), {"stride": 2, "padding": 1}, False),
    # 48 filters a group: Cython's lanes kernels with 3 filter vectors a block (runs of at most 9
    # pixels or taps: rows of 10 and 19 outputs, 25 taps)
    ((2, 5, 19, 20), (48, 5, 3, 3), {"stride": 2, "padding": 1}, True),
    ((1, 8, 10, 19), (96, 4, 3, 3), {"padding": 1, "groups": 2}, False),
    ((1, 3, 13, 14), (48, 3, 5, 5), {"stride": 2, "padding": 2}, True),
    # one filter vector (16 filters a group) where a kernel row reads a phase row more than once: tap
    # groups of at most 3 (7x7 stride 2: groups of 3 + 1 and 3; 5x5: 3 + 2), rows of 31 in runs of
    # 10 + 10 + 11
    ((2, 4, 15, 17), (16, 4, 7, 7), {"stride": 2, "padding": 3}, True),
    ((2, 32, 9, 11), (32, 16, 5, 5), {"padding": 2, "groups": 2}, False),
    ((1, 16, 6, 31), (32, 8, 3, 3), {"padding": 1, "groups": 2}, True),
    # one filter vector's 3x3 weight gradient, 4 pixels at a time (rows of 7 and 9: 3 and 1 left
    # over), 5 blocks of 16 filters at stride (2, 1)
    ((2, 32, 9, 7), (32, 16, 3, 3), {"padding": 1, "groups": 2}, True),
    ((2, 8, 11, 9), (80, 8, 3, 3), {"stride": (2, 1), "padding": 1}, False),
    # Cython's padded copy (direct_pad_split) past its vector rows (512 columns): element by element
    ((1, 3, 3, 1100), (16, 3, 3, 3), {"stride": 2, "padding": 1}, False),
    # Cython's strided float32 dx by phases (each a stride-1 correlation of dy with a sub-kernel,
    # dx's channels in the lanes): 2 vectors and odd sizes; 24 channels in 32 lanes, 5x5; strides
    # (3, 2) with a 4x3 kernel in groups; 48 channels (3 vectors); phases no tap reaches (2x2, stride 3)
    ((2, 32, 13, 11), (16, 32, 3, 3), {"stride": 2, "padding": 1}, True),
    ((1, 24, 11, 12), (8, 24, 5, 5), {"stride": 2, "padding": 2}, False),
    ((2, 32, 10, 9), (8, 16, 4, 3), {"stride": (3, 2), "padding": (1, 2), "groups": 2}, True),
    ((1, 48, 9, 8), (16, 48, 3, 3), {"stride": 2, "padding": 1}, False),
    ((2, 16, 11, 10), (8, 16, 2, 2), {"stride": 3}, True),
]


def out_shape(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """y's shape (unbatched for a 3-d x): torch's output size; "same" keeps H and W, "valid" is 0."""
    def size(n, k, s, p, d):
        return (n + 2 * p - d * (k - 1) - 1) // s + 1

    padding = {"valid": 0}.get(padding, padding) if isinstance(padding, str) else padding
    pairs = [v if isinstance(v, tuple) else (v, v) for v in (stride, dilation)]
    if padding == "same":
        ho, wo = x_shape[-2:]
    else:
        padding = padding if isinstance(padding, tuple) else (padding, padding)
        ho, wo = (size(x_shape[-2 + a], w_shape[2 + a], pairs[0][a], padding[a], pairs[1][a]) for a in (0, 1))
    return x_shape[:-3] + (w_shape[0], ho, wo)


# Winograd F(4x4, 3x3) (the Numba backend's 3x3 path) transforms tiles before and after the
# products, which multiplies the rounding of a plain sum: up to 8x in these samples (float64, 4
# channels), hence 4x the rule's usual c.
WINOGRAD_C = 32.0


def _forward_terms(args, kwargs, exact):
    """Each output sums C/groups*KH*KW products: the reference on |x|, |w|, |b|."""
    x, w, b = (None if a is None else np.abs(a) for a in args)
    with fastnn.use_backend("numpy"):
        y = fastnn.conv2d(x, w, b, **kwargs)
    return {0: Terms(int(np.prod(w.shape[1:])), y)}


def _backward_terms(args, kwargs, exact):
    """dx sums F/groups*KH*KW products at most, dw and db N*Ho*Wo: the reference on |dy|, |x|, |w|."""
    dy, x, w = (np.abs(a) for a in args)
    groups = kwargs.get("groups", 1)
    with fastnn.use_backend("numpy"):
        dx, dw, db = fastnn.conv2d_backward(dy, x, w, **kwargs)
    per_pixel = dy.size // dy.shape[-3]  # N * Ho * Wo (Ho * Wo unbatched)
    return {0: Terms(w.shape[0] // groups * w.shape[2] * w.shape[3], dx), 1: Terms(per_pixel, dw),
            2: Terms(per_pixel, db)}


def _inputs(rng, dtype, x_shape, w_shape, bias):
    fan_in = int(np.prod(w_shape[1:]))
    x = randn(rng, x_shape, dtype)
    w = randn(rng, w_shape, dtype, 1 / np.sqrt(fan_in))
    b = randn(rng, (w_shape[0],), dtype) if bias else None
    return x, w, b


def _forward_samples(rng, dtype):
    return [Sample(_inputs(rng, dtype, xs, ws, bias), dict(params)) for xs, ws, params, bias in CASES]


def _backward_samples(rng, dtype):
    samples = []
    for xs, ws, params, _ in CASES:
        x, w, _ = _inputs(rng, dtype, xs, ws, False)
        y_shape = out_shape(xs, ws, **params)
        dy = randn(rng, y_shape, dtype)
        pixels = int(np.prod(y_shape)) // y_shape[-3]  # N * Ho * Wo
        x = (x / np.sqrt(max(1, pixels))).astype(dtype)  # dw is O(1) too
        samples.append(Sample((dy, x, w), dict(params)))
    # input_grad=False: dx is None, dw and db unchanged (every fast path: direct, Winograd, 1x1, im2col)
    return samples + [Sample(s.args, {**s.kwargs, "input_grad": False}) for s in samples[2:3] + samples[13:]]


GRAD_CASES = [
    ((2, 3, 5, 6), (4, 3, 3, 3), {"padding": 1}, True),
    ((2, 4, 7, 6), (4, 2, 3, 2), {"stride": (2, 1), "padding": (1, 0), "dilation": (2, 1), "groups": 2}, True),
    ((1, 3, 4, 4), (2, 3, 4, 4), {}, False),  # kernel = input: one output pixel
    ((2, 3, 6, 6), (3, 1, 3, 3), {"stride": 2, "padding": 1, "groups": 3}, True),  # depthwise
    ((2, 3, 5, 6), (4, 3, 2, 4), {"padding": "same"}, True),  # odd totals: the extra bottom row, right column
    ((2, 4, 6, 5), (2, 2, 3, 2), {"padding": "same", "dilation": (1, 3), "groups": 2}, True),  # totals 2 and 3
    ((2, 3, 6, 5), (4, 3, 3, 3), {"padding": "valid"}, False),
    ((3, 5, 6), (4, 3, 3, 2), {"padding": "same"}, True),  # unbatched
    ((2, 2, 6, 5), (4, 1, 3, 3), {"padding": 1, "dilation": (2, 1), "groups": 2}, True),  # depthwise, 2 filters each
    ((1, 3, 7, 8), (3, 1, 5, 5), {"stride": 2, "padding": 2, "groups": 3}, True),  # depthwise 5x5, stride 2
]


def _grad_samples(rng):
    return [Sample(_inputs(rng, np.float64, xs, ws, bias), dict(params)) for xs, ws, params, bias in GRAD_CASES]


register(OpInfo("conv2d", _forward_samples, grad_samples=_grad_samples, terms=_forward_terms, c=WINOGRAD_C))
register(OpInfo("conv2d_backward", _backward_samples, supports_out=False, terms=_backward_terms, c=WINOGRAD_C))
register(OpInfo("conv2d_relu", _forward_samples, terms=_forward_terms, c=WINOGRAD_C))
