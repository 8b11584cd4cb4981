"""Data preprocessing as fit/transform objects (cs231n's lecture 6 recipes).

`fit(X)` learns statistics from training data (returns self); `transform(X)` applies them to any
split; `fit_transform(X)` does both. Statistics are computed in float64; outputs keep X's dtype.
"""
import numpy as np

from ._validation import float_arrays, integer, real

__all__ = ["MeanImage", "ChannelMean", "PCA", "Whitening"]


class _Transform:
    def fit(self, X):
        """Learn the statistics from training data X (samples first); returns self.

        Raises
        ------
        TypeError
            X is not float32 or float64.
        ValueError
            X has no samples or too few dimensions.
        """
        raise NotImplementedError

    def transform(self, X):
        """X with the fitted statistics applied; X's dtype. RuntimeError before `fit`."""
        raise NotImplementedError

    def fit_transform(self, X):
        """fit(X), then transform(X)."""
        return self.fit(X).transform(X)

    def _check_fitted(self):
        if not getattr(self, "fitted_", False):
            raise RuntimeError(f"{type(self).__name__}: call fit(X) before transform")

    def _input(self, X, min_ndim=2):
        name = type(self).__name__
        X = float_arrays(name, X=X)
        if X.ndim < min_ndim:
            raise ValueError(f"{name}: X must have at least {min_ndim} dimensions (samples first), got shape {X.shape}")
        return X


def _features(X):
    return X.reshape(X.shape[0], -1).astype(np.float64)


class MeanImage(_Transform):
    """Subtract the mean training example (per pixel and channel): `mean_` has X.shape[1:]."""

    def fit(self, X):
        X = self._input(X)
        if X.shape[0] == 0:
            raise ValueError("MeanImage: X has no samples")
        self.mean_ = X.astype(np.float64).mean(axis=0)
        self.fitted_ = True
        return self

    def transform(self, X):
        self._check_fitted()
        X = self._input(X)
        if X.shape[1:] != self.mean_.shape:
            raise ValueError(f"MeanImage: X has sample shape {X.shape[1:]}, fitted on {self.mean_.shape}")
        return (X - self.mean_).astype(X.dtype)


class ChannelMean(_Transform):
    """Subtract each channel's mean over (N, H, W) of NCHW images (columns of (N, D) data), and
    with `std=True` divide by the channel's standard deviation."""

    def __init__(self, std=False):
        self.std = bool(std)

    def _per_channel(self, X):
        return X.reshape(X.shape[:2] + (-1,))

    def fit(self, X):
        X = self._input(X)
        flat = self._per_channel(X).astype(np.float64)
        if flat.shape[0] * flat.shape[2] == 0:
            raise ValueError(f"ChannelMean: X has no values per channel (shape {X.shape})")
        self.mean_ = flat.mean(axis=(0, 2))
        self.std_ = flat.std(axis=(0, 2)) if self.std else None
        if self.std and np.any(self.std_ == 0):
            raise ValueError("ChannelMean: a channel is constant (std 0); use std=False")
        self.fitted_ = True
        return self

    def transform(self, X):
        self._check_fitted()
        X = self._input(X)
        if X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"ChannelMean: X has {X.shape[1]} channels (X.shape[1]), fitted on {self.mean_.shape[0]}")
        shape = (1, -1) + (1,) * (X.ndim - 2)
        out = X - self.mean_.reshape(shape)
        if self.std:
            out = out / self.std_.reshape(shape)
        return out.astype(X.dtype)


def _eigen(X):
    """Mean, eigenvalues (descending) and eigenvectors (columns) of the biased covariance."""
    F = _features(X)
    if F.shape[0] == 0:
        raise ValueError("X has no samples")
    mean = F.mean(axis=0)
    centred = F - mean
    cov = centred.T @ centred / F.shape[0]
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    return mean, np.maximum(values[order], 0), vectors[:, order]


class PCA(_Transform):
    """Project flattened samples on the top `n_components` principal axes: transform returns
    (N, n_components) coordinates; `components_` (n_components, D) are the axes (rows),
    `explained_variance_` their variances (biased covariance, descending)."""

    def __init__(self, n_components):
        self.n_components = integer("PCA", "n_components", n_components, minimum=1)

    def fit(self, X):
        X = self._input(X)
        features = int(np.prod(X.shape[1:]))
        if self.n_components > features:
            raise ValueError(f"PCA: n_components = {self.n_components} exceeds the {features} features of X")
        self.mean_, values, vectors = _eigen(X)
        self.components_ = vectors[:, : self.n_components].T
        self.explained_variance_ = values[: self.n_components]
        self.sample_shape_ = X.shape[1:]
        self.fitted_ = True
        return self

    def _check_shape(self, X):
        if X.shape[1:] != self.sample_shape_:
            raise ValueError(f"{type(self).__name__}: X has sample shape {X.shape[1:]}, fitted on {self.sample_shape_}")

    def transform(self, X):
        self._check_fitted()
        X = self._input(X)
        self._check_shape(X)
        return ((_features(X) - self.mean_) @ self.components_.T).astype(X.dtype)

    def inverse_transform(self, Z):
        """Back to the input space (the best rank-n_components reconstruction)."""
        self._check_fitted()
        Z = self._input(Z)
        X = np.asarray(Z, np.float64) @ self.components_ + self.mean_
        return X.reshape((Z.shape[0],) + self.sample_shape_).astype(Z.dtype)


class Whitening(PCA):
    """Decorrelate and scale to unit variance: with the covariance's eigen-decomposition U diag(λ) U^T,
    kind="pca" returns (X - mean) U diag(1 / sqrt(λ + eps)) as (N, D) coordinates in the PCA basis;
    kind="zca" rotates those back, (...) U^T, keeping X's shape (the whitening closest to X).
    `eps` regularizes small eigenvalues: the whitened covariance is diag(λ / (λ + eps))."""

    def __init__(self, kind="pca", eps=1e-5):
        if kind not in ("pca", "zca"):
            raise ValueError(f"Whitening: kind must be 'pca' or 'zca', got {kind!r}")
        self.kind = kind
        self.eps = real("Whitening", "eps", eps, minimum=0.0)

    def fit(self, X):
        X = self._input(X)
        self.mean_, self.eigenvalues_, self.components_ = _eigen(X)
        self.components_ = self.components_.T  # rows are the principal axes
        if self.eps == 0 and np.any(self.eigenvalues_ == 0):
            raise ValueError("Whitening: the covariance is singular; use eps > 0")
        self.scale_ = 1 / np.sqrt(self.eigenvalues_ + self.eps)
        self.sample_shape_ = X.shape[1:]
        self.fitted_ = True
        return self

    def transform(self, X):
        self._check_fitted()
        X = self._input(X)
        self._check_shape(X)
        white = (_features(X) - self.mean_) @ self.components_.T * self.scale_
        if self.kind == "zca":
            white = (white @ self.components_).reshape(X.shape)
        return white.astype(X.dtype)

    def inverse_transform(self, Z):
        self._check_fitted()
        Z = self._input(Z)
        coords = Z.reshape(Z.shape[0], -1).astype(np.float64)
        if self.kind == "zca":
            coords = coords @ self.components_.T
        X = (coords / self.scale_) @ self.components_ + self.mean_
        return X.reshape((Z.shape[0],) + self.sample_shape_).astype(Z.dtype)
