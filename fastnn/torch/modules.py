"""torch.nn modules whose forward runs fastnn.torch's functions, and `convert`.

Each class subclasses the torch.nn class of the same name and replaces `forward` (and the layout of
Linear's weight, see `Linear`): same
constructor, parameters, buffers, state_dict keys, hooks and repr, and `isinstance(m, nn.Conv2d)`
still holds.
"""
from __future__ import annotations

from torch import nn

from . import functional

__all__ = [
    "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh",
    "GELU", "SiLU", "MaxPool2d", "AvgPool2d", "CrossEntropyLoss", "convert",
]


class Conv2d(nn.Conv2d):
    """``torch.nn.Conv2d`` on fastnn's convolution kernels (:func:`fastnn.torch.conv2d`).

    Same constructor and attributes as ``torch.nn.Conv2d``; a `padding_mode` other than "zeros" runs
    torch's own forward.

    Parameters
    ----------
    *args, **kwargs
        The constructor is ``torch.nn.Conv2d``'s: in_channels, out_channels, kernel_size, stride=1, padding=0,
        dilation=1, groups=1, bias=True, padding_mode="zeros", device=None, dtype=None.
    """

    def forward(self, input):
        """Convolve `input` (N, C, H, W) or (C, H, W) with the layer's weight and bias.

        Parameters
        ----------
        input : torch.Tensor
            (N, C, H, W) or unbatched (C, H, W), any strides.

        Returns
        -------
        torch.Tensor
            (N, out_channels, Ho, Wo).
        """
        if self.padding_mode != "zeros":
            return super().forward(input)
        return functional.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Linear(nn.Linear):
    """``torch.nn.Linear`` on fastnn's GEMM kernels (:func:`fastnn.torch.linear`).

    The weight is (out_features, in_features), as torch's, stored as the transpose of a row-major
    (in_features, out_features) array: fastnn's layout, which neither pass then copies (a row-major
    weight costs a transposed copy in every forward). Values, shape and state_dict are torch's.

    Parameters
    ----------
    *args, **kwargs
        ``torch.nn.Linear``'s: in_features, out_features, bias=True, device=None, dtype=None.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _fastnn_layout(self)

    def forward(self, input):
        """``input @ weight.T + bias`` over the last dimension of `input`.

        Parameters
        ----------
        input : torch.Tensor
            (..., in_features).

        Returns
        -------
        torch.Tensor
            (..., out_features).
        """
        return functional.linear(input, self.weight, self.bias)


def _fastnn_layout(linear):
    """Store linear.weight as the transpose of a row-major (in, out) array, keeping its Parameter object
    (optimizers hold it) and values; autograd then lays its gradient out the same way."""
    weight = linear.weight
    if isinstance(weight, nn.Parameter) and weight.dim() == 2 and not weight.t().is_contiguous():
        weight.data = weight.data.t().contiguous().t()
        if weight.grad is not None:
            weight.grad = weight.grad.t().contiguous().t()


def _batch_norm_forward(self, input):
    """Normalize `input` as torch's _BatchNorm.forward does, on :func:`fastnn.torch.batch_norm`.

    Training counts the batch in num_batches_tracked and updates the running statistics (momentum
    None: their cumulative average); eval normalizes with them.

    Parameters
    ----------
    input : torch.Tensor
        (N, C) or (N, C, L) for BatchNorm1d, (N, C, H, W) for BatchNorm2d, (N, C, D, H, W) for
        BatchNorm3d.

    Returns
    -------
    torch.Tensor
        Same shape.
    """
    self._check_input_dim(input)
    factor = 0.0 if self.momentum is None else self.momentum
    if self.training and self.track_running_stats and self.num_batches_tracked is not None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
    use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
    track = not self.training or self.track_running_stats  # else the buffers must not be updated
    return functional.batch_norm(input, self.running_mean if track else None, self.running_var if track else None,
                        self.weight, self.bias, use_batch_stats, factor, self.eps)


class BatchNorm1d(nn.BatchNorm1d):
    """``torch.nn.BatchNorm1d`` on fastnn's batch-norm kernels (:func:`fastnn.torch.batch_norm`);
    input (N, C) or (N, C, L).

    Parameters
    ----------
    *args, **kwargs
        The constructor is ``torch.nn.BatchNorm1d``'s: num_features, eps=1e-5, momentum=0.1 (torch's
        convention: ``running = (1 - momentum) * running + momentum * batch``), affine=True,
        track_running_stats=True, device=None, dtype=None.
    """

    forward = _batch_norm_forward


class BatchNorm2d(nn.BatchNorm2d):
    """``torch.nn.BatchNorm2d`` on fastnn's batch-norm kernels (:func:`fastnn.torch.batch_norm`);
    input (N, C, H, W).

    Parameters
    ----------
    *args, **kwargs
        The constructor is ``torch.nn.BatchNorm2d``'s: num_features, eps=1e-5, momentum=0.1 (torch's
        convention: ``running = (1 - momentum) * running + momentum * batch``), affine=True,
        track_running_stats=True, device=None, dtype=None.
    """

    forward = _batch_norm_forward


class BatchNorm3d(nn.BatchNorm3d):
    """``torch.nn.BatchNorm3d`` on fastnn's batch-norm kernels (:func:`fastnn.torch.batch_norm`);
    input (N, C, D, H, W).

    Parameters
    ----------
    *args, **kwargs
        The constructor is ``torch.nn.BatchNorm3d``'s: num_features, eps=1e-5, momentum=0.1 (torch's
        convention; None: the cumulative average over num_batches_tracked), affine=True,
        track_running_stats=True, device=None, dtype=None.
    """

    forward = _batch_norm_forward


class ReLU(nn.ReLU):
    """``torch.nn.ReLU`` on fastnn's kernels (:func:`fastnn.torch.relu`).

    Parameters
    ----------
    inplace : bool, default False
        As ``torch.nn.ReLU``'s: overwrite the input.
    """

    def forward(self, input):
        """``max(input, 0)`` (in place when constructed with ``inplace=True``).

        Parameters
        ----------
        input : torch.Tensor
            Any shape.

        Returns
        -------
        torch.Tensor
            `input` itself when the layer is in place.
        """
        return functional.relu(input, inplace=self.inplace)


class LeakyReLU(nn.LeakyReLU):
    """``torch.nn.LeakyReLU`` on fastnn's kernels (:func:`fastnn.torch.leaky_relu`).

    Parameters
    ----------
    negative_slope : float, default 0.01
    inplace : bool, default False
        As ``torch.nn.LeakyReLU``'s.
    """

    def forward(self, input):
        """``where(input > 0, input, negative_slope * input)``.

        Parameters
        ----------
        input : torch.Tensor
            Any shape.

        Returns
        -------
        torch.Tensor
            `input` itself when the layer is in place.
        """
        return functional.leaky_relu(input, self.negative_slope, self.inplace)


class ELU(nn.ELU):
    """``torch.nn.ELU`` on fastnn's kernels (:func:`fastnn.torch.elu`).

    Parameters
    ----------
    alpha : float, default 1.0
    inplace : bool, default False
        As ``torch.nn.ELU``'s.
    """

    def forward(self, input):
        """``where(input > 0, input, alpha * (exp(input) - 1))``.

        Parameters
        ----------
        input : torch.Tensor
            Any shape.

        Returns
        -------
        torch.Tensor
            `input` itself when the layer is in place.
        """
        return functional.elu(input, self.alpha, self.inplace)


class Sigmoid(nn.Sigmoid):
    """``torch.nn.Sigmoid`` on fastnn's kernels (:func:`fastnn.torch.sigmoid`)."""

    def forward(self, input):
        """``1 / (1 + exp(-input))``.

        Parameters
        ----------
        input : torch.Tensor
            Any shape.

        Returns
        -------
        torch.Tensor
            Same shape.
        """
        return functional.sigmoid(input)


