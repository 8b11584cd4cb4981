import importlib
import os
from pathlib import Path

import numpy as np
import pytest

import fastnn

try:  # hypothesis (the test extra) drives test_properties.py, which skips without it
    from hypothesis import settings
except ImportError:
    settings = None
else:
    # "ci" (default): a fixed, bounded run (well under a minute once Numba has compiled);
    # "long": many more random examples (HYPOTHESIS_PROFILE=long, DEVELOPERS.md). No deadline:
    # a first call compiles a Numba kernel.
    settings.register_profile("ci", derandomize=True, max_examples=200, deadline=None, database=None)
    settings.register_profile("long", max_examples=2000, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Each family's OpInfo entries live in tests/ops_<family>.py and register on import.
for _path in sorted(Path(__file__).parent.glob("ops_*.py")):
    importlib.import_module(_path.stem)

COMPILED = [b for b in fastnn.available_backends() if b != "numpy"]

try:  # PyTorch is an optional extra oracle: tests that use it skip cleanly without it
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = F = None
needs_torch = pytest.mark.skipif(torch is None, reason="comparisons with PyTorch need torch")
THREADS = sorted({1, min(2, fastnn._threads._MAX_THREADS)})


@pytest.fixture(params=THREADS, ids=lambda t: f"t{t}")
def threads(request):
    previous = fastnn._threads._explicit  # None: following OpenMP's setting, as a user who never set it
    fastnn.set_num_threads(request.param)
    yield request.param
    fastnn._threads._explicit = previous


@pytest.fixture
def one_thread():
    previous = fastnn._threads._explicit
    fastnn.set_num_threads(1)
    yield
    fastnn._threads._explicit = previous


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(params=fastnn.available_backends())
def backend(request):
    """Each backend in turn, the reference included, set for the test's duration."""
    with fastnn.use_backend(request.param):
        yield request.param
