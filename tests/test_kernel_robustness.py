"""Dependable on every machine: sizes past 32 bits, bounded workspaces, empty inputs, the GIL released
by every kernel, float64 GELU to 1e-12. Both compiled backends; calls that used to crash the interpreter
run in a child process."""
import importlib
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import scipy.special

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
# unpadded convolution's first row. With 2 channels in 2 groups (depthwise, 2 filters each) the
# depthwise loops' padded planes would be as tall: they take im2col too.
_HUGE_STRIDE = """
    import numpy as np
    import fastnn

    fastnn.set_num_threads({threads})
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, {channels}, 8, 40)).astype(np.float32)
    w = rng.standard_normal((4, 1, 7, 7)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    big = 1 << 24
    with fastnn.use_backend("{backend}"):
        y = fastnn.conv2d(x, w, b, stride=(big, 1), padding=(big, 3), groups={channels})
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx, dw, db = fastnn.conv2d_backward(dy, x, w, stride=(big, 1), padding=(big, 3), groups={channels})
    assert y.shape == (2, 4, 3, 40), y.shape
    dy_small = np.zeros((2, 4, 2, 40), np.float32)
    dy_small[:, :, 0] = dy[:, :, 1]
    with fastnn.use_backend("numpy"):
        row = fastnn.conv2d(x, w, b, padding=(0, 3), groups={channels})[:, :, 0]
        edx, edw, _ = fastnn.conv2d_backward(dy_small, x, w, padding=(0, 3), groups={channels})
    np.testing.assert_allclose(y[:, :, 1], row, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y[:, :, [0, 2]], np.broadcast_to(b[:, None, None], (2, 4, 2, 40)), rtol=1e-6)
    np.testing.assert_allclose(dx, edx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, edw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, dy.astype(np.float64).sum((0, 2, 3)), rtol=1e-4, atol=1e-4)
    peak_mib = _peak_mib()
    assert peak_mib < 600, f"peak memory {{peak_mib:.0f}} MiB"
    print("ok")
"""


@pytest.mark.parametrize("channels", [1, 2], ids=lambda c: f"c{c}")
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("backend", COMPILED)
def test_conv_huge_stride_and_padding(backend, threads, channels):
    _isolated(_HUGE_STRIDE.format(backend=backend, threads=threads, channels=channels))


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


# --- max pooling: window offsets past 2^24 ----------------------------------------------------

