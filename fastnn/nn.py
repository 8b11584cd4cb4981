"""Layers with forward/backward on NumPy arrays, built on fastnn's functional ops.

Each layer has `forward(x)`, `backward(dy)` (returns dx and overwrites `.grads`), `.params` and
`.grads` dicts (names `weight` and `bias`), and `train()` / `eval()`. Constructors follow
PyTorch's, plus `dtype=` (float32 by default) and `rng=` / `seed=` for the initial weights.

Outputs and input gradients live in buffers the layer reuses while the input shape stays the
same (the ops write into them with `out=`): an array returned by `forward` or `backward` is valid
until that layer's next call; copy it to keep it.
"""
import numpy as np

from . import init as _init
from .activations import (
    elu, elu_backward, gelu, gelu_backward, leaky_relu, leaky_relu_backward, maxout, maxout_backward,
    prelu, prelu_backward, relu, relu_backward, sigmoid, sigmoid_backward, silu, silu_backward, tanh,
    tanh_backward,
)
from .batchnorm import batch_norm, batch_norm_backward
from .conv import conv2d, conv2d_backward
from .linear import linear, linear_backward
from .pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from ._validation import FLOAT_DTYPES, check_ndim, integer, pair, real

__all__ = [
    "Module", "Conv2d", "Linear", "ReLU", "LeakyReLU", "PReLU", "ELU", "Sigmoid", "Tanh", "GELU", "SiLU",
    "Maxout", "BatchNorm1d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "Flatten", "Sequential", "Residual",
]


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

    def forward(self, x):
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

    def backward(self, dy, input_grad=True):
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

    def train(self):
        """Training mode (batch statistics in BatchNorm); returns the layer."""
        self.training = True
        return self

    def eval(self):
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

    def forward(self, x):
        x = np.asarray(x)
        key = _key(x)
        y = self._keep("y", key, self._f(x, self._out("y", key)))
        self._saved = y if self.from_output else x
        return y

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        key = _key(self._saved)
        return self._keep("dx", key, self._df(dy, self._saved, self._out("dx", key)))


class ReLU(_Elementwise):
    def _f(self, x, out):
        return relu(x, out=out)

    def _df(self, dy, x, out):
        return relu_backward(dy, x, out=out)


class LeakyReLU(_Elementwise):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = real("LeakyReLU", "negative_slope", negative_slope)

    def _f(self, x, out):
        return leaky_relu(x, self.negative_slope, out=out)

    def _df(self, dy, x, out):
        return leaky_relu_backward(dy, x, self.negative_slope, out=out)


class ELU(_Elementwise):
    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = real("ELU", "alpha", alpha)

    def _f(self, x, out):
        return elu(x, self.alpha, out=out)

    def _df(self, dy, x, out):
        return elu_backward(dy, x, self.alpha, out=out)


class Sigmoid(_Elementwise):
    from_output = True

    def _f(self, x, out):
        return sigmoid(x, out=out)

    def _df(self, dy, y, out):
        return sigmoid_backward(dy, y, out=out)


class Tanh(_Elementwise):
    from_output = True

    def _f(self, x, out):
        return tanh(x, out=out)

    def _df(self, dy, y, out):
        return tanh_backward(dy, y, out=out)


class GELU(_Elementwise):
    def _f(self, x, out):
        return gelu(x, out=out)

    def _df(self, dy, x, out):
        return gelu_backward(dy, x, out=out)


class SiLU(_Elementwise):
    def _f(self, x, out):
        return silu(x, out=out)

    def _df(self, dy, x, out):
        return silu_backward(dy, x, out=out)


class PReLU(Module):
    """torch.nn.PReLU: one learnable slope (`weight` of shape ()) or one per channel (axis 1)."""

    def __init__(self, num_parameters=1, init=0.25, *, dtype=np.float32):
        super().__init__()
        num_parameters = integer("PReLU", "num_parameters", num_parameters, minimum=1)
        dtype = _dtype("PReLU", dtype)
        shape = () if num_parameters == 1 else (num_parameters,)
        self.params["weight"] = np.full(shape, real("PReLU", "init", init), dtype)

    def forward(self, x):
        x = np.asarray(x)
        key = _key(x)
        self._x = x
        return self._keep("y", key, prelu(x, self.params["weight"], out=self._out("y", key)))

    def backward(self, dy, input_grad=True):
        dx, self.grads["weight"] = prelu_backward(dy, self._x, self.params["weight"])
        return dx if input_grad else None


