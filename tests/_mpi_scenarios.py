"""Data-parallel scenarios, run by tests/test_distributed.py under `mpiexec -n 2` and, for the
reference, in one process (comm=None): the same float64 model with BatchNorm2d and BatchNorm1d.

    mpiexec -n 2 python _mpi_scenarios.py OUTDIR     # writes OUTDIR/rank<r>.npz
"""
import sys

import numpy as np

import fastnn
from fastnn import nn, optim, train

DTYPE = np.float64
NUM_TRAIN = 37   # batches of 7: slices 4/3, and a last batch of 2 (one value per rank; training batch norm needs 2)
BATCH = 7
DP_BATCH = 9     # DataParallel loop: 5/4 per rank
DP_STEPS = 3


def data(seed=0):
    """Three classes of 1x6x6 images (a bright row per class, plus noise)."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 3, n)
        X = rng.standard_normal((n, 1, 6, 6)) * 0.5
        X[np.arange(n), 0, 2 * y, :] += 2.0
        return X.astype(DTYPE), y

    X_train, y_train = make(NUM_TRAIN)
    X_val, y_val = make(30)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val}


def model(seed=0):
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False, dtype=DTYPE, seed=seed), nn.BatchNorm2d(4, dtype=DTYPE), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * 3 * 3, 8, bias=False, dtype=DTYPE, seed=seed + 1), nn.BatchNorm1d(8, dtype=DTYPE), nn.ReLU(),
        nn.Linear(8, 3, dtype=DTYPE, seed=seed + 2),
    )


def solver_run(comm=None, checkpoint=None, stream=None):
    """Two epochs of Solver; returns its arrays and histories."""
    net = model()
    if comm is not None and comm.Get_rank() != 0:
        for p in net.params.values():  # other ranks start elsewhere: the broadcast must fix it
            p += 1.0
    solver = train.Solver(net, data(), optim.SGD(lr=0.05, momentum=0.9), batch_size=BATCH, num_epochs=2,
                          lr_decay=0.9, print_every=2, verbose=True, checkpoint=checkpoint, num_train_samples=20,
                          seed=3, stream=stream, comm=comm).train()
    out = {f"solver/params/{k}": v for k, v in net.params.items()}
    out.update({f"solver/buffers/{k}": v for k, v in net.buffers.items()})
    out["solver/loss"] = np.array(solver.loss_history)
    out["solver/train_acc"] = np.array(solver.train_acc_history)
    out["solver/val_acc"] = np.array(solver.val_acc_history)
    return out


def dp_run(comm=None):
    """A hand-written loop: DataParallel (or the model alone) on global batches of DP_BATCH; grads and
    input gradients of each step, parameters and running statistics after Adam."""
    d = data(1)
    net = model(5)
    opt = optim.Adam(lr=1e-2)
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    if comm is not None:
        from fastnn.distributed import DataParallel, local_slice

        # tiny buckets (several Iallreduces per step), progressed by the helper thread (the Solver polls)
        net = DataParallel(net, comm, bucket_cap_mb=1e-4, progress="thread")
    out = {}
    for step in range(DP_STEPS):
        index = np.arange(step * DP_BATCH, (step + 1) * DP_BATCH)
        start, stop = local_slice(DP_BATCH, rank, size) if comm is not None else (0, DP_BATCH)
        local = index[start:stop]
        scores = net.forward(d["X_train"][local])
        loss, dscores = fastnn.softmax_cross_entropy(scores, d["y_train"][local])
        if comm is not None:
            dx = net.backward(dscores, loss=loss)
            loss = net.loss
        else:
            dx = net.backward(dscores)
        out[f"dp/{step}/loss"] = np.array(loss)
        out[f"dp/{step}/dx"] = np.array(dx)
        out[f"dp/{step}/slice"] = np.array([start, stop])
        out.update({f"dp/{step}/grads/{k}": np.array(v) for k, v in net.grads.items()})
        opt.step(net.params, net.grads)
    out.update({f"dp/params/{k}": v for k, v in net.params.items()})
    out.update({f"dp/buffers/{k}": v for k, v in net.buffers.items()})
    return out


def main(outdir):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    out = solver_run(comm, checkpoint=f"{outdir}/best.npz", stream=sys.stdout)
    out.update(dp_run(comm))
    out["threads"] = np.array(fastnn.get_num_threads())
    from fastnn.distributed import DataParallel

    fastnn.set_num_threads(fastnn._threads._MAX_THREADS)  # the user's choice outlives the share
    DataParallel(model(), comm)
    out["threads_chosen"] = np.array(fastnn.get_num_threads())
    np.savez(f"{outdir}/rank{comm.Get_rank()}.npz", **out)


if __name__ == "__main__":
    main(sys.argv[1])
