"""The grain table: how much work a thread needs before a second one pays, per op, in one place.

A call's work is counted by its meta function (`Plan.work`) in the op's unit: elements of its main
array, or multiply-adds for GEMM-shaped ops. The dispatcher gives a call
    threads = clamp(work // GRAIN[op], 1, fastnn's thread count)
and the kernel runs on exactly that many (it may use fewer when it has fewer independent items,
e.g. images). Each constant names the measurement that chose it: starting an OpenMP team or a TBB
arena costs ~2 us here, so below the break-even one thread finishes first.
"""
from dataclasses import dataclass

from . import _threads


@dataclass(frozen=True)
class Grain:
    per_thread: int  # work units a thread needs
    unit: str
    source: str  # the measurement that chose it


# Memory-bound elementwise ops: float32 relu and tanh_backward break even (1 vs 2 threads, min of
# 300 calls, 1-D arrays, both backends) at 48K-64K elements, float64 relu at 32K-64K.
_ALGEBRAIC = Grain(1 << 15, "elements", "1 vs 2 threads, relu/tanh_backward float32 break even at 48K-64K elements")
# With exp/erf/tanh per element: float32 sigmoid breaks even at 12K-16K, gelu at ~7K; float64 at 4K-6K.
_TRANSCENDENTAL = Grain(1 << 12, "elements", "1 vs 2 threads, sigmoid/gelu break even at 4K-16K elements")
# GEMM-shaped: below 2^20 multiply-adds the second thread's start-up and split cost more than it saves.
_GEMM = Grain(1 << 19, "multiply-adds", "linear fwd+bwd, 1 vs 2 threads: break even near 2^20 multiply-adds")
# Loss rows (softmax, then log-sum-exp or margins): 1 vs 2 threads, the kernels called directly on
# 8-512 rows of 128 or 1000 classes, min of 1000 calls interleaved
# (bench/probes/grain_break_even.py losses):
# Cython breaks even at 1K-2K scores (softmax), 2K-4K (float32 hinge), 4K-8K (float64 hinge: +0.3 us
# at 4K), and softmax float32 runs 27% faster at 4K; Numba (TBB) gains nothing there (+0.5 us at 4K).
_LOSS_ROWS = Grain(1 << 11, "scores", "1 vs 2 threads, softmax_cross_entropy/hinge_loss kernels: "
                   "Cython float32 breaks even at 1K-2K scores, Numba pays 0.5 us at 4K")
# Optimizer steps stream 3-5 arrays: one thread finishes below 2^16 elements before a team wakes up.
_STEP = Grain(1 << 15, "elements", "optim steps, 1 vs 2 threads: break even near 2^16 parameters")

GRAIN = {
    **{op: _ALGEBRAIC for op in ("relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "prelu",
                                 "prelu_backward", "sigmoid_backward", "tanh_backward", "maxout",
                                 "maxout_backward")},
    **{op: _TRANSCENDENTAL for op in ("elu", "elu_backward", "sigmoid", "tanh", "gelu", "gelu_backward",
                                      "silu", "silu_backward")},
    # linear
    "linear": _GEMM,
    "linear_backward": _GEMM,
    # losses
    "softmax_cross_entropy": _LOSS_ROWS,
    "hinge_loss": _LOSS_ROWS,
    # conv
    # pool
    # batchnorm
    # optim
    **{op: _STEP for op in ("sgd_step", "adagrad_step", "rmsprop_step", "adam_step")},
}


def threads(op, work, backend):
    """The thread count of one call of `op` with `work` units on `backend`."""
    grain = GRAIN.get(op)
    if grain is not None and work < 2 * grain.per_thread:
        return 1  # not asking how many there are: a small call's (an optimizer's tensor) few microseconds
    available = _threads.openmp_threads() if backend == "cython" else _threads.get_num_threads()
    if grain is None:
        return available
    return max(1, min(available, work // grain.per_thread))
