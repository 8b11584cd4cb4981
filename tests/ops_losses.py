"""OpInfo entries: softmax cross-entropy and the multiclass SVM (hinge) loss."""
import numpy as np

from opinfo import OpInfo, Sample, randn, register

LABEL_DTYPES = (np.int64, np.int32, np.uint8, np.int16)


def _samples(**kwargs):
    def samples(rng, dtype):
        out = []
        for i, (n, classes, scale) in enumerate([(5, 7, 3.0), (1, 1, 1.0), (64, 1000, 2.0), (33, 10, 1e4)]):
            labels = rng.integers(0, classes, n).astype(LABEL_DTYPES[i % len(LABEL_DTYPES)])
            out.append(Sample((randn(rng, (n, classes), dtype, scale), labels), dict(kwargs), note=f"({n}, {classes}) x{scale}"))
        ties = np.zeros((4, 6), dtype)  # every margin exactly at the kink
        out.append(Sample((ties, np.array([0, 1, 2, 5])), dict(kwargs), note="ties"))
        return out
    return samples


def _grad_samples(**kwargs):
    def samples(rng):
        return [Sample((rng.standard_normal((6, 5)), rng.integers(0, 5, 6)), dict(kwargs))]
    return samples


TOL = {np.float32: (1e-5, 1e-7), np.float64: (1e-12, 1e-14)}

register(OpInfo("softmax_cross_entropy", _samples(), grad_samples=_grad_samples(), supports_out=False, tol=TOL))
register(OpInfo("hinge_loss", _samples(margin=0.7), grad_samples=_grad_samples(margin=0.7), supports_out=False,
                tol=TOL))
