"""The op table: the one registry of fastnn's ops and the backends that implement them.

Each op names its family; its kernels live at the same name in
`fastnn.reference.<family>`, `fastnn.kernels.numba.<family>` and `fastnn.kernels.cython.<family>`.
A compiled kernel that is not there is reported missing by `missing_kernels()`; it is never
silently replaced by another backend's (the numpy reference serves only when the backend set is
"numpy", or when no compiled backend imports at all).

Kernel contract (all three backends): the public function in `fastnn/<family>.py` validates and
normalizes the arguments (dtypes checked, shapes consistent, parameters as tuples, arrays
C-contiguous unless an op updates them in place), then calls `call(name, *args, **params)`. The
kernel returns what the public function returns. Forwards take `out=`: None, or a C-contiguous
array of the right shape and dtype to write into (a non-contiguous user `out` is handled here).
"""
from __future__ import annotations

import contextvars
import importlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import numpy as np

from . import _autotable, _grain, _threads, _workspace
from ._validation import FLOAT_DTYPES as _FLOAT_DTYPES, check_out

BACKENDS = ("numpy", "numba", "cython")
COMPILED = ("numba", "cython")

FAMILIES = {
    "activations": (
        "relu", "relu_backward",
        "leaky_relu", "leaky_relu_backward",
        "prelu", "prelu_backward",
        "elu", "elu_backward",
        "sigmoid", "sigmoid_backward",
        "tanh", "tanh_backward",
        "gelu", "gelu_backward",
        "silu", "silu_backward",
        "maxout", "maxout_backward",
    ),
    "linear": ("linear", "linear_backward"),
    "losses": ("softmax_cross_entropy", "hinge_loss"),
    "conv": ("conv2d", "conv2d_backward", "conv2d_relu"),
    "pool": ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"),
    "batchnorm": (
        "batch_norm", "batch_norm_backward",
        "batch_norm_relu", "batch_norm_relu_backward",
    ),
    "optim": ("sgd_step", "adagrad_step", "rmsprop_step", "adam_step"),
}
FAMILY_OF = {op: family for family, ops in FAMILIES.items() for op in ops}

# What each backward needs, declared beside the forward (used by fastnn.gradcheck.check_op and
# the tests): forward -> (backward, differentiable inputs in order, the backward's arguments after
# dy). "out<i>" is the forward's i-th output (out0 when it returns one array). A backward None
# means the forward returns its own gradient as output 1 (the losses).
DERIVATIVES = {
    "relu": ("relu_backward", ("x",), ("x",)),
    "leaky_relu": ("leaky_relu_backward", ("x",), ("x",)),
    "prelu": ("prelu_backward", ("x", "a"), ("x", "a")),
    "elu": ("elu_backward", ("x",), ("x",)),
    "sigmoid": ("sigmoid_backward", ("x",), ("out0",)),
    "tanh": ("tanh_backward", ("x",), ("out0",)),
    "gelu": ("gelu_backward", ("x",), ("x",)),
    "silu": ("silu_backward", ("x",), ("x",)),
    "maxout": ("maxout_backward", ("x",), ("x",)),
    "linear": ("linear_backward", ("x", "w", "b"), ("x", "w")),
    "softmax_cross_entropy": (None, ("logits",), ()),
    "hinge_loss": (None, ("scores",), ()),
    "conv2d": ("conv2d_backward", ("x", "w", "b"), ("x", "w")),
    "max_pool2d": ("max_pool2d_backward", ("x",), ("x",)),
    "avg_pool2d": ("avg_pool2d_backward", ("x",), ("x",)),
    "batch_norm": ("batch_norm_backward", ("x", "gamma", "beta"), ("x", "gamma", "out1", "out2")),
    "batch_norm_relu": (
        "batch_norm_relu_backward", ("x", "gamma", "beta"), ("out0", "x", "gamma", "out1", "out2"),
    ),
}

_state = {"backend": "auto"}  # the process default (set_backend)
_scoped_backend = contextvars.ContextVar("fastnn_backend", default=None)  # use_backend, per thread/context
_modules = {}


def _module(backend, family):
    key = (backend, family)
    if key not in _modules:
        if backend == "numpy":
            path = f"fastnn.reference.{family}"
        else:
            path = f"fastnn.kernels.{backend}.{family}"
        try:
            _modules[key] = importlib.import_module(path)
        except ImportError:
            _modules[key] = None
    return _modules[key]


def kernel(op, backend):
    """The function implementing `op` in `backend`, or None if that backend lacks it."""
    module = _module(backend, FAMILY_OF[op])
    return getattr(module, op, None) if module is not None else None


