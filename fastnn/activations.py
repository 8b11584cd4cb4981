"""Activations: public functions and their meta functions. Any shape; forward then backward.

Each op's meta function (`@meta`) checks the arguments and decides the call (fastnn/_ops.Plan): the
kernel inputs, the output shapes, the scalar parameters and the work in elements. Kernels of every
backend are called as kernel(inputs..., outputs..., params..., n_threads).

The public functions' docstrings share their common paragraphs (the `x`, `dy` and `out` arguments,
the errors): a line ``{name}`` in a docstring is replaced by ``_SHARED[name]`` at import (`_doc`),
so `help(fastnn.relu)` shows the whole text.
"""
from __future__ import annotations

import inspect
import math

import numpy as np

from ._ops import Plan, call, call_elementwise, meta
from ._validation import FLOAT_DTYPES, check_same_shape, float_arrays, integer, real, within_dtype

_SHARED = {
    "x": """\
x : ndarray
    float32 or float64, any shape and strides (array-likes are converted with `np.asarray`).""",
    "dy": """\
dy : ndarray
    Gradient of the loss with respect to the forward's output: that output's shape, x's dtype.""",
    "out": """\
out : ndarray, optional
    Written with the result and returned: x's shape and dtype. It may be x itself (in place);
    any other overlap with an input still gives the right result.""",
    "out_backward": """\
out : ndarray, optional
    Written with dx and returned: x's shape and dtype. It may be dy itself (in place); any other
    overlap with an input still gives the right result.""",
    "raises": """\
Raises
------
TypeError
    An array is not float32 or float64 (integer, bool, complex, object), the arrays' dtypes
    differ, or `out` has another dtype or is not an ndarray.
ValueError
    The shapes do not match (the message names the argument and both shapes), or `out` has the
    wrong shape or is read-only.""",
    "raises_scalar": """\
Raises
------
TypeError
    An array is not float32 or float64 (integer, bool, complex, object), the arrays' dtypes
    differ, a parameter is not a real number, or `out` has another dtype or is not an ndarray.
ValueError
    The shapes do not match (the message names the argument and both shapes), a parameter is not
    finite or not representable in x's dtype, or `out` has the wrong shape or is read-only.""",
}


def _doc(fn):
    """Expand the ``{name}`` lines of fn's docstring with _SHARED's paragraphs."""
    if fn.__doc__ is None:  # python -OO
        return fn
    lines = []
    for line in inspect.cleandoc(fn.__doc__).splitlines():
        key = line.strip()
        if key.startswith("{") and key.endswith("}") and key[1:-1] in _SHARED:
            indent = line[: len(line) - len(line.lstrip())]
            lines.extend(indent + shared if shared else shared for shared in _SHARED[key[1:-1]].splitlines())
        else:
            lines.append(line)
    fn.__doc__ = "\n".join(lines)
    return fn


def _scalar(op, name, value, x):
    """A finite real parameter within x's dtype range (the kernels round it to that dtype)."""
    return within_dtype(op, x.dtype, **{name: real(op, name, value)})


def _unary(op, x, *params):
    if type(x) is not np.ndarray or x.dtype not in FLOAT_DTYPES or not x.flags.c_contiguous:
        x = float_arrays(op, x=x)  # converts, or raises; the usual array skips it (~0.3 us a call)
    return Plan((x,), (x.shape,), x.dtype, params, work=x.size)


def _gradient(op, dy, name, t, *params):
    """A backward from dy and the forward's input or output t (its shape is dy's)."""
    if (type(dy) is not np.ndarray or type(t) is not np.ndarray or dy.dtype not in FLOAT_DTYPES
            or t.dtype != dy.dtype or not (dy.flags.c_contiguous and t.flags.c_contiguous)):
        dy, t = float_arrays(op, dy=dy, **{name: t})
    check_same_shape(op, "dy", dy, name, t)
    return Plan((dy, t), (t.shape,), t.dtype, params, work=t.size)


# relu ------------------------------------------------------------------------------------------

