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
# Their backwards take the same grain, also where the backward itself is algebraic (sigmoid's, tanh's
# from y): on another split than its forward's, a backward reads the other core's half of y from that
# core's cache. Forward then backward, fresh outputs, float32 (probes/grain_activation_pairs.py):
# sigmoid 32K 8.4 us on 1 thread, 6.8 on 2; the old 2-then-1 split ran 37K in 7.7, 2-then-2 in 7.0.
_TRANSCENDENTAL = Grain(1 << 12, "elements", "1 vs 2 threads, sigmoid/gelu break even at 4K-16K elements; "
                                             "backwards on their forward's split")
# GEMM-shaped: below 2^20 multiply-adds the second thread's start-up and split cost more than it saves.
_GEMM = Grain(1 << 19, "multiply-adds", "linear fwd+bwd, 1 vs 2 threads: break even near 2^20 multiply-adds")
# Convolutions (multiply-adds of the forward; x2 for a backward with dx): 3x3 float32 fwd and bwd,
# 1 vs 2 threads, min of 200 (bench/probes/conv_grain.py): equal up to 2^20 multiply-adds
# (8 x 16->16 x 8x8: Numba 113/111 us fwd, 192/193 us bwd; Cython 78/77, 138/137 us).
_CONV = Grain(1 << 19, "multiply-adds", "1 vs 2 threads, 3x3 conv fwd/bwd: no gain up to 2^20 multiply-adds")
# Loss rows (softmax, then log-sum-exp or margins): 1 vs 2 threads, the kernels called directly on
# 8-512 rows of 128 or 1000 classes, min of 1000 calls interleaved
# (bench/probes/grain_break_even.py losses):
# Cython breaks even at 1K-2K scores (softmax), 2K-4K (float32 hinge), 4K-8K (float64 hinge: +0.3 us
# at 4K), and softmax float32 runs 27% faster at 4K; Numba (TBB) gains nothing there (+0.5 us at 4K).
_LOSS_ROWS = Grain(1 << 11, "scores", "1 vs 2 threads, softmax_cross_entropy/hinge_loss kernels: "
                   "Cython float32 breaks even at 1K-2K scores, Numba pays 0.5 us at 4K")
# Optimizer steps stream 3-5 arrays: one thread finishes below 2^16 elements before a team wakes up.
_STEP = Grain(1 << 15, "elements", "optim steps, 1 vs 2 threads: break even near 2^16 parameters")
# Pooling, in elements of x: float32 2x2 and 3x3 stride-2 pools and backwards over (n, 16, 32, 32)
# break even (Cython) at 16K-32K elements; from 64K two threads run 1.2-1.8x faster
# (bench/probes/grain_pool_batchnorm.py pool, min of 200 interleaved calls; Numba: see batch norm).
_POOL = Grain(1 << 15, "elements", "grain_pool_batchnorm.py pool: 1 vs 2 threads break even at 16K-32K elements")
# Batch norm, in elements of x: float32 training forward and backward and eval forward, (n, 32, 14, 14)
# and (n, 256), break even (Cython) at 16K-32K elements (NCHW) and 32K-64K ((N, D)); from 128K two
# threads run 1.1-2x faster (bench/probes/grain_pool_batchnorm.py batchnorm, min of 100 interleaved
# calls). Numba's TBB pool ran 2 threads no faster than 1 on this loaded machine (a compute-bound
# prange probe too), so its break-even is not resolved: the row is Cython's.
_BATCHNORM = Grain(1 << 15, "elements", "grain_pool_batchnorm.py batchnorm: 1 vs 2 threads break even at "
                                        "16K-64K elements")

GRAIN = {
    **{op: _ALGEBRAIC for op in ("relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "prelu",
                                 "prelu_backward", "maxout", "maxout_backward")},
    **{op: _TRANSCENDENTAL for op in ("elu", "elu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
                                      "gelu", "gelu_backward", "silu", "silu_backward")},
    # linear
    "linear": _GEMM,
    "linear_backward": _GEMM,
    # losses
    "softmax_cross_entropy": _LOSS_ROWS,
    "hinge_loss": _LOSS_ROWS,
    # conv
    **{op: _CONV for op in ("conv2d", "conv2d_relu", "conv2d_backward")},
    # pool
    **{op: _POOL for op in ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward")},
    # batchnorm
    **{op: _BATCHNORM for op in ("batch_norm", "batch_norm_backward", "batch_norm_relu", "batch_norm_relu_backward")},
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
    wanted = work // grain.per_thread  # at least 2 here; conditionals, not min/max (0.13 us a call)
    return wanted if wanted < available else available
