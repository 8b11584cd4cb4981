"""fastnn inside other programs: forked workers, calls from several Python threads, scoped backends,
the standard thread controls, and out= buffers that overlap an input."""
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastnn
from conftest import COMPILED
from opinfo import OPS, check_op

pytestmark = pytest.mark.serial  # timing-sensitive: run alone (pyproject.toml's markers)

TIMEOUT = 120  # a child that hangs fails the test instead of the suite


def _first_samples():
    """(op, sample) for every op: its first float32 sample."""
    return [(op, OPS[op].samples(np.random.default_rng(0), np.float32)[0]) for op in sorted(OPS)]


def _run_every_op(backend):
    """Every op's first sample on `backend`, checked against the float64 reference; returns failures."""
    failures = []
    with fastnn.use_backend(backend):
        for op, sample in _first_samples():
            args = [a.copy() if isinstance(a, np.ndarray) else a for a in sample.args]
            try:
                check_op(op, getattr(fastnn, op)(*args, **sample.kwargs), sample.args, sample.kwargs,
                         np.float32, f"{op}[{backend}] in a forked child")
            except Exception as e:  # reported to the parent, which fails the test
                failures.append(f"{op}: {type(e).__name__}: {str(e)[:200]}")
    return failures


def _warm_up_parallel(backend):
    """Multi-threaded calls in the parent, so both thread pools have run before the fork."""
    x = np.random.default_rng(0).standard_normal((16, 32, 64, 64)).astype(np.float32)
    with fastnn.use_backend(backend):
        fastnn.relu(x)
        fastnn.max_pool2d(x, 2)
        fastnn.batch_norm(x, None, None)


@pytest.mark.parametrize("backend", COMPILED)
def test_os_fork_child_computes_every_op(backend):
    _warm_up_parallel(backend)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 1
        try:
            failures = _run_every_op(backend)
            os.write(write, "\n".join(failures).encode() or b"ok")
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail(f"the forked child hung ({backend})")
    report = os.read(read, 1 << 20).decode()
    os.close(read)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child died: status {status}"
    assert report == "ok", report


@pytest.mark.parametrize("backend", COMPILED)
def test_multiprocessing_fork_pool(backend):
    """The DataLoader pattern: a 'fork' pool of workers calling fastnn after the parent did."""
    _warm_up_parallel(backend)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.map_async(_run_every_op, [backend] * 2).get(TIMEOUT)
    assert results == [[], []]


def test_numba_runs_on_the_tbb_threading_layer():
    """The one layer that is safe both across fork and for concurrent calls (kernels/numba)."""
    import numba

    with fastnn.use_backend("numba"):
        fastnn.relu(np.ones((64, 1024), np.float32))
    assert numba.threading_layer() == "tbb"


def _conv_case(rng):
    x = rng.standard_normal((8, 16, 24, 24)).astype(np.float32)
    w = (rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32)
    return x, w


