"""Dependable on every machine: sizes past 32 bits, bounded workspaces. Both compiled backends; calls
that used to crash the interpreter run in a child process."""
import importlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn
from conftest import COMPILED
from opinfo import OPS, check_op

THREADS = sorted({1, min(2, fastnn._threads._MAX_THREADS)})


@pytest.fixture(autouse=True)
def _restore_threads():
    previous = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(previous)


# The child's peak resident memory: VmHWM belongs to its own address space (getrusage's ru_maxrss
# keeps the parent's from before exec).
_PEAK = """
def _peak_mib():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except OSError:  # no procfs: not measured
        return 0
"""


def _isolated(code, timeout=600):
    """Run `code` in a fresh interpreter (a crash fails the test instead of ending the session); its
    last stdout line must be "ok"."""
    result = subprocess.run([sys.executable, "-c", _PEAK + textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
    assert result.stdout.strip().splitlines()[-1:] == ["ok"], result.stdout + result.stderr[-3000:]


# --- convolution workspaces and sizes past 2^31 ------------------------------------------------
# x (2, 1, 1, 1), w (1, 1, 32, 32), padding 527: a (2, 1, 1024, 1024) output whose im2col columns would
# be K * P = 2^30 values per image (threads * K * P = 2^31 with 2 threads: the Cython workspace size
# wrapped to a negative int and the call crashed; Numba allocated 8 GiB). The output is x[n] times the
# flipped kernel in its 32x32 corner at rows and columns 496..527, zero elsewhere, so the exact results
# are cheap; peak memory must stay near the arrays' own size (a few MiB of columns per thread).

_HUGE_PADDING = """
    import numpy as np
    import fastnn

    fastnn.set_num_threads({threads})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 1, 1)).astype(np.float32)
    w = rng.standard_normal((1, 1, 32, 32)).astype(np.float32)
    with fastnn.use_backend("{backend}"):
        y = fastnn.conv2d(x, w, padding=527)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx, dw, db = fastnn.conv2d_backward(dy, x, w, padding=527)
    window = (slice(None), 0, slice(496, 528), slice(496, 528))
    flipped = w[0, 0, ::-1, ::-1].astype(np.float64)
    expected = np.zeros(y.shape)
    expected[window] = x[:, 0, 0, 0, None, None] * flipped
    assert y.shape == (2, 1, 1024, 1024) and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    window_dy = dy[window].astype(np.float64)
    np.testing.assert_allclose(dx[:, 0, 0, 0], (window_dy * flipped).sum((1, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw[0, 0], (window_dy[:, ::-1, ::-1] * x[:, 0, 0, 0, None, None]).sum(0),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(), rtol=1e-4)
    peak_mib = _peak_mib()
    assert peak_mib < 600, f"peak memory {{peak_mib:.0f}} MiB"
    print("ok")
"""


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("backend", COMPILED)
def test_conv_huge_padding_bounded_workspace(backend, threads):
    _isolated(_HUGE_PADDING.format(backend=backend, threads=threads))


# A huge vertical padding and stride with few channels and a 7x7 kernel: the Cython direct kernel's
# padded copy, C * (H + 2 ph) * Wq = 2^25 * 70 values, overflowed an int (a crash); a padding beyond
# the kernel now takes im2col. Only output row 1 sees x (its window starts at row 0): it is the
# unpadded convolution's first row.
_HUGE_STRIDE = """
    import numpy as np
    import fastnn

    fastnn.set_num_threads({threads})
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1, 8, 40)).astype(np.float32)
    w = rng.standard_normal((4, 1, 7, 7)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    big = 1 << 24
    with fastnn.use_backend("{backend}"):
        y = fastnn.conv2d(x, w, b, stride=(big, 1), padding=(big, 3))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx, dw, db = fastnn.conv2d_backward(dy, x, w, stride=(big, 1), padding=(big, 3))
    assert y.shape == (2, 4, 3, 40), y.shape
    dy_small = np.zeros((2, 4, 2, 40), np.float32)
    dy_small[:, :, 0] = dy[:, :, 1]
    with fastnn.use_backend("numpy"):
        row = fastnn.conv2d(x, w, b, padding=(0, 3))[:, :, 0]
        edx, edw, _ = fastnn.conv2d_backward(dy_small, x, w, padding=(0, 3))
    np.testing.assert_allclose(y[:, :, 1], row, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y[:, :, [0, 2]], np.broadcast_to(b[:, None, None], (2, 4, 2, 40)), rtol=1e-6)
    np.testing.assert_allclose(dx, edx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, edw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, dy.astype(np.float64).sum((0, 2, 3)), rtol=1e-4, atol=1e-4)
    peak_mib = _peak_mib()
    assert peak_mib < 600, f"peak memory {{peak_mib:.0f}} MiB"
    print("ok")
"""


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("backend", COMPILED)
def test_conv_huge_stride_and_padding(backend, threads):
    _isolated(_HUGE_STRIDE.format(backend=backend, threads=threads))


@pytest.mark.parametrize("budget", [1, 200, 5000], ids=lambda b: f"{b}B")
@pytest.mark.parametrize("backend", COMPILED)
def test_conv_column_blocks(backend, budget, monkeypatch):
    """Column blocks of any size, down to one pixel (blocks that start and end mid-row): every conv sample
    of the OpInfo table within the tolerance rule."""
    module = importlib.import_module(f"fastnn.kernels.{backend}.conv")
    monkeypatch.setattr(module, "COL_BLOCK_BYTES", budget)
    monkeypatch.setattr(module, "_fast_paths_enabled", False, raising=False)  # Cython: im2col everywhere
    for op in ("conv2d", "conv2d_relu", "conv2d_backward"):
        for dtype in (np.float32, np.float64) if budget > 1 else (np.float64,):  # (one-pixel blocks: slow)
            for sample in OPS[op].samples(np.random.default_rng(0), dtype):
                for threads in THREADS if budget > 1 else (1,):
                    fastnn.set_num_threads(threads)
                    with fastnn.use_backend(backend):
                        actual = getattr(fastnn, op)(*sample.args, **sample.kwargs)
                    check_op(op, actual, sample.args, sample.kwargs, dtype, f"{op}[{backend}, {budget} B] {sample!r}")