meta("relu")(lambda x: _unary("relu", x))
meta("relu_backward")(lambda dy, x: _gradient("relu_backward", dy, "x", x))


@_doc
def relu(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Rectified linear unit, ``max(x, 0)`` elementwise (torch.nn.functional.relu).

    Parameters
    ----------
    {x}
    {out}

    Returns
    -------
    ndarray
        x's shape and dtype. NaN propagates.

    {raises}

    See Also
    --------
    relu_backward, leaky_relu, fastnn.nn.ReLU

    Examples
    --------
    >>> import fastnn
    >>> fastnn.relu(np.array([-2.0, 0.0, 3.0]))
    array([0., 0., 3.])
    """
    return call_elementwise("relu", x, out=out)


@_doc
def relu_backward(dy: np.ndarray, x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of `relu`: dy where x > 0, else 0 (relu'(0) = 0, as PyTorch).

    Parameters
    ----------
    {dy}
    x : ndarray
        The forward's input, dy's shape and dtype.
    {out_backward}

    Returns
    -------
    ndarray
        dx, x's shape and dtype.

    {raises}

    Examples
    --------
    >>> import fastnn
    >>> fastnn.relu_backward(np.ones(3), np.array([-2.0, 0.0, 3.0]))
    array([0., 0., 1.])
    """
    return call_elementwise("relu_backward", dy, x, out=out)


# leaky relu ------------------------------------------------------------------------------------

@meta("leaky_relu")
def _leaky_relu_meta(x, negative_slope=0.01):
    plan = _unary("leaky_relu", x)
    plan.params = (_scalar("leaky_relu", "negative_slope", negative_slope, plan.args[0]),)
    return plan


@meta("leaky_relu_backward")
def _leaky_relu_backward_meta(dy, x, negative_slope=0.01):
    plan = _gradient("leaky_relu_backward", dy, "x", x)
    plan.params = (_scalar("leaky_relu_backward", "negative_slope", negative_slope, plan.args[1]),)
    return plan


@_doc
def leaky_relu(x: np.ndarray, negative_slope: float = 0.01, *, out: np.ndarray | None = None) -> np.ndarray:
    """Leaky ReLU: x where x > 0, else ``negative_slope * x`` (torch.nn.functional.leaky_relu).

    Parameters
    ----------
    {x}
    negative_slope : float, default 0.01
        The slope for x <= 0 (any finite real, negative and > 1 included).
    {out}

    Returns
    -------
    ndarray
        x's shape and dtype.

    {raises_scalar}

    Examples
    --------
    >>> import fastnn
    >>> fastnn.leaky_relu(np.array([-2.0, 3.0]), negative_slope=0.1)
    array([-0.2,  3. ])
    """
    return call("leaky_relu", x, negative_slope, out=out)


@_doc
def leaky_relu_backward(dy: np.ndarray, x: np.ndarray, negative_slope: float = 0.01, *,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of `leaky_relu`: dy where x > 0, else ``negative_slope * dy`` (at 0: the slope).

    Parameters
    ----------
    {dy}
    x : ndarray
        The forward's input, dy's shape and dtype.
    negative_slope : float, default 0.01
        The forward's slope.
    {out_backward}

    Returns
    -------
    ndarray
        dx, x's shape and dtype.

    {raises_scalar}
    """
    return call("leaky_relu_backward", dy, x, negative_slope, out=out)


# prelu: a per channel (axis 1) or one scalar -----------------------------------------------------

def _prelu_layout(op, x, a):
    """(outer, channels, inner): x read as (outer, channels, inner), channel c scaled by a[c]."""
    if a.ndim == 0:
        return 1, 1, x.size
    if a.ndim != 1:
        raise ValueError(f"{op}: a must have shape () or (C,), got {a.shape}")
    if x.ndim < 2 or x.shape[1] != a.shape[0]:
        channels = x.shape[1] if x.ndim >= 2 else "no channel axis"
        raise ValueError(f"{op}: a has shape {a.shape}, expected ({channels},) (x.shape[1]) or ()")
    return x.shape[0], a.shape[0], math.prod(x.shape[2:])


@meta("prelu")
def _prelu_meta(x, a):
    x, a = float_arrays("prelu", x=x, a=a)
    return Plan((x, a.reshape(-1)), (x.shape,), x.dtype, _prelu_layout("prelu", x, a), work=x.size)


@meta("prelu_backward")
def _prelu_backward_meta(dy, x, a):
    dy, x, a = float_arrays("prelu_backward", dy=dy, x=x, a=a)
    check_same_shape("prelu_backward", "dy", dy, "x", x)
    layout = _prelu_layout("prelu_backward", x, a)
    return Plan((dy, x, a.reshape(-1)), (x.shape, (layout[1],)), x.dtype, layout, work=x.size,
                result=lambda outputs, _: (outputs[0], outputs[1].reshape(a.shape)))


@_doc
def prelu(x: np.ndarray, a: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Parametric ReLU: x where x > 0, else ``a * x`` with a learned slope (torch.nn.functional.prelu).

    Parameters
    ----------
    {x}
        With a per-channel `a`, channels are axis 1 (NCHW, or (N, C) features).
    a : ndarray
        The slopes, x's dtype: shape (C,) with C = x.shape[1] (one per channel), or () (one for
        all).
    {out}

    Returns
    -------
    ndarray
        x's shape and dtype.

    {raises}

    Examples
    --------
    >>> import fastnn
    >>> x = np.array([[-1.0, -1.0], [2.0, -4.0]])
    >>> fastnn.prelu(x, np.array([0.1, 0.5]))          # a[c] scales column c
    array([[-0.1, -0.5],
           [ 2. , -2. ]])
    """
    return call("prelu", x, a, out=out)


@_doc
def prelu_backward(dy: np.ndarray, x: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of `prelu` with respect to x and to the slopes a.

    Parameters
    ----------
    {dy}
    x : ndarray
        The forward's input, dy's shape and dtype.
    a : ndarray
        The forward's slopes, shape (C,) or ().

    Returns
    -------
    dx : ndarray
        x's shape: dy where x > 0, else ``a * dy`` (at 0: a).
    da : ndarray
        a's shape: the sum of ``dy * x`` over the entries where x <= 0 (of channel c for a (C,)).

    {raises}
    """
    return call("prelu_backward", dy, x, a)


# elu -------------------------------------------------------------------------------------------

@meta("elu")
def _elu_meta(x, alpha=1.0):
    plan = _unary("elu", x)
    plan.params = (_scalar("elu", "alpha", alpha, plan.args[0]),)
    return plan


@meta("elu_backward")
def _elu_backward_meta(dy, x, alpha=1.0):
    plan = _gradient("elu_backward", dy, "x", x)
    plan.params = (_scalar("elu_backward", "alpha", alpha, plan.args[1]),)
    return plan


@_doc
def elu(x: np.ndarray, alpha: float = 1.0, *, out: np.ndarray | None = None) -> np.ndarray:
    """Exponential linear unit: x where x > 0, else ``alpha * (exp(x) - 1)`` (torch.nn.functional.elu).

    Parameters
    ----------
    {x}
    alpha : float, default 1.0
        The value approached as x -> -inf is -alpha.
    {out}

    Returns
    -------
    ndarray
        x's shape and dtype.

    {raises_scalar}

    Examples
    --------
    >>> import fastnn
    >>> fastnn.elu(np.array([-1000.0, 0.0, 2.0]))
    array([-1.,  0.,  2.])
    """
    return call("elu", x, alpha, out=out)


@_doc
def elu_backward(dy: np.ndarray, x: np.ndarray, alpha: float = 1.0, *,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of `elu`: dy where x > 0, else ``dy * alpha * exp(x)`` (elu'(0) = alpha, as PyTorch).

    Parameters
    ----------
    {dy}
    x : ndarray
        The forward's input (not its output), dy's shape and dtype.
    alpha : float, default 1.0
        The forward's alpha.
    {out_backward}

    Returns
    -------
    ndarray
        dx, x's shape and dtype.

    {raises_scalar}
    """
    return call("elu_backward", dy, x, alpha, out=out)


# sigmoid and tanh: backwards from the forward's output ---------------------------------------------

meta("sigmoid")(lambda x: _unary("sigmoid", x))
meta("sigmoid_backward")(lambda dy, y: _gradient("sigmoid_backward", dy, "y", y))
meta("tanh")(lambda x: _unary("tanh", x))
meta("tanh_backward")(lambda dy, y: _gradient("tanh_backward", dy, "y", y))


@_doc
def sigmoid(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic sigmoid, ``1 / (1 + exp(-x))``; saturates quietly (sigmoid(-1000.0) is 0.0, no warning).

    Parameters
    ----------
    {x}
    {out}

    Returns
    -------
    ndarray
        x's shape and dtype, in [0, 1].

    {raises}

    Examples
    --------
    >>> import fastnn
    >>> fastnn.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    return call_elementwise("sigmoid", x, out=out)


@_doc
def sigmoid_backward(dy: np.ndarray, y: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of `sigmoid` from the forward's OUTPUT y = sigmoid(x): ``dy * y * (1 - y)``.

    Unlike most backwards, it takes y, not x (as torch's sigmoid_backward): keep the forward's
    result, not its input.

    Parameters
    ----------
    {dy}
    y : ndarray
        The forward's output sigmoid(x), dy's shape and dtype.
    out : ndarray, optional
        Written with dx and returned: y's shape and dtype. It may be dy itself (in place).

    Returns
    -------
    ndarray
        dx, y's shape and dtype.

    {raises}

    Examples
    --------
    >>> import fastnn
    >>> y = fastnn.sigmoid(np.array([0.0]))
    >>> fastnn.sigmoid_backward(np.ones(1), y)
    array([0.25])
    """
    return call_elementwise("sigmoid_backward", dy, y, out=out)


@_doc
def tanh(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Hyperbolic tangent, elementwise (saturates quietly to -1 and 1).

    Parameters
    ----------
    {x}
    {out}

    Returns
    -------
    ndarray
        x's shape and dtype, in [-1, 1].

    {raises}

    Examples
    --------
    >>> import fastnn
    >>> fastnn.tanh(np.array([-1000.0, 0.0]))
    array([-1.,  0.])
    """
    return call_elementwise("tanh", x, out=out)


@_doc
def tanh_backward(dy: np.ndarray, y: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of `tanh` from the forward's OUTPUT y = tanh(x): ``dy * (1 - y * y)``.

    Takes y, not x (as torch's tanh_backward): keep the forward's result.

    Parameters
    ----------
    {dy}
    y : ndarray
        The forward's output tanh(x), dy's shape and dtype.
    out : ndarray, optional
        Written with dx and returned: y's shape and dtype. It may be dy itself (in place).

    Returns
    -------
    ndarray
        dx, y's shape and dtype.

    {raises}
    """
    return call_elementwise("tanh_backward", dy, y, out=out)


# gelu and silu ---------------------------------------------------------------------------------

_GELU_FORMS = ("none", "tanh")


def _gelu_form(op, approximate):
    """approximate="tanh" as the kernels' flag (True: torch's tanh approximation, False: erf)."""
    if not isinstance(approximate, str) or approximate not in _GELU_FORMS:
        raise ValueError(f"{op}: approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate == "tanh"


@meta("gelu")
def _gelu_meta(x, approximate="none"):
    plan = _unary("gelu", x)
    plan.params = (_gelu_form("gelu", approximate),)
    return plan


@meta("gelu_backward")
def _gelu_backward_meta(dy, x, approximate="none"):
    plan = _gradient("gelu_backward", dy, "x", x)
    plan.params = (_gelu_form("gelu_backward", approximate),)
    return plan


meta("silu")(lambda x: _unary("silu", x))
meta("silu_backward")(lambda dy, x: _gradient("silu_backward", dy, "x", x))


@_doc
def gelu(x: np.ndarray, approximate: str = "none", *, out: np.ndarray | None = None) -> np.ndarray:
    """GELU, ``x * Phi(x)`` (torch.nn.functional.gelu), exact or in torch's tanh approximation.

    approximate="none" (torch's default) is the exact form, Phi the standard normal CDF computed
    from erf; approximate="tanh" is torch's ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 *
    x**3)))``, formula for formula.

    Parameters
    ----------
    {x}
    approximate : {"none", "tanh"}, default "none"
        The form, as torch's argument of that name.
    {out}

    Returns
    -------
    ndarray
        x's shape and dtype. NaN propagates; gelu(-inf) is NaN (-inf * 0), as in torch.

    Raises
    ------
    TypeError
        An array is not float32 or float64, or `out` has another dtype or is not an ndarray.
    ValueError
        `approximate` is neither "none" nor "tanh", or `out` has the wrong shape or is read-only.

    Examples
    --------
    >>> import fastnn
    >>> fastnn.gelu(np.array([0.0, 1.0])).round(4)
    array([0.    , 0.8413])
    >>> fastnn.gelu(np.array([0.0, 1.0]), approximate="tanh").round(4)
    array([0.    , 0.8412])
    """
    return call("gelu", x, approximate, out=out)


@_doc
def gelu_backward(dy: np.ndarray, x: np.ndarray, approximate: str = "none", *,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of `gelu`: ``dy * (Phi(x) + x * phi(x))``, phi the standard normal density, or
    the derivative of torch's tanh form with approximate="tanh".

    The tanh form's derivative is torch's, ``dy * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * k *
    (1 + 3 * 0.044715 * x**2))`` with k = sqrt(2 / pi) and t the forward's tanh; NaN at x = +-inf,
    as torch's. For finite x beyond 1e15, where x**2 overflows and torch's formula gives NaN
    (0 * inf), it gives the limit (dy for x > 0, 0 for x < 0): x**2 is capped at 1e30 there, where
    1 - t**2 is 0.

    Parameters
    ----------
    {dy}
    x : ndarray
        The forward's input, dy's shape and dtype.
    approximate : {"none", "tanh"}, default "none"
        The forward's form.
    {out_backward}

    Returns
    -------
    ndarray
        dx, x's shape and dtype.

    Raises
    ------
    TypeError
        An array is not float32 or float64, the arrays' dtypes differ, or `out` has another dtype
        or is not an ndarray.
    ValueError
        The shapes do not match, `approximate` is neither "none" nor "tanh", or `out` has the
        wrong shape or is read-only.
    """
    return call("gelu_backward", dy, x, approximate, out=out)


@_doc
def silu(x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """SiLU (swish), ``x * sigmoid(x)`` (torch.nn.functional.silu).

    Parameters
    ----------
    {x}
    {out}

    Returns
    -------
    ndarray
        x's shape and dtype.

    {raises}

    Examples
    --------
    >>> import fastnn
    >>> fastnn.silu(np.array([0.0, 1000.0]))
    array([   0., 1000.])
    """
    return call_elementwise("silu", x, out=out)


@_doc
def silu_backward(dy: np.ndarray, x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of `silu`: ``dy * s * (1 + x * (1 - s))`` with s = sigmoid(x).

    Parameters
    ----------
    {dy}
    x : ndarray
        The forward's input, dy's shape and dtype.
    {out_backward}

    Returns
    -------
    ndarray
        dx, x's shape and dtype.

    {raises}
    """
    return call_elementwise("silu_backward", dy, x, out=out)


# maxout ----------------------------------------------------------------------------------------

def _maxout_layout(op, x, pieces, axis):
    """(y's shape, (groups, pieces, inner)): x read as (groups, pieces, inner), groups = outer * units."""
    pieces = integer(op, "pieces", pieces, minimum=1)
    axis = integer(op, "axis", axis)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for x of shape {x.shape}")
    axis %= x.ndim
    if x.shape[axis] % pieces:
        raise ValueError(f"{op}: x.shape[{axis}] = {x.shape[axis]} is not a multiple of pieces = {pieces} (axis = {axis})")
    units = x.shape[axis] // pieces
    y_shape = x.shape[:axis] + (units,) + x.shape[axis + 1:]
    return y_shape, (math.prod(x.shape[:axis]) * units, pieces, math.prod(x.shape[axis + 1:]))


@meta("maxout")
def _maxout_meta(x, pieces, axis=1):
    x = float_arrays("maxout", x=x)
    y_shape, layout = _maxout_layout("maxout", x, pieces, axis)
    return Plan((x,), (y_shape,), x.dtype, layout, work=x.size)


@meta("maxout_backward")
def _maxout_backward_meta(dy, x, pieces, axis=1):
    dy, x = float_arrays("maxout_backward", dy=dy, x=x)
    y_shape, layout = _maxout_layout("maxout_backward", x, pieces, axis)
    if dy.shape != y_shape:
        raise ValueError(f"maxout_backward: dy has shape {dy.shape}, expected {y_shape} (x's shape {x.shape} with "
                         f"axis {axis} divided by pieces = {layout[1]})")
    return Plan((dy, x), (x.shape,), x.dtype, layout, work=x.size)


@_doc
def maxout(x: np.ndarray, pieces: int, axis: int = 1, *, out: np.ndarray | None = None) -> np.ndarray:
    """Maxout (Goodfellow et al.): the max over groups of `pieces` consecutive units along `axis`.

    ``y.take(u, axis) = max over j < pieces of x.take(u * pieces + j, axis)``.

    Parameters
    ----------
    {x}
        ``x.shape[axis]`` must be a multiple of `pieces`.
    pieces : int
        Units per group, >= 1.
    axis : int, default 1
        The axis to group (negative counts from the end).
    out : ndarray, optional
        Written with the result and returned: y's shape (x's with ``x.shape[axis] // pieces``
        at `axis`) and x's dtype.

    Returns
    -------
    ndarray
        x's shape with ``x.shape[axis] // pieces`` at `axis`; x's dtype.

    Raises
    ------
    TypeError
        x is not float32 or float64, `pieces` or `axis` is not an integer, or `out` has another
        dtype.
    ValueError
        `pieces` < 1, `axis` out of range, ``x.shape[axis]`` not a multiple of `pieces`, or `out`
        has the wrong shape.

    Examples
    --------
    >>> import fastnn
    >>> fastnn.maxout(np.array([[1.0, 5.0, -2.0, -3.0]]), pieces=2)
    array([[ 5., -2.]])
    """
    return call("maxout", x, pieces, axis, out=out)


@_doc
def maxout_backward(dy: np.ndarray, x: np.ndarray, pieces: int, axis: int = 1, *,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of `maxout`: each dy entry goes to the first maximal piece of its group, 0 elsewhere.

    Parameters
    ----------
    dy : ndarray
        Gradient with respect to the forward's output: x's shape with ``x.shape[axis] // pieces``
        at `axis`, x's dtype.
    x : ndarray
        The forward's input.
    pieces : int
        The forward's `pieces`.
    axis : int, default 1
        The forward's `axis`.
    out : ndarray, optional
        Written with dx and returned: x's shape and dtype.

    Returns
    -------
    ndarray
        dx, x's shape and dtype.

    Raises
    ------
    TypeError
        An array is not float32 or float64, their dtypes differ, `pieces` or `axis` is not an
        integer, or `out` has another dtype.
    ValueError
        As `maxout`, or dy's shape is not the forward output's.

    Examples
    --------
    >>> import fastnn
    >>> fastnn.maxout_backward(np.array([[10.0]]), np.array([[3.0, 3.0]]), pieces=2)   # a tie: the first
    array([[10.,  0.]])
    """
    return call("maxout_backward", dy, x, pieces, axis, out=out)
