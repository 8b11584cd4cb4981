"""Measure which compiled backend is faster for each op on this machine: `python -m fastnn.tune`.

Each op runs on typical float32 inputs (the benchmark's shapes: (32, 64, 32, 32) activations,
3x3 convolutions of 64 channels, 256 x 4096 x 1024 linear layers, ...) on both backends, at
fastnn's thread count, after an untimed call (Numba compiles there). The backends alternate round
by round, and each keeps the median of its rounds. The table goes to the user's cache directory
(fastnn._autotable: $FASTNN_CACHE_DIR, else platformdirs' user cache dir), with this machine's
fingerprint; AUTO uses it from then on, here only. Progress: one line per family, with seconds.

Options: --ops a,b (only these), --seconds S (per op and backend, default 0.3), --out PATH
(write there instead: `--out fastnn/backend_table.json` refreshes the shipped table).
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from typing import Callable

import numpy as np

import fastnn
from fastnn import _autotable, _ops


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _activation_case(op, rng):
    x, dy = _randn(rng, 32, 64, 32, 32), _randn(rng, 32, 64, 32, 32)
    base, backward = op.removesuffix("_backward"), op.endswith("_backward")
    if base == "prelu":
        a = _randn(rng, 64)
        return ((dy, x, a) if backward else (x, a)), {}
    if base == "maxout":
        return ((_randn(rng, 32, 32, 32, 32), x, 2) if backward else (x, 2)), {}
    return ((dy, x) if backward else (x,)), {}


def _conv_case(op, rng):
    x, w = _randn(rng, 32, 64, 32, 32), _randn(rng, 64, 64, 3, 3) * np.float32(0.05)
    if op == "conv2d_backward":
        return (_randn(rng, 32, 64, 32, 32), x, w), {"padding": 1}
    return (x, w, _randn(rng, 64)), {"padding": 1}


def _batchnorm_case(op, rng):
    x, gamma, beta = _randn(rng, 32, 64, 32, 32), _randn(rng, 64), _randn(rng, 64)
    if not op.endswith("_backward"):
        return (x, gamma, beta, np.zeros(64, np.float32), np.ones(64, np.float32)), {}
    with fastnn.use_backend("numpy"):
        y, mean, invstd = getattr(fastnn, op.removesuffix("_backward"))(x, gamma, beta)
    head = (_randn(rng, *x.shape), y) if op == "batch_norm_relu_backward" else (_randn(rng, *x.shape),)
    return head + (x, gamma, mean, invstd), {}


def _optim_case(op, rng):
    n = 1 << 22
    p, g = _randn(rng, n), _randn(rng, n)
    state = np.abs(_randn(rng, n))
    return {"sgd_step": ((p, g, state), {"lr": 0.01, "momentum": 0.9}),
            "adagrad_step": ((p, g, state), {"lr": 0.01}),
            "rmsprop_step": ((p, g, state), {"lr": 0.01}),
            "adam_step": ((p, g, _randn(rng, n), state, 3), {"lr": 1e-3})}[op]


def typical_case(op: str, rng: np.random.Generator) -> tuple[tuple, dict]:
    """The arguments of one typical float32 call of `op` (the benchmark's shapes).

    Parameters
    ----------
    op : str
        An op of fastnn's op table (``fastnn._ops.FAMILY_OF``), e.g. "relu" or "conv2d_backward".
    rng : numpy.random.Generator
        Draws the inputs.

    Returns
    -------
    args : tuple
        Positional arguments of the public function (arrays of tens of MB for most ops).
    kwargs : dict
        Keyword arguments.

    Raises
    ------
    KeyError
        `op` is not in the op table.

    Examples
    --------
    >>> from fastnn.tune import typical_case
    >>> args, kwargs = typical_case("relu", np.random.default_rng(0))
    >>> args[0].shape, kwargs
    ((32, 64, 32, 32), {})
    """
    family = _ops.FAMILY_OF[op]
    if family == "activations":
        return _activation_case(op, rng)
    if family == "linear":
        x, w = _randn(rng, 256, 4096), _randn(rng, 4096, 1024) * np.float32(0.02)
        return ((_randn(rng, 256, 1024), x, w) if op == "linear_backward" else (x, w, _randn(rng, 1024))), {}
    if family == "losses":
        return (_randn(rng, 256, 1000), rng.integers(0, 1000, 256)), {}
    if family == "conv":
        return _conv_case(op, rng)
    if family == "pool":
        x = _randn(rng, 32, 64, 32, 32)
        return ((_randn(rng, 32, 64, 16, 16), x, 2) if op.endswith("_backward") else (x, 2)), {}
    if family == "batchnorm":
        return _batchnorm_case(op, rng)
    return _optim_case(op, rng)


def _public(op):
    return getattr(fastnn.optim if _ops.FAMILY_OF[op] == "optim" else fastnn, op)


def measure(op: str, seconds: float) -> dict[str, float]:
    """Time `op` on each compiled backend that implements it, on `typical_case`'s inputs.

    After an untimed call per backend (Numba compiles there), the backends alternate call by
    call until each has run about `seconds` and at least 5 times.

    Parameters
    ----------
    op : str
        An op of fastnn's op table.
    seconds : float
        Time per backend.

    Returns
    -------
    dict
        ``{backend: median seconds per call}``; empty when no compiled backend implements `op`.
    """
    args, kwargs = typical_case(op, np.random.default_rng(0))
    fn = _public(op)
    backends = [b for b in _ops.COMPILED if b in fastnn.available_backends() and _ops.kernel(op, b)]
    times = {b: [] for b in backends}
    for b in backends:  # untimed: Numba compiles (or loads its cache) here
        with fastnn.use_backend(b):
            fn(*args, **kwargs)
    deadline = time.perf_counter() + seconds * len(backends)
    while time.perf_counter() < deadline or min(len(t) for t in times.values()) < 5:
        for b in backends:
            with fastnn.use_backend(b):
                start = time.perf_counter()
                fn(*args, **kwargs)
                times[b].append(time.perf_counter() - start)
    return {b: float(np.median(t)) for b, t in times.items()}


def tune(ops: list[str], seconds: float, log: Callable[[str], None] = print) -> dict:
    """Measure `ops` family by family and make the table "auto" reads.

    Parameters
    ----------
    ops : list of str
        Ops of fastnn's op table.
    seconds : float
        Per op and backend (`measure`).
    log : callable, default print
        Gets one line per family: its op count and the seconds it took.

    Returns
    -------
    dict
        ``{"fingerprint": this machine's, "measured": ISO date, "entries": {op: {"backend",
        "ratio", "tie"}}}``, as `python -m fastnn.tune` writes it to JSON (fastnn._autotable).
    """
    entries = {}
    for family, members in _ops.FAMILIES.items():
        members = [op for op in members if op in ops]
        if not members:
            continue
        started = time.perf_counter()
        for op in members:
            medians = measure(op, seconds)
            if not medians:
                continue
            ratio = medians["cython"] / medians["numba"] if len(medians) == 2 else None
            entries[op] = _autotable.entry(ratio, list(medians))
        log(f"  {family:<12} {len(members):3d} ops  {time.perf_counter() - started:6.1f} s")
    return {"fingerprint": _autotable.fingerprint(), "measured": datetime.date.today().isoformat(),
            "entries": entries}


def main(argv: list[str] | None = None) -> int:
    """The command line ``python -m fastnn.tune``: measure, write the table, print where.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``): ``--ops a,b`` (only these ops), ``--seconds S``
        (per op and backend, default 0.3), ``--out PATH`` (write there instead of the user cache
        directory).

    Returns
    -------
    int
        The exit status, 0 (also when fewer than two compiled backends leave nothing to choose).

    Raises
    ------
    SystemExit
        Unknown options or ops (argparse's usage error, status 2).
    """
    parser = argparse.ArgumentParser(prog="python -m fastnn.tune", description=__doc__.splitlines()[0])
    parser.add_argument("--ops", help="comma-separated ops (default: all)")
    parser.add_argument("--seconds", type=float, default=0.3, help="per op and backend")
    parser.add_argument("--out", help="where to write the table (default: the user cache directory)")
    args = parser.parse_args(argv)
    compiled = [b for b in _ops.COMPILED if b in fastnn.available_backends()]
    if len(compiled) < 2:
        print(f"fastnn.tune: only {compiled or 'no compiled backend'} here: nothing to choose")
        return 0
    ops = args.ops.split(",") if args.ops else list(_ops.FAMILY_OF)
    unknown = [op for op in ops if op not in _ops.FAMILY_OF]
    if unknown:
        parser.error(f"unknown ops: {', '.join(unknown)}")
    path = _autotable.local_path() if args.out is None else args.out
    print(f"fastnn.tune: {len(ops)} ops x {len(compiled)} backends, {fastnn.get_num_threads()} threads, "
          f"about {args.seconds:g} s each (plus compilation on first use)", flush=True)
    table = tune(ops, args.seconds, log=lambda line: print(line, flush=True))
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    _autotable.reload()
    ties = sum(e["tie"] for e in table["entries"].values())
    print(f"fastnn.tune: wrote {path} ({len(table['entries'])} ops, {ties} ties -> {_autotable.TIE_BACKEND})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
