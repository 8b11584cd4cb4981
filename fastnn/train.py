"""Training loops: cs231n's Solver for fastnn.nn models, and random hyperparameter search.

Solver(model, data, optimizer).train() runs minibatch training: per epoch a fresh permutation of
the training set, `optimizer.step(model.params, model.grads)` per batch, `optimizer.lr *= lr_decay`
after each epoch, train/validation accuracy at each epoch's end, and the parameters (and
BatchNorm running statistics) of the best validation accuracy restored at the end. With an MPI
communicator (``comm=``) it trains data-parallel over the ranks (`fastnn.distributed`).

random_search(build, data, space, trials) trains one short Solver run per sampled point of
`space`, in this process or on an executor (concurrent.futures, dask.distributed), and
refine(results) narrows the space around the best (coarse to fine).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import math
import pickle
import sys
import time
from typing import Any, Callable

import numpy as np

from . import _threads
from .losses import softmax_cross_entropy

__all__ = ["Solver", "random_search", "refine", "TrialError", "load"]


def _copy(arrays):
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


class Solver:
    """cs231n's Solver for a fastnn.nn model: minibatch training with validation and checkpoints.

    After `train()`: ``loss_history`` (per iteration), ``train_acc_history`` and
    ``val_acc_history`` (per epoch), ``best_val_acc``, ``best_params`` and ``best_buffers``
    (copies; also loaded into the model). With `checkpoint` the best parameters and buffers are
    written with np.savez at each improvement (`load` puts them back into a model).

    With `comm` (an mpi4py communicator; every rank builds the Solver and calls train()), the
    training is data-parallel: `batch_size` is the global batch, every rank draws rank 0's
    permutations and trains on its slice of each global batch (`fastnn.distributed.local_slice`)
    through `fastnn.distributed.DataParallel` (rank 0's parameters and buffers broadcast first,
    gradients averaged over the global batch, BatchNorm on global-batch statistics), accuracy
    checks are split over the ranks and summed, `loss_history` holds the global-batch losses, and
    only rank 0 prints and writes checkpoints. Every rank ends with the parameters one process
    gets on the same data and seed, up to the rounding of the reductions.

    Parameters
    ----------
    model : fastnn.nn.Module
        Trained in place: ``forward``, ``backward(dscores, input_grad=False)``, ``params``,
        ``grads``, ``train()``, ``eval()`` (and ``buffers`` when it has BatchNorm).
    data : dict
        ``X_train``, ``y_train``, ``X_val``, ``y_val`` (labels: integer arrays).
    optimizer : fastnn.optim optimizer
        Anything with ``step(params, grads)`` and an ``lr`` attribute (decayed per epoch).
    loss : callable, default fastnn.softmax_cross_entropy
        ``loss(scores, y) -> (mean loss, dscores)``.
    batch_size : int, default 100
        The minibatch (with `comm`, the global batch over all ranks).
    num_epochs : int, default 10
    lr_decay : float, default 1.0
        ``optimizer.lr *= lr_decay`` after each epoch.
    print_every : int, default 100
        Iterations between the progress bar's loss updates.
    verbose : bool, default True
        A progress bar and a line per epoch on `stream`.
    checkpoint : str or path, optional
        Where to np.savez the best parameters at each improvement.
    num_train_samples : int or None, default 1000
        The training accuracy is measured on a random subset this large (None: all).
    num_val_samples : int or None, default None
        Likewise for the validation accuracy (None: all).
    seed : int, default 0
        The permutations and subsets.
    stream : file, optional
        Where verbose output goes (default sys.stdout).
    comm : mpi4py.MPI.Comm, optional
        Train data-parallel over the communicator's ranks (above).

    Raises
    ------
    ValueError
        `data` lacks a key, X and y lengths differ, batch_size < 1 or num_epochs < 0.

    Examples
    --------
    >>> from fastnn import nn, optim
    >>> from fastnn.train import Solver
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 5), dtype=np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> data = {"X_train": X[:40], "y_train": y[:40], "X_val": X[40:], "y_val": y[40:]}
    >>> model = nn.Sequential(nn.Linear(5, 16, seed=0), nn.ReLU(), nn.Linear(16, 2, seed=1))
    >>> solver = Solver(model, data, optim.Adam(lr=1e-2), batch_size=10, num_epochs=5, verbose=False)
    >>> solver = solver.train()
    >>> len(solver.loss_history), len(solver.val_acc_history)      # 4 batches per epoch, 5 epochs
    (20, 5)
    """

    def __init__(self, model, data, optimizer, loss=softmax_cross_entropy, batch_size=100, num_epochs=10,
                 lr_decay=1.0, print_every=100, verbose=True, checkpoint=None, num_train_samples=1000,
                 num_val_samples=None, seed=0, stream=None, comm=None):
        missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
        if missing:
            raise ValueError(f"Solver: data is missing {missing}")
        if len(data["X_train"]) != len(data["y_train"]) or len(data["X_val"]) != len(data["y_val"]):
            raise ValueError("Solver: X_train/y_train and X_val/y_val must have the same number of samples")
        if int(batch_size) < 1 or int(num_epochs) < 0:
            raise ValueError(f"Solver: batch_size must be >= 1 and num_epochs >= 0, got {batch_size}, {num_epochs}")
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.X_train, self.y_train = data["X_train"], np.asarray(data["y_train"])
        self.X_val, self.y_val = data["X_val"], np.asarray(data["y_val"])
        self.batch_size, self.num_epochs = int(batch_size), int(num_epochs)
        self.comm = comm
        self.rank, self.size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
        self.lr_decay, self.print_every = float(lr_decay), max(1, int(print_every))
        self.verbose = bool(verbose) and self.rank == 0
        self.checkpoint = checkpoint
        self.num_train_samples, self.num_val_samples = num_train_samples, num_val_samples
        self.rng = np.random.default_rng(seed)
        if comm is not None:  # rank 0's stream on every rank: the same permutations and subsets everywhere
            self.rng.bit_generator.state = comm.bcast(self.rng.bit_generator.state, root=0)
        self.stream = stream or sys.stdout
        self._parallel = None  # the DataParallel wrapper, made by train() when comm is given
        self._bar = None  # the progress bar while train() runs (verbose)
        self._reset()

    def _reset(self):
        self.epoch = 0
        self.best_val_acc = -1.0
        self.best_params = _copy(self.model.params)
        self.best_buffers = _copy(getattr(self.model, "buffers", {}))
        self.loss_history, self.train_acc_history, self.val_acc_history = [], [], []

    def _step(self, index):
        if self._parallel is not None:
            return self._parallel_step(index)
        self.model.train()
        scores = self.model.forward(self.X_train[index])
        loss, dscores = self.loss(scores, self.y_train[index])
        self.model.backward(dscores, input_grad=False)  # the data needs no gradient
        self.optimizer.step(self.model.params, self.model.grads)
        self.loss_history.append(loss)

    def _parallel_step(self, index):
        """This rank's slice of the global batch `index`; gradients and loss reduced over the ranks."""
        from .distributed import local_slice

        start, stop = local_slice(len(index), self.rank, self.size)
        local = index[start:stop]
        net = self._parallel.train()
        scores = net.forward(self.X_train[local])
        loss, dscores = self.loss(scores, self.y_train[local]) if len(local) else (0.0, None)
        net.backward(dscores, input_grad=False, loss=loss)
        self.optimizer.step(net.params, net.grads)
        self.loss_history.append(net.loss)

    def check_accuracy(self, X: np.ndarray, y: np.ndarray, num_samples: int | None = None,
                       batch_size: int | None = None) -> float:
        """Accuracy of the model (eval mode) on X, or on a random subset of num_samples.

        With `comm`, each rank scores its slice of the (same) subset and the counts are summed:
        every rank must call it.

        Parameters
        ----------
        X, y : ndarray
            Inputs and integer labels.
        num_samples : int, optional
            Score a random subset this large (drawn from the Solver's generator).
        batch_size : int, optional
            Forward passes of this many samples (default: the Solver's batch_size).

        Returns
        -------
        float
            The fraction of argmax predictions equal to y.
        """
        y = np.asarray(y)
        if num_samples is not None and len(X) > num_samples:
            index = self.rng.choice(len(X), num_samples, replace=False)
            X, y = X[index], y[index]
        total = len(X)
        if self.comm is not None:
            from .distributed import local_slice

            start, stop = local_slice(total, self.rank, self.size)
            X, y = X[start:stop], y[start:stop]
        batch_size = batch_size or self.batch_size
        self.model.eval()
        try:
            correct = 0
            for start in range(0, len(X), batch_size):
                scores = self.model.forward(X[start:start + batch_size])
                correct += int(np.sum(np.argmax(scores, axis=1) == y[start:start + batch_size]))
        finally:
            self.model.train()
        if self.comm is not None:
            correct = self.comm.allreduce(correct)
        return correct / max(1, total)

    def _progress_bar(self, total):
        """A tqdm bar on `stream` (None when not verbose): iterations, rate and the recent loss."""
        if not self.verbose:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, file=self.stream, unit="batch", leave=True, dynamic_ncols=True)

    def _end_of_epoch(self):
        train_acc = self.check_accuracy(self.X_train, self.y_train, self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        if self.verbose:
            message = f"(Epoch {self.epoch} / {self.num_epochs}) train acc: {train_acc:.4f}; val acc: {val_acc:.4f}"
            if self._bar is not None:
                self._bar.write(message, file=self.stream)
            else:
                self.stream.write(message + "\n")
        if val_acc > self.best_val_acc:
            self.best_val_acc = val_acc
            self.best_params = _copy(self.model.params)
            self.best_buffers = _copy(getattr(self.model, "buffers", {}))
            if self.checkpoint is not None:
                self.save(self.checkpoint)

    def save(self, path) -> None:
        """np.savez of the best parameters, buffers (BatchNorm running stats), epoch and accuracy.

        Keys: ``params/<name>``, ``buffers/<name>``, ``epoch``, ``best_val_acc``. With `comm`, rank
        0 writes and the other ranks do nothing.

        Parameters
        ----------
        path : str or path-like
            The file (np.savez adds ".npz" when it has no extension).
        """
        if self.rank != 0:
            return
        np.savez(path, **{f"params/{k}": v for k, v in self.best_params.items()},
                 **{f"buffers/{k}": v for k, v in self.best_buffers.items()},
                 epoch=self.epoch, best_val_acc=self.best_val_acc)

    def train(self) -> "Solver":
        """Run num_epochs epochs; the model ends with the parameters of the best validation accuracy.

        Returns
        -------
        Solver
            self (``solver.train().best_val_acc``).
        """
        if self.comm is not None and self._parallel is None:
            from .distributed import DataParallel

            self._parallel = DataParallel(self.model, self.comm)  # broadcasts rank 0's parameters and buffers
            if not self.val_acc_history:  # the starting point is rank 0's now
                self.best_params = _copy(self.model.params)
                self.best_buffers = _copy(getattr(self.model, "buffers", {}))
        num_train = len(self.X_train)
        per_epoch = max(1, math.ceil(num_train / self.batch_size))
        self._bar = self._progress_bar(self.num_epochs * per_epoch)
        try:
            for self.epoch in range(1, self.num_epochs + 1):
                order = self.rng.permutation(num_train)
                for b in range(per_epoch):
                    self._step(order[b * self.batch_size:(b + 1) * self.batch_size])
                    if self._bar is not None:
                        self._bar.update()
                        if len(self.loss_history) % self.print_every == 0 or b == per_epoch - 1:
                            self._bar.set_postfix(loss=f"{np.mean(self.loss_history[-self.print_every:]):.4f}")
                self.optimizer.lr *= self.lr_decay
                self._end_of_epoch()
        finally:
            if self._bar is not None:
                self._bar.close()
            self._bar = None
        load(self.model, self.best_params, self.best_buffers)
        if self._parallel is not None:
            # the ranks already agree up to reduction rounding; rank 0's copy makes them agree to the bit
            self._parallel.broadcast_state()
        return self


def load(model: Any, params: dict[str, np.ndarray], buffers: dict[str, np.ndarray] | None = None) -> None:
    """Copy saved arrays into the model's own parameters (and buffers), in place.

    The model's arrays stay the same objects (an optimizer holding them keeps working).

    Parameters
    ----------
    model : fastnn.nn.Module
    params : dict of ndarray
        ``{key: array}`` with keys of ``model.params`` (e.g. ``solver.best_params``, or the
        ``params/<key>`` entries of a checkpoint with the prefix removed).
    buffers : dict of ndarray, optional
        Likewise for ``model.buffers`` (BatchNorm running statistics).

    Raises
    ------
    ValueError
        A key the model does not have (shapes must broadcast into the model's arrays).

    Examples
    --------
    >>> from fastnn import nn
    >>> from fastnn.train import load
    >>> model = nn.Linear(2, 1, seed=0)
    >>> load(model, {"weight": np.ones((2, 1)), "bias": np.zeros(1)})
    >>> model.params["weight"].ravel()
    array([1., 1.], dtype=float32)
    """
    for source, target in ((params, model.params), (buffers or {}, getattr(model, "buffers", {}))):
        for key, value in source.items():
            if key not in target:
                raise ValueError(f"load: the model has no array {key!r}")
            np.copyto(target[key], value)


def _sample(rng, low, high):
    if low <= 0 or high <= 0 or low > high:
        raise ValueError(f"random_search: a range must satisfy 0 < low <= high, got ({low}, {high})")
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    both_int = isinstance(low, (int, np.integer)) and isinstance(high, (int, np.integer))
    return int(round(value)) if both_int else value


def _draw_trials(space, trials, seed):
    """Every trial's (hparams, seed), drawn in the serial search's order: where a trial runs never
    changes what it samples."""
    rng = np.random.default_rng(seed)
    drawn = []
    for _ in range(int(trials)):
        hparams = {name: _sample(rng, *bounds) for name, bounds in space.items()}
        drawn.append((hparams, int(rng.integers(2 ** 31))))
    return drawn


class _ThreadShare:
    """fastnn's thread count inside a trial: the cores of the worker's machine divided by the trials
    that run at once there (`slots`: a count, or a {host: count} map for a dask cluster)."""

    def __init__(self, slots):
        self.slots = slots

    def threads(self):
        if self.slots is None or _threads._explicit is not None:  # set_num_threads in the worker wins
            return None
        slots = self.slots
        if isinstance(slots, dict):
            slots = slots.get(_dask_worker_host())
        return max(1, _threads._MAX_THREADS // int(slots)) if slots else None

    @contextlib.contextmanager
    def applied(self):
        n = self.threads()
        if n is None:
            yield
            return
        from threadpoolctl import threadpool_limits

        # per calling thread (OpenMP's setting, which fastnn follows): a dask worker's other trials keep theirs
        with threadpool_limits(n, user_api="openmp"):
            yield


def _dask_worker_host():
    try:
        from distributed import get_worker
        from distributed.comm import get_address_host

        return get_address_host(get_worker().address)
    except (ImportError, ValueError):
        return None


def _run_trial(build, data, hparams, seed, num_epochs, batch_size, trial, share=None):
    """One trial, here or in an executor's worker: build, a short Solver run, its summary."""
    with share.applied() if share is not None else contextlib.nullcontext():
        model, optimizer = build(**hparams)
        solver = Solver(model, data, optimizer, batch_size=batch_size, num_epochs=num_epochs, verbose=False,
                        seed=seed)
        solver.train()
    return {"hparams": hparams, "val_acc": solver.best_val_acc,
            "train_acc": solver.train_acc_history[-1] if solver.train_acc_history else math.nan,
            "loss": solver.loss_history[-1] if solver.loss_history else math.nan,
            "trial": trial, "seed": seed}


def _by_accuracy(results):
    return sorted(results, key=lambda r: (-r["val_acc"], r["loss"] if math.isfinite(r["loss"]) else math.inf))


def _describe(hparams):
    return ", ".join(f"{k}={v:.3g}" for k, v in hparams.items())


class TrialError(RuntimeError):
    """Trials of `random_search` on an executor failed: an exception, or a worker process that died.

    Parameters
    ----------
    message : str
        Names each failed trial and what happened to it.
    results, failed, not_started
        As the attributes below.

    Attributes
    ----------
    results : list of dict
        The trials that finished, sorted as random_search sorts them (feed them to `refine`).
    failed : dict
        Trial index (0-based, as the results' ``trial``) -> the exception its future raised.
    not_started : list of int
        Indices of the trials never submitted (submission stops at the first failure).
    """

    def __init__(self, message, results, failed, not_started):
        super().__init__(message)
        self.results, self.failed, self.not_started = results, failed, not_started


# exceptions that mean the process running a trial went away (concurrent.futures, dask, loky/joblib)
_WORKER_DIED = ("BrokenProcessPool", "KilledWorker", "TerminatedWorkerError")


def _client_of(executor):
    """The dask.distributed Client behind `executor` (a Client or its get_executor()), or None."""
    for candidate in (executor, getattr(executor, "_client", None)):
        if candidate is not None and type(candidate).__module__.split(".")[0] == "distributed" \
                and hasattr(candidate, "nthreads"):
            return candidate
    return None


def _slots(executor, client):
    """(trials at once per machine for _ThreadShare, trials to keep in flight) for `executor`."""
    if client is not None:
        from distributed.comm import get_address_host

        per_host = {}
        for address, n in client.nthreads().items():
            host = get_address_host(address)
            per_host[host] = per_host.get(host, 0) + n
        return per_host, sum(per_host.values()) or None
    workers = getattr(executor, "_max_workers", None)  # concurrent.futures and loky executors
    return workers, workers


def _check_picklable(build, executor, client):
    if isinstance(executor, concurrent.futures.ThreadPoolExecutor):
        return  # threads share the objects
    if client is not None:
        import cloudpickle as pickler  # what dask sends functions with (lambdas and closures pass)
    else:
        pickler = pickle
    try:
        pickler.dumps(build)
    except Exception as error:
        raise TypeError(f"random_search: build must be picklable to run trials on {type(executor).__name__} "
                        f"(define it at module level, not as a lambda or a nested function; a functools.partial "
                        f"of a module-level function works): {error}") from error


def _wait_any(futures):
    if all(isinstance(f, concurrent.futures.Future) for f in futures):
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
        return
    while not any(f.done() for f in futures):  # any future with .done(): poll (trials take seconds)
        time.sleep(0.01)


def _run_on_executor(executor, build, data, drawn, num_epochs, batch_size, verbose):
    """Trials on `executor`, at most one per worker slot in flight (so a pool that breaks names only
    the trials it was running); results in trial order. TrialError when any failed."""
    client = _client_of(executor)
    _check_picklable(build, executor, client)
    slots, limit = _slots(executor, client)
    share = _ThreadShare(slots)
    if client is not None:
        # sent once to every worker, not once per trial; a fresh key (hash=False): releasing an earlier
        # search's copy of the same data must not drop this one
        [data] = client.scatter([data], broadcast=True, hash=False)
    futures, results, failed = {}, {}, {}
    submitted, submit_error = 0, None

    def more_to_submit():  # until all are submitted, or the first failure (then drain what runs)
        return submitted < len(drawn) and not failed and submit_error is None

    while futures or more_to_submit():
        while more_to_submit() and (limit is None or len(futures) < limit):
            hparams, seed = drawn[submitted]
            try:
                futures[submitted] = executor.submit(_run_trial, build, data, hparams, seed, num_epochs, batch_size,
                                                     submitted, share)
            except Exception as error:  # e.g. the pool broke since the last check
                submit_error = error
                break
            submitted += 1
        if not futures:
            break
        _wait_any(list(futures.values()))
        for trial in sorted(futures):
            future = futures[trial]
            if not future.done():
                continue
            del futures[trial]
            try:
                results[trial] = future.result()
            except Exception as error:
                failed[trial] = error
                continue
            if verbose:
                print(f"trial {trial + 1}/{len(drawn)}: {_describe(drawn[trial][0])}: "
                      f"val acc {results[trial]['val_acc']:.4f}")
    if failed or submit_error is not None:
        not_started = list(range(len(results) + len(failed), len(drawn)))
        raise _trial_error(drawn, results, failed, not_started, submit_error)
    return [results[t] for t in range(len(drawn))]


def _trial_error(drawn, results, failed, not_started, submit_error):
    lines = []
    for trial, error in sorted(failed.items()):
        what = f"trial {trial + 1}/{len(drawn)} ({_describe(drawn[trial][0])})"  # numbered as verbose prints
        if type(error).__name__ in _WORKER_DIED:
            lines.append(f"{what} did not finish: a worker process died while it ran ({type(error).__name__}: {error})")
        else:
            lines.append(f"{what} raised {type(error).__name__}: {error}")
    if submit_error is not None:
        lines.append(f"submitting trial {len(results) + len(failed) + 1}/{len(drawn)} failed: "
                     f"{type(submit_error).__name__}: {submit_error}")
    message = (f"random_search: {'; '.join(lines)}. {len(results)} of {len(drawn)} trials finished (in this "
               f"error's .results)" + (f", {len(not_started)} were not started" if not_started else ""))
    error = TrialError(message, _by_accuracy(results.values()), failed, not_started)
    error.__cause__ = next(iter(failed.values()), submit_error)
    return error


def random_search(build: Callable[..., tuple], data: dict, space: dict[str, tuple[float, float]], trials: int,
                  seed: int = 0, num_epochs: int = 1, batch_size: int = 100, verbose: bool = False,
                  executor: Any = None) -> list[dict]:
    """Random hyperparameter search (Bergstra & Bengio), in this process or on an executor.

    Each trial samples every ``space[name] = (low, high)`` log-uniformly (ints when both bounds
    are ints), calls ``build(**sample) -> (model, optimizer)``, trains briefly (`num_epochs`) with
    a Solver and records its best validation accuracy.

    Parameters
    ----------
    build : callable
        ``build(**hparams) -> (model, optimizer)``; picklable when `executor` runs trials in
        other processes (a module-level function or a functools.partial of one).
    data : dict
        X_train, y_train, X_val, y_val, as Solver takes.
    space : dict
        Name -> (low, high), 0 < low <= high.
    trials : int
        Number of trials.
    seed : int, optional
        Seeds the samples and each trial's Solver; every trial's hyperparameters and seed are
        drawn up front in the serial order, so the results are the same with or without an
        executor.
    num_epochs, batch_size : int, optional
        Each trial's Solver run.
    verbose : bool, optional
        Print each trial's result when it finishes.
    executor : object, optional
        Anything with ``submit(fn, *args)`` returning a future with ``.result()``:
        `concurrent.futures` executors, a `dask.distributed.Client` or its ``get_executor()``.
        At most one trial per worker slot is in flight; inside a worker fastnn uses the cores of
        its machine divided by the trials running there (unless the worker called
        ``fastnn.set_num_threads``). None runs the trials here, one after another.

    Returns
    -------
    list of dict
        Trials sorted best first (validation accuracy, then final loss): ``hparams``,
        ``val_acc``, ``train_acc``, ``loss``, ``trial`` (index in drawing order), ``seed``.

    Raises
    ------
    TrialError
        On an executor, when a trial raised or its worker process died: names the trials and
        carries the finished ones in ``.results``.
    TypeError
        When `build` cannot be pickled for `executor`.
    ValueError
        A range that is not 0 < low <= high.

    See Also
    --------
    refine

    Examples
    --------
    >>> from fastnn import nn, optim
    >>> from fastnn.train import random_search, refine
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 5), dtype=np.float32)
    >>> data = {"X_train": X[:30], "y_train": (X[:30, 0] > 0).astype(int),
    ...         "X_val": X[30:], "y_val": (X[30:, 0] > 0).astype(int)}
    >>> def build(lr, hidden):
    ...     return nn.Sequential(nn.Linear(5, hidden), nn.ReLU(), nn.Linear(hidden, 2)), optim.Adam(lr=lr)
    >>> results = random_search(build, data, {"lr": (1e-4, 1e-1), "hidden": (4, 32)}, trials=3, batch_size=10)
    >>> sorted(results[0]["hparams"])
    ['hidden', 'lr']
    >>> space = refine(results, top_k=2)       # then search again in the narrower space
    """
    drawn = _draw_trials(space, trials, seed)
    if executor is not None:
        return _by_accuracy(_run_on_executor(executor, build, data, drawn, num_epochs, batch_size, verbose))
    results = []
    for trial, (hparams, trial_seed) in enumerate(drawn):
        results.append(_run_trial(build, data, hparams, trial_seed, num_epochs, batch_size, trial))
        if verbose:
            print(f"trial {trial + 1}/{len(drawn)}: {_describe(hparams)}: val acc {results[-1]['val_acc']:.4f}")
    return _by_accuracy(results)


def refine(results: list[dict], top_k: int = 3) -> dict[str, tuple[float, float]]:
    """A narrower search space around the best trials (coarse to fine).

    Parameters
    ----------
    results : list of dict
        `random_search`'s result (best first), or `TrialError.results`.
    top_k : int, default 3
        How many of the best trials span the new ranges.

    Returns
    -------
    dict
        ``{name: (low, high)}`` for `random_search`: each range is [min, max] of the top_k
        trials' values, widened by a factor 1.5 each way when they coincide (integers stay
        integers, >= 1).

    Raises
    ------
    ValueError
        `results` is empty.

    Examples
    --------
    >>> from fastnn.train import refine
    >>> results = [{"hparams": {"lr": 1e-3}}, {"hparams": {"lr": 4e-3}}, {"hparams": {"lr": 1e-1}}]
    >>> refine(results, top_k=2)
    {'lr': (0.001, 0.004)}
    """
    if not results:
        raise ValueError("refine: results is empty")
    best = results[: max(1, int(top_k))]
    space = {}
    for name in best[0]["hparams"]:
        values = [r["hparams"][name] for r in best]
        low, high = min(values), max(values)
        if low == high:
            low, high = low / 1.5, high * 1.5
            if isinstance(values[0], int):
                low, high = max(1, int(low)), max(1, int(math.ceil(high)))
        space[name] = (low, high)
    return space
