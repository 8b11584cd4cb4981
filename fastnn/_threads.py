"""One thread policy for both compiled backends.

How many threads a call uses:
- `set_num_threads(n)` fixes it, for calls from any Python thread;
- otherwise it follows OpenMP's own setting for the calling thread (`omp_get_max_threads()` of the
  GNU OpenMP runtime the Cython kernels use): `OMP_NUM_THREADS` at start-up,
  `threadpoolctl.threadpool_limits(n)` while one is active, and `torch.set_num_threads(n)` (PyTorch
  shares the same runtime), never more than the cores the process may use;
- inside a `host_threads(n)` block (fastnn.torch passes `torch.get_num_threads()`), n instead of
  OpenMP's setting: a thread torch has not run in yet still has OpenMP's default, and a torch built
  on another threading runtime never sets it.
Numba's count is thread-local, so it is set and restored around every Numba call; Cython kernels
read `get_num_threads()` and pass it to `prange(num_threads=...)`.

BLAS inside our parallel loops runs single-threaded: while any fastnn call that uses BLAS is running,
the process-wide BLAS thread count is 1, and the caller's count comes back when the last such call
ends (reference counted, so concurrent calls from several Python threads never flip it under each
other's GEMMs).

Fork: GNU OpenMP cannot start threads in a child forked after its thread pool ran (the child
hangs), and the pool may have run for any library of the process (fastnn, PyTorch), so in a forked
child the Cython kernels run on one thread (`openmp_threads()`). Numba runs on the TBB threading
layer (kernels/numba/__init__.py), which survives fork: its kernels keep their threads.
"""
from __future__ import annotations

import contextvars
import ctypes
import os
import threading
from contextlib import contextmanager


def _cores_available():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_MAX_THREADS = _cores_available()
_explicit = None  # set_num_threads(n); None: follow OpenMP's setting
_host = contextvars.ContextVar("fastnn_host_threads", default=None)  # host_threads(n), per thread/context


def _load_openmp():
    """GNU OpenMP's omp_get_max_threads, or None without the runtime. Loading it by soname shares the
    copy already in the process (PyTorch's, or the Cython kernels')."""
    try:
        fn = ctypes.CDLL("libgomp.so.1").omp_get_max_threads
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = []
    return fn


_omp_get_max_threads = _load_openmp()


