"""The kernel contract's rules that a reading of the source can check (DEVELOPERS.md):
kernels are leaves, and the dispatcher alone decides thread counts."""
import ast
import re
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
NUMBA_FILES = sorted((KERNELS / "numba").glob("*.py"))
CYTHON_FILES = sorted((KERNELS / "cython").glob("*.pyx")) + sorted((KERNELS / "cython").glob("*.pxd"))
# What kernels may import: numpy, numba, scipy's BLAS, C and Cython's own modules, the standard
# library's ctypes and importlib.metadata (Numba's TBB preload), and each other.
ALLOWED = ("numpy", "numba", "scipy.linalg.cython_blas", "libc", "libcpp", "cython", "openmp", "cpython",
           "ctypes", "os", "math", "importlib", "_common", "_math")


def _allowed(module):
    return module.startswith(".") or any(module == a or module.startswith(a + ".") for a in ALLOWED)


def _numba_imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or "")


def _cython_imports(path):
    code = re.sub(r"#.*", "", path.read_text())
    for match in re.finditer(r"^\s*(?:from\s+(\S+)\s+c?import|c?import\s+([\w.]+))", code, re.M):
        yield match.group(1) or match.group(2)


@pytest.mark.parametrize("path", NUMBA_FILES + CYTHON_FILES, ids=lambda p: p.name)
def test_kernels_import_nothing_from_fastnn(path):
    imports = list(_numba_imports(path) if path.suffix == ".py" else _cython_imports(path))
    assert [m for m in imports if not _allowed(m)] == [], path.name


@pytest.mark.parametrize("path", NUMBA_FILES + CYTHON_FILES, ids=lambda p: p.name)
def test_kernels_do_not_choose_their_thread_count(path):
    code = re.sub(r"#.*", "", path.read_text())
    assert "get_num_threads" not in code and "omp_get_max_threads" not in code, path.name


def test_the_checks_catch_a_violation(tmp_path):
    bad_numba = tmp_path / "bad.py"
    bad_numba.write_text("import numpy as np\nfrom fastnn import _threads\n")
    bad_cython = tmp_path / "bad.pyx"
    bad_cython.write_text("from libc.math cimport exp\nfrom fastnn._threads import get_num_threads\n")
    assert not all(map(_allowed, _numba_imports(bad_numba)))
    assert not all(map(_allowed, _cython_imports(bad_cython)))