_available = None


def available_backends() -> tuple[str, ...]:
    """The backends that import on this installation.

    Returns
    -------
    tuple of str
        "numpy" (the reference, always) then the compiled backends that import, e.g.
        ``("numpy", "numba", "cython")``. Only ``("numpy",)`` warns (`SourceTreeWarning`) when
        fastnn is imported from its uninstalled source tree.

    Examples
    --------
    >>> import fastnn
    >>> "numpy" in fastnn.available_backends()
    True
    """
    global _available
    if _available is None:
        found = ["numpy"]
        for backend in COMPILED:
            try:
                importlib.import_module(f"fastnn.kernels.{backend}")
                found.append(backend)
            except ImportError:
                pass
        _available = tuple(found)
        if _available == ("numpy",):
            _warn_if_source_tree()
    return _available


class SourceTreeWarning(UserWarning):
    """fastnn was imported from a source checkout, which has no compiled kernels."""


def _warn_if_source_tree():
    import warnings
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if (root / "setup.py").exists() and (root / "kernels").is_dir():
        warnings.warn(
            f"fastnn is imported from its source tree ({root}), which has no compiled kernels: only the "
            "slow NumPy reference runs. Install it (`pip install .`, or `make test`, which uses .venv) and "
            "run Python from another directory.", SourceTreeWarning, stacklevel=3)


def missing_kernels() -> dict[str, list[str]]:
    """The ops each compiled backend lacks (a complete installation lacks none).

    Returns
    -------
    dict
        ``{backend: [op names it does not implement]}`` for each compiled backend that imports;
        under "auto" such an op runs on the other compiled backend.

    Examples
    --------
    >>> import fastnn
    >>> all(isinstance(ops, list) for ops in fastnn.missing_kernels().values())
    True
    """
    return {
        backend: [op for op in FAMILY_OF if kernel(op, backend) is None]
        for backend in available_backends()
        if backend != "numpy"
    }


def _check_backend(name):
    if name != "auto" and name not in BACKENDS:
        raise ValueError(f"set_backend: name must be one of 'auto', {', '.join(map(repr, BACKENDS))}; got {name!r}")
    if name != "auto" and name not in available_backends():
        raise ValueError(f"set_backend: backend {name!r} is not available here (available: {available_backends()})")


def set_backend(name: Literal["auto", "numba", "cython", "numpy"]) -> None:
    """Set the process default backend, for calls from every thread.

    Threads (and contexts) inside a `use_backend` block keep the block's backend.

    Parameters
    ----------
    name : {"auto", "numba", "cython", "numpy"}
        "auto" (the default) runs each op on the faster compiled backend for this machine (the
        table `python -m fastnn.tune` measured, else the shipped one: see `backend_table`);
        "numba" or "cython" one compiled backend; "numpy" the plain-NumPy reference.

    Raises
    ------
    ValueError
        An unknown name, or a backend that does not import here (see `available_backends`).

    See Also
    --------
    get_backend, use_backend

    Examples
    --------
    >>> import fastnn
    >>> fastnn.set_backend("numpy")
    >>> fastnn.get_backend()
    'numpy'
    >>> fastnn.set_backend("auto")
    """
    _check_backend(name)
    _state["backend"] = name


def get_backend() -> str:
    """The backend name in force for the caller.

    Returns
    -------
    str
        The innermost `use_backend` of this thread and context, else the `set_backend` default:
        "auto", "numba", "cython" or "numpy" ("auto" as such, not the backend it picks per op).
    """
    scoped = _scoped_backend.get()
    return _state["backend"] if scoped is None else scoped


@contextmanager
def use_backend(name: Literal["auto", "numba", "cython", "numpy"]) -> Iterator[None]:
    """Context manager: calls made in the block by this thread (and context) use backend `name`.

    Other threads keep theirs (a `contextvars` variable); the previous backend comes back at the
    end of the block, also on an exception. Blocks nest.

    Parameters
    ----------
    name : {"auto", "numba", "cython", "numpy"}
        As `set_backend`.

    Raises
    ------
    ValueError
        An unknown name, or a backend that does not import here (on entering the block).

    Examples
    --------
    >>> import fastnn
    >>> x = np.array([-1.0, 2.0])
    >>> with fastnn.use_backend("numpy"):   # the reference implementation
    ...     fastnn.relu(x)
    array([0., 2.])
    """
    _check_backend(name)
    token = _scoped_backend.set(name)
    try:
        yield
    finally:
        _scoped_backend.reset(token)