@pytest.mark.parametrize("backend", COMPILED)
def test_concurrent_calls_from_python_threads(backend):
    """4 Python threads calling a BLAS-backed conv at once: right answers, at most about 2x the time
    of the same calls one after another, and BLAS's thread count is the user's afterwards."""
    from threadpoolctl import threadpool_info

    def blas_counts():
        return sorted(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")

    rng = np.random.default_rng(0)
    x, w = _conv_case(rng)
    calls = 40
    with fastnn.use_backend("numpy"):
        expected = fastnn.conv2d(x, w, stride=2, padding=1)
    before = blas_counts()
    results = []

    def work():
        with fastnn.use_backend(backend):
            for _ in range(calls):
                y = fastnn.conv2d(x, w, stride=2, padding=1)
                dx, dw, db = fastnn.conv2d_backward(y, x, w, stride=2, padding=1)
        results.append(y)

    work()  # compile and warm up
    start = time.perf_counter()
    for _ in range(4):
        work()
    sequential = time.perf_counter() - start
    threads = [threading.Thread(target=work) for _ in range(4)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    concurrent = time.perf_counter() - start
    assert all(np.allclose(y, expected, rtol=1e-4, atol=1e-4) for y in results)
    assert blas_counts() == before
    assert concurrent <= 2.5 * sequential, f"4 threads took {concurrent:.2f} s, one after another {sequential:.2f} s"


def test_use_backend_is_scoped_to_the_thread():
    """One thread's use_backend("numpy") leaves other threads on theirs, and interleaved exits
    restore each thread's own backend."""
    inside, release, seen = threading.Event(), threading.Event(), {}

    def holder():
        with fastnn.use_backend("numpy"):
            inside.set()
            release.wait(10)
            seen["holder"] = fastnn.get_backend()
        seen["holder after"] = fastnn.get_backend()

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(10)
    seen["main during"] = fastnn.get_backend()
    with fastnn.use_backend("cython"):
        release.set()
        t.join(10)
        seen["main in its block"] = fastnn.get_backend()
    seen["main after"] = fastnn.get_backend()
    assert seen == {"holder": "numpy", "holder after": "auto", "main during": "auto",
                    "main in its block": "cython", "main after": "auto"}


def test_set_backend_is_the_process_default_for_new_threads():
    seen = []
    fastnn.set_backend("cython")
    try:
        t = threading.Thread(target=lambda: seen.append(fastnn.get_backend()))
        t.start()
        t.join()
    finally:
        fastnn.set_backend("auto")
    assert seen == ["cython"]


def _threads_in_subprocess(code, **env):
    full_env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                         timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_omp_num_threads_sets_the_default():
    assert _threads_in_subprocess("import fastnn; print(fastnn.get_num_threads())", OMP_NUM_THREADS="1") == ["1"]
    cores = str(fastnn._threads._MAX_THREADS)
    assert _threads_in_subprocess("import fastnn; print(fastnn.get_num_threads())") == [cores]


def test_threadpool_limits_and_set_num_threads():
    """threadpoolctl's limit (all libraries, or OpenMP only) holds while active, for both backends;
    set_num_threads overrides it."""
    code = """
import numba, numpy as np, fastnn
from threadpoolctl import threadpool_limits

def numba_count():
    with fastnn.use_backend("numba"):
        fastnn.relu(np.ones(4))
    with fastnn._threads.numba_threads():
        return numba.get_num_threads()
print(fastnn.get_num_threads())
with threadpool_limits(1):
    print(fastnn.get_num_threads(), numba_count())
with threadpool_limits(1, user_api="openmp"):
    print(fastnn.get_num_threads())
print(fastnn.get_num_threads())
fastnn.set_num_threads(2)
with threadpool_limits(1):
    print(fastnn.get_num_threads())
"""
    if fastnn._threads._MAX_THREADS < 2:
        pytest.skip("needs 2 cores")
    assert _threads_in_subprocess(code) == ["2", "1", "1", "1", "2", "2"]


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
def test_out_overlapping_an_input_gives_the_right_result(backend):
    rng = np.random.default_rng(0)
    with fastnn.use_backend(backend):
        buf = rng.standard_normal(1000).astype(np.float32)
        expected = np.maximum(buf[:-1], 0)
        assert fastnn.relu(buf[:-1], out=buf[1:]) is not None
        np.testing.assert_array_equal(buf[1:], expected)
        x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
        for op in ("max_pool2d", "avg_pool2d"):
            buf = x.copy()
            getattr(fastnn, op)(buf, kernel_size=2, out=buf[:, :, 2:6, 2:6])
            check_op(op, buf[:, :, 2:6, 2:6], (x,), {"kernel_size": 2}, np.float32, f"{op} out= inside x")
        w = (rng.standard_normal((3, 3, 3, 3)) * 0.3).astype(np.float32)
        buf = x.copy()
        fastnn.conv2d(buf, w, padding=1, out=buf)  # the output is the input
        check_op("conv2d", buf, (x, w, None), {"padding": 1}, np.float32, "conv2d out=x")
        buf = x.copy()  # exact aliasing of an elementwise op works in place
        assert fastnn.relu(buf, out=buf) is buf
        np.testing.assert_array_equal(buf, np.maximum(x, 0))
