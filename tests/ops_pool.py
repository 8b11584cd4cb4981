"""OpInfo entries: pooling (max_pool2d, avg_pool2d and their backwards)."""
import numpy as np

import fastnn
from opinfo import OpInfo, Sample, Terms, randn, register

# (x shape, kernel_size, stride, padding)
CONFIGS = [
    ((2, 3, 7, 9), 2, None, 0),            # the specialized 2x2 stride-2 path, odd sizes
    ((3, 2, 8, 6), 2, 2, 0),               # ... even sizes
    ((3, 2, 9, 11), 3, 2, 1),              # overlapping windows, padded
    ((2, 2, 9, 8), 3, 2, 0),
    ((2, 2, 3, 4), 3, 2, 1),               # no interior window: all on the borders
    ((2, 3, 10, 11), 2, 3, 0),             # stride > kernel: some inputs in no window
    ((2, 3, 9, 7), (3, 2), (2, 1), (1, 0)),  # rectangular
    ((1, 4, 5, 6), 1, 2, 0),               # batch of one, 1x1 windows
    ((2, 3, 6, 5), 4, 1, 2),               # the largest padding allowed
    ((2, 2, 1, 1), 1, None, 0),
    ((0, 3, 6, 6), 2, None, 0),            # empty batch
    ((4, 16, 33, 35), 2, None, 0),         # several planes per thread
    ((4, 16, 33, 35), 3, 2, 1),
    ((3, 5, 9, 12), 3, None, 0),           # exact tilings (disjoint windows covering x): planes end to end
    ((2, 3, 8, 9), (2, 3), None, 0),
    ((4, 16, 27, 27), 3, 3, 0),            # ... batches of rows of windows, several per thread
]


