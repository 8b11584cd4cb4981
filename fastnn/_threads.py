"""One thread policy for both compiled backends.

fastnn keeps one process-wide thread count. Each compiled call applies it for its own duration:
Numba's setting is thread-local, so it is set and restored around every Numba call; Cython
kernels read it and pass it to `prange(num_threads=...)`. BLAS threads are capped while our own
parallel loops call BLAS, so the two pools never oversubscribe the cores.
"""
import os
from contextlib import contextmanager


def _cores_available():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_MAX_THREADS = _cores_available()
_num_threads = _MAX_THREADS


def set_num_threads(n):
    """Set the thread count of both compiled backends, for calls from any Python thread."""
    global _num_threads
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: n must be an integer, got {type(n).__name__}")
    n = int(n)
    if not 1 <= n <= _MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be in [1, {_MAX_THREADS}], got {n}")
    _num_threads = n


def get_num_threads():
    return _num_threads


@contextmanager
def numba_threads(limit=None):
    """Run a Numba call with fastnn's thread count (at most `limit`); restore the caller's
    (thread-local) setting."""
    import numba

    n = min(_num_threads, numba.config.NUMBA_NUM_THREADS, limit or _num_threads)
    previous = numba.get_num_threads()
    if previous == n:
        yield
        return
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


_blas_controllers = None


def _blas_libraries():
    global _blas_controllers
    if _blas_controllers is None:
        import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot and Cython's gemm use scipy's BLAS: load it first)
        from threadpoolctl import ThreadpoolController

        _blas_controllers = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_controllers


@contextmanager
def blas_threads(n):
    """Cap BLAS at `n` threads for the duration (restores each library's previous count)."""
    saved = []
    for lib in _blas_libraries():
        previous = lib.get_num_threads()
        if previous != n:
            lib.set_num_threads(n)
            saved.append((lib, previous))
    try:
        yield
    finally:
        for lib, previous in saved:
            lib.set_num_threads(previous)
