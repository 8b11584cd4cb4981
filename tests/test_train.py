"""Solver (histories, best parameters restored, checkpoint, lr decay, progress output) and random
search (log-uniform sampling, sorting, refine)."""
import io
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim, train


# Tiny layers: one thread avoids waking a thread pool for microsecond kernels (hundreds of calls).
pytestmark = pytest.mark.usefixtures("one_thread")


def _blobs(n, seed):
    """Three well separated Gaussian classes in 4-d."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], np.float32)
    return (centres[y] + rng.standard_normal((n, 4)).astype(np.float32)), y


def _data():
    X_train, y_train = _blobs(300, 0)
    X_val, y_val = _blobs(100, 1)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def _model(seed=0, hidden=16):
    return nn.Sequential(nn.Linear(4, hidden, seed=seed), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, 3, seed=seed + 1))


def test_solver_trains_and_keeps_histories(tmp_path):
    model = _model()
    opt = optim.SGD(lr=0.1, momentum=0.9)
    stream = io.StringIO()
    checkpoint = tmp_path / "best.npz"
    solver = train.Solver(model, _data(), opt, batch_size=32, num_epochs=3, lr_decay=0.5, print_every=5,
                          checkpoint=str(checkpoint), stream=stream).train()
    assert len(solver.loss_history) == 3 * math.ceil(300 / 32)
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 3
    assert solver.best_val_acc == max(solver.val_acc_history) > 0.9
    assert opt.lr == pytest.approx(0.1 * 0.5 ** 3)
    assert np.mean(solver.loss_history[-5:]) < np.mean(solver.loss_history[:5])
    saved = np.load(checkpoint)
    for key, value in solver.best_params.items():
        np.testing.assert_array_equal(saved[f"params/{key}"], value)
    np.testing.assert_array_equal(saved["buffers/1.running_mean"], solver.best_buffers["1.running_mean"])
    text = stream.getvalue()
    assert "(Epoch 3 / 3) train acc:" in text and "30/30" in text and "loss=" in text  # tqdm bar, epoch lines


class _ScramblesAfterFirstEpoch:
    """SGD for the first `good_steps` steps, then it overwrites the weights with noise."""

    def __init__(self, good_steps):
        self.sgd = optim.SGD(lr=0.1, momentum=0.9)
        self.lr = 0.1
        self.good_steps = good_steps
        self.rng = np.random.default_rng(0)

    def step(self, params, grads):
        if self.good_steps > 0:
            self.good_steps -= 1
            self.sgd.step(params, grads)
        else:
            for p in params.values():
                p[...] = self.rng.standard_normal(p.shape) * 10


def test_solver_restores_the_best_params_and_buffers():
    model, data = _model(), _data()
    solver = train.Solver(model, data, _ScramblesAfterFirstEpoch(good_steps=10), batch_size=30, num_epochs=3,
                          verbose=False, num_train_samples=None).train()
    assert solver.val_acc_history[0] == solver.best_val_acc > max(solver.val_acc_history[1:])
    for key, value in model.params.items():
        np.testing.assert_array_equal(value, solver.best_params[key])
    for key, value in model.buffers.items():
        np.testing.assert_array_equal(value, solver.best_buffers[key])
    assert solver.check_accuracy(data["X_val"], data["y_val"]) == solver.best_val_acc


def test_quiet_solver_prints_nothing():
    stream = io.StringIO()
    train.Solver(_model(), _data(), optim.Adam(), num_epochs=1, verbose=False, stream=stream).train()
    assert stream.getvalue() == ""


def test_solver_errors():
    with pytest.raises(ValueError, match="X_val"):
        train.Solver(_model(), {"X_train": np.zeros((2, 4)), "y_train": [0, 1]}, optim.SGD(0.1))


def test_log_uniform_sampling():
    rng = np.random.default_rng(0)
    draws = np.array([train._sample(rng, 1e-5, 1e-1) for _ in range(4000)])
    assert draws.min() >= 1e-5 and draws.max() <= 1e-1
    decades = np.histogram(np.log10(draws), bins=4, range=(-5, -1))[0]
    assert np.all(np.abs(decades / 1000 - 1) < 0.1)  # equal mass per decade
    ints = [train._sample(rng, 4, 64) for _ in range(50)]
    assert all(isinstance(v, int) and 4 <= v <= 64 for v in ints)


def test_random_search_sorts_by_validation_accuracy_and_refine_narrows():
    def build(lr, hidden):
        return _model(hidden=hidden), optim.SGD(lr=lr, momentum=0.9)

    space = {"lr": (1e-6, 1.0), "hidden": (2, 32)}
    results = train.random_search(build, _data(), space, trials=6, seed=0, batch_size=50)
    accs = [r["val_acc"] for r in results]
    assert accs == sorted(accs, reverse=True) and len(results) == 6
    assert accs[0] > 0.9 and accs[-1] < accs[0]
    for r in results:
        assert 1e-6 <= r["hparams"]["lr"] <= 1.0 and 2 <= r["hparams"]["hidden"] <= 32
    fine = train.refine(results, top_k=2)
    top_lrs = [r["hparams"]["lr"] for r in results[:2]]
    assert fine["lr"] == (min(top_lrs), max(top_lrs))
    assert space["lr"][0] <= fine["lr"][0] <= fine["lr"][1] <= space["lr"][1]
