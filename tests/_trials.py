"""Module-level pieces for random_search on executors (worker processes import them by name)."""
import os
import signal

import numpy as np

from fastnn import nn, optim

SPACE = {"lr": (1e-3, 1.0), "hidden": (2, 16)}


def _blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], np.float32)
    return (centres[y] + rng.standard_normal((n, 4)).astype(np.float32)), y


def data():
    X_train, y_train = _blobs(200, 0)
    X_val, y_val = _blobs(60, 1)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def build(lr, hidden):
    model = nn.Sequential(nn.Linear(4, hidden, seed=hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                          nn.Linear(hidden, 3, seed=hidden + 1))
    return model, optim.SGD(lr=lr, momentum=0.9)


def build_or_die(lr, hidden, die_at_lr):
    """build, except that the trial sampling `die_at_lr` kills its own process (a crashed worker)."""
    if lr == die_at_lr:
        os.kill(os.getpid(), signal.SIGKILL)
    return build(lr, hidden)


def build_or_raise(lr, hidden, raise_at_lr):
    if lr == raise_at_lr:
        raise FloatingPointError("this trial's hyperparameters diverge")
    return build(lr, hidden)
