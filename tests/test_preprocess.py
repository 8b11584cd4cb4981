"""Preprocessing: known statistics, the whitened covariance diag(λ/(λ+eps)) in the PCA basis,
PCA reconstruction, shapes/dtypes and errors."""
import numpy as np
import pytest

from fastnn import preprocess


def _correlated(n=2000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((d, d)) * np.geomspace(3.0, 0.01, d)[:, None]
    return rng.standard_normal((n, d)) @ mixing + rng.standard_normal(d) * 5


def test_mean_image_and_channel_mean():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3, 4, 5)).astype(np.float32) * np.array([1, 2, 3], np.float32)[:, None, None] + 7
    out = preprocess.MeanImage().fit_transform(X)
    assert out.dtype == np.float32 and out.shape == X.shape
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    cm = preprocess.ChannelMean(std=True).fit(X)
    np.testing.assert_allclose(cm.mean_, X.mean(axis=(0, 2, 3)), rtol=1e-6)
    out = cm.transform(X)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, rtol=1e-5)
    centred_only = preprocess.ChannelMean().fit_transform(X)
    np.testing.assert_allclose(centred_only.std(axis=(0, 2, 3)), X.std(axis=(0, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize("kind", ["pca", "zca"])
def test_whitened_covariance_is_diag_lambda_over_lambda_plus_eps(kind):
    X = _correlated()
    eps = 0.05  # large enough that λ / (λ + eps) differs from 1 for the small eigenvalues
    w = preprocess.Whitening(kind, eps=eps).fit(X)
    white = w.transform(X)
    assert white.shape == X.shape
    cov = np.cov(white, rowvar=False, bias=True)
    basis = w.components_
    in_pca_basis = cov if kind == "pca" else basis @ cov @ basis.T
    lam = w.eigenvalues_
    np.testing.assert_allclose(in_pca_basis, np.diag(lam / (lam + eps)), atol=1e-10)
    assert lam[-1] / (lam[-1] + eps) < 0.5  # the test sees eps's effect
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(np.cov(X, rowvar=False, bias=True))[::-1], rtol=1e-9)
    np.testing.assert_allclose(w.inverse_transform(white), X, rtol=1e-9, atol=1e-9)


def test_zca_stays_closest_to_the_input():
    X = _correlated(d=4)
    X = X - X.mean(0)
    pca = preprocess.Whitening("pca", eps=0).fit_transform(X)
    zca = preprocess.Whitening("zca", eps=0).fit_transform(X)
    assert np.linalg.norm(zca - X) < np.linalg.norm(pca - X)
    np.testing.assert_allclose(np.cov(zca, rowvar=False, bias=True), np.eye(4), atol=1e-9)


def test_pca_projection_and_reconstruction():
    rng = np.random.default_rng(1)
    low_rank = rng.standard_normal((300, 2)) @ rng.standard_normal((2, 12)) + 3
    images = low_rank.reshape(300, 3, 2, 2)
    pca = preprocess.PCA(2).fit(images)
    Z = pca.transform(images)
    assert Z.shape == (300, 2) and pca.components_.shape == (2, 12)
    np.testing.assert_allclose(pca.inverse_transform(Z), images, atol=1e-9)  # rank 2 data: exact
    np.testing.assert_allclose(np.var(Z, axis=0), pca.explained_variance_, rtol=1e-9)
    assert pca.explained_variance_[0] >= pca.explained_variance_[1]


def test_errors():
    with pytest.raises(RuntimeError, match="fit"):
        preprocess.MeanImage().transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="kind"):
        preprocess.Whitening("pcb")
    with pytest.raises(ValueError, match="n_components"):
        preprocess.PCA(5).fit(np.zeros((10, 4)))
    with pytest.raises(TypeError, match="X"):
        preprocess.MeanImage().fit(np.zeros((3, 4), np.int64))
    with pytest.raises(ValueError, match="channels"):
        preprocess.ChannelMean().fit(np.ones((4, 3, 2, 2))).transform(np.ones((4, 2, 2, 2)))
    with pytest.raises(ValueError, match="sample shape"):
        preprocess.Whitening().fit(np.random.default_rng(0).standard_normal((9, 3))).transform(np.zeros((2, 4)))
