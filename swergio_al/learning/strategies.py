"""Uncertainty strategies: plain functions ``(model, X) -> scores``.

A higher score means "ask a person sooner". Every strategy returns a float
array of shape ``(n_samples,)`` with finite values. Rows whose probabilities
are unusable (NaN, infinite, negative, or all zero — SGD's ``predict_proba``
can underflow) score as certain (the strategy's lowest value), so they are
never asked about ahead of a sample with real uncertainty.

Strategies are looked up by name in a registry; :func:`register_strategy`
adds a new one. A strategy may take a keyword argument ``random_state``
(a :class:`numpy.random.Generator`); the learner passes its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

Scores = NDArray[np.float64]
Strategy = Callable[..., Scores]

_REGISTRY: dict[str, Strategy] = {}


def register_strategy(name: str, strategy: Strategy, *, replace: bool = False) -> Strategy:
    """Make ``strategy`` addressable by ``name`` (e.g. in ``ActiveLearner(strategy=name)``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a strategy name must be a non-empty string, got {name!r}")
    if not callable(strategy):
        raise TypeError(f"a strategy must be callable (model, X) -> scores, got {strategy!r}")
    if name in _REGISTRY and not replace and _REGISTRY[name] is not strategy:
        raise ValueError(f"strategy {name!r} is already registered; pass replace=True to override")
    _REGISTRY[name] = strategy
    return strategy


def get_strategy(strategy: str | Strategy) -> Strategy:
    """The strategy function for a registered name, or ``strategy`` itself if callable."""
    if callable(strategy):
        return strategy
    try:
        return _REGISTRY[strategy]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown strategy {strategy!r}; choose one of {available_strategies()} "
            "or register your own with register_strategy()"
        ) from None


def available_strategies() -> list[str]:
    return sorted(_REGISTRY)


def accepts_random_state(strategy: Strategy) -> bool:
    try:
        return "random_state" in inspect.signature(strategy).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def finite_scores(raw: ArrayLike) -> Scores:
    """Scores as finite floats: NaN and -inf become the lowest score, +inf the highest."""
    s = np.asarray(raw, dtype=np.float64).reshape(-1)
    finite = np.isfinite(s)
    if finite.all():
        return s
    lo, hi = (s[finite].min(), s[finite].max()) if finite.any() else (0.0, 0.0)
    return np.where(finite, s, np.where(s == np.inf, hi, lo))


# --- probabilities -------------------------------------------------------------------------


