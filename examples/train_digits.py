"""Train a small convnet on scikit-learn's 8x8 digits with fastnn, the cs231n way.

Preprocessing (per-channel standardization), He init, batch normalization, Adam, sanity checks
(initial loss vs log 10, activation statistics, update ratios, overfitting 20 samples), then
a Solver run with the best validation parameters restored, and the held-out accuracy.

    python examples/train_digits.py            # about 98-99 % on the 297 held-out digits
"""
import argparse
import time

import numpy as np

import fastnn
from fastnn import diagnostics, nn, optim, preprocess, train

NUM_TRAIN = 1500  # of a seeded permutation of the 1797 digits; the other 297 are held out


def load_digits(seed=0):
    """(X_train, y_train, X_test, y_test): images (N, 1, 8, 8) float32 in [0, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]
    order = np.random.default_rng(seed).permutation(len(X))
    train_idx, test_idx = order[:NUM_TRAIN], order[NUM_TRAIN:]
    return X[train_idx], digits.target[train_idx], X[test_idx], digits.target[test_idx]


def build_model(seed=0):
    """conv-bn-relu x2, max pool, then a BN hidden layer; He init (the layers' default)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False, seed=seed), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False, seed=seed + 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64, bias=False, seed=seed + 2), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Linear(64, 10, seed=seed + 3),
    )


def sanity_checks(X, y, seed=0):
    """cs231n's checklist on fresh models; prints and returns the numbers."""
    model = build_model(seed)
    initial = diagnostics.check_initial_loss(model, X[:200], y[:200])
    print(f"initial loss {initial['loss']:.3f} (log 10 = {initial['expected']:.3f})")
    print(diagnostics.format_stats(diagnostics.activation_stats(model, X[:200])))
    before = {k: v.copy() for k, v in model.params.items()}
    _, dscores = fastnn.softmax_cross_entropy(model.forward(X[:100]), y[:100])
    model.backward(dscores)
    optim.Adam(lr=1e-3).step(model.params, model.grads)
    ratios = diagnostics.update_ratios(before, model.params)
    weights = {k: v for k, v in ratios.items() if k.endswith("weight")}
    print("update/weight ratios after one step: " + ", ".join(f"{k} {v:.1e}" for k, v in weights.items()))
    overfit = diagnostics.overfit_small(build_model(seed), X[:20], y[:20], optim.Adam(lr=1e-2), steps=30)
    print(f"train accuracy after overfitting 20 samples: {overfit:.2f}")
    return {"initial": initial, "ratios": ratios, "overfit": overfit}


def main(epochs=12, seed=0, verbose=True, threads=1):
    # Batches of 50 8x8 digits are microseconds of work per layer: one thread beats waking a
    # thread pool dozens of times per step (more threads pay off for larger images and batches).
    fastnn.set_num_threads(threads)
    start = time.perf_counter()
    X_train, y_train, X_test, y_test = load_digits(seed)
    scaler = preprocess.ChannelMean(std=True).fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    if verbose:
        sanity_checks(X_train, y_train, seed)
    # the last 150 training digits validate (choose the best epoch); the test digits stay unseen
    data = {"X_train": X_train[:-150], "y_train": y_train[:-150], "X_val": X_train[-150:], "y_val": y_train[-150:]}
    model = build_model(seed)
    solver = train.Solver(model, data, optim.Adam(lr=3e-3), batch_size=50, num_epochs=epochs, lr_decay=0.8,
                          print_every=10, verbose=verbose, num_train_samples=500, seed=seed)
    solver.train()
    test_acc = solver.check_accuracy(X_test, y_test)
    print(f"held-out accuracy: {test_acc:.4f} ({len(X_test)} digits), "
          f"best val {solver.best_val_acc:.4f}, {time.perf_counter() - start:.1f} s")
    return test_acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    main(args.epochs, args.seed, verbose=not args.quiet, threads=args.threads)