@pytest.mark.parametrize("backend", COMPILED)
def test_max_pool_backward_offsets_past_2_24(backend):
    """A 4099x4099 window holds 16,801,801 offsets: in float32 the odd ones past 2^24 are not
    representable (Cython kept the winner's offset in the data's dtype and sent the gradient elsewhere,
    possibly out of bounds)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 4099, 4100)).astype(np.float32)  # two windows: columns 0.., 1..
    x[0, 0, 4097, 0] = 10  # window 0's winner, at offset 4097 * 4099 = 16,793,603
    x[0, 0, 4097, 4099] = 9  # window 1's, at offset 4097 * 4099 + 4098
    dy = np.array([[[[1.5, -2.0]]]], np.float32)
    with fastnn.use_backend(backend):
        dx = fastnn.max_pool2d_backward(dy, x, 4099, stride=1)
    expected = np.zeros_like(x)
    expected[0, 0, 4097, 0] = 1.5
    expected[0, 0, 4097, 4099] = -2.0
    np.testing.assert_array_equal(dx, expected)


# --- empty inputs -------------------------------------------------------------------------------
# Every public op with a zero-size dimension (batch, channels, features, D_out, plane): the result
# NumPy's reference gives (empty or zero arrays, zeros + bias), or the same exception type.

def _r(*shape):
    return np.random.default_rng(sum(shape) + len(shape)).standard_normal(shape)


def _p(*shape):
    return np.abs(_r(*shape)) + 0.5


def _pool(k, s=None, p=0):
    return {"kernel_size": k, "stride": s, "padding": p}


# (op, arguments as the OpInfo samples pass them, keyword arguments)
EMPTY_CALLS = [
    ("relu", lambda: (_r(0, 4),), {}),
    ("gelu", lambda: (_r(4, 0),), {}),
    ("relu_backward", lambda: (_r(0, 4), _r(0, 4)), {}),
    ("prelu", lambda: (_r(2, 0, 3), _r(0)), {}),
    ("prelu", lambda: (_r(0, 3, 4), _r(3)), {}),
    ("prelu", lambda: (_r(2, 3, 0), _r(3)), {}),
    ("prelu_backward", lambda: (_r(2, 0, 3), _r(2, 0, 3), _r(0)), {}),
    ("prelu_backward", lambda: (_r(0, 3, 4), _r(0, 3, 4), _r(3)), {}),
    ("prelu_backward", lambda: (_r(2, 3, 0), _r(2, 3, 0), _r(3)), {}),
    ("maxout", lambda: (_r(2, 0), 2), {}),
    ("maxout", lambda: (_r(0, 4), 2), {}),
    ("maxout", lambda: (_r(2, 4, 0, 3), 2), {}),
    ("maxout_backward", lambda: (_r(0, 2), _r(0, 4), 2), {}),
    ("maxout_backward", lambda: (_r(2, 2, 0), _r(2, 4, 0), 2), {}),
    ("linear", lambda: (_r(0, 5), _r(5, 3), None), {}),
    ("linear", lambda: (_r(3, 0), _r(0, 4), None), {}),  # no input features: zeros (Cython raised IndexError)
    ("linear", lambda: (_r(3, 0), _r(0, 4), _r(4)), {}),  # zeros + bias
    ("linear", lambda: (_r(3, 0, 4), _r(0, 2), None), {}),
    ("linear", lambda: (_r(0, 0), _r(0, 0), None), {}),
    ("linear", lambda: (_r(3, 5), _r(5, 0), None), {}),
    ("linear", lambda: (_r(3, 5), _r(5, 0), _r(0)), {}),
    ("linear_backward", lambda: (_r(0, 3), _r(0, 5), _r(5, 3)), {}),
    ("linear_backward", lambda: (_r(3, 4), _r(3, 0), _r(0, 4)), {}),
    ("linear_backward", lambda: (_r(3, 0), _r(3, 5), _r(5, 0)), {}),
    ("linear_backward", lambda: (_r(0, 0), _r(0, 0), _r(0, 0)), {}),
    ("conv2d", lambda: (_r(0, 3, 5, 5), _r(4, 3, 3, 3), None), {}),
    ("conv2d", lambda: (_r(1, 1, 0, 5), _r(2, 1, 1, 1), None), {"padding": 1}),  # an empty plane: padding only
    ("conv2d", lambda: (_r(1, 1, 0, 0), _r(2, 1, 1, 1), _r(2)), {"padding": 1}),
    ("conv2d", lambda: (_r(2, 8, 0, 0), _r(16, 8, 3, 3), None), {"padding": 2}),  # (the Winograd shapes)
    ("conv2d", lambda: (_r(2, 3, 0, 0), _r(32, 3, 7, 7), None), {"padding": 6}),  # (the direct kernel's)
    ("conv2d", lambda: (np.zeros((2 ** 32 + 1, 1, 0, 0)), _r(2, 1, 1, 1), None), {"padding": 1}),  # MemoryError
    ("conv2d_relu", lambda: (_r(1, 1, 0, 5), _r(2, 1, 1, 1), None), {"padding": 1}),
    ("conv2d_backward", lambda: (_r(1, 2, 2, 7), _r(1, 1, 0, 5), _r(2, 1, 1, 1)), {"padding": 1}),
    ("conv2d_backward", lambda: (_r(2, 16, 2, 2), _r(2, 8, 0, 0), _r(16, 8, 3, 3)), {"padding": 2}),
    ("conv2d_backward", lambda: (_r(2, 32, 8, 8), _r(2, 3, 0, 0), _r(32, 3, 7, 7)), {"padding": 7}),
    ("conv2d_backward", lambda: (_r(0, 4, 3, 3), _r(0, 3, 5, 5), _r(4, 3, 3, 3)), {}),
    ("max_pool2d", lambda: (_r(0, 3, 4, 4),), _pool(2)),
    ("max_pool2d", lambda: (_r(2, 0, 5, 5),), _pool(3, 2, 1)),
    ("max_pool2d_backward", lambda: (_r(2, 0, 2, 2), _r(2, 0, 4, 4)), _pool(2)),
    ("max_pool2d_backward", lambda: (_r(0, 3, 3, 3), _r(0, 3, 5, 5)), _pool(3, 2, 1)),
    ("max_pool2d_backward", lambda: (_r(2, 0, 5, 5), _r(2, 0, 5, 5)), _pool(3, 1, 1)),
    ("avg_pool2d", lambda: (_r(2, 0, 5, 5),), _pool(3, 1, 1)),
    ("avg_pool2d_backward", lambda: (_r(0, 3, 2, 2), _r(0, 3, 4, 4)), _pool(2)),
    ("batch_norm", lambda: (_r(0, 4), _r(4), _r(4), _r(4), _p(4)), {"training": False}),
    ("batch_norm", lambda: (_r(4, 0), _r(0), _r(0), None, None), {"training": True}),
    ("batch_norm", lambda: (_r(2, 0, 3, 3), None, None, None, None), {"training": True}),
    ("batch_norm", lambda: (_r(2, 3, 0, 4), _r(3), _r(3), _r(3), _p(3)), {"training": False}),
    ("batch_norm", lambda: (_r(2, 3, 0, 4), _r(3), _r(3), None, None), {"training": True}),  # ValueError
    ("batch_norm_relu", lambda: (_r(0, 3, 2, 2), _r(3), _r(3), _r(3), _p(3)), {"training": False}),
    ("batch_norm_backward", lambda: (_r(0, 4), _r(0, 4), _r(4), _r(4), _p(4)), {"training": False}),
    ("batch_norm_backward", lambda: (_r(4, 0), _r(4, 0), _r(0), _r(0), _r(0)), {"training": True}),
    ("batch_norm_relu_backward", lambda: (_r(2, 0, 3, 3),) * 3 + (_r(0), _r(0), _r(0)), {"training": True}),
    ("softmax_cross_entropy", lambda: (_r(0, 3), np.zeros(0, int)), {}),  # ValueError (no mean)
    ("hinge_loss", lambda: (_r(2, 0), np.zeros(2, int)), {}),  # ValueError (labels out of range)
    ("sgd_step", lambda: (_r(0, 3), _r(0, 3), _r(0, 3)), {"lr": 0.1, "momentum": 0.9}),
    ("adam_step", lambda: (_r(0), _r(0), _r(0), _r(0), 1), {"lr": 0.1}),
]


def _outcome(op, args, kwargs):
    try:
        return getattr(fastnn, op)(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 (the exception type is the result compared)
        return type(e)


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("op, make, kwargs", EMPTY_CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(EMPTY_CALLS)])
def test_empty_inputs(op, make, kwargs, backend, dtype, threads):
    args = [a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in make()]
    with fastnn.use_backend("numpy"):
        expected = _outcome(op, args, kwargs)
    fastnn.set_num_threads(threads)
    with fastnn.use_backend(backend):
        actual = _outcome(op, args, kwargs)
    if isinstance(expected, type):
        assert actual is expected, f"{op}: expected {expected.__name__}, got {actual!r}"
    else:
        assert not isinstance(actual, type), f"{op}: raised {actual.__name__}"
        check_op(op, actual, args, kwargs, dtype, f"{op}[{backend}] {[getattr(a, 'shape', a) for a in args]}")


# --- the GIL ------------------------------------------------------------------------------------
# One long call per op family (tens to hundreds of ms, float64) runs in a thread while this thread
# counts: a kernel holding the GIL freezes it for the whole call. 1 thread runs the serial paths.

def _r64(*shape):
    return np.random.default_rng(len(shape)).standard_normal(shape)


def _bn_backward():  # 32 MiB arrays took 3.3 ms on 2 threads with dx's memory reused: 64 MiB
    x, dy, g = _r64(32, 64, 64, 64), _r64(32, 64, 64, 64), _r64(64)
    _, mean, invstd = fastnn.batch_norm(x, g, g)
    return lambda: fastnn.batch_norm_backward(dy, x, g, mean, invstd)


def _adam():
    p, g, m, v = _r64(8_000_000), _r64(8_000_000), _r64(8_000_000), np.abs(_r64(8_000_000))
    return lambda: fastnn.adam_step(p, g, m, v, 1, lr=1e-9)


# family: a function making the arrays and returning the call
FAMILY_CALLS = {
    "activations": lambda: (lambda x: lambda: fastnn.gelu(x))(_r64(16, 64, 64, 64)),
    "linear": lambda: (lambda a: lambda: fastnn.linear_backward(a, a, a))(_r64(1024, 1024)),
    "losses": lambda: (lambda z: lambda: fastnn.softmax_cross_entropy(z, np.zeros(8192, int)))(_r64(8192, 1000)),
    "conv": lambda: (lambda x, w, dy: lambda: fastnn.conv2d_backward(dy, x, w))(
        _r64(16, 32, 64, 64), _r64(32, 32, 5, 5), _r64(16, 32, 60, 60)),
    "pool": lambda: (lambda x, dy: lambda: fastnn.max_pool2d_backward(dy, x, 5, stride=1, padding=2))(
        _r64(16, 64, 64, 64), _r64(16, 64, 64, 64)),
    "batchnorm": _bn_backward,
    "optim": _adam,
}


def _longest_pause_during(call):
    """(call duration, longest gap between this thread's wake-ups while the call ran). This thread
    sleeps 0.2 ms between time stamps (a spinning one would slow the kernel's threads on 2 cores); each
    wake-up needs the GIL."""
    span = []

    def worker():
        start = time.perf_counter()
        call()
        span.extend((start, time.perf_counter()))

    thread = threading.Thread(target=worker)
    stamps = [time.perf_counter()]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # the call's own Python code hands the GIL over within 0.1 ms, not 5
    try:
        thread.start()
        while thread.is_alive():
            time.sleep(0.0002)
            stamps.append(time.perf_counter())
        thread.join()
    finally:
        sys.setswitchinterval(interval)
    start, end = span
    stamps = np.array(stamps + [time.perf_counter()])
    inside = stamps[(stamps >= start) & (stamps <= end)]
    edges = np.concatenate([[start], inside, [end]])
    return end - start, np.diff(edges).max()


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("family", sorted(FAMILY_CALLS))
@pytest.mark.serial  # measures the main thread's gaps during a call: other processes would widen them
def test_kernels_release_the_gil(family, backend, threads):
    """A call holding the GIL pauses the other thread for all of it, every time; one that releases it, for
    a scheduler slice at most (several ms on a loaded 2-core machine): the best of 10 tries is compared."""
    fastnn.set_num_threads(threads)
    tries = []
    with fastnn.use_backend(backend):
        call = FAMILY_CALLS[family]()
        call()  # compiles (Numba), warms caches
        for _ in range(10):
            duration, pause = _longest_pause_during(call)
            tries.append(f"{pause * 1e3:.1f} of {duration * 1e3:.1f} ms")
            assert duration > 0.004, f"{family} ran {duration * 1e3:.1f} ms: too short to tell"
            if pause < 0.5 * duration:
                return
    pytest.fail(f"{family}: another Python thread paused for most of each call (the GIL held): {tries}")


# --- float64 GELU to 1e-12 --------------------------------------------------------------------
# Oracles accurate to ~1e-13 relative, also where the result is subnormal: x Phi(x) from erfc where
# its argument's rounding costs little (x >= -5), else -exp(log(-x) + log Phi(x)), one rounding at the
# end; gelu' = Phi + x phi likewise, as -exp(log phi(x) + log(-x - Phi / phi)) for x < -5. An element
# passes within 1e-12 of the exact result plus two units of the last subnormal place (2^-1073: a
# subnormal result cannot be closer than half a unit).

def _exact_gelu(x):
    with np.errstate(all="ignore"):
        tail = -np.exp(np.log(-x) + scipy.special.log_ndtr(x))
        return np.where(x < -5, tail, 0.5 * x * scipy.special.erfc(-x / np.sqrt(2)))


def _exact_gelu_grad(dy, x):
    """dy * (Phi(x) + x phi(x)) and the magnitude of its summands, dy * (Phi(x) + |x| phi(x))."""
    with np.errstate(all="ignore"):
        log_phi = -0.5 * x * x - 0.5 * np.log(2 * np.pi)
        ratio = np.exp(scipy.special.log_ndtr(x) - log_phi)  # Phi / phi
        tail = -np.sign(dy) * np.exp(np.log(np.abs(dy)) + log_phi + np.log(-x - ratio))
        cdf, pdf = 0.5 * scipy.special.erfc(-x / np.sqrt(2)), np.exp(log_phi)
        exact = np.where(x < -5, tail, dy * (cdf + x * pdf))
        summands = np.abs(dy) * (cdf + np.abs(x) * pdf)
    return exact, summands


def _gelu_points():
    rng = np.random.default_rng(0)
    return np.concatenate([np.linspace(-40, 40, 800_001), rng.uniform(-40, 40, 200_000),
                           rng.standard_normal(200_000) * 3, rng.uniform(-39, -36, 100_000)])


def _assert_close_1e12(actual, exact, what, where=None):
    allowed = 1e-12 * np.abs(exact) + 2.0 ** -1073
    bad = ~(np.abs(actual - exact) <= allowed)
    if where is not None:
        bad &= where
    assert not bad.any(), (f"{what}: {bad.sum()} elements off by more than 1e-12 relative, worst "
                           f"{np.max(np.abs(actual - exact)[bad] / allowed[bad]):.3g}x the bound")


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
def test_cython_gelu_float64_accuracy(threads):
    fastnn.set_num_threads(threads)
    x = _gelu_points()
    with fastnn.use_backend("cython"):
        y = fastnn.gelu(x)
    _assert_close_1e12(y, _exact_gelu(x), "gelu")


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
def test_cython_gelu_backward_float64_accuracy(threads):
    """Where the result is not tiny next to its summands (gelu' crosses 0 near x = -0.75), including
    huge dy, whose product with a subnormal gelu' is a normal number."""
    fastnn.set_num_threads(threads)
    x = _gelu_points()
    rng = np.random.default_rng(1)
    for dy in (np.ones_like(x), rng.standard_normal(x.size), np.full_like(x, 1e300),
               rng.choice([-1, 1], x.size) * 10.0 ** rng.uniform(-300, 300, x.size)):
        with fastnn.use_backend("cython"):
            dx = fastnn.gelu_backward(dy, x)
        exact, summands = _exact_gelu_grad(dy, x)
        _assert_close_1e12(dx, exact, "gelu_backward", where=np.abs(exact) >= 1e-3 * summands)
