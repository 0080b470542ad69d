"""Tiny models with fixed outputs, so strategies can be checked against hand-computed values."""

from __future__ import annotations

from typing import Any

import numpy as np


class FixedProba:
    """A classifier whose predict_proba returns the given rows for sample indices X[:, 0]."""

    def __init__(self, proba: Any, classes: Any = None) -> None:
        self.proba = np.asarray(proba, dtype=float)
        self.classes_ = np.arange(self.proba.shape[1]) if classes is None else np.asarray(classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.proba[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])


class FixedCommittee:
    """A committee whose members are FixedProba models."""

    def __init__(self, member_probas: list[Any], classes: Any, member_classes: Any = None) -> None:
        member_classes = member_classes or [None] * len(member_probas)
        self.estimators_ = [
            FixedProba(p, c) for p, c in zip(member_probas, member_classes, strict=True)
        ]
        self.classes_ = np.asarray(classes)


class FixedRegressors:
    """An ensemble of regressors predicting fixed values per sample."""

    class Member:
        def __init__(self, values: Any) -> None:
            self.values = np.asarray(values, dtype=float)

        def predict(self, X: Any) -> np.ndarray:
            return self.values[np.asarray(X)[:, 0].astype(int)]

    def __init__(self, member_values: list[Any]) -> None:
        self.estimators_ = [self.Member(v) for v in member_values]


class ScoreByFeature:
    """A custom uncertainty model: the uncertainty of a sample is its feature ``column``."""

    def __init__(self, column: int = 0) -> None:
        self.column = column

    def uncertainty(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float)[:, self.column]


def rows(n: int) -> np.ndarray:
    """X that makes FixedProba return rows 0..n-1."""
    return np.arange(n, dtype=float).reshape(-1, 1)
