import importlib
from pathlib import Path

import numpy as np
import pytest

import fastnn

# Each family's OpInfo entries live in tests/ops_<family>.py and register on import.
for _path in sorted(Path(__file__).parent.glob("ops_*.py")):
    importlib.import_module(_path.stem)

COMPILED = [b for b in fastnn.available_backends() if b != "numpy"]
THREADS = sorted({1, min(2, fastnn._threads._MAX_THREADS)})


@pytest.fixture(params=THREADS, ids=lambda t: f"t{t}")
def threads(request):
    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(request.param)
    yield request.param
    fastnn.set_num_threads(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
