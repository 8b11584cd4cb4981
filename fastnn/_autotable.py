"""AUTO as data: which compiled backend runs each op under `set_backend("auto")`.

A table is JSON: {"fingerprint": {...}, "measured": ISO date, "entries": {op: {"backend": name,
"ratio": cython time / numba time, "tie": bool}}}. Two tables can exist:
- the shipped one, fastnn/backend_table.json, measured on the project's machine (its fingerprint
  says which);
- a local one, written by `python -m fastnn.tune` to `<cache dir>/backend_table.json`, where the
  cache dir is $FASTNN_CACHE_DIR if set, else platformdirs' user cache dir for "fastnn".
fastnn uses the local table when its fingerprint matches this machine, else the shipped one;
`backend_table()` says which and why. Measured choices within 5% are ties, resolved by one fixed
rule (TIE_BACKEND), never by the noise of a run. An op in no table uses numba, else cython.
"""
from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path

TIE_WITHIN = 0.05  # |ratio - 1| below this is a tie
TIE_BACKEND = "cython"  # ties go to the backend whose kernels need no JIT compilation
FILENAME = "backend_table.json"
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")


def _cpu():
    """(model name, ISA flags) from /proc/cpuinfo ("unknown", () elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown", ()
    fields = dict(line.split(":", 1) for line in text.splitlines()[:40] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return fields.get("model name", "unknown"), tuple(f for f in ISA_FLAGS if f in flags)


def _blas_kernel():
    """The BLAS kernel the compiled backends' GEMMs run (OpenBLAS's core name, e.g. SkylakeX)."""
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS our kernels call)
    from threadpoolctl import threadpool_info

    for lib in threadpool_info():
        if lib.get("user_api") == "blas" and "scipy_openblas" in os.path.basename(lib.get("filepath", "")):
            if "64_" not in os.path.basename(lib["filepath"]):
                return f"{lib.get('internal_api')} {lib.get('version')} {lib.get('architecture')}"
    libs = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return f"{libs[0].get('internal_api')} {libs[0].get('architecture')}" if libs else "none"


@functools.lru_cache(maxsize=None)
def fingerprint():
    """What the measurements depend on: CPU model, ISA flags, usable cores, BLAS kernel."""
    from ._threads import _MAX_THREADS

    model, flags = _cpu()
    return {"cpu": model, "isa": list(flags), "cores": _MAX_THREADS, "blas": _blas_kernel()}


def cache_dir():
    if os.environ.get("FASTNN_CACHE_DIR"):
        return Path(os.environ["FASTNN_CACHE_DIR"])
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # platformdirs is a dependency; a bare install still works
        return Path.home() / ".cache" / "fastnn"
    return Path(user_cache_dir("fastnn"))


def local_path():
    return cache_dir() / FILENAME


def _read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _shipped():
    return json.loads(resources.files("fastnn").joinpath(FILENAME).read_text())


_selected = None  # (table, source, path, reason), chosen on first use


def _select():
    global _selected
    if _selected is None:
        local = _read(local_path())
        if local is None:
            table, source, path, reason = _shipped(), "shipped", "fastnn/" + FILENAME, "no local table (run python -m fastnn.tune)"
        elif local.get("fingerprint") == fingerprint():
            table, source, path, reason = local, "local", str(local_path()), "its fingerprint matches this machine"
        else:
            table, source, path, reason = (_shipped(), "shipped", "fastnn/" + FILENAME,
                                           f"the local table at {local_path()} was measured on another machine")
        _selected = (table, source, path, reason)
    return _selected


def reload():
    """Forget the chosen table (after `python -m fastnn.tune` wrote a new one)."""
    global _selected
    _selected = None


def choice(op):
    """The backend the table names for `op`, or None."""
    entry = _select()[0]["entries"].get(op)
    return None if entry is None else entry["backend"]


def backend_table() -> dict:
    """The table "auto" uses now to pick a compiled backend per op, and why.

    Returns
    -------
    dict
        ``source`` ("local": written by `python -m fastnn.tune` for this machine, or "shipped"),
        ``path``, ``reason`` (why that table), ``fingerprint`` (the machine it was measured on),
        ``machine`` (this machine's fingerprint), ``measured`` (ISO date), ``choices`` ({op:
        backend}) and ``ties`` (ops whose backends measured within 5%, sorted).

    Examples
    --------
    >>> import fastnn
    >>> table = fastnn.backend_table()
    >>> table["source"] in ("local", "shipped")
    True
    """
    table, source, path, reason = _select()
    entries = table["entries"]
    return {"source": source, "path": path, "reason": reason, "fingerprint": table["fingerprint"],
            "machine": fingerprint(), "measured": table.get("measured"),
            "choices": {op: e["backend"] for op, e in entries.items()},
            "ties": sorted(op for op, e in entries.items() if e.get("tie"))}


def entry(ratio, backends):
    """A table entry from a measured ratio (cython time / numba time) and the backends that have the op."""
    if len(backends) == 1:
        return {"backend": backends[0], "ratio": None, "tie": False}
    tie = abs(ratio - 1) < TIE_WITHIN
    backend = TIE_BACKEND if tie else ("cython" if ratio < 1 else "numba")
    return {"backend": backend, "ratio": round(ratio, 3), "tie": tie}
