"""Cython's weight gradient of ThreeLayerConvNet's stem (50 x 3 -> 32, 32x32, 7x7, padding 3,
input_grad=False): the direct kernel against im2col + GEMM, side by side, float32.

    cd bench && python probes/conv_stem_weight_grad.py
"""
import time

import numpy as np

import fastnn
from fastnn.kernels.cython import conv


def best_ms(fn, repeats=20):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 3, 7, 7)).astype(np.float32)
    dy = rng.standard_normal((50, 32, 32, 32)).astype(np.float32)

    def grad():
        with fastnn.use_backend("cython"):
            return fastnn.conv2d_backward(dy, x, w, 1, 3, input_grad=False)

    try:
        for _ in range(4):
            conv._fast_paths_enabled = True
            direct = best_ms(grad)
            conv._fast_paths_enabled = False
            gemm = best_ms(grad)
            print(f"direct {direct:.3f} ms   im2col + GEMM {gemm:.3f} ms")
    finally:
        conv._fast_paths_enabled = True


if __name__ == "__main__":
    main()
