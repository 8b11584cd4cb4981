"""Running one workload for one contender: availability (skip reasons), the untimed warm-up,
the correctness flag against the NumPy reference, and the peak extra memory of one call."""
import gc
import importlib
import numbers
import re

import numpy as np
import pytest

import fastnn
from fastnn import _ops

try:
    import torch
except ImportError:  # torch is optional: its contenders are skipped
    torch = None


class Reference:
    """Op namespace running fastnn's public functions on the "numpy" backend, whose kernels are
    `fastnn.reference.<family>.<op>`: the NumPy baseline (the dispatcher adds a few microseconds)."""

    def __getattr__(self, op):
        if op not in _ops.FAMILY_OF or _ops.kernel(op, "numpy") is None:
            raise AttributeError(f"fastnn.reference has no {op}")
        public = getattr(fastnn, op)

        def run(*args, **kwargs):
            with fastnn.use_backend("numpy"):
                return public(*args, **kwargs)
        return run


REFERENCE = Reference()


def skip_reason(workload, backend):
    """Why `backend` cannot run `workload` here, or None."""
    if backend == "torch":
        if workload.torch is None:
            return "no PyTorch version of this workload"
        return None if torch is not None else "torch is not importable"
    if backend not in fastnn.available_backends():
        return f"backend {backend} is not available (available: {fastnn.available_backends()})"
    for op in workload.ops:
        if op not in _ops.FAMILY_OF:
            return f"{op} is not in fastnn's op table yet"
        if _ops.kernel(op, "numpy") is None:
            return f"{op} is not implemented yet (no reference)"
        if _ops.kernel(op, backend) is None:
            return f"the {backend} backend has no {op} kernel yet"
        if backend != "numpy" and _ops.FAMILY_OF[op] != "optim" and not hasattr(fastnn, op):
            return f"fastnn.{op} is not public yet"
    return None


def contender(workload, backend, inp):
    """A zero-argument function running `workload` on `inp` for `backend` (inside its use_backend)."""
    if backend == "torch":
        return workload.torch(torch, inp)
    if workload.stateful is not None:
        try:
            return workload.stateful(inp)
        except (ImportError, AttributeError) as error:  # fastnn.nn / fastnn.optim not landed yet
            pytest.skip(f"not implemented yet: {error}")
    namespace = REFERENCE if backend == "numpy" else fastnn
    return lambda: workload.run(namespace, inp)


def snapshot(result):
    """The result as a flat list of float64-comparable numpy arrays, copied (later calls may overwrite it)."""
    if isinstance(result, dict):
        result = [result[k] for k in sorted(result)]
    if isinstance(result, (tuple, list)):
        return [a for item in result for a in snapshot(item)]
    if result is None:
        return []
    if isinstance(result, numbers.Number):
        return [np.array(result)]
    return [np.array(result, copy=True)]


def as_numpy(workload, result):
    """torch results -> numpy, in the layout of the workload's own result."""
    if workload.torch_result is not None:
        return workload.torch_result(result)
    items = result if isinstance(result, (tuple, list)) else (result,)
    return [np.asarray(t.detach().numpy()) if torch is not None and isinstance(t, torch.Tensor) else t
            for t in items]


def check(result, reference, tol):
    """(all close?, worst relative error) for float32 results: |a-b| <= atol*max|ref| + rtol*|ref|."""
    if len(result) != len(reference):
        return False, float("inf")
    rtol, atol = tol
    worst = 0.0
    ok = True
    for got, want in zip(result, reference):
        if got.shape != want.shape:
            return False, float("inf")
        got, want = got.astype(np.float64), want.astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
        ok &= bool(np.allclose(got, want, rtol=rtol, atol=atol * scale, equal_nan=True))
        if want.size:
            worst = max(worst, float(np.max(np.abs(got - want), initial=0.0)) / scale)
    return ok, worst


def _status_kib(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))


def _drop_kept_buffers():
    """fastnn keeps one scratch buffer per thread, and dropped outputs' blocks, across calls: give
    them back, so the measured call pays for its workspace and outputs as a first call does (torch
    allocates its own per call)."""
    try:
        release = importlib.import_module("fastnn._workspace").release_kept
    except (ImportError, AttributeError):
        return
    release()


def peak_extra_bytes(fn):
    """Peak resident memory that one call of `fn` adds, its result included (Linux): the peak-RSS
    counter (VmHWM) is reset to the current RSS just before the call and read after it. Run with a
    fixed glibc mmap threshold (run.py's memory pass), so every large buffer is a fresh mapping
    whose pages count when touched, rather than heap memory a previous call left resident."""
    gc.collect()
    _drop_kept_buffers()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    result = fn()
    peak = _status_kib("VmHWM")
    del result
    return max(0, peak - before) * 1024
