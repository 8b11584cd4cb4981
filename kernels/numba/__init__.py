"""Numba kernels (parallel, cached on disk, compiled on first call per dtype).

Importing this package imports numba, so it only happens when a Numba kernel is first needed.
"""
import numba  # noqa: F401  (the backend is available only if numba imports)
