"""examples/train_digits.py, data-parallel over MPI ranks: the same convnet, data, global batch of 50
and seed, so it reaches the single-process accuracy (98-99 % on the 297 held-out digits).

    mpiexec -n 2 python examples/train_digits_mpi.py
    mpiexec -f hosts -n 8 python examples/train_digits_mpi.py     # across machines (README)

Every rank loads the digits and builds the model; Solver(comm=) broadcasts rank 0's weights,
gives each rank its slice of every global batch, averages the gradients over the global batch
(allreduce, overlapped with the backward) and synchronizes the batch norms, so the result does not
depend on the number of ranks. Only rank 0 prints. Each rank uses its share of its machine's cores
unless --threads is given.
"""
import argparse
import os
import sys
import time

import fastnn
from fastnn import optim, preprocess, train

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_digits import build_model, load_digits  # noqa: E402  (the single-process example)


def main(epochs=12, seed=0, verbose=True, threads=None):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if threads is not None:
        fastnn.set_num_threads(threads)
    start = time.perf_counter()
    X_train, y_train, X_test, y_test = load_digits(seed)
    scaler = preprocess.ChannelMean(std=True).fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    data = {"X_train": X_train[:-150], "y_train": y_train[:-150], "X_val": X_train[-150:], "y_val": y_train[-150:]}
    model = build_model(seed)
    solver = train.Solver(model, data, optim.Adam(lr=3e-3), batch_size=50, num_epochs=epochs, lr_decay=0.8,
                          print_every=10, verbose=verbose, num_train_samples=500, seed=seed, comm=comm)
    solver.train()
    test_acc = solver.check_accuracy(X_test, y_test)  # collective: each rank scores its share
    if comm.Get_rank() == 0:
        print(f"held-out accuracy: {test_acc:.4f} ({len(X_test)} digits), best val {solver.best_val_acc:.4f}, "
              f"{comm.Get_size()} ranks x {fastnn.get_num_threads()} threads, {time.perf_counter() - start:.1f} s")
    return test_acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="fastnn threads per rank (default: its share)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    main(args.epochs, args.seed, verbose=not args.quiet, threads=args.threads)
