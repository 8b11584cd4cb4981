"""Layers with forward/backward on NumPy arrays, built on fastnn's functional ops.

Each layer has `forward(x)`, `backward(dy)` (returns dx and overwrites `.grads`), `.params` and
`.grads` dicts (names `weight` and `bias`), and `train()` / `eval()`. Constructors follow
PyTorch's, plus `dtype=` (float32 by default) and `rng=` / `seed=` for the initial weights.

Outputs and input gradients live in buffers the layer reuses while the input shape stays the
same (the ops write into them with `out=`): an array returned by `forward` or `backward` is valid
until that layer's next call; copy it to keep it.
"""
from __future__ import annotations

from typing import Callable, Union

import numpy as np

from . import init as _init
from .activations import (
    elu, elu_backward, gelu, gelu_backward, leaky_relu, leaky_relu_backward, maxout, maxout_backward,
    prelu, prelu_backward, relu, relu_backward, sigmoid, sigmoid_backward, silu, silu_backward, tanh,
    tanh_backward,
)
from .batchnorm import batch_norm, batch_norm_backward, batch_norm_relu, batch_norm_relu_backward
from .conv import conv2d, conv2d_backward
from .linear import linear, linear_backward
from .pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from ._validation import FLOAT_DTYPES, check_ndim, integer, pair, real

__all__ = [
    "Module", "Conv2d", "Linear", "ReLU", "LeakyReLU", "PReLU", "ELU", "Sigmoid", "Tanh", "GELU", "SiLU",
    "Maxout", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "MaxPool2d", "AvgPool2d", "Flatten", "Sequential",
    "Residual",
]


_Pair = Union[int, "tuple[int, int]"]
_Init = Union[str, float, Callable[..., np.ndarray]]


def _dtype(layer, dtype):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{layer}: dtype must be float32 or float64, got {dtype}")
    return dtype


class Module:
    """Base layer: parameters, gradients, train/eval mode and per-shape output buffers."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}  # state that is not trained by gradients (BatchNorm's running statistics)
        self.training = True
        self._workspace = {}

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The layer's output for input x (an array valid until the layer's next forward).

        Parameters
        ----------
        x : ndarray of the layer's dtype
            The input batch (NCHW for convolutions and pooling, (N, D) or (N, ...) for Linear).

        Returns
        -------
        ndarray
        """
        raise NotImplementedError

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Gradients of the parameters into `grads`; returns dx, or None if input_grad is False
        (the first layer of a network needs no dx: Linear and Conv2d then skip computing it).

        Parameters
        ----------
        dy : ndarray
            Gradient of the loss with respect to the last forward's output.
        input_grad : bool
            Whether to compute and return dx.
        """
        raise NotImplementedError

    def train(self) -> Module:
        """Training mode (batch statistics in BatchNorm); returns the layer."""
        self.training = True
        return self

    def eval(self) -> Module:
        """Evaluation mode (running statistics in BatchNorm); returns the layer."""
        self.training = False
        return self

    def _out(self, slot, key):
        """The buffer written at `slot` by the last call whose input had `key` (shape, dtype), or None."""
        entry = self._workspace.get(slot)
        return entry[1] if entry is not None and entry[0] == key else None

    def _keep(self, slot, key, array):
        self._workspace[slot] = (key, array)
        return array

    def __repr__(self):
        return f"{type(self).__name__}()"


def _key(x):
    return (x.shape, x.dtype)


class _Elementwise(Module):
    """An activation y = f(x) whose backward takes x (or y when `from_output`)."""

    from_output = False

    def _f(self, x, out):
        raise NotImplementedError

    def _df(self, dy, t, out):
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        key = _key(x)
        y = self._keep("y", key, self._f(x, self._out("y", key)))
        self._saved = y if self.from_output else x
        return y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        key = _key(self._saved)
        return self._keep("dx", key, self._df(dy, self._saved, self._out("dx", key)))


class ReLU(_Elementwise):
    """ReLU layer, ``max(x, 0)`` (torch.nn.ReLU; `fastnn.relu`).

    Input (any shape), output and dx have one shape and dtype. `forward` and `backward` are
    `Module`'s.

    Examples
    --------
    >>> from fastnn import nn
    >>> layer = nn.ReLU()
    >>> y = layer.forward(np.array([-1.0, 0.5]))
    >>> dx = layer.backward(np.ones(2))
    """

    def _f(self, x, out):
        return relu(x, out=out)

    def _df(self, dy, x, out):
        return relu_backward(dy, x, out=out)


class LeakyReLU(_Elementwise):
    """Leaky ReLU layer: x where x > 0, else ``negative_slope * x`` (torch.nn.LeakyReLU; `fastnn.leaky_relu`).

    Parameters
    ----------
    negative_slope : float, default 0.01

    Raises
    ------
    TypeError, ValueError
        `negative_slope` is not a finite real number.
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = real("LeakyReLU", "negative_slope", negative_slope)

    def _f(self, x, out):
        return leaky_relu(x, self.negative_slope, out=out)

    def _df(self, dy, x, out):
        return leaky_relu_backward(dy, x, self.negative_slope, out=out)