# Each op's options beyond the geometry: (x shape, kernel_size, stride, padding, options). ceil_mode
# windows hang past the end of x (and past the padding); "[-1]" marks the ceil_mode sizes torch cuts
# by one (the last window would start in the right padding).
SHARED_OPTIONS = [
    ((2, 3, 7, 9), 2, None, 0, {"ceil_mode": True}),        # 2x2 stride 2: a hanging last row and column
    ((2, 2, 9, 10), 3, 2, 1, {"ceil_mode": True}),          # hangs past the padding (width)
    ((2, 2, 8, 8), 3, 2, 0, {"ceil_mode": True}),           # 3x3 stride 2, hanging on both axes
    ((2, 3, 10, 11), 3, 3, 1, {"ceil_mode": True}),         # width: [-1]
    ((2, 2, 7, 8), 2, 3, 0, {"ceil_mode": True}),           # stride > kernel
    ((1, 2, 5, 6), (2, 3), (3, 2), (1, 1), {"ceil_mode": True}),
    ((4, 16, 33, 35), 3, 2, 1, {"ceil_mode": True}),        # several planes per thread
    ((4, 16, 33, 35), 2, None, 0, {"ceil_mode": True}),
    ((3, 7, 9), 2, None, 0, {}),                            # unbatched
    ((4, 9, 10), 3, 2, 1, {"ceil_mode": True}),
    ((2, 3, 6, 6), 2, None, 0, {"ceil_mode": True}),        # ceil_mode that changes nothing
]
OPTIONS = {
    "max_pool2d": SHARED_OPTIONS + [
        ((2, 3, 9, 11), 3, 2, 1, {"dilation": 2}),
        ((2, 2, 10, 9), 2, 1, 1, {"dilation": 3}),
        ((2, 2, 8, 8), 2, 2, 0, {"dilation": 2}),           # 2x2 stride 2 dilated: not the unrolled path
        ((2, 2, 11, 13), 3, 2, 1, {"dilation": (2, 3), "ceil_mode": True}),
        ((2, 2, 9, 8), 3, 2, 1, {"dilation": (1, 2)}),
        ((1, 2, 2, 7), (2, 2), (1, 2), (1, 1), {"dilation": (2, 3), "ceil_mode": True}),  # dilation > H
        ((2, 3, 7, 9), 2, None, 0, {"ceil_mode": True, "return_indices": True}),
        ((3, 2, 9, 11), 3, 2, 1, {"return_indices": True}),
        ((2, 2, 11, 13), 3, 2, 1, {"dilation": (2, 3), "ceil_mode": True, "return_indices": True}),
        ((3, 8, 9), (3, 2), (2, 1), (1, 0), {"return_indices": True}),
        ((4, 16, 33, 35), 3, 1, 1, {"return_indices": True}),
    ],
    "avg_pool2d": SHARED_OPTIONS + [
        ((3, 2, 9, 11), 3, 2, 1, {"count_include_pad": False}),
        ((2, 2, 9, 10), 3, 2, 1, {"ceil_mode": True, "count_include_pad": False}),
        ((2, 3, 7, 9), 2, None, 0, {"ceil_mode": True, "count_include_pad": False}),
        ((2, 3, 6, 5), 4, 1, 2, {"count_include_pad": False}),
        ((2, 3, 7, 9), 2, None, 0, {"divisor_override": 3}),
        ((2, 2, 9, 10), 3, 2, 1, {"ceil_mode": True, "divisor_override": 5}),
        ((2, 2, 9, 10), 3, 2, 1, {"count_include_pad": False, "divisor_override": -2}),
        ((4, 9, 10), 3, 2, 1, {"ceil_mode": True, "count_include_pad": False}),
        ((2, 3, 6, 9), 3, None, 0, {"divisor_override": 4}),  # an exact tiling
    ],
}
SPECIAL_OPTIONS = {  # the ties and NaN/inf samples: (x shape, kernel_size, stride, padding, options)
    "max_pool2d": [((3, 4, 9, 10), 3, 2, 1, {"ceil_mode": True}), ((2, 3, 9, 11), 3, 2, 1, {"dilation": 2}),
                   ((2, 3, 7, 9), 2, None, 0, {"ceil_mode": True, "return_indices": True}),
                   ((2, 3, 9, 10), 3, 2, 1, {"return_indices": True}), ((3, 4, 9, 9), 3, 3, 0, {})],
    "avg_pool2d": [((3, 4, 9, 10), 3, 2, 1, {"ceil_mode": True, "count_include_pad": False})],
}


def _params(kernel, stride, padding, options=None):
    return {"kernel_size": kernel, "stride": stride, "padding": padding, **(options or {})}


def _with_specials(rng, x):
    """x with NaN, +-inf scattered, a window with two NaNs, and an all -inf plane."""
    x = x.copy()
    if x.size == 0:
        return x
    flat = x.reshape(-1)
    for value in (np.nan, np.inf, -np.inf):
        flat[rng.integers(0, flat.size, 6)] = value
    x[0, 0, 0, :2] = np.nan
    x[-1, -1] = -np.inf
    return x


def _forward_samples(op, special):
    def samples(rng, dtype):
        out = [Sample((randn(rng, shape, dtype, 3),), _params(*rest)) for shape, *rest in CONFIGS]
        out += [Sample((randn(rng, shape, dtype, 3),), _params(*rest)) for shape, *rest in OPTIONS[op]]
        specials = [((3, 4, 9, 10), 2, None, 0), ((3, 4, 9, 10), 3, 2, 1), ((2, 3, 8, 7), (2, 3), 1, (1, 1))]
        for shape, *rest in specials + SPECIAL_OPTIONS[op]:
            ties = np.round(randn(rng, shape, dtype))  # integer values: many equal maxima
            out.append(Sample((ties,), _params(*rest), "ties"))
            if special:
                out.append(Sample((_with_specials(rng, randn(rng, shape, dtype)),), _params(*rest), "NaN/inf"))
        return out
    return samples


