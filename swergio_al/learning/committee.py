"""A committee of copies of one estimator, each trained on its own resample.

Query by committee (``vote_entropy``, ``kl_consensus``) and the regression
``std`` strategy score disagreement between members. Unlike sklearn's
bagging ensembles this one learns incrementally too: ``partial_fit`` shows
each member each new sample a Poisson(1) number of times (online bagging,
Oza & Russell 2001), so the members stay different without a refit.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, clone, is_regressor
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from swergio_al.learning.strategies import clean_probabilities, member_probabilities


def _is_classifier_committee(committee: Committee) -> bool:
    return not is_regressor(committee.estimator)


class Committee(BaseEstimator):
    """``n_members`` clones of ``estimator`` trained on bootstrap resamples.

    Parameters
    ----------
    estimator : estimator
        Cloned for each member; a classifier or a regressor.
    n_members : int, default=5
    bootstrap : bool, default=True
        Train each member on a bootstrap resample (else all on the same data,
        relying on the estimator's own randomness).
    random_state : int, Generator or None
        Seeds the resamples and each member's ``random_state``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from swergio_al.learning import Committee, vote_entropy
    >>> X = [[0.0], [0.2], [0.9], [1.0]]
    >>> committee = Committee(LogisticRegression(), n_members=3, random_state=0)
    >>> committee = committee.fit(X, [0, 0, 1, 1])
    >>> vote_entropy(committee, [[0.55]]).shape
    (1,)
    """

    # members are trained on the labels themselves, not on encoded 0..K-1
    members_know_labels = True

    def __init__(
        self,
        estimator: Any,
        *,
        n_members: int = 5,
        bootstrap: bool = True,
        random_state: Any = None,
    ) -> None:
        self.estimator = estimator
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.random_state = random_state

    # sklearn reads this to tell classifiers from regressors
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        inner = clone(self.estimator).__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        return tags

    def _new_members(self) -> None:
        if int(self.n_members) < 2:
            raise ValueError(f"a committee needs n_members >= 2, got {self.n_members!r}")
        self.rng_ = np.random.default_rng(self.random_state)
        self.estimators_: list[Any] = []
        for _ in range(int(self.n_members)):
            member = clone(self.estimator)
            if "random_state" in member.get_params():
                member.set_params(random_state=int(self.rng_.integers(2**31 - 1)))
            self.estimators_.append(member)
        self.regression_ = is_regressor(self.estimator)

    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        Xa, ya = np.asarray(X), np.asarray(y)
        self._new_members()
        if not self.regression_:
            self.classes_ = np.unique(ya)
        n = len(ya)
        for member in self.estimators_:
            rows = self.rng_.integers(n, size=n) if self.bootstrap else np.arange(n)
            # a resample that lost a class would shrink the member's classes
            if not self.regression_ and len(np.unique(ya[rows])) < len(self.classes_):
                rows = np.concatenate([rows, np.arange(n)])
            member.fit(Xa[rows], ya[rows])
        return self

    def partial_fit(self, X: ArrayLike, y: ArrayLike, classes: ArrayLike | None = None) -> Self:
        Xa, ya = np.asarray(X), np.asarray(y)
        first = not hasattr(self, "estimators_")
        if first:
            self._new_members()
            if not self.regression_:
                if classes is None:
                    raise ValueError("classes must be passed on the first call to partial_fit")
                self.classes_ = np.unique(np.asarray(classes))
        for member in self.estimators_:
            counts = self.rng_.poisson(1.0, size=len(ya)) if self.bootstrap else 1
            rows = np.repeat(np.arange(len(ya)), counts)
            if rows.size == 0:
                if not first:
                    continue
                rows = np.arange(len(ya))  # every member must see its classes once
            kwargs = {} if self.regression_ or not first else {"classes": self.classes_}
            member.partial_fit(Xa[rows], ya[rows], **kwargs)
        return self

    def member_predictions(self, X: ArrayLike) -> NDArray[np.float64]:
        """Each member's prediction: ``(n_members, n_samples)``."""
        check_is_fitted(self, "estimators_")
        return np.stack([np.asarray(m.predict(X), dtype=np.float64) for m in self.estimators_])

    @available_if(_is_classifier_committee)
    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Mean of the members' probabilities over ``classes_``."""
        check_is_fitted(self, "estimators_")
        proba, ok = member_probabilities(self, X)
        weight = ok.astype(np.float64)[:, :, None]
        mean = (proba * weight).sum(axis=0) / np.maximum(weight.sum(axis=0), 1.0)
        p, _ = clean_probabilities(mean)
        return p

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        check_is_fitted(self, "estimators_")
        if self.regression_:
            return np.asarray(self.member_predictions(X).mean(axis=0))
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])
