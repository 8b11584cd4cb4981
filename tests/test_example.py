"""examples/train_digits.py end to end: sanity checks printed, >= 98 % on the 297 held-out digits."""
import importlib.util
from pathlib import Path

import pytest

import fastnn

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_digits.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_digits_reaches_98_percent(capsys):
    previous = fastnn._threads._explicit  # the example may set the thread count
    try:
        accuracy = _load_example().main(verbose=True)
    finally:
        fastnn._threads._explicit = previous
    out = capsys.readouterr().out
    assert accuracy >= 0.98
    for expected in ("initial loss", "update/weight ratios", "overfitting 20 samples: 1.00", "(Epoch 12 / 12)",
                     "held-out accuracy"):
        assert expected in out
