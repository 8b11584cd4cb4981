"""Pooling with torch's options against the same pooling without them, and torch: min/median of
ROUNDS interleaved calls in one process, float32, public functions (fresh outputs, as the bench).
One backend per process: Numba's TBB workers and OpenMP's spin after a parallel region and steal
each other's cores when interleaved.

    cd bench && python probes/pool_options.py numba [ROUNDS] [THREADS]
    cd bench && python probes/pool_options.py cython [ROUNDS] [THREADS]
"""
import sys
import time

import numpy as np
import torch

import fastnn

BACKEND = sys.argv[1] if len(sys.argv) > 1 else "cython"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 30
THREADS = int(sys.argv[3]) if len(sys.argv) > 3 else 1
aten = torch.ops.aten


def _interleave(name, calls):
    for f in calls.values():  # compile, warm the caches
        f()
        f()
    times = {k: [] for k in calls}
    for _ in range(ROUNDS):
        for k, f in calls.items():
            started = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - started)
    cells = "  ".join(f"{k} {1e3 * min(v):7.3f}/{1e3 * np.median(v):7.3f}" for k, v in times.items())
    print(f"{name:48s} {cells}", flush=True)


def _case(op, shape, torch_fn, **kwargs):
    """fastnn's forward or backward (op ends with _backward) and torch's, on one input."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    forward = op.removesuffix("_backward")
    y = getattr(fastnn, forward)(x, **kwargs)
    dy = rng.standard_normal((y[0] if isinstance(y, tuple) else y).shape, dtype=np.float32)
    kwargs = {k: v for k, v in kwargs.items() if k != "return_indices" or op == forward}
    args = (x,) if op == forward else (dy, x)
    calls = {BACKEND: lambda: getattr(fastnn, op)(*args, **kwargs)}
    if torch_fn is not None:
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        calls["torch"] = lambda: torch_fn(xt, dyt)
    return calls


def main():
    fastnn.set_backend(BACKEND)
    fastnn.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    print(f"{BACKEND}: ms min/median of {ROUNDS} interleaved rounds, float32, {THREADS} thread(s)")
    for shape, k, s in (((32, 64, 56, 56), 3, 2), ((32, 64, 57, 57), 2, 2)):
        for ceil in (False, True):
            kw = dict(kernel_size=k, stride=s, ceil_mode=ceil)
            _interleave(f"max fwd {shape} k{k}s{s} ceil={ceil}", _case(
                "max_pool2d", shape, lambda x, dy, c=ceil: aten.max_pool2d_with_indices(x, [k, k], [s, s], [0, 0],
                                                                                           [1, 1], c), **kw))
            _interleave(f"max bwd {shape} k{k}s{s} ceil={ceil}", _case(
                "max_pool2d_backward", shape, lambda x, dy, c=ceil: aten.max_pool2d_with_indices_backward(
                    dy, x, [k, k], [s, s], [0, 0], [1, 1], c,
                    aten.max_pool2d_with_indices(x, [k, k], [s, s], [0, 0], [1, 1], c)[1]), **kw))
    for shape, k, s, p in (((32, 64, 56, 56), 3, 2, 1), ((32, 64, 57, 57), 2, 2, 0)):
        for ceil, cip in ((False, True), (True, True), (True, False)):
            kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip)
            _interleave(f"avg fwd {shape} k{k}s{s}p{p} ceil={ceil} cip={cip}", _case(
                "avg_pool2d", shape, lambda x, dy, c=ceil, i=cip: aten.avg_pool2d(x, [k, k], [s, s], [p, p], c, i),
                **kw))
            _interleave(f"avg bwd {shape} k{k}s{s}p{p} ceil={ceil} cip={cip}", _case(
                "avg_pool2d_backward", shape, lambda x, dy, c=ceil, i=cip: aten.avg_pool2d_backward(
                    dy, x, [k, k], [s, s], [p, p], c, i, None), **kw))
    for indices in (False, True):
        _interleave(f"max fwd (32, 64, 56, 56) k3s2p1 return_indices={indices}", _case(
            "max_pool2d", (32, 64, 56, 56), lambda x, dy: aten.max_pool2d_with_indices(x, [3, 3], [2, 2], [1, 1]),
            kernel_size=3, stride=2, padding=1, return_indices=indices))
    for d in (1, 2):
        _interleave(f"max fwd (16, 64, 28, 28) k3s1p1 dilation={d}", _case(
            "max_pool2d", (16, 64, 28, 28), lambda x, dy: aten.max_pool2d_with_indices(x, [3, 3], [1, 1], [1, 1],
                                                                                       [d, d]),
            kernel_size=3, stride=1, padding=1, dilation=d))
        _interleave(f"max bwd (16, 64, 28, 28) k3s1p1 dilation={d}", _case(
            "max_pool2d_backward", (16, 64, 28, 28), None, kernel_size=3, stride=1, padding=1, dilation=d))


if __name__ == "__main__":
    main()