class Tanh(nn.Tanh):
    """``torch.nn.Tanh`` on fastnn's kernels (:func:`fastnn.torch.tanh`)."""

    def forward(self, input):
        """``tanh(input)``.

        Parameters
        ----------
        input : torch.Tensor
            Any shape.

        Returns
        -------
        torch.Tensor
            Same shape.
        """
        return functional.tanh(input)


class GELU(nn.GELU):
    """``torch.nn.GELU`` on fastnn's kernels (:func:`fastnn.torch.gelu`), both forms.

    Parameters
    ----------
    approximate : {"none", "tanh"}, default "none"
        As ``torch.nn.GELU``'s: the exact erf form or torch's tanh approximation.
    """

    def forward(self, input):
        """``input * Phi(input)``, or its tanh approximation.

        Parameters
        ----------
        input : torch.Tensor
            Any shape.

        Returns
        -------
        torch.Tensor
            Same shape.
        """
        return functional.gelu(input, approximate=self.approximate)


class SiLU(nn.SiLU):
    """``torch.nn.SiLU`` on fastnn's kernels (:func:`fastnn.torch.silu`).

    Parameters
    ----------
    inplace : bool, default False
        As ``torch.nn.SiLU``'s: overwrite the input.
    """

    def forward(self, input):
        """``input * sigmoid(input)``.

        Parameters
        ----------
        input : torch.Tensor
            Any shape.

        Returns
        -------
        torch.Tensor
            `input` itself when the layer is in place.
        """
        return functional.silu(input, inplace=self.inplace)


