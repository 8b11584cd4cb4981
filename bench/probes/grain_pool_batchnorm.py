"""The grain table's pool and batch-norm rows: 1 vs 2 threads, float32, min of REPS interleaved
calls per size, both compiled backends (the ratio is 2 threads' time over 1 thread's).

    cd bench && python probes/grain_pool_batchnorm.py pool [REPS]
    cd bench && python probes/grain_pool_batchnorm.py batchnorm [REPS]
"""
import sys
import time

import numpy as np

import fastnn

SIZES = (1 << 13, 1 << 14, 1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 20)  # elements of x


def pool_cases(rng, elements):
    n = max(1, elements // (16 * 32 * 32))
    x = rng.standard_normal((n, 16, 32, 32)).astype(np.float32)
    dy = rng.standard_normal((n, 16, 16, 16)).astype(np.float32)
    return {"max_pool2d 2x2": lambda: fastnn.max_pool2d(x, 2),
            "max_pool2d_backward 2x2": lambda: fastnn.max_pool2d_backward(dy, x, 2),
            "avg_pool2d 2x2": lambda: fastnn.avg_pool2d(x, 2),
            "avg_pool2d_backward 2x2": lambda: fastnn.avg_pool2d_backward(dy, x, 2),
            "max_pool2d 3x3s2p1": lambda: fastnn.max_pool2d(x, 3, 2, 1)}, x.size


def batchnorm_cases(rng, elements):
    cases = {}
    for layout, shape in {"NCHW": (max(2, elements // (32 * 14 * 14)), 32, 14, 14),
                          "ND": (max(2, elements // 256), 256)}.items():
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        gamma, beta = np.ones(shape[1], np.float32), np.zeros(shape[1], np.float32)
        _, mean, invstd = fastnn.batch_norm(x, gamma, beta)
        rm, rv = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)
        cases[f"batch_norm {layout}"] = lambda x=x, g=gamma, b=beta: fastnn.batch_norm(x, g, b)
        cases[f"batch_norm_backward {layout}"] = (
            lambda x=x, g=gamma, dy=dy, m=mean, s=invstd: fastnn.batch_norm_backward(dy, x, g, m, s))
        cases[f"batch_norm eval {layout}"] = (
            lambda x=x, g=gamma, b=beta, rm=rm, rv=rv: fastnn.batch_norm(x, g, b, rm, rv, training=False))
    return cases, elements


def main():
    family = sys.argv[1]
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    make = pool_cases if family == "pool" else batchnorm_cases
    rng = np.random.default_rng(0)
    for backend in ("numba", "cython"):
        with fastnn.use_backend(backend):
            for elements in SIZES:
                cases, size = make(rng, elements)
                for name, fn in cases.items():
                    best = {1: np.inf, 2: np.inf}
                    for threads in (1, 2):  # untimed: Numba compiles or loads its cache
                        fastnn.set_num_threads(threads)
                        fn()
                    for _ in range(repeats):
                        for threads in (1, 2):
                            fastnn.set_num_threads(threads)
                            start = time.perf_counter()
                            fn()
                            best[threads] = min(best[threads], time.perf_counter() - start)
                    print(f"{backend:6s} {name:26s} {size:8d}  1 thread {best[1] * 1e6:8.1f} us  "
                          f"2 threads {best[2] * 1e6:8.1f} us  ratio {best[2] / best[1]:.2f}", flush=True)


if __name__ == "__main__":
    main()