class Maxout(Module):
    """Max over `pieces` consecutive units along `axis` (Goodfellow et al.)."""

    def __init__(self, pieces, axis=1):
        super().__init__()
        self.pieces = integer("Maxout", "pieces", pieces, minimum=1)
        self.axis = integer("Maxout", "axis", axis)

    def forward(self, x):
        x = np.asarray(x)
        key = _key(x)
        self._x = x
        return self._keep("y", key, maxout(x, self.pieces, self.axis, out=self._out("y", key)))

    def backward(self, dy, input_grad=True):
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
    """y = x @ weight + bias with weight (in_features, out_features) (the transpose of PyTorch's);
    x (N, in_features) or (N, ...) flattened. He init (kaiming_normal, ReLU gain), zero bias."""

    def __init__(self, in_features, out_features, bias=True, *, init="kaiming_normal", dtype=np.float32,
                 rng=None, seed=None):
        super().__init__()
        self.in_features = integer("Linear", "in_features", in_features, minimum=1)
        self.out_features = integer("Linear", "out_features", out_features, minimum=1)
        dtype = _dtype("Linear", dtype)
        self.params["weight"] = _initial_weight("Linear", init, (self.in_features, self.out_features), rng, seed,
                                                dtype)
        if bias:
            self.params["bias"] = np.zeros(self.out_features, dtype)

    def forward(self, x):
        x = np.asarray(x)
        key = _key(x)
        self._x = x
        y = linear(x, self.params["weight"], self.params.get("bias"), out=self._out("y", key))
        return self._keep("y", key, y)

    def backward(self, dy, input_grad=True):
        dx, self.grads["weight"], db = linear_backward(dy, self._x, self.params["weight"], input_grad=input_grad)
        if "bias" in self.params:
            self.grads["bias"] = db
        return dx

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={'bias' in self.params})"


