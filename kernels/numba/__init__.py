"""Numba kernels (parallel, cached on disk, compiled on first call per dtype).

Importing this package imports numba, so it only happens when a Numba kernel is first needed.

Threading layer: TBB, the one Numba documents as safe both for calls from several Python threads at
once and across fork (GNU OpenMP's layer aborts every child forked after it ran; the workqueue
layer aborts on concurrent calls). pip's `tbb` puts libtbb.so.12 in <prefix>/lib, where the loader
does not look: it is loaded here by path, so Numba's default layer search finds it by soname.
"""
import ctypes
from importlib import metadata


def _load_tbb():
    try:
        files = metadata.files("tbb") or ()
    except metadata.PackageNotFoundError:
        return
    for f in files:
        if f.name == "libtbb.so.12":
            try:
                ctypes.CDLL(str(f.locate()))
            except OSError:
                pass
            return


_load_tbb()

import numba  # noqa: E402,F401  (the backend is available only if numba imports)