def _backward_samples(op, special):
    forward = getattr(fastnn, op)

    def samples(rng, dtype):
        result = []
        for s in _forward_samples(op, special)(rng, dtype):
            kwargs = {k: v for k, v in s.kwargs.items() if k != "return_indices"}
            with fastnn.use_backend("numpy"):
                y = forward(*s.args, **kwargs)
            result.append(Sample((randn(rng, y.shape, dtype),) + s.args, kwargs, s.note))
        return result
    return samples


def _grad_samples(op):
    configs = [((2, 2, 5, 7), 2, None, 0, {}), ((1, 2, 7, 6), 3, 2, 1, {}), ((2, 1, 6, 7), (3, 2), (2, 3), (1, 1), {}),
               ((2, 2, 7, 9), 2, None, 0, {"ceil_mode": True}), ((1, 2, 8, 9), 3, 2, 1, {"ceil_mode": True}),
               ((2, 7, 6), 3, 2, 1, {"ceil_mode": True})]
    configs += {"max_pool2d": [((1, 2, 9, 10), 3, 2, 1, {"dilation": (2, 3), "ceil_mode": True}),
                               ((2, 1, 8, 8), 2, 2, 0, {"dilation": 2, "return_indices": True})],
                "avg_pool2d": [((1, 2, 9, 10), 3, 2, 1, {"ceil_mode": True, "count_include_pad": False}),
                               ((2, 1, 7, 7), 2, None, 0, {"ceil_mode": True, "divisor_override": 3})]}[op]

    def samples(rng):
        out = []
        for shape, *rest in configs:
            x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1  # distinct: no ties
            out.append(Sample((x.astype(np.float64),), _params(*rest)))
        return out
    return samples


def _geometry(kwargs):
    kernel, stride, padding = kwargs["kernel_size"], kwargs.get("stride"), kwargs.get("padding", 0)
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731
    kernel = pair(kernel)
    return kernel, (kernel if stride is None else pair(stride)), pair(padding), pair(kwargs.get("dilation", 1))


def _reference(op, *args, **kwargs):
    with fastnn.use_backend("numpy"), np.errstate(invalid="ignore"):
        return getattr(fastnn, op)(*args, **kwargs)


def _windows_per_input(kernel, stride, dilation):
    """The most windows one input element is in: the length of each dx sum (kh * kw bounds it)."""
    if dilation != (1, 1):
        return kernel[0] * kernel[1]
    return -(-kernel[0] // stride[0]) * -(-kernel[1] // stride[1])


def _avg_terms(args, kwargs, exact):
    """Each output sums its window (K = kh * kw) and divides: avg_pool2d of |x|."""
    kernel = _geometry(kwargs)[0]
    return {0: Terms(kernel[0] * kernel[1], _reference("avg_pool2d", np.abs(args[0]), **kwargs))}


def _backward_terms(backward):
    """dx sums the dy of the windows each input wins (max) or is in (avg): the backward on |dy|."""
    def terms(args, kwargs, exact):
        dy, x = args
        kernel, stride, _, dilation = _geometry(kwargs)
        return {0: Terms(_windows_per_input(kernel, stride, dilation),
                         _reference(backward, np.abs(dy), x, **kwargs))}
    return terms


register(OpInfo("max_pool2d", _forward_samples("max_pool2d", True), grad_samples=_grad_samples("max_pool2d"),
                special_values=True, ulps=0.0))
register(OpInfo("max_pool2d_backward", _backward_samples("max_pool2d", True), special_values=True,
                terms=_backward_terms("max_pool2d_backward")))
register(OpInfo("avg_pool2d", _forward_samples("avg_pool2d", True), grad_samples=_grad_samples("avg_pool2d"),
                special_values=True, terms=_avg_terms))
register(OpInfo("avg_pool2d_backward", _backward_samples("avg_pool2d", False),
                terms=_backward_terms("avg_pool2d_backward")))
