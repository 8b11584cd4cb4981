"""Where a second thread starts to pay for an activation as a training step runs it: the forward,
then its backward on the forward's output or input, fresh outputs each call, both on 1 thread or
both on 2 (fastnn/_grain.py's activation rows). A backward on another split than its forward's
reads the other core's half of y or x from that core's cache; one grain per op pair keeps the
splits equal. Each backend's kernels called directly, interleaved, min over many calls.

    cd bench && python probes/grain_activation_pairs.py [--reps 300] [--dtype float32]
"""
import argparse

import numpy as np

from fastnn import _threads
from fastnn._ops import kernel
from grain_break_even import _best  # this directory's probe: the min of many timed calls

SIZES = [4096, 8192, 16384, 24576, 32768, 49152, 65536, 98304, 131072]
# op, its scalar parameters, the backward takes the forward's output (y) rather than x
PAIRS = [("relu", (), False), ("leaky_relu", (0.01,), False), ("elu", (1.0,), False), ("sigmoid", (), True),
         ("tanh", (), True), ("gelu", (False,), False), ("silu", (), False)]


def _pair(backend, op, params, from_y, x, dy, threads):
    forward, backward = kernel(op, backend), kernel(op + "_backward", backend)

    def step():
        y = np.empty_like(x)
        forward(x, y, *params, threads)
        dx = np.empty_like(x)
        backward(dy, y if from_y else x, dx, *params, threads)
    if backend == "numba":
        def run():
            with _threads.numba_threads(threads):
                step()
        return run
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=300, help="calls per timing (5 interleaved timings)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--backends", default="cython,numba")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for op, params, from_y in PAIRS:
        for n in SIZES:
            x = (rng.standard_normal(n) * 3).astype(args.dtype)
            dy = rng.standard_normal(n).astype(args.dtype)
            row = []
            for backend in args.backends.split(","):
                runs = {t: _pair(backend, op, params, from_y, x, dy, t) for t in (1, 2)}
                best = {1: float("inf"), 2: float("inf")}
                for _ in range(5):
                    for t in (1, 2):
                        best[t] = min(best[t], _best(runs[t], args.reps))
                row.append(f"{backend} {best[1] * 1e6:7.1f} / {best[2] * 1e6:7.1f} us ({best[2] / best[1]:.2f})")
            print(f"{args.dtype:7} {op:10} {n:7d}  " + "  ".join(row), flush=True)


if __name__ == "__main__":
    main()
