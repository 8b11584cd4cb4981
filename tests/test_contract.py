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


# --- no function over about 60 lines (issue 11), unless its docstring says why ("Long because") ---
MAX_LINES = 60
ROOT = KERNELS.parent
SOURCES = sorted((ROOT / "fastnn").rglob("*.py")) + sorted(KERNELS.rglob("*.py")) + sorted(
    KERNELS.rglob("*.pyx")) + sorted(KERNELS.rglob("*.h"))


def _python_lengths(code):
    """(name, code lines without the docstring, docstring) of every function."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body, doc = node.body, ast.get_docstring(node) or ""
            if doc:
                body = body[1:]
            if body:
                yield node.name, body[-1].end_lineno - body[0].lineno + 1, doc


def _cython_lengths(code):
    """(name, lines) of every def/cdef/cpdef function: its header to the last indented line."""
    lines = code.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"(\s*)(?:c?p?def)\s+[^=]*?(\w+)\s*\(", line)
        if not match or line.strip().startswith(("cdef class", "cdef extern", "cdef struct")):
            continue
        indent, j = len(match.group(1)), i + 1
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            j += 1
        yield match.group(2), j - i, ""


def _c_lengths(code):
    """(name, lines) of every multi-line #define and every function body from `{` to `}` at column 0."""
    lines, i = code.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#define") and line.rstrip().endswith("\\"):
            j = i
            while lines[j].rstrip().endswith("\\"):
                j += 1
            yield line.split()[1], j - i + 1, ""
            i = j
        elif line.startswith("{") or (line[:1].isalpha() and line.rstrip().endswith("{")):
            j = i
            while not lines[j].startswith("}"):
                j += 1
            yield (lines[i - 1] if line.startswith("{") else line).strip()[:60], j - i + 2, ""
            i = j
        i += 1


def _too_long(path):
    code = path.read_text()
    lengths = {".py": _python_lengths, ".pyx": _cython_lengths, ".h": _c_lengths}[path.suffix](code)
    return [(name, n) for name, n, doc in lengths if n > MAX_LINES and "Long because" not in doc]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_over_60_lines(path):
    assert _too_long(path) == [], path.name


def test_the_length_check_catches_a_long_function(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES + 1))
    for suffix, code in ((".py", f"def f():\n{body}"), (".pyx", f"cdef int f(int a) noexcept nogil:\n{body}"),
                         (".h", "#define M(x) \\\n" + " x \\\n" * MAX_LINES + " x\n"),
                         (".h", "static void f(void)\n{\n" + "    ;\n" * MAX_LINES + "}\n")):
        path = tmp_path / f"long{suffix}"
        path.write_text(code)
        assert _too_long(path), suffix
