"""Prequential (test-then-train) scoring: each label is predicted before it is learned.

Every model gets a learning curve this way, held-out set or not: the prediction
the model would have made for a sample, compared with the answer a person gave,
is an honest test (the model has not seen that answer yet). Choices score a
rolling accuracy; ratings and numbers a rolling mean absolute error, in the
answer's own unit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

ACCURACY = "accuracy"
MAE = "mae"
WINDOW = 20  # labels in the rolling score: recent enough to show learning, not one-label noise


def metric_for(answer: Mapping[str, Any], *, regression: bool) -> str:
    """Accuracy for choices, MAE for ratings and numbers (and regressors on any answer)."""
    kind = answer.get("type")
    if kind == "choice":
        return ACCURACY
    if kind in ("rating", "number") or regression:
        return MAE
    return ACCURACY


class PrequentialScore:
    """A rolling score over the last `window` labels that had a prediction."""

    def __init__(self, metric: str, window: int = WINDOW) -> None:
        self.metric = metric
        self.window = window
        self.scored_ = 0
        self._recent: deque[float] = deque(maxlen=window)

    def update(self, predictions: Iterable[Any], targets: Iterable[Any]) -> None:
        """Score predictions made *before* learning `targets`; None = no prediction yet."""
        for predicted, actual in zip(predictions, targets, strict=True):
            if predicted is None:
                continue  # an unfitted model has nothing to be tested on
            point = self._point(predicted, actual)
            if point is not None:
                self._recent.append(point)
                self.scored_ += 1

    def _point(self, predicted: Any, actual: Any) -> float | None:
        if self.metric == ACCURACY:
            return float(_plain(predicted) == _plain(actual))
        try:
            return abs(float(predicted) - float(actual))
        except (TypeError, ValueError):
            return None  # a text answer to a number model: not comparable

    @property
    def value(self) -> float | None:
        if not self._recent:
            return None
        return sum(self._recent) / len(self._recent)

    def report(self) -> dict[str, Any]:
        """The LOG/KPI fields: `prequential` (None until something was scored), its metric,
        and how many labels were scored in all."""
        value = self.value
        return {"prequential": None if value is None else round(value, 6),
                "prequential_metric": self.metric, "prequential_labels": self.scored_}


def _plain(value: Any) -> Any:
    """numpy scalars and their Python twins compare equal; "3" and 3 do not."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
