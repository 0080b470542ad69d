"""The labeled set: the labels a learner has been taught, checked on the way in."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


class LabeledSet:
    """Growing arrays of the labeled rows; rows below ``n`` never change once written."""

    def __init__(self) -> None:
        self.X: NDArray[Any] | None = None
        self.y: NDArray[Any] | None = None
        # Per-row sample weights; None until some row is weighted (all 1 until then).
        self.w: NDArray[np.float64] | None = None
        self.n = 0

    def extend(self, X: NDArray[Any], y: NDArray[Any],
               w: NDArray[np.float64] | None = None) -> None:
        self._extend_weights(len(y), w)
        k = len(y)
        if self.X is None or self.y is None:
            self.X = np.empty((max(2 * k, 64), *X.shape[1:]), dtype=X.dtype)
            self.y = np.empty(max(2 * k, 64), dtype=y.dtype)
        elif X.shape[1:] != self.X.shape[1:]:
            raise ValueError(
                f"X has {X.shape[1:]} features per sample, the labeled set has {self.X.shape[1:]}"
            )
        if self.n + k > len(self.y):
            # new arrays, not resized ones: a snapshot taken for a background refit stays valid
            size = max(2 * len(self.y), self.n + k)
            X_new = np.empty((size, *self.X.shape[1:]), dtype=np.result_type(self.X, X))
            y_new = np.empty(size, dtype=np.result_type(self.y, y))
            X_new[: self.n], y_new[: self.n] = self.X[: self.n], self.y[: self.n]
            self.X, self.y = X_new, y_new
        elif not (np.can_cast(X.dtype, self.X.dtype) and np.can_cast(y.dtype, self.y.dtype)):
            self.X = self.X.astype(np.result_type(self.X, X))
            self.y = self.y.astype(np.result_type(self.y, y))
        self.X[self.n : self.n + k] = X
        self.y[self.n : self.n + k] = y
        self.n += k

    def _extend_weights(self, k: int, w: NDArray[np.float64] | None) -> None:
        if w is None and self.w is None:
            return
        old = np.ones(self.n) if self.w is None else self.w[: self.n]
        new = np.ones(k) if w is None else np.asarray(w, dtype=float)
        self.w = np.concatenate([old, new])  # a new array: snapshots stay valid

    def weights(self, stop: int | None = None) -> NDArray[np.float64] | None:
        stop = self.n if stop is None else stop
        return None if self.w is None else self.w[:stop]

    def view(self, stop: int | None = None) -> tuple[NDArray[Any], NDArray[Any]]:
        if self.X is None or self.y is None:
            return np.empty((0, 0)), np.empty(0)
        stop = self.n if stop is None else stop
        return self.X[:stop], self.y[:stop]


def check_labels(
    X: ArrayLike, y: ArrayLike, *, regression: bool, classes: NDArray[Any] | None
) -> tuple[NDArray[Any], NDArray[Any]]:
    """``X`` and ``y`` as arrays of the same length, or one clear error.

    ``classes`` are the classes declared up front (None: any label is welcome).
    """
    Xa, ya = np.asarray(X), np.asarray(y)
    if ya.ndim == 0:
        ya = ya.reshape(1)
    if Xa.ndim == 1 and ya.size == 1:
        Xa = Xa.reshape(1, -1)
    if ya.ndim != 1 or len(Xa) != len(ya):
        raise ValueError(
            f"X and y must hold the same number of samples, got {len(Xa)} rows and y of "
            f"shape {ya.shape}"
        )
    if len(ya) == 0:
        raise ValueError("teach needs at least one label")
    if regression:
        if not np.issubdtype(ya.dtype, np.number):
            raise ValueError(f"a regressor needs numeric labels, got dtype {ya.dtype}")
    elif classes is not None:
        unknown = ~np.isin(ya, classes)
        if unknown.any():
            raise ValueError(
                f"label {ya[unknown][0].item()!r} is not one of the classes "
                f"{classes.tolist()}"
            )
    return Xa, ya


def check_sample_weight(sample_weight: ArrayLike | None, n: int) -> NDArray[np.float64] | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=float).reshape(-1)
    if len(w) != n or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"sample_weight must be {n} finite non-negative numbers")
    return w
