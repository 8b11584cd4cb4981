"""Every buffer the dispatcher hands a kernel: the call's outputs and its scratch workspace.

Outputs are fresh arrays, or the user's `out=` when the kernel may write into it directly
(C-contiguous, overlapping no input, or exactly the input of an elementwise op: NumPy's in-place
rule); any other `out=` gets a fresh array that is copied into it after the call.

Workspaces are reused across calls, one per Python thread (kernels release the GIL, so threads call
at once), because a fresh large buffer costs a page fault per 4 KiB page on first touch (~2% of a
3x3 convolution step measured with perf); buffers above KEEP_BYTES are not kept.
"""
import threading

import numpy as np

KEEP_BYTES = 64 << 20
_local = threading.local()


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
        return [None if first is None else np.empty(first, dtype)]
    if out is not None and first is not None and writable_directly(out, inputs, elementwise):
        arrays = [out]
    else:
        arrays = [None if first is None else np.empty(first, dtype if type(dtype) is not tuple else dtype[0])]
    if len(shapes) > 1:  # one loop per call only where there are more outputs
        if type(dtype) is not tuple:
            arrays += [None if shape is None else np.empty(shape, dtype) for shape in shapes[1:]]
        else:
            arrays += [None if shape is None else np.empty(shape, d) for shape, d in zip(shapes[1:], dtype[1:])]
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
