"""The cost of handing the cores from one thread pool to another: a 2-thread fastnn ReLU
(50 x 32 x 16 x 16, float32) timed right after another call, mean and min over 200 pairs.

    cd bench && python probes/pool_handoff.py              # NumPy's BLAS at its default threads
    cd bench && python probes/pool_handoff.py --blas-1     # NumPy's BLAS capped at one thread
"""
import argparse
import contextlib
import time

import numpy as np

import fastnn


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blas-1", action="store_true", help="cap NumPy's BLAS at one thread")
    args = parser.parse_args()
    x = np.random.default_rng(0).standard_normal((50, 32, 16, 16)).astype(np.float32)
    out = np.empty_like(x)
    a = np.ones((256, 256), np.float32)

    def relu(backend):
        with fastnn.use_backend(backend):
            fastnn.relu(x, out=out)

    calls = {"cython relu": lambda: relu("cython"), "numba relu": lambda: relu("numba"), "numpy matmul": lambda: a @ a}
    limit = contextlib.nullcontext()
    if args.blas_1:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1, user_api="blas")
    with limit:
        for call in calls.values():
            call()
            call()
        for before, after in [("cython relu", "cython relu"), ("numba relu", "cython relu"),
                              ("numpy matmul", "cython relu"), ("numpy matmul", "numba relu"),
                              ("cython relu", "numpy matmul")]:
            times = []
            for _ in range(200):
                calls[before]()
                start = time.perf_counter()
                calls[after]()
                times.append(time.perf_counter() - start)
            print(f"{after:13s} after {before:13s} mean {np.mean(times) * 1e3:7.3f} ms   min {min(times) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