def clean_probabilities(proba: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Rows renormalized to sum to 1, and a mask of the rows that were usable.

    Unusable rows (any NaN/inf/negative entry, or a zero sum) come back as zeros.
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2:
        raise ValueError(f"probabilities must be 2-D (n_samples, n_classes), got shape {p.shape}")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(p).all(axis=1) & (p >= 0).all(axis=1)
        sums = np.where(valid, p.sum(axis=1), 0.0)
    valid &= sums > 0
    p = np.where(valid[:, None], p, 0.0)
    p /= np.where(valid, sums, 1.0)[:, None]
    return p, valid


def _proba(model: Any, X: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    if not hasattr(model, "predict_proba"):
        if getattr(model, "_estimator_type", None) == "regressor" or _is_regressor(model):
            raise TypeError(
                f"{type(model).__name__} is a regressor without predict_proba(X): use "
                "strategy='std' (a model with predict(X, return_std=True), or an ensemble), "
                "or give it an uncertainty(X) method"
            )
        raise TypeError(
            f"{type(model).__name__} has no predict_proba(X); use a probabilistic classifier, "
            "an object with uncertainty(X), or the 'random' strategy"
        )
    return clean_probabilities(model.predict_proba(X))


def _is_regressor(model: Any) -> bool:
    from sklearn.base import is_regressor

    try:
        return bool(is_regressor(model))
    except (AttributeError, TypeError):  # not an sklearn estimator
        return False


# --- classification from predict_proba -----------------------------------------------------


def least_confidence(model: Any, X: ArrayLike) -> Scores:
    """``1 - max_k p(k|x)``: how far the top class is from certainty.

    Ranges from 0 (certain) to ``1 - 1/K`` (uniform over K classes).
    """
    p, valid = _proba(model, X)
    return np.where(valid, 1.0 - p.max(axis=1), 0.0)


def margin(model: Any, X: ArrayLike) -> Scores:
    """``1 - (p(k1|x) - p(k2|x))`` for the two most probable classes k1, k2.

    1 when the top two tie, 0 when the top class has probability 1. With a single
    class column, ``p(k2|x)`` is 0 and the score is ``1 - p(k1|x)``.
    """
    p, valid = _proba(model, X)
    if p.shape[1] == 1:
        return np.where(valid, 1.0 - p[:, 0], 0.0)
    # the two largest per row, without a full sort
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    return np.where(valid, 1.0 - (top2[:, 0] - top2[:, 1]), 0.0)


def _entropy(p: NDArray[np.float64]) -> NDArray[np.float64]:
    # 0 * log 0 = 0 by convention
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=1)


def entropy(model: Any, X: ArrayLike) -> Scores:
    """Shannon entropy ``-sum_k p(k|x) ln p(k|x)`` in nats (``0 ln 0 = 0``).

    0 when one class has probability 1, ``ln K`` when uniform over K classes.
    """
    p, valid = _proba(model, X)
    return np.where(valid, _entropy(p), 0.0)


# --- query by committee --------------------------------------------------------------------


def _members(model: Any) -> list[Any]:
    members = getattr(model, "estimators_", None)
    # gradient boosting keeps its stages in an ndarray: stages are not a committee
    if not isinstance(members, list | tuple) or len(members) < 2:
        raise TypeError(
            f"{type(model).__name__} is not a committee: query by committee needs a fitted "
            "ensemble with a list of at least 2 members in estimators_ (e.g. "
            "swergio_al.learning.Committee, BaggingClassifier, RandomForestClassifier)"
        )
    return list(members)


def _member_inputs(model: Any, X: NDArray[Any]) -> list[NDArray[Any]]:
    # Bagging may train each member on a subset of the features
    features = getattr(model, "estimators_features_", None)
    if features is None:
        return [X] * len(model.estimators_)
    return [X[:, f] for f in features]


def _class_positions(model: Any, member: Any) -> NDArray[np.intp]:
    """Column of the committee's ``classes_`` for each of the member's classes.

    sklearn's ensembles train their members on encoded labels 0..K-1 (a bagged member
    may know only some of them); a :class:`~swergio_al.learning.Committee`'s members
    know the labels themselves.
    """
    classes = np.asarray(model.classes_)
    own = np.asarray(member.classes_)
    encoded = (
        not getattr(model, "members_know_labels", False)
        and np.issubdtype(own.dtype, np.number)
        and bool(np.all((own >= 0) & (own < len(classes)) & (own == np.round(own))))
    )
    if encoded:
        return own.astype(np.intp)
    if not np.isin(own, classes).all():
        raise ValueError(
            f"a member knows classes {own.tolist()} that the committee's classes "
            f"{classes.tolist()} do not hold"
        )
    order = np.argsort(classes)
    return np.asarray(order[np.searchsorted(classes, own, sorter=order)], dtype=np.intp)


def member_probabilities(model: Any, X: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Each member's probabilities over the committee's classes: ``(n_members, n, K)``.

    The mask says which (member, sample) rows were usable.
    """
    members = _members(model)
    Xa = np.asarray(X)
    n_classes = len(model.classes_)
    out = np.zeros((len(members), Xa.shape[0], n_classes))
    ok = np.ones((len(members), Xa.shape[0]), dtype=bool)
    for m, (member, Xm) in enumerate(zip(members, _member_inputs(model, Xa), strict=True)):
        cols = _class_positions(model, member)
        if hasattr(member, "predict_proba"):
            p, ok[m] = clean_probabilities(member.predict_proba(Xm))
            out[m][:, cols] = p
        else:  # a hard vote counts as probability 1
            own = np.asarray(member.classes_)
            index = np.searchsorted(own, member.predict(Xm))
            out[m, np.arange(Xa.shape[0]), cols[index]] = 1.0
    return out, ok


def vote_entropy(model: Any, X: ArrayLike) -> Scores:
    """Entropy of the committee's votes: ``-sum_k (V(k)/C) ln (V(k)/C)``.

    ``V(k)`` is the number of the C members whose most probable class is k.
    0 when all members agree; members whose probabilities are unusable abstain.
    """
    proba, ok = member_probabilities(model, X)
    votes = np.zeros(proba.shape[1:])
    winners = proba.argmax(axis=2)
    for m in range(proba.shape[0]):
        rows = np.flatnonzero(ok[m])
        votes[rows, winners[m, rows]] += 1
    n_voters = votes.sum(axis=1)
    share = votes / np.where(n_voters > 0, n_voters, 1.0)[:, None]
    return _entropy(share)


def kl_consensus(model: Any, X: ArrayLike) -> Scores:
    """Mean KL divergence of each member from the consensus (McCallum & Nigam, 1998).

    ``(1/C) sum_c sum_k p_c(k|x) ln(p_c(k|x) / P(k|x))`` with the consensus
    ``P(k|x) = (1/C) sum_c p_c(k|x)``. 0 when all members agree.
    """
    proba, ok = member_probabilities(model, X)
    weight = ok.astype(np.float64)
    n_ok = weight.sum(axis=0)
    consensus = (proba * weight[:, :, None]).sum(axis=0) / np.where(n_ok > 0, n_ok, 1.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(proba > 0, proba / consensus[None], 1.0)
    kl = (proba * np.log(ratio)).sum(axis=2)
    return np.asarray((kl * weight).sum(axis=0) / np.where(n_ok > 0, n_ok, 1.0), dtype=np.float64)


# --- regression ----------------------------------------------------------------------------


def _accepts_return_std(model: Any) -> bool:
    predict = getattr(model, "predict", None)
    if predict is None:
        return False
    try:
        return "return_std" in inspect.signature(predict).parameters
    except (TypeError, ValueError):
        return False


def std(model: Any, X: ArrayLike) -> Scores:
    """Predictive standard deviation for regression.

    ``predict(X, return_std=True)`` where the estimator has it (Gaussian process,
    BayesianRidge, ...), otherwise the spread ``sqrt((1/C) sum_c (f_c(x) - mean)^2)``
    of an ensemble's members (RandomForestRegressor, BaggingRegressor, Committee).
    """
    if _accepts_return_std(model):
        _, sd = model.predict(X, return_std=True)
        sd = np.asarray(sd, dtype=np.float64).reshape(-1)
    else:
        members = _members(model)
        Xa = np.asarray(X)
        preds = np.stack(
            [
                np.asarray(m.predict(Xm), dtype=np.float64).reshape(Xa.shape[0], -1).mean(axis=1)
                for m, Xm in zip(members, _member_inputs(model, Xa), strict=True)
            ]
        )
        sd = preds.std(axis=0)
    return np.where(np.isfinite(sd), sd, 0.0)


# --- baseline ------------------------------------------------------------------------------


def random_scores(model: Any, X: ArrayLike, *, random_state: Any = None) -> Scores:
    """Uniform random scores in [0, 1): the baseline every strategy must beat."""
    rng = np.random.default_rng(random_state)
    return rng.random(_n_samples(X))


def _n_samples(X: ArrayLike) -> int:
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None else len(X)  # type: ignore[arg-type]


for _name, _fn in {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "vote_entropy": vote_entropy,
    "kl_consensus": kl_consensus,
    "std": std,
    "random": random_scores,
}.items():
    register_strategy(_name, _fn)