class ELU(_Elementwise):
    """ELU layer: x where x > 0, else ``alpha * (exp(x) - 1)`` (torch.nn.ELU; `fastnn.elu`).

    Parameters
    ----------
    alpha : float, default 1.0

    Raises
    ------
    TypeError, ValueError
        `alpha` is not a finite real number.
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = real("ELU", "alpha", alpha)

    def _f(self, x, out):
        return elu(x, self.alpha, out=out)

    def _df(self, dy, x, out):
        return elu_backward(dy, x, self.alpha, out=out)


class Sigmoid(_Elementwise):
    """Logistic sigmoid layer (torch.nn.Sigmoid; `fastnn.sigmoid`); its backward uses the saved output.

    Input (any shape), output and dx have one shape and dtype. `forward` and `backward` are
    `Module`'s.

    Examples
    --------
    >>> from fastnn import nn
    >>> layer = nn.Sigmoid()
    >>> y = layer.forward(np.array([-1.0, 0.5]))
    >>> dx = layer.backward(np.ones(2))
    """

    from_output = True

    def _f(self, x, out):
        return sigmoid(x, out=out)

    def _df(self, dy, y, out):
        return sigmoid_backward(dy, y, out=out)


class Tanh(_Elementwise):
    """Hyperbolic tangent layer (torch.nn.Tanh; `fastnn.tanh`); its backward uses the saved output.

    Input (any shape), output and dx have one shape and dtype. `forward` and `backward` are
    `Module`'s.

    Examples
    --------
    >>> from fastnn import nn
    >>> layer = nn.Tanh()
    >>> y = layer.forward(np.array([-1.0, 0.5]))
    >>> dx = layer.backward(np.ones(2))
    """

    from_output = True

    def _f(self, x, out):
        return tanh(x, out=out)

    def _df(self, dy, y, out):
        return tanh_backward(dy, y, out=out)


class GELU(_Elementwise):
    """GELU layer, ``x * Phi(x)`` (torch.nn.GELU; `fastnn.gelu`): the exact erf form, or torch's
    tanh approximation with ``approximate="tanh"``.

    Input (any shape), output and dx have one shape and dtype. `forward` and `backward` are
    `Module`'s.

    Parameters
    ----------
    approximate : {"none", "tanh"}, default "none"
        As torch.nn.GELU's.

    Raises
    ------
    ValueError
        `approximate` is neither "none" nor "tanh".

    Examples
    --------
    >>> from fastnn import nn
    >>> layer = nn.GELU()
    >>> y = layer.forward(np.array([-1.0, 0.5]))
    >>> dx = layer.backward(np.ones(2))
    >>> nn.GELU(approximate="tanh")
    GELU(approximate='tanh')
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if not isinstance(approximate, str) or approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def _f(self, x, out):
        return gelu(x, self.approximate, out=out)

    def _df(self, dy, x, out):
        return gelu_backward(dy, x, self.approximate, out=out)

    def __repr__(self):
        return f"GELU(approximate={self.approximate!r})"


