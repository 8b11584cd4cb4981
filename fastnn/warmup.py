"""Compile every Numba kernel ahead of time: `python -m fastnn.warmup [--strict] [--jobs N]`.

Calls each op of `fastnn._ops.FAMILIES` that the numba backend implements, through its public
function (so the compiled signatures are exactly those of real calls), on tiny valid inputs in
float32 and float64, including the variants that compile separately (bias or None, scalar or
per-channel PReLU weight, 2-D and 4-D batch norm, training and eval, a few conv/pool
configurations). Kernels are cached on disk (`cache=True`), so later processes load them.
Ops without a numba kernel are skipped and listed at the end. Exit status is 0 even when a call
fails (`make bench` goes on to report); `--strict` makes failures exit 1. `--jobs N` compiles in N
processes (Numba compiles on one core; each process takes every N-th op), printing each op as it
is done.
"""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

import fastnn
from fastnn import _ops

DTYPES = (np.float32, np.float64)


def _conv_out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _public(op):
    module = fastnn.optim if _ops.FAMILY_OF[op] == "optim" else fastnn
    return getattr(module, op)


def _reference(op, *args, **kwargs):
    """Inputs that depend on a forward (saved statistics) come from the NumPy reference."""
    with fastnn.use_backend("numpy"):
        return _public(op)(*args, **kwargs)


def _activation_cases(op, base, backward, randn, dtype):
    x4, x2, dy4 = randn(2, 4, 5, 5), randn(3, 4), randn(2, 4, 5, 5)
    if base == "prelu":
        weights = (randn(4), np.asarray(0.25, dtype))
        return [((dy4, x4, a) if backward else (x4, a), {}) for a in weights]
    if base == "maxout":
        if backward:
            return [((randn(2, 2, 5, 5), x4, 2), {"axis": 1}), ((randn(3, 2), x2, 2), {"axis": 1})]
        return [((x4, 2), {"axis": 1}), ((x2, 2), {"axis": 1})]
    args = (dy4, x4) if backward else (x4,)
    if base == "gelu":  # the erf and tanh forms are separate kernels
        return [(args, {}), (args, {"approximate": "tanh"})]
    kwargs = {"leaky_relu": {"negative_slope": 0.1}, "elu": {"alpha": 1.0}}.get(base, {})
    return [(args, kwargs)]


def _linear_cases(op, base, backward, randn, dtype):
    x2, w, b = randn(3, 4), randn(4, 3), randn(3)
    if backward:
        # dx or not (None compiles apart), and the empty sums (N = 0)
        return [((randn(3, 3), x2, w), {}), ((randn(2, 3), randn(2, 2, 2), w), {}),
                ((randn(3, 3), x2, w), {"input_grad": False}), ((randn(0, 3), randn(0, 4), w), {}),
                ((randn(0, 3), randn(0, 4), w), {"input_grad": False})]
    # bias or None, (N, ...) inputs, no input features (an empty sum)
    return [((x2, w, b), {}), ((x2, w), {}), ((randn(2, 2, 2), w, b), {}), ((randn(3, 0), randn(0, 3), b), {})]


def _loss_cases(op, base, backward, randn, dtype):
    labels = np.array([0, 4, 1], dtype=np.int64)
    cases = [((randn(3, 5), labels), {}), ((randn(3, 5), labels.astype(np.int32)), {})]
    if op == "softmax_cross_entropy":
        # torch's options share the class-index kernels (rows; (N, C, S) planes) whatever the weight,
        # smoothing or reduction; class probabilities compile two more (rows, planes)
        cases += [((randn(3, 5), np.array([0, -100, 1])), dict(weight=randn(5), label_smoothing=0.1, reduction="none")),
                  ((randn(2, 5, 3), np.zeros((2, 3), np.int64)), dict(reduction="sum")),
                  ((randn(3, 5), np.full((3, 5), 0.2, dtype)), dict(label_smoothing=0.1)),
                  ((randn(3, 5), np.full((3, 5), 0.2, dtype)), dict(weight=randn(5), reduction="none")),
                  ((randn(2, 5, 3), np.full((2, 5, 3), 0.2, dtype)), dict(label_smoothing=0.1))]
    return cases


