"""Cython/OpenMP kernels, built by setup.py from the .pyx files here."""
from . import activations  # noqa: F401  (the backend is available only if the build is present)