class MaxPool2d(nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` on fastnn's kernels (:func:`fastnn.torch.max_pool2d`, every option:
    dilation, ceil_mode, return_indices).

    Parameters
    ----------
    *args, **kwargs
        The constructor is ``torch.nn.MaxPool2d``'s: kernel_size, stride=None, padding=0, dilation=1,
        return_indices=False, ceil_mode=False.
    """

    def forward(self, input):
        """Max over each window of `input` (N, C, H, W) or (C, H, W).

        Parameters
        ----------
        input : torch.Tensor
            (N, C, H, W) or unbatched (C, H, W).

        Returns
        -------
        torch.Tensor
            The pooled input (and the int64 indices, with ``return_indices``).
        """
        return functional.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool2d(nn.AvgPool2d):
    """``torch.nn.AvgPool2d`` on fastnn's kernels (:func:`fastnn.torch.avg_pool2d`, every option:
    ceil_mode, count_include_pad, divisor_override).

    Parameters
    ----------
    *args, **kwargs
        The constructor is ``torch.nn.AvgPool2d``'s: kernel_size, stride=None, padding=0, ceil_mode=False,
        count_include_pad=True, divisor_override=None.
    """

    def forward(self, input):
        """Mean over each window of `input` (N, C, H, W) or (C, H, W).

        Parameters
        ----------
        input : torch.Tensor
            (N, C, H, W) or unbatched (C, H, W).

        Returns
        -------
        torch.Tensor
            The pooled input.
        """
        return functional.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss`` on fastnn's kernels (:func:`fastnn.torch.cross_entropy`).

    Parameters
    ----------
    *args, **kwargs
        The constructor is ``torch.nn.CrossEntropyLoss``'s: weight=None, size_average=None,
        ignore_index=-100, reduce=None, reduction="mean", label_smoothing=0.0.
    """

    def forward(self, input, target):
        """The loss of `input` logits against `target`, with the module's options.

        Parameters
        ----------
        input : torch.Tensor
            (N, C), (N, C, d1, ...) or (C,) logits.
        target : torch.Tensor
            Class indices (input's shape without the class axis) or probabilities (input's shape).

        Returns
        -------
        torch.Tensor
            As ``torch.nn.CrossEntropyLoss``: 0-d for "mean" and "sum", per sample for "none".
        """
        return functional.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                                        reduction=self.reduction, label_smoothing=self.label_smoothing)


_TWINS = {cls.__base__: cls for cls in (Conv2d, Linear, BatchNorm1d, BatchNorm2d, BatchNorm3d, ReLU, LeakyReLU, ELU,
                                         Sigmoid, Tanh, GELU, SiLU, MaxPool2d, AvgPool2d, CrossEntropyLoss)}


def convert(module):
    """Run every supported layer of `module` on fastnn, in place.

    Each submodule (`module` itself included) whose type is exactly one of torch.nn's Conv2d,
    Linear, BatchNorm1d, BatchNorm2d, BatchNorm3d, ReLU, LeakyReLU, ELU, Sigmoid, Tanh, GELU, SiLU,
    MaxPool2d, AvgPool2d or CrossEntropyLoss becomes its fastnn.torch twin: the object stays the same and only
    its class changes, so it keeps its Parameter and buffer objects, hooks, train/eval mode and
    every reference held to it. Subclasses of those types (which may override forward) and other layers are left alone.

    A Linear's weight is re-laid out in place as fastnn's layout (see :class:`Linear`): the same
    Parameter with the same values and shape, other strides; a tensor taken from its old storage
    before (``weight.data``, a view) no longer aliases it.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    torch.nn.Module
        `module`, converted.
    """
    for submodule in module.modules():
        twin = _TWINS.get(type(submodule))
        if twin is not None:
            submodule.__class__ = twin
            if twin is Linear:
                _fastnn_layout(submodule)
    return module
