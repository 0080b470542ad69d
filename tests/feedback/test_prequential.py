"""Prequential scoring: each label tests the prediction made before it was learned."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

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


def _tutor(teacher: bool) -> Any:
    from sklearn.linear_model import LogisticRegression

    from swergio_al.feedback.consensus import Consensus, Settings
    from swergio_al.feedback.teaching import AggregateTeacher
    from swergio_al.feedback.tutor import Tutor
    from swergio_al.learning import ActiveLearner

    answer = {"type": "choice", "choices": ["neg", "pos"]}
    aggregate = AggregateTeacher(Consensus(Settings.for_schema(answer, method="majority")))
    return Tutor(ActiveLearner(LogisticRegression(), classes=["neg", "pos"]), answer=answer,
                 target=lambda value: value, validation=None,
                 teacher=aggregate if teacher else None)


@pytest.mark.parametrize("teacher", [False, True])
def test_no_test_before_anything_is_learned_nor_of_labels_replayed_from_the_store(
        teacher: bool) -> None:
    """A learner that has learned nothing only has a placeholder (an ActiveLearner says
    its first declared class: a first 'pos' scored 0 against it). Labels replayed from
    the store after a restart were tested when first learned. Each case, raw answers
    and aggregated ones."""
    tutor = _tutor(teacher)
    x = np.eye(2)

    def fresh(answers: list[tuple[str, str, bool]]) -> dict[str, Any]:
        return {f"l-{sample}": (sample, x[len(sample) % 2],
                                {"answer": value, "labeler": "ann", "replay": replay})
                for sample, value, replay in answers}

    def teach(answers: list[tuple[str, str, bool]]) -> dict[str, Any]:
        return tutor.teach(tutor.lesson(fresh(answers)), [], set())

    first = teach([("a", "pos", False)])
    assert first["prequential"] is None and first["prequential_labels"] == 0
    assert teach([("bb", "neg", True), ("c", "pos", True)])["prequential_labels"] == 0
    mixed = teach([("dd", "neg", True), ("e", "pos", False)])  # only e is tested
    assert mixed["prequential_labels"] == 1