class SiLU(_Elementwise):
    """SiLU (swish) layer, ``x * sigmoid(x)`` (torch.nn.SiLU; `fastnn.silu`).

    Input (any shape), output and dx have one shape and dtype. `forward` and `backward` are
    `Module`'s.

    Examples
    --------
    >>> from fastnn import nn
    >>> layer = nn.SiLU()
    >>> y = layer.forward(np.array([-1.0, 0.5]))
    >>> dx = layer.backward(np.ones(2))
    """

    def _f(self, x, out):
        return silu(x, out=out)

    def _df(self, dy, x, out):
        return silu_backward(dy, x, out=out)


class PReLU(Module):
    """torch.nn.PReLU: one learnable slope (`weight` of shape ()) or one per channel (axis 1).

    y = x where x > 0, else ``weight * x`` (`fastnn.prelu`); `backward` fills ``grads["weight"]``.

    Parameters
    ----------
    num_parameters : int, default 1
        1: one slope for all (shape ()); C: one per channel, x.shape[1] == C.
    init : float, default 0.25
        The slopes' initial value.
    dtype : {float32, float64}, default float32
        The parameters' dtype (inputs must have it too).

    Raises
    ------
    TypeError, ValueError
        A bad `num_parameters` (< 1), `init` or `dtype`.
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, dtype=np.float32):
        super().__init__()
        num_parameters = integer("PReLU", "num_parameters", num_parameters, minimum=1)
        dtype = _dtype("PReLU", dtype)
        shape = () if num_parameters == 1 else (num_parameters,)
        self.params["weight"] = np.full(shape, real("PReLU", "init", init), dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        key = _key(x)
        self._x = x
        return self._keep("y", key, prelu(x, self.params["weight"], out=self._out("y", key)))

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        dx, self.grads["weight"] = prelu_backward(dy, self._x, self.params["weight"])
        return dx if input_grad else None


class Maxout(Module):
    """Max over `pieces` consecutive units along `axis` (Goodfellow et al.; `fastnn.maxout`).

    Parameters
    ----------
    pieces : int
        Units per group; the input's size along `axis` must be a multiple of it.
    axis : int, default 1
        The axis to group (features of (N, D), channels of NCHW).

    Raises
    ------
    TypeError, ValueError
        `pieces` or `axis` is not an integer, or `pieces` < 1.
    """

    def __init__(self, pieces: int, axis: int = 1):
        super().__init__()
        self.pieces = integer("Maxout", "pieces", pieces, minimum=1)
        self.axis = integer("Maxout", "axis", axis)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        key = _key(x)
        self._x = x
        return self._keep("y", key, maxout(x, self.pieces, self.axis, out=self._out("y", key)))

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        key = _key(self._x)
        dx = maxout_backward(dy, self._x, self.pieces, self.axis, out=self._out("dx", key))
        return self._keep("dx", key, dx)


def _initial_weight(layer, init, shape, rng, seed, dtype):
    """A weight from `init`: a fastnn.init function name, a std for a normal draw, or a callable
    (shape, rng=, dtype=) -> array."""
    rng = _init._generator(layer, rng, seed)
    if isinstance(init, str):
        if init not in ("normal", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"):
            raise ValueError(f"{layer}: init must name a fastnn.init scheme, a std or a callable, got {init!r}")
        return getattr(_init, init)(shape, rng=rng, dtype=dtype)
    if callable(init):
        w = np.asarray(init(shape, rng=rng, dtype=dtype), dtype=dtype)
        if w.shape != shape:
            raise ValueError(f"{layer}: init returned shape {w.shape}, expected {shape}")
        return w
    return _init.normal(shape, real(layer, "init", init, minimum=0.0), rng=rng, dtype=dtype)


class Linear(Module):
    """Fully connected layer, ``y = x @ weight + bias`` (`fastnn.linear`).

    Coming from PyTorch: ``weight`` is (in_features, out_features), the TRANSPOSE of
    torch.nn.Linear's (out_features, in_features). Copy torch weights with ``w.T`` (or run torch
    models through `fastnn.torch`, which handles the layout). x is (N, in_features), or (N, ...)
    flattened to it (cs231n's affine layer).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
        Add a learned bias (zeros at first).
    init : str, float or callable, default "kaiming_normal"
        The weight's initialization: a `fastnn.init` scheme name ("normal", "xavier_uniform",
        "xavier_normal", "kaiming_uniform", "kaiming_normal"; He init with ReLU gain by default),
        a std for a normal draw (cs231n's weight_scale), or ``init(shape, rng=, dtype=)``.
    dtype : {float32, float64}, default float32
        The parameters' dtype (inputs must have it too).
    rng : numpy.random.Generator, optional
    seed : int, optional
        The initial weight's draw (one or the other; neither: fresh OS entropy).

    Raises
    ------
    TypeError, ValueError
        A bad size (< 1), `init` or `dtype`.

    Examples
    --------
    >>> from fastnn import nn
    >>> layer = nn.Linear(3, 2, seed=0)
    >>> layer.params["weight"].shape        # (in, out): torch's is (2, 3)
    (3, 2)
    >>> layer.forward(np.ones((4, 3), np.float32)).shape
    (4, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, init: _Init = "kaiming_normal",
                 dtype=np.float32, rng: np.random.Generator | None = None, seed: int | None = None):
        super().__init__()
        self.in_features = integer("Linear", "in_features", in_features, minimum=1)
        self.out_features = integer("Linear", "out_features", out_features, minimum=1)
        dtype = _dtype("Linear", dtype)
        self.params["weight"] = _initial_weight("Linear", init, (self.in_features, self.out_features), rng, seed,
                                                dtype)
        if bias:
            self.params["bias"] = np.zeros(self.out_features, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        key = _key(x)
        self._x = x
        y = linear(x, self.params["weight"], self.params.get("bias"), out=self._out("y", key))
        return self._keep("y", key, y)

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        dx, self.grads["weight"], db = linear_backward(dy, self._x, self.params["weight"], input_grad=input_grad)
        if "bias" in self.params:
            self.grads["bias"] = db
        return dx

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={'bias' in self.params})"


class Conv2d(Module):
    """torch.nn.Conv2d on NCHW arrays (`fastnn.conv2d`); weight (F, C // groups, KH, KW), as torch's.

    Parameters
    ----------
    in_channels, out_channels : int
        Both multiples of `groups`.
    kernel_size : int or (int, int)
    stride : int or (int, int), default 1
    padding : int, (int, int), "valid" or "same", default 0
        Zeros on each side; "same" (stride 1) keeps the input's height and width (an odd total
        puts the extra zero row/column at the bottom/right, as torch), "valid" is 0.
    dilation : int or (int, int), default 1
    groups : int, default 1
    bias : bool, default True
        Add a learned bias per output channel (zeros at first).
    init : str, float or callable, default "kaiming_normal"
        As `Linear`'s (fans from (F, C, KH, KW): fan_in = C * KH * KW).
    dtype : {float32, float64}, default float32
        The parameters' dtype (inputs must have it too).
    rng : numpy.random.Generator, optional
    seed : int, optional
        The initial weight's draw (one or the other; neither: fresh OS entropy).

    Raises
    ------
    TypeError, ValueError
        A bad size or geometry, `groups` not dividing both channel counts, a bad `init` or
        `dtype`.

    Examples
    --------
    >>> from fastnn import nn
    >>> conv = nn.Conv2d(3, 8, 3, padding=1, seed=0)
    >>> conv.forward(np.zeros((2, 3, 16, 16), np.float32)).shape
    (2, 8, 16, 16)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Pair, stride: _Pair = 1, padding: _Pair = 0,
                 dilation: _Pair = 1, groups: int = 1, bias: bool = True, *, init: _Init = "kaiming_normal",
                 dtype=np.float32, rng: np.random.Generator | None = None, seed: int | None = None):
        super().__init__()
        self.in_channels = integer("Conv2d", "in_channels", in_channels, minimum=1)
        self.out_channels = integer("Conv2d", "out_channels", out_channels, minimum=1)
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, minimum=1)
        self.stride = pair("Conv2d", "stride", stride, minimum=1)
        if isinstance(padding, str):  # torch's strings, checked as torch.nn.Conv2d does
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: padding must be an int, an (h, w) pair, 'same' or 'valid', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' is not supported for strided convolutions "
                                 f"(stride {self.stride})")
            self.padding = padding
        else:
            self.padding = pair("Conv2d", "padding", padding, minimum=0)
        self.dilation = pair("Conv2d", "dilation", dilation, minimum=1)
        self.groups = integer("Conv2d", "groups", groups, minimum=1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv2d: groups = {self.groups} must divide in_channels = {self.in_channels} "
                             f"and out_channels = {self.out_channels}")
        dtype = _dtype("Conv2d", dtype)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.params["weight"] = _initial_weight("Conv2d", init, shape, rng, seed, dtype)
        if bias:
            self.params["bias"] = np.zeros(self.out_channels, dtype)

    def _geometry(self):
        return self.stride, self.padding, self.dilation, self.groups

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        key = _key(x)
        self._x = x
        y = conv2d(x, self.params["weight"], self.params.get("bias"), *self._geometry(), out=self._out("y", key))
        return self._keep("y", key, y)

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        dx, self.grads["weight"], db = conv2d_backward(dy, self._x, self.params["weight"], *self._geometry(),
                                                      input_grad=input_grad)
        if "bias" in self.params:
            self.grads["bias"] = db
        return dx

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r})")


class _BatchNorm(Module):
    """Batch normalization with PyTorch's running statistics (momentum 0.1, unbiased running_var);
    `weight` (gamma) starts at 1, `bias` (beta) at 0; eval() normalizes with the running stats.

    Parameters
    ----------
    num_features : int
        C: the input's size along axis 1.
    eps : float, default 1e-5
        Added to the variance, > 0.
    momentum : float or None, default 0.1
        torch's convention: ``running = (1 - momentum) * running + momentum * batch`` (cs231n's
        bn_param momentum 0.9 is the same update as torch's 0.1). None: torch's cumulative moving
        average, momentum ``1 / num_batches_tracked`` at each training step.
    dtype : {float32, float64}, default float32
        The parameters' dtype (inputs must have it too).

    Raises
    ------
    TypeError, ValueError
        `num_features` < 1, eps <= 0, momentum outside [0, 1], or a bad `dtype`.
    """

    ndim = None

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, *, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        self.num_features = integer(name, "num_features", num_features, minimum=1)
        self.eps = real(name, "eps", eps, minimum=0.0, strict_minimum=True)
        self.momentum = None if momentum is None else real(name, "momentum", momentum, minimum=0.0, maximum=1.0)
        dtype = _dtype(name, dtype)
        self.params["weight"] = np.ones(self.num_features, dtype)
        self.params["bias"] = np.zeros(self.num_features, dtype)
        self.running_mean = np.zeros(self.num_features, dtype)
        self.running_var = np.ones(self.num_features, dtype)
        # training forwards so far, as torch's buffer of that name (int64, 0-d; updated in place)
        self.num_batches_tracked = np.zeros((), np.int64)
        self._relu_output = None  # the last forward's output when it ran relu'd (Sequential)
        self.buffers = {"running_mean": self.running_mean, "running_var": self.running_var,
                        "num_batches_tracked": self.num_batches_tracked}

    def _factor(self):
        """Count a training batch (torch's num_batches_tracked) and return the running statistics'
        momentum for it: `momentum`, or 1 / num_batches_tracked (the cumulative average) for None."""
        self.num_batches_tracked += 1
        return 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x, relu=False)

    def _forward(self, x, relu):
        """The forward, relu'd in the same pass when `relu` (Sequential's BatchNorm then ReLU: the
        backward then takes the gradient of the ReLU's output)."""
        x = np.asarray(x)
        check_ndim(type(self).__name__, "x", x, self.ndim)
        key = _key(x)
        self._x = x
        self._mode = self.training
        momentum = self._factor() if self.training else 0.0
        y, self._mean, self._invstd = (batch_norm_relu if relu else batch_norm)(
            x, self.params["weight"], self.params["bias"], self.running_mean, self.running_var,
            training=self.training, momentum=momentum, eps=self.eps, out=self._out("y", key))
        self._relu_output = y if relu else None
        return self._keep("y", key, y)

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._relu_output is None:
            dx, self.grads["weight"], self.grads["bias"] = batch_norm_backward(
                dy, self._x, self.params["weight"], self._mean, self._invstd, training=self._mode)
        else:
            dx, self.grads["weight"], self.grads["bias"] = batch_norm_relu_backward(
                dy, self._relu_output, self._x, self.params["weight"], self._mean, self._invstd,
                training=self._mode)
        return dx if input_grad else None

    def __repr__(self):
        return f"{type(self).__name__}({self.num_features}, eps={self.eps}, momentum={self.momentum})"


_RUNNING = """
    Training mode normalizes with the batch's mean and biased variance, counts the batch in
    ``num_batches_tracked`` and updates ``running_mean`` / ``running_var`` as torch does (all three
    also in ``buffers``); eval mode normalizes with them. Parameters ``weight`` (gamma, ones) and
    ``bias`` (beta, zeros).

    Parameters
    ----------
    num_features : int
        {what}.
    eps : float, default 1e-5
        Added to the variance, > 0.
    momentum : float or None, default 0.1
        torch's convention: ``running = (1 - momentum) * running + momentum * batch``, with the
        unbiased batch variance for running_var. (cs231n's bn_param momentum 0.9 is the same update.)
        None: the cumulative moving average, momentum ``1 / num_batches_tracked`` (torch's None).
    dtype : {{float32, float64}}, default float32
        The parameters' dtype (inputs must have it too).
    """


class BatchNorm1d(_BatchNorm):
    __doc__ = ("Batch normalization of x (N, D), statistics per column, or of x (N, C, L), per channel over "
               "(N, L)\n    (torch.nn.BatchNorm1d; `fastnn.batch_norm`).\n" + _RUNNING.format(what="D or C"))

    ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    __doc__ = ("Spatial batch normalization of x (N, C, H, W): statistics per channel over (N, H, W)\n"
               "    (torch.nn.BatchNorm2d; `fastnn.batch_norm`).\n" + _RUNNING.format(what="C"))

    ndim = 4


class BatchNorm3d(_BatchNorm):
    __doc__ = ("Volumetric batch normalization of x (N, C, D, H, W): statistics per channel over (N, D, H, W)\n"
               "    (torch.nn.BatchNorm3d; `fastnn.batch_norm`).\n" + _RUNNING.format(what="C"))

    ndim = 5


class _Pool(Module):
    """A 2-D pooling layer on NCHW arrays: kernel_size, stride (None: kernel_size), padding, and the
    pooling function's keyword options (checked by it at the first forward, as torch's layers)."""

    def __init__(self, kernel_size: _Pair, stride: _Pair | None = None, padding: _Pair = 0, **options):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else pair(name, "stride", stride, minimum=1)
        self.padding = pair(name, "padding", padding, minimum=0)
        self.options = options

    def _geometry(self):
        return self.kernel_size, self.stride, self.padding

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        key = _key(x)
        self._x = x
        y = self._forward(x, *self._geometry(), **self.options, out=self._out("y", key))
        return self._keep("y", key, y)

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if not input_grad:
            return None
        key = _key(self._x)
        dx = self._backward(dy, self._x, *self._geometry(), **self.options, out=self._out("dx", key))
        return self._keep("dx", key, dx)

    def __repr__(self):
        options = "".join(f", {name}={value!r}" for name, value in self.options.items())
        return (f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}{options})")


class MaxPool2d(_Pool):
    """Max pooling over (H, W) windows of NCHW input (torch.nn.MaxPool2d; `fastnn.max_pool2d`).

    Padding is -inf; a tie sends the gradient to the window's first maximum (row-major), as torch.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Default: kernel_size (non-overlapping windows).
    padding : int or (int, int), default 0
        At most kernel_size // 2, as torch.
    dilation : int or (int, int), default 1
        Spacing of a window's elements.
    ceil_mode : bool, default False
        Round the output size up (a last window may hang past x; it never starts in the right padding).

    Examples
    --------
    >>> from fastnn import nn
    >>> nn.MaxPool2d(2).forward(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> nn.MaxPool2d(2, ceil_mode=True).forward(np.arange(9.0).reshape(1, 1, 3, 3))
    array([[[[4., 5.],
             [7., 8.]]]])
    """

    _forward = staticmethod(max_pool2d)
    _backward = staticmethod(max_pool2d_backward)

    def __init__(self, kernel_size: _Pair, stride: _Pair | None = None, padding: _Pair = 0, dilation: _Pair = 1,
                 ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode)


class AvgPool2d(_Pool):
    """Average pooling over (H, W) windows of NCHW input (torch.nn.AvgPool2d; `fastnn.avg_pool2d`).

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Default: kernel_size (non-overlapping windows).
    padding : int or (int, int), default 0
    ceil_mode : bool, default False
        Round the output size up (a last window may hang past x; it never starts in the right padding).
    count_include_pad : bool, default True
        Padded zeros count in the divisor (torch's default).
    divisor_override : int, optional
        Divide every window's sum by this instead.
    """

    _forward = staticmethod(avg_pool2d)
    _backward = staticmethod(avg_pool2d_backward)

    def __init__(self, kernel_size: _Pair, stride: _Pair | None = None, padding: _Pair = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                         divisor_override=divisor_override)


class Flatten(Module):
    """(N, ...) -> (N, prod(...)); a view when x is contiguous."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return np.asarray(dy).reshape(self._shape) if input_grad else None


class Sequential(Module):
    """Layers applied in order. `params` / `grads` / `buffers` key each layer's arrays
    "<index>.<name>" and are the layers' own arrays, so `opt.step(model.params, model.grads)`
    trains the model in place.

    Parameters
    ----------
    *layers : Module
        Applied first to last by `forward`, last to first by `backward`.

    Raises
    ------
    TypeError
        A layer is not a fastnn.nn.Module.

    Examples
    --------
    >>> from fastnn import nn
    >>> model = nn.Sequential(nn.Linear(4, 8, seed=0), nn.ReLU(), nn.Linear(8, 2, seed=1))
    >>> sorted(model.params)
    ['0.bias', '0.weight', '2.bias', '2.weight']
    >>> model.forward(np.ones((5, 4), np.float32)).shape
    (5, 2)
    """

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} must be a fastnn.nn.Module, got {type(layer).__name__}")
        self.layers = list(layers)
        self.training = True
        self._fused = set()

    @property
    def params(self):
        """{"<index>.<name>": array}: the layers' own parameter arrays (an optimizer updates them in place)."""
        return {f"{i}.{name}": a for i, layer in enumerate(self.layers) for name, a in layer.params.items()}

    @property
    def grads(self):
        """{"<index>.<name>": array}: the layers' gradients from the last backward, params' keys."""
        return {f"{i}.{name}": a for i, layer in enumerate(self.layers) for name, a in layer.grads.items()}

    @property
    def buffers(self):
        """{"<index>.<name>": array}: the layers' untrained state (BatchNorm running statistics)."""
        return {f"{i}.{name}": a for i, layer in enumerate(self.layers) for name, a in layer.buffers.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The layers in order; a BatchNorm followed by a ReLU runs as one pass (batch_norm_relu, and
        batch_norm_relu_backward in `backward`: the same values, a pass over the data fewer each way)."""
        self._fused = set()  # indices of the ReLUs run inside the BatchNorm before them
        i, layers = 0, self.layers
        while i < len(layers):
            # fastnn's own BatchNorms only (a subclass, e.g. SyncBatchNorm, has its own forward)
            if type(layers[i]) in (BatchNorm1d, BatchNorm2d, BatchNorm3d) and i + 1 < len(layers) \
                    and type(layers[i + 1]) is ReLU:
                x = layers[i]._forward(x, relu=True)
                # the ReLU's own backward still works (a caller driving the layers one by one, as
                # DataParallel): its mask from its output, the same as from its input
                layers[i + 1]._saved = x
                self._fused.add(i + 1)
                i += 2
                continue
            x = layers[i].forward(x)
            i += 1
        return x

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Backward through the layers, last to first; each layer's `grads` are overwritten.

        Parameters
        ----------
        dy : ndarray
            Gradient of the loss with respect to the last forward's output.
        input_grad : bool, default True
            False: the first layer skips dx (the model's input is data) and None is returned.

        Returns
        -------
        ndarray or None
            dx, the gradient with respect to the model's input.
        """
        for i in range(len(self.layers) - 1, -1, -1):
            if i not in self._fused:  # a fused ReLU's gradient is its BatchNorm's
                dy = self.layers[i].backward(dy, input_grad=input_grad or i > 0)
        return dy if input_grad else None

    def train(self) -> Module:
        self.training = True
        for layer in self.layers:
            layer.train()
        return self

    def eval(self) -> Module:
        self.training = False
        for layer in self.layers:
            layer.eval()
        return self

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"


class Residual(Module):
    """y = activation(body(x) + x): a skip connection around `body` (a Module whose output has x's
    shape), then an optional activation layer. ResNet's basic block is
    `Residual(Sequential(Conv2d(c, c, 3, padding=1, bias=False), BatchNorm2d(c), ReLU(),
    Conv2d(c, c, 3, padding=1, bias=False), BatchNorm2d(c)), ReLU())`.

    `params` / `grads` / `buffers` key the body's arrays "body.<name>" and the activation's
    "activation.<name>", the layers' own arrays.

    Parameters
    ----------
    body : Module
        Maps x to an output of x's shape.
    activation : Module, optional
        Applied to ``body(x) + x``.

    Raises
    ------
    TypeError
        `body` (or `activation`) is not a fastnn.nn.Module.
    """

    def __init__(self, body: Module, activation: Module | None = None):
        for name, layer in (("body", body), ("activation", activation)):
            if layer is not None and not isinstance(layer, Module):
                raise TypeError(f"Residual: {name} must be a fastnn.nn.Module, got {type(layer).__name__}")
        if body is None:
            raise TypeError("Residual: body must be a fastnn.nn.Module, got NoneType")
        self.body, self.activation = body, activation
        self.training = True
        self._workspace = {}  # the sum and dx buffers (Module's params/grads/buffers are the parts')

    def _parts(self):
        return [("body", self.body)] + ([("activation", self.activation)] if self.activation else [])

    @property
    def params(self):
        """{"body.<name>" or "activation.<name>": array}: the parts' own parameter arrays."""
        return {f"{p}.{k}": a for p, layer in self._parts() for k, a in layer.params.items()}

    @property
    def grads(self):
        """The parts' gradients from the last backward, with params' keys."""
        return {f"{p}.{k}": a for p, layer in self._parts() for k, a in layer.grads.items()}

    @property
    def buffers(self):
        """The parts' untrained state (BatchNorm running statistics), with params' key scheme."""
        return {f"{p}.{k}": a for p, layer in self._parts() for k, a in layer.buffers.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        z = self.body.forward(x)
        if z.shape != x.shape:
            raise ValueError(f"Residual: body maps x of shape {x.shape} to {z.shape}; the skip connection "
                             "needs the same shape")
        key = _key(x)
        s = self._keep("sum", key, np.add(z, x, out=self._out("sum", key)))
        if type(self.activation) is ReLU:  # in place: one buffer fewer to stream through the cache
            y = relu(s, out=s)
            self.activation._saved = y  # its backward's mask from its output, the same as from its input
            return y
        return self.activation.forward(s) if self.activation else s

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        ds = self.activation.backward(dy) if self.activation else np.asarray(dy)
        dx = self.body.backward(ds, input_grad=input_grad)
        if not input_grad:
            return None
        key = _key(ds)
        return self._keep("dx", key, np.add(dx, ds, out=self._out("dx", key)))

    def train(self) -> Module:
        self.training = True
        for _, layer in self._parts():
            layer.train()
        return self

    def eval(self) -> Module:
        self.training = False
        for _, layer in self._parts():
            layer.eval()
        return self

    def __repr__(self):
        return f"Residual(\n  (body): {self.body!r}\n  (activation): {self.activation!r}\n)"