_auto = [None, {}]  # the AUTO table resolve last read, and {op: the backend "auto" gives op under it}


def resolve(op):
    """The backend that runs `op` now."""
    backend = get_backend()
    if backend != "auto":
        return backend
    table = _autotable._select()  # a new table (fastnn.tune's reload) forgets the choices
    if _auto[0] is not table:
        _auto[0], _auto[1] = table, {}
    chosen = _auto[1].get(op)
    if chosen is None:  # ~0.8 us a call otherwise, for every op a model runs under "auto"
        chosen = _auto[1][op] = _resolve_auto(op)
    return chosen


def _resolve_auto(op):
    compiled = [b for b in available_backends() if b != "numpy"]
    if not compiled:
        return "numpy"
    preferred = _autotable.choice(op)  # this machine's measured table, or the shipped one
    order = ([preferred] if preferred in compiled else []) + [b for b in COMPILED if b in compiled]
    for b in order:
        if kernel(op, b) is not None:
            return b
    raise NotImplementedError(f"{op}: no compiled backend implements it yet (see fastnn.missing_kernels())")


@dataclass(slots=True)  # slots: built once per call, ~0.3 us faster
class Plan:
    """What an op's meta function decides for one call, before any backend runs (ATen's meta
    functions): the kernel's inputs, its output shapes, its scalar parameters and the call's work.

    Every backend's kernel is called as kernel(*args, *outputs, *params, n_threads) (the reference
    without n_threads), fills its outputs and may return a scalar (a loss); modules with an
    `<op>_workspace(*args, *outputs, *params, n_threads)` function (elements needed) also get
    `workspace=` a scratch array of the output dtype.
    """
    args: tuple  # input arrays (C-contiguous; in-place ones are the caller's own) and None
    outputs: tuple  # output shapes, None for an output not computed; the first is `out=`'s
    dtype: np.dtype
    params: tuple = ()  # plain Python ints, floats and bools
    work: int = 0  # in the grain table's unit for the op (fastnn/_grain.py)
    result: Callable = None  # (outputs, kernel's return) -> the public return value
    blas: bool = False  # the kernels call BLAS inside their parallel loops: BLAS on one thread
    # the first output's public shape where the kernels write it in another of the same size (an
    # unbatched conv as a batch of one, batch norm's (N, C, L) as (N, C, L, 1)): `out=` is checked
    # against it and written through a view, and the result comes back in it
    shape: tuple = None
    dtypes: tuple = None  # per-output dtypes where one differs from `dtype` (max pooling's int64 indices)


META = {}  # op -> meta function (*public arguments) -> Plan, registered in fastnn/<family>.py


def meta(op):
    """Register the meta function of `op`."""
    def register(fn):
        META[op] = fn
        return fn
    return register


def call(op, *args, out=None, **params):
    """Run `op` on the current backend; write its (first) output into `out` if given."""
    return _run(op, META[op](*args, **params), out)


def call_elementwise(op, *arrays, out=None):
    """`call` for an elementwise op without parameters (relu, sigmoid, tanh, silu and their
    backwards: one output of the arrays' shape). The usual call, ndarrays of one float dtype and
    shape, C-contiguous, no `out`, on the Cython kernels, runs here with its checks inline, no
    Plan made: ~1 us over the kernel, where `call` takes ~2.3 (a 37K-element sigmoid's kernel
    takes ~4). Any other call goes through `call` (Numba's runs with its thread setting set and
    restored)."""
    first = arrays[0]
    if out is None and type(first) is np.ndarray and first.dtype in _FLOAT_DTYPES and first.flags.c_contiguous:
        for other in arrays[1:]:
            if (type(other) is not np.ndarray or other.dtype != first.dtype or other.shape != first.shape
                    or not other.flags.c_contiguous):
                return call(op, *arrays)
        backend = resolve(op)
        if backend == "cython":
            result = _workspace.empty_like(first)
            _kernel_entry(op, backend)[0](*arrays, result, _grain.threads(op, first.size, backend))
            return result
    return call(op, *arrays, out=out)


def run(op, plan):
    """Run `op` as planned by a caller that made the Plan itself, its meta function's checks done
    once for many calls (Optimizer.step over a model's tensors)."""
    return _run(op, plan, None)


