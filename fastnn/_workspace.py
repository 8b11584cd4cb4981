"""Every buffer the dispatcher hands a kernel: the call's outputs and its scratch workspace.

Outputs are fresh arrays, or the user's `out=` when the kernel may write into it directly
(C-contiguous, overlapping no input, or exactly the input of an elementwise op: NumPy's in-place
rule); any other `out=` gets a fresh array that is copied into it after the call.

Workspaces are reused across calls, one per Python thread (kernels release the GIL, so threads call
at once), because a fresh large buffer costs a page fault per 4 KiB page on first touch (~2% of a
3x3 convolution step measured with perf); buffers above KEEP_BYTES are not kept.

Outputs of at least CACHED_OUTPUT_BYTES take their memory from kernels/cython/_buffers.pyx's cache:
when the caller drops such an array its block is kept (FASTNN_BUFFER_CACHE_MB, 256 MiB by default,
0 to keep none) for the next output of about its size, already mapped, where glibc may have given
it back to the system and the next output would page-fault on every page (relu's forward and
backward on 8 MiB arrays, 2 threads: 1.85 ms with ~1000 page faults, 0.2-0.3 ms with reused
outputs).
"""
import math
import os
import threading

import numpy as np

KEEP_BYTES = 64 << 20
CACHED_OUTPUT_BYTES = 1 << 20  # _buffers.pyx's MIN_BLOCK: smaller blocks stay mapped in glibc's heap
_local = threading.local()


def _cache_limit():
    text = os.environ.get("FASTNN_BUFFER_CACHE_MB", "256")
    try:
        megabytes = float(text)
    except ValueError:
        raise ValueError(f"FASTNN_BUFFER_CACHE_MB must be a number of MiB, got {text!r}") from None
    if not 0 <= megabytes < float("inf"):
        raise ValueError(f"FASTNN_BUFFER_CACHE_MB must be a finite number >= 0, got {text!r}")
    return int(megabytes * (1 << 20))


_CACHE_LIMIT = _cache_limit()  # checked at import; the module is loaded at the first large output
_cache = []  # [the _buffers module, or None without compiled kernels]


def buffer_cache():
    """kernels/cython/_buffers.pyx with its limit set, or None (no compiled kernels). Loaded on first
    use: `import fastnn` loads no kernels."""
    if not _cache:
        try:
            from .kernels.cython import _buffers
            _buffers.set_limit(_CACHE_LIMIT)
        except ImportError:
            _buffers = None
        _cache.append(_buffers)
    return _cache[0]


def release_kept():
    """Give back what calls keep for later ones: this thread's scratch buffer and the buffer cache's
    blocks (a memory measurement then counts one call's outputs and workspace as a first call's)."""
    _local.__dict__.pop("buf", None)
    cache = buffer_cache()
    if cache is not None:
        cache.set_limit(0)
        cache.set_limit(_CACHE_LIMIT)


def empty(shape, dtype):
    """A fresh output array: from the buffer cache when large (see the module docstring)."""
    dtype = np.dtype(dtype)
    return _fresh(shape, dtype, math.prod(shape) * dtype.itemsize)


def empty_like(a):
    """empty(a.shape, a.dtype) for an ndarray a (its size known: no product over the shape)."""
    return _fresh(a.shape, a.dtype, a.nbytes)


def _fresh(shape, dtype, nbytes):
    if nbytes >= CACHED_OUTPUT_BYTES:
        cache = buffer_cache()
        if cache is not None:
            return cache.empty(shape, dtype)
    return np.empty(shape, dtype)


def _same_view(a, b):
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.shape == b.shape
            and a.strides == b.strides and a.dtype == b.dtype)


def writable_directly(out, inputs, elementwise):
    """Whether a kernel may write into `out` as it reads `inputs` (see the module docstring)."""
    if not out.flags.c_contiguous:
        return False
    for a in inputs:
        if isinstance(a, np.ndarray) and np.may_share_memory(out, a):
            if not (elementwise and _same_view(out, a)):
                return False
    return True


def outputs(shapes, dtype, out, inputs, elementwise):
    """The kernel's output arrays for `shapes` (None: an output not computed) of `dtype` (one, or a
    tuple of one per output); the first one is `out` when the kernel may write into it directly.
    No shapes: an op that only updates its inputs in place (the optimizer steps)."""
    if not shapes:
        return []
    first = shapes[0]
    if out is None and len(shapes) == 1 and type(dtype) is not tuple:  # the usual call: ~0.15 us less
        return [None if first is None else empty(first, dtype)]
    if out is not None and first is not None and writable_directly(out, inputs, elementwise):
        arrays = [out]
    else:
        arrays = [None if first is None else empty(first, dtype if type(dtype) is not tuple else dtype[0])]
    if len(shapes) > 1:  # one loop per call only where there are more outputs
        if type(dtype) is not tuple:
            arrays += [None if shape is None else empty(shape, dtype) for shape in shapes[1:]]
        else:
            arrays += [None if shape is None else empty(shape, d) for shape, d in zip(shapes[1:], dtype[1:])]
    return arrays


def scratch(elements, dtype):
    """An uninitialized 1-D array of `elements` (at least 1) of dtype, reused by this thread's
    later calls."""
    itemsize = np.dtype(dtype).itemsize
    nbytes = max(int(elements), 1) * itemsize
    buf = getattr(_local, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(nbytes, np.uint8)
        if nbytes <= KEEP_BYTES:
            _local.buf = buf
    return buf[:nbytes].view(dtype)