# (x shape, w shape, params): 3x3 same (too few channels for Winograd: im2col), 1x1, strided 7x7,
# dilated grouped, a 3x3 layer Winograd takes (>= 4 channels, >= 96 output tiles; Numba's
# `_winograd_fits`), whose kernels compile apart from im2col's, and a depthwise one (groups == C:
# Numba's direct loops, `_depthwise_fits`).
_CONV_CONFIGS = [((2, 3, 6, 6), (4, 3, 3, 3), dict(stride=1, padding=1, dilation=1, groups=1)),
                 ((2, 4, 5, 5), (6, 4, 1, 1), dict(stride=1, padding=0, dilation=1, groups=1)),
                 ((2, 3, 9, 9), (4, 3, 7, 7), dict(stride=2, padding=3, dilation=1, groups=1)),
                 ((2, 4, 7, 7), (4, 2, 3, 3), dict(stride=1, padding=1, dilation=2, groups=2)),
                 ((2, 4, 28, 28), (4, 4, 3, 3), dict(stride=1, padding=1, dilation=1, groups=1)),
                 ((2, 4, 7, 7), (8, 1, 3, 3), dict(stride=2, padding=1, dilation=1, groups=4))]


def _conv_cases(op, base, backward, randn, dtype):
    cases = []
    for x_shape, w_shape, params in _CONV_CONFIGS:
        x, w = randn(*x_shape), randn(*w_shape)
        if backward:
            ho = _conv_out(x_shape[2], w_shape[2], params["stride"], params["padding"], params["dilation"])
            wo = _conv_out(x_shape[3], w_shape[3], params["stride"], params["padding"], params["dilation"])
            cases.append(((randn(x_shape[0], w_shape[0], ho, wo), x, w), params))
            cases.append(((randn(x_shape[0], w_shape[0], ho, wo), x, w), {**params, "input_grad": False}))
        else:
            cases += [((x, w, randn(w_shape[0])), params), ((x, w, None), params)]
    return cases


def _pool_cases(op, base, backward, randn, dtype):
    x = randn(2, 3, 7, 7)
    # the 2x2 stride-2 kernels and the general ones (padded or not, stride 1, 2 or more: separate
    # loops); then the options: ceil_mode's hanging windows, dilation (its own kernels), max's indices
    # (undilated and dilated), average's divisors, unbatched x
    configs = [dict(kernel_size=2, stride=2, padding=0), dict(kernel_size=3, stride=2, padding=1),
               dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=2, stride=1),
               dict(kernel_size=2, ceil_mode=True), dict(kernel_size=3, stride=2, ceil_mode=True),
               dict(kernel_size=3, stride=3)]
    if base == "max_pool2d":
        configs += [dict(kernel_size=3, stride=2, padding=1, dilation=2),
                    dict(kernel_size=3, stride=2, return_indices=True),
                    dict(kernel_size=2, ceil_mode=True, return_indices=True),
                    dict(kernel_size=3, stride=2, padding=1, dilation=2, return_indices=True)]
    else:
        configs += [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
                    dict(kernel_size=2, divisor_override=3)]
    cases = []
    for inputs in (x, x[0].copy()):
        for params in configs:
            if backward:
                params = {k: v for k, v in params.items() if k != "return_indices"}
                y = _reference(base, inputs, **params)
                cases.append(((randn(*y.shape), inputs), params))
            else:
                cases.append(((inputs,), params))
    return cases


def _batchnorm_cases(op, base, backward, randn, dtype):
    cases = []
    for x in (randn(2, 4, 5, 5), randn(3, 4)):
        channels = x.shape[1]
        gamma, beta = randn(channels), randn(channels)
        running = (np.zeros(channels, dtype), np.ones(channels, dtype))
        variants = [((x, gamma, beta), dict(training=True)),
                    ((x, gamma, beta, *running), dict(training=True)),
                    ((x, gamma, beta, *running), dict(training=False)),
                    ((x, None, None), dict(training=True))]
        if not backward:
            cases += variants
            continue
        for (args, kwargs) in variants:
            fwd_args = (args[0], args[1], args[2], *[r.copy() for r in args[3:]])
            y, mean, invstd = _reference(base, *fwd_args, **kwargs)
            saved = (x, args[1], mean, invstd)
            dy = randn(*x.shape)
            cases.append(((dy, y, *saved) if base == "batch_norm_relu" else (dy, *saved), kwargs))
    return cases


