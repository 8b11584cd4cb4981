"""Where a second thread starts to pay for conv2d and conv2d_backward (the grain table's conv row):
3x3 float32 convolutions of growing size, 1 vs 2 threads interleaved, min of 200 calls each.

    python bench/probes/conv_grain.py
"""
import time

import numpy as np

import fastnn
from fastnn import _grain
rng = np.random.default_rng(0)
# (N, C, F, HW, k): multiply-adds N*F*HW^2*C*k^2 (padding 1 keeps HW)
cases = [(2, 8, 8, 8, 3), (4, 8, 8, 8, 3), (4, 16, 16, 8, 3), (8, 16, 16, 8, 3), (8, 16, 16, 16, 3), (8, 32, 32, 16, 3), (16, 32, 32, 16, 3)]
for backend in ("numba", "cython"):
    for n, c, f, hw, k in cases:
        x = rng.standard_normal((n, c, hw, hw), dtype=np.float32); w = rng.standard_normal((f, c, k, k), dtype=np.float32)
        dy = rng.standard_normal((n, f, hw, hw), dtype=np.float32)
        macs = n * f * hw * hw * c * k * k
        res = {}
        for th in (1, 2):
            _grain.GRAIN["conv2d"] = _grain.Grain(1, "", ""); _grain.GRAIN["conv2d_backward"] = _grain.Grain(1, "", "")
            fastnn.set_num_threads(th)
            with fastnn.use_backend(backend):
                fastnn.conv2d(x, w, None, 1, 1); fastnn.conv2d_backward(dy, x, w, 1, 1)
        best = {1: [1e9, 1e9], 2: [1e9, 1e9]}
        for r in range(200):
            for th in (1, 2):
                fastnn.set_num_threads(th)
                with fastnn.use_backend(backend):
                    t0 = time.perf_counter(); fastnn.conv2d(x, w, None, 1, 1); t1 = time.perf_counter()
                    fastnn.conv2d_backward(dy, x, w, 1, 1); t2 = time.perf_counter()
                best[th][0] = min(best[th][0], t1 - t0); best[th][1] = min(best[th][1], t2 - t1)
        print(f"{backend:6} {(n,c,f,hw,k)} MACs 2^{np.log2(macs):.1f}: fwd 1t {best[1][0]*1e6:7.0f} 2t {best[2][0]*1e6:7.0f} us | bwd 1t {best[1][1]*1e6:7.0f} 2t {best[2][1]*1e6:7.0f} us", flush=True)
