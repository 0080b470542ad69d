"""The strategy registry and the custom uncertainty model protocol."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from swergio_al.learning import (
    ActiveLearner,
    available_strategies,
    get_strategy,
    least_confidence,
    margin,
    register_strategy,
)
from swergio_al.learning import strategies as strategies_module
from tests.learning.doubles import FixedProba, ScoreByFeature, rows


@pytest.fixture
def registry() -> Iterator[None]:
    """Registrations made by a test are forgotten after it."""
    saved = dict(strategies_module._REGISTRY)
    yield
    strategies_module._REGISTRY.clear()
    strategies_module._REGISTRY.update(saved)


def test_builtin_strategies_are_registered_by_name() -> None:
    assert set(available_strategies()) >= {
        "least_confidence", "margin", "entropy", "vote_entropy", "kl_consensus", "std", "random",
    }
    assert get_strategy("margin") is margin
    assert get_strategy(least_confidence) is least_confidence


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown strategy 'marginn'.*'margin'"):
        get_strategy("marginn")
    with pytest.raises(ValueError, match="unknown strategy"):
        ActiveLearner(LogisticRegression(), strategy="nope").uncertainty(rows(2))


def test_register_a_function_under_a_new_name(registry: None) -> None:
    def second_class(model: Any, X: Any) -> np.ndarray:
        return np.asarray(model.predict_proba(X)[:, 1])

    register_strategy("second_class", second_class)
    assert "second_class" in available_strategies()
    learner = ActiveLearner(LogisticRegression(), strategy="second_class",
                            uncertainty_model=FixedProba([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]))
    indices, scores = learner.query(rows(3), n=2)
    np.testing.assert_array_equal(indices, [1, 2])
    np.testing.assert_allclose(scores, [0.8, 0.5])


def test_a_name_is_not_taken_over_by_accident(registry: None) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_strategy("margin", least_confidence)
    register_strategy("margin", least_confidence, replace=True)
    assert get_strategy("margin") is least_confidence
    with pytest.raises(TypeError, match="callable"):
        register_strategy("broken", "not a function")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        register_strategy("", margin)


def test_registered_strategy_may_take_the_learners_random_state(registry: None) -> None:
    seen: list[Any] = []

    def noisy(model: Any, X: Any, *, random_state: Any = None) -> np.ndarray:
        seen.append(random_state)
        return np.asarray(random_state.random(len(X)))

    register_strategy("noisy", noisy)
    learner = ActiveLearner(LogisticRegression(), "noisy", uncertainty_model=FixedProba([[1.0]]),
                            random_state=3)
    first = learner.uncertainty(rows(4))
    again = ActiveLearner(LogisticRegression(), "noisy", uncertainty_model=FixedProba([[1.0]]),
                          random_state=3).uncertainty(rows(4))
    assert isinstance(seen[0], np.random.Generator)
    np.testing.assert_array_equal(first, again)


def test_custom_model_with_uncertainty_is_used_as_is() -> None:
    learner = ActiveLearner(LogisticRegression(), "margin", uncertainty_model=ScoreByFeature(1))
    X = np.array([[0.0, 0.3], [1.0, 0.9], [2.0, 0.1]])
    np.testing.assert_allclose(learner.uncertainty(X), [0.3, 0.9, 0.1])
    assert learner.query(X)[0].tolist() == [1]


def test_custom_model_with_predict_proba_is_scored_by_the_strategy() -> None:
    model = FixedProba([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]])
    for strategy, expected in (("margin", [0.8, 0.15]), ("least_confidence", [0.5, 0.1])):
        learner = ActiveLearner(LogisticRegression(), strategy, uncertainty_model=model)
        np.testing.assert_allclose(learner.uncertainty(rows(2)), expected)


def test_estimator_with_its_own_uncertainty_is_asked_directly() -> None:
    class Heuristic(LogisticRegression):
        def uncertainty(self, X: Any) -> np.ndarray:
            return -np.abs(self.decision_function(X))

    X = np.array([[-2.0], [-1.0], [0.1], [1.0], [2.0]])
    learner = ActiveLearner(Heuristic(), "entropy", classes=[0, 1]).teach(X, [0, 0, 1, 1, 1])
    expected = -np.abs(learner.estimator_.decision_function(X))
    np.testing.assert_allclose(learner.uncertainty(X), expected)


def test_custom_scores_that_are_nan_or_infinite_become_finite_and_rank_last() -> None:
    class Wild:
        def uncertainty(self, X: Any) -> np.ndarray:
            return np.array([np.nan, 0.2, -np.inf, np.inf, 0.5])

    learner = ActiveLearner(LogisticRegression(), uncertainty_model=Wild(), random_state=0)
    np.testing.assert_allclose(learner.uncertainty(rows(5)), [0.2, 0.2, 0.2, 0.5, 0.5])
    top = learner.query(rows(5), n=2)[0]
    assert set(top.tolist()) == {3, 4}
