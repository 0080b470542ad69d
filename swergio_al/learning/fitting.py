"""How an estimator learns from labeled rows: from scratch, or one incremental step."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone, is_regressor

from swergio_al.learning.labeled import LabeledSet


def is_regression(estimator: Any) -> bool:
    try:
        return bool(is_regressor(estimator))
    except AttributeError:  # not an sklearn estimator: no tags
        return getattr(estimator, "_estimator_type", None) == "regressor"


def fit_from_scratch(
    estimator: Any,
    X: NDArray[Any],
    y: NDArray[Any],
    w: NDArray[np.float64] | None,
    *,
    regression: bool,
    incremental: bool,
    classes: NDArray[Any] | None,
    replay_passes: int,
    rng: np.random.Generator,
) -> Any:
    """A clone of ``estimator`` fitted on these labels, or None while a classifier has
    seen one class only. ``classes`` are all the classes known so far."""
    model = clone(estimator)
    fit_w = weight_kwargs(model.fit, w)
    if regression:
        return model.fit(X, y, **fit_w)
    seen = np.unique(y)
    if classes is None or len(classes) < 2:
        return None  # a classifier needs two classes to tell apart
    if incremental:
        if len(seen) == len(classes):
            return model.fit(X, y, **fit_w)
        # partial_fit can learn classes it has not seen labels of yet
        model.partial_fit(X, y, classes=classes, **weight_kwargs(model.partial_fit, w))
        for _ in range(max(int(replay_passes), 1) * 3):
            order = rng.permutation(len(y))
            shuffled = None if w is None else w[order]
            model.partial_fit(X[order], y[order],
                              **weight_kwargs(model.partial_fit, shuffled))
        return model
    if len(seen) < 2:
        return None
    return model.fit(X, y, **fit_w)


def replay_step(
    model: Any,
    labels: LabeledSet,
    start: int,
    stop: int,
    *,
    replay_size: int,
    replay_passes: int,
    rng: np.random.Generator,
) -> None:
    """One ``partial_fit`` on rows [start, stop) with a sample of earlier rows, per pass.

    The passes go into one call: a ``partial_fit`` call costs milliseconds of
    overhead (SGDClassifier: per class) whatever its size, so one call of
    ``passes * (new + replay)`` rows is several times cheaper than ``passes`` calls.
    """
    X, y = labels.view()
    new = np.arange(start, stop)
    n_replay = min(int(replay_size), start)
    parts = []
    for _ in range(max(int(replay_passes), 1)):
        parts.append(new)
        if n_replay > 0:
            parts.append(rng.integers(0, start, size=n_replay))
    rows = np.concatenate(parts)
    w = labels.weights()
    model.partial_fit(X[rows], y[rows],
                      **weight_kwargs(model.partial_fit, None if w is None else w[rows]))


def teach_in_place(
    model: Any,
    X: NDArray[Any],
    y: NDArray[Any],
    seen: int,
    *,
    regression: bool,
    classes: NDArray[Any] | None,
    declared: bool,
) -> bool:
    """Teach ``model`` in place the rows from ``seen`` on: ``partial_fit`` once it has
    learned something, else ``fit`` on every row. False when it could not learn yet.

    ``declared``: ``classes`` were given up front, so ``partial_fit`` can start at once.
    """
    known = regression or declared or not hasattr(model, "fit")
    if hasattr(model, "partial_fit") and (seen > 0 or known):
        kwargs: dict[str, Any] = {}
        if not regression and classes is not None and seen == 0 \
                and "classes" in inspect.signature(model.partial_fit).parameters:
            kwargs["classes"] = classes
        model.partial_fit(X[seen:], y[seen:], **kwargs)
    elif hasattr(model, "fit") and (regression or len(np.unique(y)) >= 2):
        model.fit(X, y)
    else:
        return False
    return True


def weight_kwargs(method: Any, w: NDArray[np.float64] | None) -> dict[str, Any]:
    """``sample_weight=w`` for an estimator method that takes it; nothing otherwise."""
    if w is None:
        return {}
    try:
        takes = "sample_weight" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        takes = False
    return {"sample_weight": w} if takes else {}
