"""OpInfo entries: the fully connected layer."""
import numpy as np

from opinfo import OpInfo, Sample, Terms, randn, register

# (x shape, D_out, bias): flattened (N, ...) inputs, an empty batch, no input features, GEMM-sized
# (the compiled backends split GEMMs of >= 2^20 multiply-adds between threads: by output columns,
# by batch rows when the batch is the larger side, and odd block edges).
CASES = [((4, 5), 3, True), ((2, 3, 4, 5), 7, False), ((1, 9), 1, True), ((0, 6), 2, True),
         ((3, 0), 4, True), ((64, 300), 200, True), ((600, 130), 24, True), ((7, 4099), 37, False)]


def _linear_terms(args, kwargs, exact):
    """y sums D_in products: |x| @ |w| (+ |b|)."""
    x, w, b = args
    total = np.abs(x.reshape(len(x), w.shape[0])) @ np.abs(w)
    return {0: Terms(w.shape[0], total if b is None else total + np.abs(b))}


def _linear_backward_terms(args, kwargs, exact):
    """dx sums D_out products, dw and db sum over the N rows."""
    dy, x, w = args
    x2d, ady = np.abs(x.reshape(len(x), w.shape[0])), np.abs(dy)
    return {0: Terms(w.shape[1], (ady @ np.abs(w).T).reshape(x.shape)), 1: Terms(len(x), x2d.T @ ady),
            2: Terms(len(x), ady.sum(axis=0))}


def _weights(rng, x_shape, d_out, dtype):
    d_in = int(np.prod(x_shape[1:]))
    return randn(rng, (d_in, d_out), dtype, 1 / np.sqrt(max(d_in, 1)))


def _linear_samples(rng, dtype):
    out = []
    for shape, d_out, bias in CASES:
        b = randn(rng, (d_out,), dtype) if bias else None
        out.append(Sample((randn(rng, shape, dtype), _weights(rng, shape, d_out, dtype), b)))
    return out


def _backward_samples(rng, dtype):
    samples = [Sample((randn(rng, (shape[0], d_out), dtype), randn(rng, shape, dtype),
                       _weights(rng, shape, d_out, dtype))) for shape, d_out, _ in CASES]
    # input_grad=False: dx is None, dw and db unchanged (the odd cases: GEMM-sized, empty, plain)
    return samples + [Sample(s.args, {"input_grad": False}) for s in samples[::2]]


def _grad_samples(rng):
    return [Sample((rng.standard_normal((3, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4))),
            Sample((rng.standard_normal((2, 2, 3)), rng.standard_normal((6, 3)), None))]


register(OpInfo("linear", _linear_samples, grad_samples=_grad_samples, terms=_linear_terms))
register(OpInfo("linear_backward", _backward_samples, supports_out=False, terms=_linear_backward_terms))