class Conv2d(Module):
    """torch.nn.Conv2d on NCHW arrays; weight (F, C // groups, KH, KW). He init, zero bias."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, *, init="kaiming_normal", dtype=np.float32, rng=None, seed=None):
        super().__init__()
        self.in_channels = integer("Conv2d", "in_channels", in_channels, minimum=1)
        self.out_channels = integer("Conv2d", "out_channels", out_channels, minimum=1)
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, minimum=1)
        self.stride = pair("Conv2d", "stride", stride, minimum=1)
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

    def forward(self, x):
        x = np.asarray(x)
        key = _key(x)
        self._x = x
        y = conv2d(x, self.params["weight"], self.params.get("bias"), *self._geometry(), out=self._out("y", key))
        return self._keep("y", key, y)

    def backward(self, dy, input_grad=True):
        dx, self.grads["weight"], db = conv2d_backward(dy, self._x, self.params["weight"], *self._geometry(),
                                                      input_grad=input_grad)
        if "bias" in self.params:
            self.grads["bias"] = db
        return dx

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")


class _BatchNorm(Module):
    """Batch normalization with PyTorch's running statistics (momentum 0.1, unbiased running_var);
    `weight` (gamma) starts at 1, `bias` (beta) at 0; eval() normalizes with the running stats."""

    ndim = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        self.num_features = integer(name, "num_features", num_features, minimum=1)
        self.eps = real(name, "eps", eps, minimum=0.0, strict_minimum=True)
        self.momentum = real(name, "momentum", momentum, minimum=0.0, maximum=1.0)
        dtype = _dtype(name, dtype)
        self.params["weight"] = np.ones(self.num_features, dtype)
        self.params["bias"] = np.zeros(self.num_features, dtype)
        self.running_mean = np.zeros(self.num_features, dtype)
        self.running_var = np.ones(self.num_features, dtype)
        self.buffers = {"running_mean": self.running_mean, "running_var": self.running_var}

    def forward(self, x):
        x = np.asarray(x)
        check_ndim(type(self).__name__, "x", x, self.ndim)
        key = _key(x)
        self._x = x
        self._mode = self.training
        y, self._mean, self._invstd = batch_norm(
            x, self.params["weight"], self.params["bias"], self.running_mean, self.running_var,
            training=self.training, momentum=self.momentum, eps=self.eps, out=self._out("y", key))
        return self._keep("y", key, y)

    def backward(self, dy, input_grad=True):
        dx, self.grads["weight"], self.grads["bias"] = batch_norm_backward(
            dy, self._x, self.params["weight"], self._mean, self._invstd, training=self._mode)
        return dx if input_grad else None

    def __repr__(self):
        return f"{type(self).__name__}({self.num_features}, eps={self.eps}, momentum={self.momentum})"


class BatchNorm1d(_BatchNorm):
    """Statistics per column of x (N, D)."""

    ndim = 2


class BatchNorm2d(_BatchNorm):
    """Statistics per channel of x (N, C, H, W), over (N, H, W)."""

    ndim = 4


class _Pool(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else pair(name, "stride", stride, minimum=1)
        self.padding = pair(name, "padding", padding, minimum=0)

    def _geometry(self):
        return self.kernel_size, self.stride, self.padding

    def forward(self, x):
        x = np.asarray(x)
        key = _key(x)
        self._x = x
        return self._keep("y", key, self._forward(x, *self._geometry(), out=self._out("y", key)))

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        key = _key(self._x)
        return self._keep("dx", key, self._backward(dy, self._x, *self._geometry(), out=self._out("dx", key)))

    def __repr__(self):
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


class MaxPool2d(_Pool):
    _forward = staticmethod(max_pool2d)
    _backward = staticmethod(max_pool2d_backward)


class AvgPool2d(_Pool):
    _forward = staticmethod(avg_pool2d)
    _backward = staticmethod(avg_pool2d_backward)


class Flatten(Module):
    """(N, ...) -> (N, prod(...)); a view when x is contiguous."""

    def forward(self, x):
        x = np.asarray(x)
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, input_grad=True):
        return np.asarray(dy).reshape(self._shape) if input_grad else None


class Sequential(Module):
    """Layers applied in order. `params` / `grads` / `buffers` key each layer's arrays
    "<index>.<name>" and are the layers' own arrays, so `opt.step(model.params, model.grads)`
    trains the model in place."""

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} must be a fastnn.nn.Module, got {type(layer).__name__}")
        self.layers = list(layers)
        self.training = True

    @property
    def params(self):
        return {f"{i}.{name}": a for i, layer in enumerate(self.layers) for name, a in layer.params.items()}

    @property
    def grads(self):
        return {f"{i}.{name}": a for i, layer in enumerate(self.layers) for name, a in layer.grads.items()}

    @property
    def buffers(self):
        return {f"{i}.{name}": a for i, layer in enumerate(self.layers) for name, a in layer.buffers.items()}

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy, input_grad=True):
        """input_grad=False: the first layer skips dx (the model's input is data) and None is returned."""
        for i in range(len(self.layers) - 1, -1, -1):
            dy = self.layers[i].backward(dy, input_grad=input_grad or i > 0)
        return dy if input_grad else None

    def train(self):
        self.training = True
        for layer in self.layers:
            layer.train()
        return self

    def eval(self):
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
    """

    def __init__(self, body, activation=None):
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
        return {f"{p}.{k}": a for p, layer in self._parts() for k, a in layer.params.items()}

    @property
    def grads(self):
        return {f"{p}.{k}": a for p, layer in self._parts() for k, a in layer.grads.items()}

    @property
    def buffers(self):
        return {f"{p}.{k}": a for p, layer in self._parts() for k, a in layer.buffers.items()}

    def forward(self, x):
        x = np.asarray(x)
        z = self.body.forward(x)
        if z.shape != x.shape:
            raise ValueError(f"Residual: body maps x of shape {x.shape} to {z.shape}; the skip connection "
                             "needs the same shape")
        key = _key(x)
        s = self._keep("sum", key, np.add(z, x, out=self._out("sum", key)))
        return self.activation.forward(s) if self.activation else s

    def backward(self, dy, input_grad=True):
        ds = self.activation.backward(dy) if self.activation else np.asarray(dy)
        dx = self.body.backward(ds, input_grad=input_grad)
        if not input_grad:
            return None
        key = _key(ds)
        return self._keep("dx", key, np.add(dx, ds, out=self._out("dx", key)))

    def train(self):
        self.training = True
        for _, layer in self._parts():
            layer.train()
        return self

    def eval(self):
        self.training = False
        for _, layer in self._parts():
            layer.eval()
        return self

    def __repr__(self):
        return f"Residual(\n  (body): {self.body!r}\n  (activation): {self.activation!r}\n)"