def _optim_cases(op, base, backward, randn, dtype):
    p, g = randn(10), randn(10)

    def state():
        return np.zeros(10, dtype)
    return {
        "sgd_step": [((p.copy(), g, None), dict(lr=0.1)),
                     ((p.copy(), g, state()), dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01))],
        "adagrad_step": [((p.copy(), g, state()), dict(lr=0.1))],
        "rmsprop_step": [((p.copy(), g, state()), dict(lr=0.1))],
        "adam_step": [((p.copy(), g, state(), state(), 1), dict(lr=0.1, weight_decay=0.01))],
    }[op]


_FAMILY_CASES = {"activations": _activation_cases, "linear": _linear_cases, "losses": _loss_cases,
                 "conv": _conv_cases, "pool": _pool_cases, "batchnorm": _batchnorm_cases, "optim": _optim_cases}


def _cases(op, dtype):
    """[(args, kwargs)] of tiny valid calls of `op` covering its separately compiled variants."""
    rng = np.random.default_rng(0)

    def randn(*shape):
        return rng.standard_normal(shape).astype(dtype)

    family = _ops.FAMILY_OF[op]
    if family not in _FAMILY_CASES:
        raise KeyError(f"warmup has no inputs for {op} (family {family}): add them to fastnn/warmup.py")
    return _FAMILY_CASES[family](op, op.removesuffix("_backward"), op.endswith("_backward"), randn, dtype)


def _compile(ops):
    """Compile `ops` here, one line per op; returns the ops that failed."""
    failed = []
    for op in ops:
        op_started = time.perf_counter()
        try:
            function = _public(op)
            with fastnn.use_backend("numba"):
                for dtype in DTYPES:
                    for args, kwargs in _cases(op, dtype):
                        function(*args, **kwargs)
        except Exception as error:  # report and go on: one broken op must not stop the rest
            failed.append(op)
            print(f"  {op:<28} FAILED: {type(error).__name__}: {error}", flush=True)
            continue
        print(f"  {op:<28} {time.perf_counter() - op_started:6.2f} s", flush=True)
    return failed


def _compile_in_processes(ops, jobs):
    """Every `jobs`-th op in each of `jobs` child processes (their lines interleave as they finish);
    returns the shares whose process reported a failure (each printed its failed ops)."""
    shares = [ops[i::jobs] for i in range(jobs)]
    children = [subprocess.Popen([sys.executable, "-m", "fastnn.warmup", "--ops", ",".join(share)])
                for share in shares]
    return [f"ops {', '.join(share)}" for share, child in zip(shares, children) if child.wait() != 0]


def main(argv: list[str] | None = None) -> int:
    """The command line ``python -m fastnn.warmup [--strict] [--jobs N]``: compile every Numba kernel.

    Prints what it compiles, the time taken, the ops without a numba kernel and the failures.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``): ``--strict`` (exit status 1 when a call
        failed), ``--jobs N`` (compile in N processes). ``--ops a,b`` is the workers' own.

    Returns
    -------
    int
        The exit status: 0, or 1 with ``--strict`` when a call failed.
    """
    argv = sys.argv[1:] if argv is None else argv
    strict = "--strict" in argv
    jobs = int(argv[argv.index("--jobs") + 1]) if "--jobs" in argv else 1
    if "numba" not in fastnn.available_backends():
        print("fastnn.warmup: numba is not available; nothing to compile")
        return 0
    if "--ops" in argv:  # a worker of --jobs: exit 1 when an op failed
        return 1 if _compile(argv[argv.index("--ops") + 1].split(",")) else 0
    ops = [op for op in _ops.FAMILY_OF if _ops.kernel(op, "numba") is not None]
    missing = [op for op in _ops.FAMILY_OF if op not in ops]
    started = time.perf_counter()
    print(f"fastnn.warmup: compiling the Numba kernels of {len(ops)} ops "
          f"({', '.join(np.dtype(d).name for d in DTYPES)}) in {jobs} process{'es' if jobs > 1 else ''}",
          flush=True)
    failed = _compile_in_processes(ops, jobs) if jobs > 1 else _compile(ops)
    print(f"fastnn.warmup: done in {time.perf_counter() - started:.1f} s", flush=True)
    if missing:
        print(f"no numba kernel yet ({len(missing)}): {', '.join(missing)}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
