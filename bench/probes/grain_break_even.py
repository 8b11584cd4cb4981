"""Where a second thread starts to pay for the loss and optimizer kernels (fastnn/_grain.py's
rows): each backend's kernel called directly on 1 and 2 threads, interleaved, min over many calls.

    cd bench && python probes/grain_break_even.py losses    # softmax_cross_entropy, hinge_loss
    cd bench && python probes/grain_break_even.py optim     # sgd_step (momentum), adam_step
"""
import argparse
import time

import numpy as np

from fastnn import _threads
from fastnn._ops import kernel

LOSS_SHAPES = [(8, 128), (16, 128), (32, 128), (64, 128), (128, 128), (32, 1000), (64, 1000), (256, 1000)]
STEP_SIZES = [4096, 8192, 16384, 32768, 65536, 131072, 262144, 1 << 20]


def _best(fn, reps):
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _time(backend, fn, args, threads, reps):
    if backend == "numba":
        with _threads.numba_threads(threads):
            return _best(lambda: fn(*args, threads), reps)
    return _best(lambda: fn(*args, threads), reps)


def _cases(family, dtype, rng):
    """(label, op, kernel arguments without n_threads)"""
    if family == "losses":
        for n, c in LOSS_SHAPES:
            s = (rng.standard_normal((n, c)) * 3).astype(dtype)
            labels = rng.integers(0, c, n).astype(np.intp)
            # (logits, labels, weight, dlogits, per-row losses, ignore_index, label_smoothing, reduction "mean")
            yield f"{n * c:8d} scores ({n}x{c})", "softmax_cross_entropy", (s, labels, None, np.empty_like(s), None,
                                                                            -100, 0.0, 1)
            yield f"{n * c:8d} scores ({n}x{c})", "hinge_loss", (s, labels, np.empty_like(s), 1.0)
        return
    for n in STEP_SIZES:
        p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
        yield f"{n:8d} params", "sgd_step", (p, g, np.zeros_like(p), 1e-3, 0.9, False, 0.0)
        yield f"{n:8d} params", "adam_step", (p, g, np.zeros_like(p), np.zeros_like(p), 1, 1e-6, 0.9, 0.999,
                                               1e-8, 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family", choices=("losses", "optim"))
    parser.add_argument("--reps", type=int, default=200, help="calls per timing (5 interleaved timings)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for label, op, kargs in _cases(args.family, dtype, rng):
            row = []
            for backend in ("numba", "cython"):
                fn = kernel(op, backend)
                best = {1: float("inf"), 2: float("inf")}
                for _ in range(5):
                    for t in (1, 2):
                        best[t] = min(best[t], _time(backend, fn, kargs, t, args.reps))
                row.append(f"{backend} {best[1] * 1e6:8.1f} / {best[2] * 1e6:8.1f} us ({best[2] / best[1]:.2f})")
            print(f"{np.dtype(dtype).name:7} {op:22} {label}  " + "  ".join(row), flush=True)


if __name__ == "__main__":
    main()
