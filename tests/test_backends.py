"""Backend selection, the thread policy, import hygiene, and the op table's completeness."""
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
from conftest import COMPILED
from fastnn import _ops


def test_both_compiled_backends_are_installed():
    assert fastnn.available_backends() == ("numpy", "numba", "cython")


def test_activations_complete_in_both_backends():
    missing = fastnn.missing_kernels()
    for backend in ("numba", "cython"):
        gaps = [op for op in _ops.FAMILIES["activations"] if op in missing[backend]]
        assert not gaps, f"{backend} lacks {gaps}"


def test_set_backend_validates_and_use_backend_restores():
    assert fastnn.get_backend() == "auto"
    with pytest.raises(ValueError, match="set_backend"):
        fastnn.set_backend("cuda")
    with fastnn.use_backend("cython"):
        assert fastnn.get_backend() == "cython"
        with fastnn.use_backend("numpy"):
            assert fastnn.get_backend() == "numpy"
        assert fastnn.get_backend() == "cython"
    assert fastnn.get_backend() == "auto"
    with pytest.raises(RuntimeError):
        with fastnn.use_backend("numba"):
            raise RuntimeError
    assert fastnn.get_backend() == "auto"


def test_auto_resolves_to_a_compiled_backend_with_the_kernel():
    for op in _ops.FAMILY_OF:
        implemented = [b for b in ("numba", "cython") if _ops.kernel(op, b) is not None]
        if implemented:
            assert _ops.resolve(op) in implemented
    for op, backend in fastnn.backend_table()["choices"].items():
        assert _ops.kernel(op, backend) is not None, f"AUTO names {backend} for {op}, which lacks it"


def test_auto_follows_a_new_table(monkeypatch):
    """resolve remembers "auto"'s choice per op, and forgets it when the table changes (fastnn.tune's
    reload): each op then runs on the backend the new table names."""
    from fastnn import _autotable

    table, source, path, reason = _autotable._select()
    for op in ("relu", "batch_norm", "max_pool2d"):
        before = _ops.resolve(op)
        other = "numba" if before == "cython" else "cython"
        entries = dict(table["entries"], **{op: {"backend": other, "ratio": 1.0, "tie": False}})
        monkeypatch.setattr(_autotable, "_selected", (dict(table, entries=entries), source, path, reason))
        assert _ops.resolve(op) == other
        monkeypatch.setattr(_autotable, "_selected", (table, source, path, reason))
        assert _ops.resolve(op) == before


ELEMENTWISE = [("relu", 1), ("relu_backward", 2), ("sigmoid", 1), ("sigmoid_backward", 2), ("tanh", 1),
               ("tanh_backward", 2), ("silu", 1), ("silu_backward", 2)]


@pytest.mark.parametrize("op, n_arrays", ELEMENTWISE)
def test_elementwise_fast_path_runs_the_kernel_as_call_does(op, n_arrays, monkeypatch):
    """call_elementwise's inline checks: the usual call (C-contiguous arrays of one dtype, no out)
    gives the general path's result bit for bit and hands the kernel the grain table's thread count;
    other calls take the general path (its checks and errors)."""
    if "cython" not in fastnn.available_backends():
        pytest.skip("the fast path runs Cython kernels only")
    rng = np.random.default_rng(3)
    for size in (37, 1 << 17):
        arrays = [rng.standard_normal(size).astype(np.float32) for _ in range(n_arrays)]
        with fastnn.use_backend("cython"):
            fast = _ops.call_elementwise(op, *arrays)
            general = _ops.call(op, *arrays, out=np.empty_like(arrays[0]))
            kernel = _ops._kernel_entry(op, "cython")[0]
            passed = []
            monkeypatch.setitem(_ops._KERNELS, ("cython", op),
                                (lambda *a: passed.append(a[-1]) or kernel(*a), None))
            _ops.call_elementwise(op, *arrays)
            monkeypatch.undo()
        np.testing.assert_array_equal(fast, general)
        assert passed == [fastnn._grain.threads(op, size, "cython")]
    with fastnn.use_backend("cython"):
        if n_arrays == 2:
            with pytest.raises(ValueError, match="shape"):
                _ops.call_elementwise(op, arrays[0], arrays[1][:-1])
            with pytest.raises(TypeError):
                _ops.call_elementwise(op, arrays[0], arrays[1].astype(np.float64))
        strided = _ops.call_elementwise(op, *(a[::2] for a in arrays))
    np.testing.assert_array_equal(strided, _ops.call(op, *(a[::2].copy() for a in arrays)))


