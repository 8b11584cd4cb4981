"""The output buffer cache (kernels/cython/_buffers.pyx, fastnn/_workspace.py): large outputs reuse
the blocks of dropped ones, the cache stays within its limit, and NumPy's handler is the caller's
again after every call."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
from fastnn import _workspace

buffers = _workspace.buffer_cache()
pytestmark = pytest.mark.skipif(buffers is None, reason="the Cython kernels are not built")
handler_name = np._core.multiarray.get_handler_name if hasattr(np, "_core") else np.core.multiarray.get_handler_name


def _address(a):
    return a.__array_interface__["data"][0]


@pytest.fixture
def limit():
    """The cache emptied before the test, its limit restored after."""
    buffers.set_limit(0)
    yield lambda nbytes: buffers.set_limit(nbytes)
    buffers.set_limit(_workspace._CACHE_LIMIT)


def test_a_dropped_output_block_is_reused(limit):
    limit(64 << 20)
    x = np.linspace(-1, 1, 1 << 19, dtype=np.float32)  # 2 MiB
    y = fastnn.relu(x)
    assert handler_name(y) == "fastnn_buffers" and y.flags.owndata
    where = _address(y)
    del y
    assert buffers.cached_bytes() == x.nbytes
    y = fastnn.relu(x)
    assert _address(y) == where and buffers.cached_bytes() == 0
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert handler_name() == "default_allocator"  # the caller's handler is back
    small = fastnn.relu(x[:1000])
    assert handler_name(small) == "default_allocator"


def test_of_equal_blocks_the_newest_is_reused(limit):
    """The block dropped last is the one still in the processor's cache: a loop of calls must not
    cycle through every kept block of its size."""
    limit(64 << 20)
    blocks = [_workspace.empty((1 << 18,), np.float32) for _ in range(3)]  # 1 MiB each
    where = [_address(a) for a in blocks]
    while blocks:
        blocks.pop(0)  # dropped in order: the last one is the newest
    for _ in range(3):
        a = _workspace.empty((1 << 18,), np.float32)
        assert _address(a) == where[-1]
        del a
    smaller = _workspace.empty((1 << 18,), np.float32)
    larger = _workspace.empty((9 << 15,), np.float32)  # 1.125 MiB: fits, but not the smallest fit
    where_smaller, where_larger = _address(smaller), _address(larger)
    del smaller, larger
    a = _workspace.empty((1 << 18,), np.float32)
    assert _address(a) == where_smaller


def test_the_cache_stays_within_its_limit(limit):
    limit(5 << 20)
    arrays = [_workspace.empty((n << 18,), np.float32) for n in (1, 2, 3, 4)]  # 1, 2, 3, 4 MiB
    while arrays:
        arrays.pop(0)  # 1 MiB; 1 + 2; 2 + 3 (1 given back, the oldest); 4 (2 and 3 given back)
        assert buffers.cached_bytes() <= 5 << 20
    assert buffers.cached_bytes() == 4 << 20
    limit(3 << 20)
    assert buffers.cached_bytes() == 0
    limit(0)
    a = _workspace.empty((1 << 20,), np.float32)
    del a
    assert buffers.cached_bytes() == 0


def test_resize_keeps_the_values(limit):
    limit(64 << 20)
    a = _workspace.empty((1 << 18,), np.float32)
    a[:] = np.arange(a.size)
    a.resize((1 << 19,), refcheck=False)
    np.testing.assert_array_equal(a[:1 << 18], np.arange(1 << 18))
    a.resize((1 << 17,), refcheck=False)
    np.testing.assert_array_equal(a, np.arange(1 << 17))


def test_threads_allocate_and_free_at_once(limit):
    limit(16 << 20)
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(1 << 18).astype(np.float32)
        for _ in range(50):
            y = fastnn.sigmoid(x)
            if not np.allclose(y, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6, atol=1e-7):
                errors.append(seed)
    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and buffers.cached_bytes() <= 16 << 20


def _run(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_the_environment_sets_the_limit():
    code = ("import numpy as np, fastnn\nfrom fastnn import _workspace\n"
            "y = fastnn.relu(np.ones(1 << 20, np.float32)); del y\nprint(_workspace.buffer_cache().cached_bytes())")
    assert _run(code, FASTNN_BUFFER_CACHE_MB="0").stdout.split() == ["0"]
    assert _run(code, FASTNN_BUFFER_CACHE_MB="8").stdout.split() == [str(4 << 20)]
    for bad in ("lots", "-1", "inf", "nan"):
        failed = _run(code, FASTNN_BUFFER_CACHE_MB=bad)
        assert failed.returncode != 0 and "ValueError: FASTNN_BUFFER_CACHE_MB" in failed.stderr, bad


def test_a_forked_child_uses_the_cache():
    code = ("import os, numpy as np, fastnn\nfrom fastnn import _workspace\n"
            "x = np.ones(1 << 20, np.float32); y = fastnn.relu(x); del y\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    ok = all(fastnn.relu(x).sum() == x.size for _ in range(5))\n"
            "    os._exit(0 if ok else 1)\n"
            "print(os.waitpid(pid, 0)[1])")
    assert _run(code).stdout.split() == ["0"]