def _env_threads():
    """OMP_NUM_THREADS (its first level) when no OpenMP runtime is there to read it."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0]))
    except ValueError:
        return _MAX_THREADS


_forked_child = False  # this process was forked: GNU OpenMP may be unable to start threads


def set_num_threads(n: int) -> None:
    """Set the thread count of both compiled backends, for calls from any Python thread.

    Overrides OMP_NUM_THREADS, threadpoolctl limits and torch.set_num_threads for fastnn's calls,
    for the rest of the process.

    Parameters
    ----------
    n : int
        In [1, the number of cores the process may use].

    Raises
    ------
    TypeError
        `n` is not an integer.
    ValueError
        `n` is out of range.

    See Also
    --------
    get_num_threads

    Examples
    --------
    >>> import fastnn
    >>> fastnn.set_num_threads(1)
    >>> fastnn.get_num_threads()
    1
    """
    global _explicit
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: n must be an integer, got {type(n).__name__}")
    n = int(n)
    if not 1 <= n <= _MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be in [1, {_MAX_THREADS}], got {n}")
    _explicit = n


def get_num_threads() -> int:
    """The number of threads a fastnn call made now, from this Python thread, will use.

    Returns
    -------
    int
        The `set_num_threads` count if one was set; else OpenMP's setting for this thread
        (OMP_NUM_THREADS, an active ``threadpoolctl.threadpool_limits``, torch.set_num_threads),
        or `host_threads`' count inside one; at most the cores the process may use. (The Cython
        kernels use one thread in a process forked after parallel calls.)
    """
    if _explicit is not None:
        return _explicit
    limit = _host.get()
    if limit is None:
        limit = _omp_get_max_threads() if _omp_get_max_threads is not None else _env_threads()
    if limit > _MAX_THREADS:  # conditionals, not min/max: every compiled call asks (0.13 us)
        return _MAX_THREADS
    return limit if limit >= 1 else 1


class host_threads:
    """Context manager: fastnn calls made in the block (by this thread and context) use `n` threads.

    For a library that calls fastnn with its own thread count (fastnn.torch: `torch.get_num_threads()`).
    `set_num_threads` still overrides it; at most the cores available are used. A class rather than a
    generator context manager: fastnn.torch enters one around every call.

    Parameters
    ----------
    n : int
        The caller's thread count.
    """

    __slots__ = ("n", "token")

    def __init__(self, n):
        self.n = int(n)

    def __enter__(self):
        self.token = _host.set(self.n)

    def __exit__(self, *exc_info):
        _host.reset(self.token)


def openmp_threads():
    """The thread count of an OpenMP (Cython) kernel: get_num_threads(), or 1 in a forked child."""
    return 1 if _forked_child else get_num_threads()


def _after_fork_in_child():
    global _forked_child, _blas_users
    _forked_child = True
    _blas_users = 0  # a call in flight in another parent thread does not exist here
    _blas_saved.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def numba_threads(limit=None):
    """Run a Numba call with fastnn's thread count (at most `limit`); restore the caller's
    (thread-local) setting."""
    import numba

    n = min(get_num_threads(), numba.config.NUMBA_NUM_THREADS, limit or _MAX_THREADS)
    previous = numba.get_num_threads()
    if previous == n:
        yield
        return
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


class _OpenBLAS:
    """Process-wide thread count of a pthreads OpenBLAS, called directly: threadpoolctl (>= 3.7) lets
    only one "controlling" Python thread change it and silently ignores the others, and fastnn's calls
    come from any thread."""

    def __init__(self, controller):
        dll = ctypes.CDLL(controller.filepath)  # the copy already loaded
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_", "_64"):
                getter = getattr(dll, f"{prefix}openblas_get_num_threads{suffix}", None)
                setter = getattr(dll, f"{prefix}openblas_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    getter.restype, setter.restype, setter.argtypes = ctypes.c_int, None, [ctypes.c_int]
                    self.get_num_threads, self.set_num_threads = getter, setter
                    return
        raise OSError(f"no openblas_set_num_threads in {controller.filepath}")


_blas_controllers = None


def _blas_libraries():
    """The BLAS libraries of the process, each with get_num_threads() and set_num_threads(n).

    OpenBLAS builds threaded with OpenMP run single-threaded inside our OpenMP loops by themselves;
    other BLAS (MKL, BLIS) go through threadpoolctl."""
    global _blas_controllers
    if _blas_controllers is None:
        import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot and Cython's gemm use scipy's BLAS: load it first)
        from threadpoolctl import ThreadpoolController

        libraries = []
        for controller in ThreadpoolController().select(user_api="blas").lib_controllers:
            if controller.internal_api == "openblas" and getattr(controller, "threading_layer", "") != "openmp":
                try:
                    controller = _OpenBLAS(controller)
                except OSError:
                    pass
            libraries.append(controller)
        _blas_controllers = libraries
    return _blas_controllers


_blas_lock = threading.Lock()
_blas_users = 0  # fastnn calls running with BLAS capped at one thread
_blas_saved = []  # (library, the caller's count) while capped


@contextmanager
def blas_threads(n):
    """BLAS calls inside the block run on one thread when n == 1 (n > 1: BLAS keeps its own count).

    The first of any overlapping blocks (from any Python thread) caps BLAS, the last restores the
    caller's counts: no block ever sees another's restore.
    """
    global _blas_users
    if n != 1:
        yield
        return
    with _blas_lock:
        if _blas_users == 0:
            for lib in _blas_libraries():
                previous = lib.get_num_threads()
                if previous != 1:
                    lib.set_num_threads(1)
                    _blas_saved.append((lib, previous))
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for lib, previous in _blas_saved:
                    if lib.get_num_threads() == 1:  # unless the user set another count meanwhile
                        lib.set_num_threads(previous)
                _blas_saved.clear()