def test_thread_count_validation():
    maximum = fastnn._threads._MAX_THREADS
    assert fastnn.get_num_threads() == maximum
    for bad in (0, maximum + 1, -1):
        with pytest.raises(ValueError, match="set_num_threads"):
            fastnn.set_num_threads(bad)
    for bad in (1.5, "2", True):
        with pytest.raises(TypeError, match="set_num_threads"):
            fastnn.set_num_threads(bad)
    assert fastnn.get_num_threads() == maximum


def test_numba_thread_setting_is_restored():
    import numba

    before = numba.get_num_threads()
    fastnn.set_num_threads(1)
    try:
        with fastnn.use_backend("numba"):
            fastnn.relu(np.ones(10))
        assert numba.get_num_threads() == before
    finally:
        fastnn._threads._explicit = None


@pytest.mark.parametrize("backend", COMPILED)
def test_blas_and_numba_thread_counts_are_the_callers_after_gemm_kernels(backend):
    """linear and conv run BLAS single-threaded on our own threads, then restore every setting."""
    import numba
    from threadpoolctl import threadpool_info

    def blas_counts():
        return sorted(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")

    rng = np.random.default_rng(0)
    before_blas, before_numba = blas_counts(), numba.get_num_threads()
    with fastnn.use_backend(backend):
        for x_shape, d_out in (((3, 4), 2), ((64, 300), 200)):  # one thread, then split between threads
            x = rng.standard_normal(x_shape).astype(np.float32)
            w = rng.standard_normal((x_shape[1], d_out)).astype(np.float32)
            fastnn.linear_backward(fastnn.linear(x, w), x, w)
        x = rng.standard_normal((2, 3, 8, 16)).astype(np.float32)
        w = rng.standard_normal((4, 3, 7, 7)).astype(np.float32)
        fastnn.conv2d_backward(fastnn.conv2d(x, w, padding=3), x, w, padding=3, input_grad=False)
    assert blas_counts() == before_blas
    assert numba.get_num_threads() == before_numba


def test_thread_setting_holds_in_other_python_threads():
    import numba

    seen = []
    fastnn.set_num_threads(1)
    try:
        def worker():
            with fastnn._threads.numba_threads():
                seen.append(numba.get_num_threads())
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    finally:
        fastnn._threads._explicit = None
    assert seen == [1]


def test_import_compiles_nothing():
    code = "import sys, fastnn; print('numba' in sys.modules, 'fastnn.kernels.cython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert out.stderr == ""


def test_import_never_imports_torch():
    """torch is optional (the `torch` extra): only `import fastnn.torch` imports it, even with every other
    submodule loaded and ops run."""
    code = ("import sys, numpy as np, fastnn\n"
            "for name in ('nn', 'init', 'optim', 'preprocess', 'gradcheck', 'diagnostics', 'train', 'compat',"
            " 'reference'):\n"
            "    getattr(fastnn, name)\n"
            "import fastnn.compat.cs231n\n"
            "fastnn.relu(np.ones(3))\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_saturating_inputs_are_quiet():
    for backend in fastnn.available_backends():
        with fastnn.use_backend(backend):
            assert float(fastnn.sigmoid(-1000.0)) == 0.0
            assert float(fastnn.sigmoid(1000.0)) == 1.0
            assert float(fastnn.tanh(np.float32(-1e4))) == -1.0
            assert float(fastnn.elu(-1e4)) == -1.0


def test_source_tree_without_kernels_warns_once():
    """Python started in the repository root imports the source tree, which has no compiled
    kernels (an editable install maps them in): then one warning names the cause and the fix."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = ("import warnings, fastnn; warnings.simplefilter('always'); b = fastnn.available_backends(); "
            "fastnn.available_backends(); print(b)")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "('numpy',)":
        assert out.stderr.count("SourceTreeWarning") == 1 and "Install it" in out.stderr
    else:
        assert "SourceTreeWarning" not in out.stderr
