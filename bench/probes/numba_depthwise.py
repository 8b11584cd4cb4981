"""Numba's depthwise loops vs its GEMM path (the path depthwise layers took before) vs PyTorch, on the
benchmark's gdw and gdws2 layers: forward, and forward + backward (dx, dw, db), 2 threads, interleaved
in one process, min of ROUNDS calls each, outputs and workspaces preallocated (the kernels are called
directly; the GEMM path by making `_depthwise_fits` say no). A short sleep before each call lets the
other contender's spinning threads settle (torch's OpenMP and Numba's TBB workers).

    python bench/probes/numba_depthwise.py [ROUNDS] [float32|float64]
"""
import sys
import time

import numba
import numpy as np
import torch
import torch.nn.functional as F

from fastnn.kernels.numba import conv as K

THREADS = 2
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 60
DTYPE = np.dtype(sys.argv[2] if len(sys.argv) > 2 else "float32")
LAYERS = {"gdw": ((32, 64, 32, 32), (64, 1, 3, 3), 1, 1), "gdws2": ((32, 128, 28, 28), (128, 1, 3, 3), 2, 1)}
FITS = K._depthwise_fits


def _numba(args, bwd_args, direct, backward):
    def fits(*a):
        return direct and FITS(*a)

    K._depthwise_fits = fits
    ws_fwd = np.empty(K.conv2d_workspace(*args), DTYPE)
    ws_bwd = np.empty(K.conv2d_backward_workspace(*bwd_args), DTYPE)
    K._depthwise_fits = FITS

    def call():
        K._depthwise_fits = fits
        K.conv2d(*args, workspace=ws_fwd)
        if backward:
            K.conv2d_backward(*bwd_args, workspace=ws_bwd)
        K._depthwise_fits = FITS
    return call


def contenders(rng, x_shape, w_shape, stride, padding):
    x = rng.standard_normal(x_shape).astype(DTYPE)
    w = (rng.standard_normal(w_shape) / 3).astype(DTYPE)
    b = rng.standard_normal(w_shape[0]).astype(DTYPE)
    groups, ho = x_shape[1], (x_shape[2] + 2 * padding - w_shape[2]) // stride + 1
    y = np.empty((x_shape[0], w_shape[0], ho, ho), DTYPE)
    dy = rng.standard_normal(y.shape).astype(DTYPE)
    dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty(w_shape[0], DTYPE)
    s, p = stride, padding
    args = (x, w, b, y, s, s, p, p, 1, 1, groups, THREADS)
    bwd_args = (dy, x, w, dx, dw, db, s, s, p, p, 1, 1, groups, True, THREADS)
    tx, tw, tb = (torch.from_numpy(a).requires_grad_(True) for a in (x, w, b))
    tdy = torch.from_numpy(dy)

    def torch_fwd():
        with torch.no_grad():
            F.conv2d(tx, tw, tb, stride=s, padding=p, groups=groups)

    def torch_fwd_bwd():
        tx.grad = tw.grad = tb.grad = None
        F.conv2d(tx, tw, tb, stride=s, padding=p, groups=groups).backward(tdy)
    return {"gemm fwd": _numba(args, bwd_args, False, False), "direct fwd": _numba(args, bwd_args, True, False),
            "torch fwd": torch_fwd, "gemm fwd+bwd": _numba(args, bwd_args, False, True),
            "direct fwd+bwd": _numba(args, bwd_args, True, True), "torch fwd+bwd": torch_fwd_bwd}


def main():
    numba.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    for name, layer in LAYERS.items():
        calls = contenders(rng, *layer)
        for call in calls.values():
            call()
        best = dict.fromkeys(calls, np.inf)
        for _ in range(ROUNDS):
            for key, call in calls.items():
                time.sleep(0.003)
                started = time.perf_counter()
                call()
                best[key] = min(best[key], time.perf_counter() - started)
        print(name, DTYPE.name, "  ".join(f"{k} {v * 1e3:.3f} ms" for k, v in best.items()))
        for what in ("fwd", "fwd+bwd"):
            gemm, direct, ref = best["gemm " + what], best["direct " + what], best["torch " + what]
            print(f"  {what}: gemm/direct {gemm / direct:.2f}x, direct/torch {direct / ref:.2f}x, "
                  f"gemm/torch {gemm / ref:.2f}x")


if __name__ == "__main__":
    main()