def run_many(op, arrays, hyper, dtype):
    """Run in-place `op` over many tensors whose checks were done (Optimizer.step over a model's
    tensors): arrays, one tuple of op's arrays per tensor; hyper, one tuple of its hyperparameters
    each. One call of the backend's `<op>_many` (the tensors end to end, one parallel pass) where it
    has one; the reference runs them one by one."""
    backend = resolve(op)
    many = _many_entry(op, backend)
    if many is None:
        for args, params in zip(arrays, hyper):
            _run(op, Plan(args, (), dtype, params, args[0].size), None)
        return
    work = sum(args[0].size for args in arrays)
    n_threads = _grain.threads(op, work, backend)
    columns = [list(column) for column in zip(*arrays)]
    rows = np.array(hyper, dtype=np.float64).reshape(len(arrays), -1)
    if backend == "numba":
        with _threads.numba_threads(n_threads):
            many(*columns, rows, n_threads)
    else:
        many(*columns, rows, n_threads)


_MANY = {}  # (backend, op) -> its module's <op>_many or None


def _many_entry(op, backend):
    key = (backend, op)
    if key not in _MANY:
        module = _module(backend, FAMILY_OF[op]) if backend != "numpy" else None
        _MANY[key] = getattr(module, op + "_many", None) if module is not None else None
    return _MANY[key]


_KERNELS = {}  # (backend, op) -> (kernel, its module's <op>_workspace or None): looked up once


def _kernel_entry(op, backend):
    entry = _KERNELS.get((backend, op))
    if entry is None:
        module = _module(backend, FAMILY_OF[op])
        fn = getattr(module, op, None) if module is not None else None
        if fn is None:
            raise NotImplementedError(f"{op}: the {backend} backend does not implement it (see fastnn.missing_kernels())")
        entry = _KERNELS[backend, op] = (fn, getattr(module, op + "_workspace", None))
    return entry


def _run(op, plan, out):
    """Run a planned call. Lean on purpose: an optimizer step over a model's 200 small tensors is
    200 calls, where each microsecond here is ~5% of the step (bench "optim ... 200x10k")."""
    kernel_out = out
    if out is not None:
        check_out(op, out, plan.outputs[0] if plan.shape is None else plan.shape, plan.dtype)
        if plan.shape is not None:  # a view in the kernels' shape (a copy after the call otherwise)
            kernel_out = out.reshape(plan.outputs[0]) if out.flags.c_contiguous else None
    backend = resolve(op)
    fn, workspace = _kernel_entry(op, backend)
    outputs = (_workspace.outputs(plan.outputs, plan.dtypes or plan.dtype, kernel_out, plan.args,
                                  FAMILY_OF[op] == "activations")
               if plan.outputs else [])
    if backend == "numpy":
        with np.errstate(all="ignore"):  # the reference's NaN and inf propagate quietly, as the kernels'
            returned = fn(*plan.args, *outputs, *plan.params)
    elif plan.blas:
        with _threads.blas_threads(1):
            returned = _run_compiled(op, plan, fn, workspace, backend, outputs)
    else:
        returned = _run_compiled(op, plan, fn, workspace, backend, outputs)
    if out is not None:
        if outputs[0] is not kernel_out:
            np.copyto(out, outputs[0] if plan.shape is None else outputs[0].reshape(plan.shape))
        outputs[0] = out
    elif plan.shape is not None:
        outputs[0] = outputs[0].reshape(plan.shape)
    if plan.result is not None:
        return plan.result(outputs, returned)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _writeable(args):
    """Numba types a read-only array apart (`readonly array`) and compiles every kernel again for each
    mix of read-only inputs: a read-only input is copied instead, so the signatures warmup compiles
    serve every call (in-place arguments are writeable: the meta functions check it)."""
    if all(not isinstance(a, np.ndarray) or a.flags.writeable for a in args):
        return args
    return tuple(a.copy() if isinstance(a, np.ndarray) and not a.flags.writeable else a for a in args)


def _run_compiled(op, plan, fn, workspace, backend, outputs):
    n_threads = _grain.threads(op, plan.work, backend)
    args = _writeable(plan.args) if backend == "numba" else plan.args
    if workspace is not None:
        scratch = _workspace.scratch(workspace(*args, *outputs, *plan.params, n_threads), plan.dtype)
        if backend == "numba":
            with _threads.numba_threads(n_threads):
                return fn(*args, *outputs, *plan.params, n_threads, workspace=scratch)
        return fn(*args, *outputs, *plan.params, n_threads, workspace=scratch)
    if backend == "numba":
        with _threads.numba_threads(n_threads):
            return fn(*args, *outputs, *plan.params, n_threads)
    return fn(*args, *outputs, *plan.params, n_threads)
