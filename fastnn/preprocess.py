"""Data preprocessing as fit/transform objects (cs231n's lecture 6 recipes).

`fit(X)` learns statistics from training data (returns self); `transform(X)` applies them to any
split; `fit_transform(X)` does both. Statistics are computed in float64; outputs keep X's dtype.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from ._validation import float_arrays, integer, real

__all__ = ["MeanImage", "ChannelMean", "PCA", "Whitening"]


class _Transform:
    """A fit/transform preprocessing step (scikit-learn's protocol)."""

    def fit(self, X):
        """Learn the statistics from training data X (samples first); returns self.

        Parameters
        ----------
        X : ndarray
            Training data, float32 or float64, samples first.

        Returns
        -------
        self

        Raises
        ------
        TypeError
            X is not float32 or float64.
        ValueError
            X has no samples or too few dimensions.
        """
        raise NotImplementedError

    def transform(self, X):
        """X with the fitted statistics applied, in X's dtype.

        Parameters
        ----------
        X : ndarray
            Any split (train, validation, test), samples first, the fitted sample shape.

        Returns
        -------
        ndarray

        Raises
        ------
        RuntimeError
            Before `fit`.
        TypeError
            X is not float32 or float64.
        ValueError
            X's sample shape differs from the one fitted.
        """
        raise NotImplementedError

    def fit_transform(self, X):
        """fit(X), then transform(X): the training data transformed.

        Parameters
        ----------
        X : ndarray
            Training data, samples first.

        Returns
        -------
        ndarray
        """
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
    """Subtract the mean training example (per pixel and channel): `mean_` has X.shape[1:].

    Examples
    --------
    >>> from fastnn.preprocess import MeanImage
    >>> X = np.array([[1.0, 2.0], [3.0, 6.0]])
    >>> MeanImage().fit(X).transform(X)
    array([[-1., -2.],
           [ 1.,  2.]])
    """

    def fit(self, X: np.ndarray) -> MeanImage:
        """Learn the mean training example, `mean_` (float64, X.shape[1:]).

        Parameters
        ----------
        X : ndarray
            Training data (N, ...), float32 or float64.

        Returns
        -------
        MeanImage
            self.

        Raises
        ------
        TypeError
            X is not float32 or float64.
        ValueError
            X has no samples or fewer than 2 dimensions.
        """
        X = self._input(X)
        if X.shape[0] == 0:
            raise ValueError("MeanImage: X has no samples")
        self.mean_ = X.astype(np.float64).mean(axis=0)
        self.fitted_ = True
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """X minus the mean training example.

        Parameters
        ----------
        X : ndarray
            (M, ...) with the fitted sample shape.

        Returns
        -------
        ndarray
            X's shape and dtype.

        Raises
        ------
        RuntimeError
            Before `fit`.
        TypeError
            X is not float32 or float64.
        ValueError
            X's sample shape differs from the one fitted.
        """
        self._check_fitted()
        X = self._input(X)
        if X.shape[1:] != self.mean_.shape:
            raise ValueError(f"MeanImage: X has sample shape {X.shape[1:]}, fitted on {self.mean_.shape}")
        return (X - self.mean_).astype(X.dtype)


class ChannelMean(_Transform):
    """Subtract each channel's mean over (N, H, W) of NCHW images (columns of (N, D) data), and
    with `std=True` divide by the channel's standard deviation.

    Parameters
    ----------
    std : bool, default False
        Also divide by each channel's (biased) standard deviation.

    Examples
    --------
    >>> from fastnn.preprocess import ChannelMean
    >>> X = np.arange(16.0).reshape(2, 2, 2, 2)      # NCHW
    >>> ChannelMean().fit(X).mean_
    array([5.5, 9.5])
    """

    def __init__(self, std: bool = False):
        self.std = bool(std)

    def _per_channel(self, X):
        return X.reshape(X.shape[:2] + (-1,))

    def fit(self, X: np.ndarray) -> ChannelMean:
        """Learn each channel's mean `mean_` (and std `std_` with std=True), float64 (C,).

        Parameters
        ----------
        X : ndarray
            NCHW images (N, C, H, W), or (N, D) data (one channel per column).

        Returns
        -------
        ChannelMean
            self.

        Raises
        ------
        TypeError
            X is not float32 or float64.
        ValueError
            X has no samples or fewer than 2 dimensions, or a constant channel with std=True.
        """
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

    def transform(self, X: np.ndarray) -> np.ndarray:
        """X minus each channel's mean (divided by its std with std=True).

        Parameters
        ----------
        X : ndarray
            (M, C, ...) with the fitted channel count.

        Returns
        -------
        ndarray
            X's shape and dtype.

        Raises
        ------
        RuntimeError
            Before `fit`.
        TypeError
            X is not float32 or float64.
        ValueError
            X's channel count differs from the one fitted.
        """
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
    `explained_variance_` their variances (biased covariance, descending).

    Parameters
    ----------
    n_components : int
        >= 1, at most the number of features (the product of X.shape[1:]).

    Examples
    --------
    >>> from fastnn.preprocess import PCA
    >>> X = np.random.default_rng(0).standard_normal((100, 5)) * [10.0, 1.0, 1.0, 1.0, 0.1]
    >>> pca = PCA(2).fit(X)
    >>> pca.transform(X).shape, pca.inverse_transform(pca.transform(X)).shape
    ((100, 2), (100, 5))
    """

    def __init__(self, n_components: int):
        self.n_components = integer("PCA", "n_components", n_components, minimum=1)

    def fit(self, X: np.ndarray) -> PCA:
        """Learn the mean `mean_`, the axes `components_` (n_components, D) and their variances
        `explained_variance_` from the flattened samples of X.

        Parameters
        ----------
        X : ndarray
            Training data (N, ...), flattened to (N, D).

        Returns
        -------
        PCA
            self.

        Raises
        ------
        TypeError
            X is not float32 or float64.
        ValueError
            X has no samples or fewer than 2 dimensions, or n_components > D.
        """
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

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The coordinates of X's centred, flattened samples on the principal axes.

        Parameters
        ----------
        X : ndarray
            (M, ...) with the fitted sample shape.

        Returns
        -------
        ndarray
            (M, n_components), X's dtype.

        Raises
        ------
        RuntimeError
            Before `fit`.
        TypeError
            X is not float32 or float64.
        ValueError
            X's sample shape differs from the one fitted.
        """
        self._check_fitted()
        X = self._input(X)
        self._check_shape(X)
        return ((_features(X) - self.mean_) @ self.components_.T).astype(X.dtype)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Back to the input space (the best rank-n_components reconstruction).

        Parameters
        ----------
        Z : ndarray
            (M, n_components) coordinates, as `transform` returns.

        Returns
        -------
        ndarray
            (M,) + the fitted sample shape, Z's dtype.

        Raises
        ------
        RuntimeError
            Before `fit`.
        TypeError
            Z is not float32 or float64.
        """
        self._check_fitted()
        Z = self._input(Z)
        X = np.asarray(Z, np.float64) @ self.components_ + self.mean_
        return X.reshape((Z.shape[0],) + self.sample_shape_).astype(Z.dtype)


class Whitening(PCA):
    """Decorrelate and scale to unit variance: with the covariance's eigen-decomposition U diag(λ) U^T,
    kind="pca" returns (X - mean) U diag(1 / sqrt(λ + eps)) as (N, D) coordinates in the PCA basis;
    kind="zca" rotates those back, (...) U^T, keeping X's shape (the whitening closest to X).
    `eps` regularizes small eigenvalues: the whitened covariance is diag(λ / (λ + eps)).

    Parameters
    ----------
    kind : {"pca", "zca"}, default "pca"
    eps : float, default 1e-5
        >= 0; 0 requires a nonsingular covariance.

    Raises
    ------
    ValueError
        An unknown kind, or a negative eps.

    Examples
    --------
    >>> from fastnn.preprocess import Whitening
    >>> X = np.random.default_rng(0).standard_normal((500, 3)) @ [[2.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]]
    >>> white = Whitening("zca", eps=0.0).fit(X).transform(X)
    >>> np.allclose(np.cov(white, rowvar=False, bias=True), np.eye(3))
    True
    """

    def __init__(self, kind: Literal["pca", "zca"] = "pca", eps: float = 1e-5):
        if kind not in ("pca", "zca"):
            raise ValueError(f"Whitening: kind must be 'pca' or 'zca', got {kind!r}")
        self.kind = kind
        self.eps = real("Whitening", "eps", eps, minimum=0.0)

    def fit(self, X: np.ndarray) -> Whitening:
        """Learn the mean `mean_`, the covariance's eigenvalues `eigenvalues_` (descending) and axes
        `components_` (rows), and the scales `scale_` = 1 / sqrt(eigenvalues_ + eps).

        Parameters
        ----------
        X : ndarray
            Training data (N, ...), flattened to (N, D).

        Returns
        -------
        Whitening
            self.

        Raises
        ------
        TypeError
            X is not float32 or float64.
        ValueError
            X has no samples or fewer than 2 dimensions, or a singular covariance with eps=0.
        """
        X = self._input(X)
        self.mean_, self.eigenvalues_, self.components_ = _eigen(X)
        self.components_ = self.components_.T  # rows are the principal axes
        if self.eps == 0 and np.any(self.eigenvalues_ == 0):
            raise ValueError("Whitening: the covariance is singular; use eps > 0")
        self.scale_ = 1 / np.sqrt(self.eigenvalues_ + self.eps)
        self.sample_shape_ = X.shape[1:]
        self.fitted_ = True
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """X whitened: decorrelated, unit variance (up to eps).

        Parameters
        ----------
        X : ndarray
            (M, ...) with the fitted sample shape.

        Returns
        -------
        ndarray
            kind="pca": (M, D) coordinates in the PCA basis; kind="zca": X's shape. X's dtype.

        Raises
        ------
        RuntimeError
            Before `fit`.
        TypeError
            X is not float32 or float64.
        ValueError
            X's sample shape differs from the one fitted.
        """
        self._check_fitted()
        X = self._input(X)
        self._check_shape(X)
        white = (_features(X) - self.mean_) @ self.components_.T * self.scale_
        if self.kind == "zca":
            white = (white @ self.components_).reshape(X.shape)
        return white.astype(X.dtype)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Undo the whitening: back to X's space (exact up to rounding: no component is dropped).

        Parameters
        ----------
        Z : ndarray
            What `transform` returned: (M, D) for kind="pca", the sample shape for "zca".

        Returns
        -------
        ndarray
            (M,) + the fitted sample shape, Z's dtype.

        Raises
        ------
        RuntimeError
            Before `fit`.
        TypeError
            Z is not float32 or float64.
        """
        self._check_fitted()
        Z = self._input(Z)
        coords = Z.reshape(Z.shape[0], -1).astype(np.float64)
        if self.kind == "zca":
            coords = coords @ self.components_.T
        X = (coords / self.scale_) @ self.components_ + self.mean_
        return X.reshape((Z.shape[0],) + self.sample_shape_).astype(Z.dtype)
