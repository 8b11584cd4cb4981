"""Coarse-then-fine random search of the digits convnet's learning rate and weight decay on a dask
cluster, then the best setting trained in full.

    python examples/random_search_dask.py                                 # a LocalCluster on this machine
    python examples/random_search_dask.py --scheduler tcp://HOST:8786     # a running cluster

For a cluster of several machines: `dask scheduler` on one, `dask worker tcp://HOST:8786
--nworkers N --nthreads 1` on each (fastnn installed there; this script and its data need not be:
the data is scattered to the workers, the functions below are sent by value). Each trial runs on
one worker thread with the cores of its machine divided by the trials running there, and the
results equal the serial search's for the same seed (`random_search(..., executor=None)`).
"""
import argparse
import logging
import os
import sys
import time

import fastnn
from fastnn import optim, train

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_digits  # noqa: E402  (the single-process example: data, model)


def build(lr, weight_decay):
    """The trial's model and optimizer (runs on a worker)."""
    return train_digits.build_model(seed=0), optim.Adam(lr=lr, weight_decay=weight_decay)


def load_data(seed=0):
    from fastnn import preprocess

    X_train, y_train, X_test, y_test = train_digits.load_digits(seed)
    scaler = preprocess.ChannelMean(std=True).fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    data = {"X_train": X_train[:-150], "y_train": y_train[:-150], "X_val": X_train[-150:], "y_val": y_train[-150:]}
    return data, X_test, y_test


def search(client, data, coarse_trials=8, fine_trials=6, seed=0):
    """Coarse (1 epoch per trial, wide ranges), then fine (3 epochs, around the coarse top 3)."""
    space = {"lr": (1e-4, 1e-1), "weight_decay": (1e-6, 1e-2)}
    print(f"coarse: {coarse_trials} trials over {space}")
    coarse = train.random_search(build, data, space, coarse_trials, seed=seed, num_epochs=1, batch_size=50,
                                 verbose=True, executor=client)
    space = train.refine(coarse, top_k=3)
    shown = ", ".join(f"{k} in [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in space.items())
    print(f"fine: {fine_trials} trials, {shown}")
    fine = train.random_search(build, data, space, fine_trials, seed=seed + 1, num_epochs=3, batch_size=50,
                               verbose=True, executor=client)
    return coarse, fine


def main(scheduler=None, workers=2, coarse_trials=8, fine_trials=6, epochs=12, seed=0):
    import cloudpickle
    from distributed import Client, LocalCluster

    cloudpickle.register_pickle_by_value(train_digits)  # workers need not have the examples folder
    start = time.perf_counter()
    data, X_test, y_test = load_data(seed)
    if scheduler is None:
        # dask's own warnings (e.g. a busy machine's slow event loop) would drown the search's lines
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
    else:
        cluster = None
    try:
        with Client(scheduler or cluster) as client:
            print(f"dask: {len(client.nthreads())} workers, {sum(client.nthreads().values())} threads")
            _, fine = search(client, data, coarse_trials, fine_trials, seed)
    finally:
        if cluster is not None:
            cluster.close()
    best = fine[0]["hparams"]
    print("best: " + ", ".join(f"{k}={v:.3g}" for k, v in best.items()) + f"; training it for {epochs} epochs here")
    fastnn.set_num_threads(1)  # batches of 50 8x8 digits: one thread beats a pool (see train_digits.py)
    model, optimizer = build(**best)
    solver = train.Solver(model, data, optimizer, batch_size=50, num_epochs=epochs, lr_decay=0.8, verbose=False,
                          num_train_samples=500, seed=seed).train()
    test_acc = solver.check_accuracy(X_test, y_test)
    print(f"held-out accuracy: {test_acc:.4f} ({len(X_test)} digits), best val {solver.best_val_acc:.4f}, "
          f"{time.perf_counter() - start:.1f} s")
    return test_acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", default=None, help="a running cluster's address (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--coarse-trials", type=int, default=8)
    parser.add_argument("--fine-trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.scheduler, args.workers, args.coarse_trials, args.fine_trials, args.epochs, args.seed)
