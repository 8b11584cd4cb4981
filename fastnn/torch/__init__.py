"""fastnn inside PyTorch: torch.nn.functional's functions and torch.nn's layers on fastnn's kernels.

    import fastnn.torch as ft
    y = ft.conv2d(x, weight, bias, padding=1)    # torch.nn.functional.conv2d's arguments, autograd-aware
    model = ft.convert(model)                    # supported layers of a torch model now run on fastnn

Functions (`fastnn.torch.functional`): conv2d, linear, batch_norm, max_pool2d, avg_pool2d, relu,
leaky_relu, elu, sigmoid, tanh, gelu, silu, cross_entropy. CPU float32/float64 tensors of any strides
cross over without copies; whatever fastnn does not cover runs torch's own function, with torch's
answer. Modules (`fastnn.torch.modules`): subclasses of the torch.nn classes of the same names, and
`convert`. fastnn's kernels use `torch.get_num_threads()` threads unless `fastnn.set_num_threads`
was called. Needs PyTorch (the `torch` extra); `import fastnn` alone never imports it.
"""
from .functional import (
    avg_pool2d, batch_norm, conv2d, cross_entropy, elu, gelu, leaky_relu, linear, max_pool2d, relu, sigmoid, silu,
    tanh,
)
from .modules import (
    ELU, GELU, AvgPool2d, BatchNorm1d, BatchNorm2d, BatchNorm3d, Conv2d, CrossEntropyLoss, LeakyReLU, Linear,
    MaxPool2d, ReLU, Sigmoid, SiLU, Tanh, convert,
)

__all__ = [
    "conv2d", "linear", "batch_norm", "max_pool2d", "avg_pool2d", "relu", "leaky_relu", "elu", "sigmoid", "tanh",
    "gelu", "silu", "cross_entropy",
    "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh",
    "GELU", "SiLU", "MaxPool2d", "AvgPool2d", "CrossEntropyLoss", "convert",
]
