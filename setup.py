"""Build fastnn: pure-Python packages plus the Cython/OpenMP kernels in kernels/cython.

`kernels/` installs as `fastnn.kernels`. OpenMP is probed: without it the Cython kernels build
serial. `FASTNN_NATIVE=1` adds -march=native (off by default: wheels must run on any x86-64).
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
CYTHON_DIR = Path("kernels") / "cython"


def _compiler_accepts(flags):
    """True when the C compiler builds and links a trivial OpenMP program with `flags`."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
        cmd = [cc, *flags, str(src), "-o", str(Path(tmp) / "probe")]
        return subprocess.run(cmd, capture_output=True).returncode == 0


def _compile_flags():
    # -fno-wrapv undoes the -fwrapv that Python's own CFLAGS add: with wrapping int arithmetic gcc
    # cannot turn index math into pointer increments (the direct conv kernel ran 13% slower).
    # Cython's generated code does not rely on wrapping (it builds with MSVC, which has no such flag).
    # -g0 after Python's own -g: the wheel carries no debug info (the conv extension: 2.5 MB with it).
    # -fno-math-errno: nothing reads errno, and a libm call that may set it does not vectorize (the
    # optimizer steps' sqrt); part of the one fast-math policy (kernels/cython/simd.h).
    compile_args = ["-O3", "-g0", "-fno-wrapv", "-fno-semantic-interposition", "-fno-math-errno"]
    link_args = ["-Wl,--strip-debug"] if sys.platform.startswith("linux") else []
    if os.environ.get("FASTNN_NO_OPENMP") != "1" and _compiler_accepts(["-fopenmp"]):
        compile_args.append("-fopenmp")
        link_args.append("-fopenmp")
    else:
        print("fastnn: building the Cython kernels without OpenMP (serial)", file=sys.stderr)
    if os.environ.get("FASTNN_NATIVE") == "1":
        compile_args.append("-march=native")
    return compile_args, link_args


def _extensions():
    from Cython.Build import cythonize

    compile_args, link_args = _compile_flags()
    extensions = [
        Extension(
            f"fastnn.kernels.cython.{pyx.stem}",
            [str(pyx)],
            include_dirs=[np.get_include(), str(CYTHON_DIR)],
            depends=[str(h) for h in sorted(CYTHON_DIR.glob("*.h"))],  # rebuild when a C helper changes
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
        for pyx in sorted(CYTHON_DIR.glob("*.pyx"))
        # development: FASTNN_ONLY=conv,pool builds just those modules (e.g. build_ext --inplace)
        if not os.environ.get("FASTNN_ONLY") or pyx.stem in os.environ["FASTNN_ONLY"].split(",")
    ]
    return cythonize(
        extensions,
        nthreads=os.cpu_count() or 1,
        include_path=[str(CYTHON_DIR)],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        quiet=True,
    )


class ParallelBuildExt(build_ext):
    """Compile the extensions on every core (pip runs build_ext without -j)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1


setup(
    packages=[
        "fastnn",
        "fastnn.reference",
        "fastnn.compat",
        "fastnn.torch",
        "fastnn.kernels",
        "fastnn.kernels.numba",
        "fastnn.kernels.cython",
    ],
    package_dir={"fastnn": "fastnn", "fastnn.kernels": "kernels"},
    package_data={"fastnn": ["backend_table.json", "py.typed"], "fastnn.kernels.cython": ["*.pyx", "*.pxd", "*.h"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": ParallelBuildExt},
    zip_safe=False,
)
