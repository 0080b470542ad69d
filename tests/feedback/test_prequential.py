"""Prequential scoring: each label tests the prediction made before it was learned."""

from __future__ import annotations

import numpy as np

from swergio_al.feedback.prequential import ACCURACY, MAE, PrequentialScore, metric_for


def test_the_metric_follows_the_answer_type() -> None:
    assert metric_for({"type": "choice", "choices": [0, 1]}, regression=False) == ACCURACY
    assert metric_for({"type": "rating", "min": 0, "max": 5}, regression=False) == MAE
    assert metric_for({"type": "text"}, regression=True) == MAE


def test_rolling_accuracy_ignores_missing_predictions_and_forgets_old_labels() -> None:
    score = PrequentialScore(ACCURACY, window=4)
    assert score.report()["prequential"] is None
    score.update([None, None], ["a", "b"])  # an unfitted model is not tested
    assert score.value is None and score.scored_ == 0
    score.update([np.str_("a"), "b", "c", "x"], ["a", "b", "c", "d"])
    assert score.value == 0.75
    score.update(["y", "y", "y", "y"], ["z", "z", "z", "z"])  # the window moved on
    assert score.value == 0.0 and score.report()["prequential_labels"] == 8


def test_rolling_mae_is_in_the_answers_unit_and_skips_incomparable_answers() -> None:
    score = PrequentialScore(MAE, window=10)
    score.update([np.float64(2.5), 4, 1], [3, 4, "not a number"])
    assert score.value == 0.25
    assert score.report() == {"prequential": 0.25, "prequential_metric": MAE,
                              "prequential_labels": 2}
