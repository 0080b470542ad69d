"""The evaluator's model: Bayesian linear regression on genome bits plus melody features.

Exact posterior updates make `partial_fit` cheap and incremental, and `predict(X,
return_std=True)` gives the spread that the `std` uncertainty strategy ranks by.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, RegressorMixin

from swergio_al.demos.music.features import genome_features
from swergio_al.learning import ActiveLearner

# Bits count for less than features: 128 of them would otherwise drown 13 features
# under the same prior, and single bits say little about how a melody sounds.
BIT_WEIGHT = 0.1


def melody_matrix(genomes: ArrayLike, *, bit_weight: float = BIT_WEIGHT) -> NDArray[np.float64]:
    """The evaluator's input rows: weighted genome bits, then melody features."""
    rows = np.atleast_2d(np.asarray(genomes))
    X = genome_features(rows)
    X[:, :rows.shape[1]] *= bit_weight
    return X


class BayesianLinearRegression(RegressorMixin, BaseEstimator):
    """Linear regression with a Gaussian prior on the weights and known noise.

    Parameters
    ----------
    alpha : prior precision of each weight (larger = stronger shrinkage to 0).
    noise : variance of a rating around the model's mean (a person's inconsistency).
    prior_mean : the rating expected before any label (the intercept's prior mean).

    Examples
    --------
    >>> model = BayesianLinearRegression().fit([[0.0], [1.0]], [1.0, 3.0])
    >>> mean, std = model.predict([[0.5]], return_std=True)
    """

    def __init__(self, *, alpha: float = 1.0, noise: float = 0.5,
                 prior_mean: float = 2.5) -> None:
        self.alpha = alpha
        self.noise = noise
        self.prior_mean = prior_mean

    def fit(self, X: ArrayLike, y: ArrayLike) -> BayesianLinearRegression:
        for attribute in ("precision_", "shift_"):
            self.__dict__.pop(attribute, None)
        return self.partial_fit(X, y)

    def partial_fit(self, X: ArrayLike, y: ArrayLike) -> BayesianLinearRegression:
        Z, targets = self._design(X), np.asarray(y, dtype=np.float64).ravel()
        if Z.shape[0] != targets.size:
            raise ValueError(f"X has {Z.shape[0]} rows but y has {targets.size} values")
        if not np.isfinite(targets).all():
            raise ValueError("y must be finite")
        if not hasattr(self, "precision_"):
            if self.alpha <= 0 or self.noise <= 0:
                raise ValueError("alpha and noise must be positive")
            self.n_features_in_ = Z.shape[1] - 1
            self.precision_ = np.eye(Z.shape[1]) * self.alpha
            self.precision_[0, 0] = self.alpha * 1e-2  # the intercept is barely shrunk
            self.shift_ = np.zeros(Z.shape[1])
            self.shift_[0] = self.precision_[0, 0] * self.prior_mean
        elif Z.shape[1] - 1 != self.n_features_in_:
            raise ValueError(f"X has {Z.shape[1] - 1} features, the model was fitted "
                             f"on {self.n_features_in_}")
        self.precision_ += Z.T @ Z / self.noise
        self.shift_ += Z.T @ targets / self.noise
        self.covariance_ = np.linalg.inv(self.precision_)
        self.coef_ = self.covariance_ @ self.shift_
        return self

    def predict(self, X: ArrayLike, return_std: bool = False) -> Any:
        if not hasattr(self, "coef_"):
            raise RuntimeError("this BayesianLinearRegression is not fitted yet; call fit")
        Z = self._design(X)
        mean = Z @ self.coef_
        if not return_std:
            return mean
        # Spread of the mean (what more labels would shrink), not of a single rating.
        std = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", Z, self.covariance_, Z), 0.0))
        return mean, std

    @staticmethod
    def _design(X: ArrayLike) -> NDArray[np.float64]:
        values = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if values.ndim != 2 or not np.isfinite(values).all():
            raise ValueError("X must be a finite 2-D array")
        return np.hstack([np.ones((values.shape[0], 1)), values])


class RatingLearner(ActiveLearner):
    """Predicted ratings to hundredths: what people see beside a melody ("Model says
    3.42"), and finer than any difference a listener's stars could express."""

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        return np.round(np.asarray(super().predict(X), dtype=np.float64), 2)


def evaluator_learner(*, strategy: str = "std", random_state: Any = None) -> RatingLearner:
    """The evaluator: an ActiveLearner around the Bayesian linear model.

    `incremental=False`: the model's exact update already equals a refit, and the
    learner's replay passes would count earlier ratings twice.
    """
    return RatingLearner(BayesianLinearRegression(), strategy, incremental=False,
                         random_state=random_state)
