import importlib
from pathlib import Path

import numpy as np
import pytest

import fastnn

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
