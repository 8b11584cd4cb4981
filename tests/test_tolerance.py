"""The tolerance rule (opinfo.py) has room to spare: float32 reductions summed in different orders
all sit well inside it, so a test that uses it passes whatever BLAS kernel or thread split the
machine runs, and fails when a result is wrong."""
import numpy as np
import pytest

from opinfo import Terms, allowed_error, error_ratio

MARGIN = 4.0  # every summation order below stays within a quarter of the allowed error


def _pairwise(a, axis=-1):
    """Sum along axis by pairwise halving (float32 throughout)."""
    a = np.moveaxis(a, axis, -1)
    while a.shape[-1] > 1:
        if a.shape[-1] % 2:
            a = np.concatenate([a, np.zeros(a.shape[:-1] + (1,), a.dtype)], axis=-1)
        a = a[..., 0::2] + a[..., 1::2]
    return a[..., 0]


def _blocked(a, block=64, axis=-1):
    """Sum along axis in blocks of `block` terms, each summed left to right, then the block sums
    left to right (a GEMM kernel's register accumulation)."""
    a = np.moveaxis(a, axis, -1)
    total = np.zeros(a.shape[:-1], a.dtype)
    for start in range(0, a.shape[-1], block):
        partial = np.zeros(a.shape[:-1], a.dtype)
        for k in range(start, min(start + block, a.shape[-1])):
            partial += a[..., k]
        total += partial
    return total


def _recursive(a, axis=-1):
    """Sum along axis left to right, one term at a time (the least accurate order)."""
    a = np.moveaxis(a, axis, -1)
    total = np.zeros(a.shape[:-1], a.dtype)
    for k in range(a.shape[-1]):
        total += a[..., k]
    return total


@pytest.mark.parametrize("k", [7, 600, 4099])
def test_matmul_orders_within_the_rule(k):
    """One float32 GEMM (K = k) three ways: np.matmul (the machine's BLAS kernel), a pairwise and a
    blocked sum of the same float32 products, each within a quarter of the rule's bound."""
    rng = np.random.default_rng(k)
    a = rng.standard_normal((64, k)).astype(np.float32)
    b = rng.standard_normal((k, 48)).astype(np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = allowed_error(np.float32, exact, Terms(k, np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))))
    products = a[:, :, None] * b[None, :, :]  # float32 products, summed over axis 1
    for name, result in [("matmul", a @ b), ("pairwise", _pairwise(products, axis=1)),
                         ("blocked", _blocked(products, axis=1))]:
        ratio = error_ratio(result, exact, bound)
        assert ratio <= 1 / MARGIN, f"{name}, K={k}: error is {ratio:.3f} of the allowed"


@pytest.mark.parametrize("k", [300, 5000])
def test_same_sign_sums_within_the_rule(k):
    """Sums of squares (a variance's terms, all of one sign), recursive and pairwise, over many
    columns: the worst column of the least accurate order stays 4x inside the rule."""
    rng = np.random.default_rng(k)
    x = (rng.standard_normal((k, 700)) * 2 + 0.5).astype(np.float32)
    squares = x * x
    exact = (x.astype(np.float64) ** 2).sum(axis=0)
    bound = allowed_error(np.float32, exact, Terms(k, exact))
    for name, result in [("recursive", _recursive(squares, axis=0)), ("pairwise", _pairwise(squares, axis=0)),
                         ("numpy", squares.sum(axis=0))]:
        ratio = error_ratio(result, exact, bound)
        assert ratio <= 1 / MARGIN, f"{name}, K={k}: error is {ratio:.3f} of the allowed"


def test_the_rule_catches_a_wrong_result():
    """A sum missing one of its K terms is far outside the rule."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 600)).astype(np.float32)
    b = rng.standard_normal((600, 16)).astype(np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = allowed_error(np.float32, exact, Terms(600, np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))))
    dropped = a[:, 1:] @ b[1:]
    assert error_ratio(dropped, exact, bound) > 4
