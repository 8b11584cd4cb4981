"""What every Numba kernel module shares: compile options (the one fast-math policy) and the one
partition helper.

Fast math: never nnan/ninf (NaN and inf must propagate); `contract` fuses multiply-adds and `nsz`
ignores the sign of zero; `reassoc` only where a loop reduces (it lets LLVM vectorize running
sums) and never around the exp/tanh polynomials, whose two-step ln 2 reduction and evaluation
order were measured.
"""
from numba import njit

FASTMATH = {"nsz", "contract"}  # a set: numba refuses frozensets
FASTMATH_SUMS = FASTMATH | {"reassoc"}

PARALLEL = dict(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)  # prange kernels
SERIAL = dict(cache=True, nogil=True, fastmath=FASTMATH)  # helpers and drivers called from Python


@njit(inline="always")
def chunk(c, n_chunks, n):
    """[start, stop) of chunk c when n items are split into n_chunks near-equal static chunks."""
    return c * n // n_chunks, (c + 1) * n // n_chunks
