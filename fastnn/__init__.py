"""fastnn: fast, tested CPU kernels for training convnets, behind a NumPy API.

Functional ops are importable from here; the training toolkit lives in the submodules
`fastnn.nn`, `init`, `optim`, `preprocess`, `gradcheck`, `diagnostics`, `train`, `distributed`
and `compat.cs231n` (imported on first use, so `import fastnn` stays fast and compiles nothing).
"""
import importlib

from ._autotable import backend_table
from ._ops import available_backends, get_backend, missing_kernels, set_backend, use_backend
from ._threads import get_num_threads, set_num_threads
from .activations import (
    elu, elu_backward, gelu, gelu_backward, leaky_relu, leaky_relu_backward, maxout,
    maxout_backward, prelu, prelu_backward, relu, relu_backward, sigmoid, sigmoid_backward,
    silu, silu_backward, tanh, tanh_backward,
)
from .batchnorm import batch_norm, batch_norm_backward, batch_norm_relu, batch_norm_relu_backward
from .linear import linear, linear_backward
from .losses import hinge_loss, softmax_cross_entropy
from .optim import adagrad_step, adam_step, rmsprop_step, sgd_step
from .conv import conv2d, conv2d_backward, conv2d_relu
from .pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

try:  # the version lives in pyproject.toml only
    from importlib.metadata import PackageNotFoundError, version as _version

    __version__ = _version("fastnn")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

_SUBMODULES = ("nn", "init", "optim", "preprocess", "gradcheck", "diagnostics", "train", "distributed", "compat",
               "reference", "tune")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"fastnn.{name}")
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
