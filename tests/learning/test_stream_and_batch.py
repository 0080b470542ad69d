"""Stream mode at a controlled rate, and batches that are not near-duplicates."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from swergio_al.learning import ActiveLearner, BudgetGate, diverse_batch, top_n
from tests.learning.doubles import ScoreByFeature


@pytest.mark.parametrize("budget", [0.02, 0.1, 0.3])
def test_budget_keeps_the_asked_fraction_within_20_percent(budget: float) -> None:
    rng = np.random.default_rng(1)
    # the model gets retrained along the way: the scores' level and spread shift twice
    scores = np.concatenate([
        rng.beta(2, 5, 4000), 0.3 + 0.5 * rng.beta(5, 2, 3000), rng.exponential(0.05, 3000),
    ])
    learner = ActiveLearner(LogisticRegression(), uncertainty_model=ScoreByFeature(0),
                            budget=budget)
    asked = sum(learner.should_ask(np.array([s])) for s in scores)
    assert abs(asked / len(scores) - budget) <= 0.2 * budget
    # and it asks about the uncertain ones: the asked have higher scores than the rest
    gate = BudgetGate(budget)
    mask = np.array([gate.should_ask(s) for s in scores[:4000]])
    assert scores[:4000][mask].mean() > scores[:4000][~mask].mean()


def test_budget_with_constant_scores_still_asks_at_the_rate() -> None:
    gate = BudgetGate(0.1)
    asked = sum(gate.should_ask(1.0) for _ in range(10_000))
    assert abs(asked / 10_000 - 0.1) <= 0.02


def test_budget_ignores_nan_scores() -> None:
    gate = BudgetGate(0.5)
    assert not any(gate.should_ask(float("nan")) for _ in range(100))
    assert gate.seen == 100 and gate.asked == 0


def test_threshold_mode_and_batches() -> None:
    learner = ActiveLearner(LogisticRegression(), uncertainty_model=ScoreByFeature(0),
                            threshold=0.5)
    assert learner.should_ask(np.array([0.7])) is True
    assert learner.should_ask(np.array([0.2])) is False
    np.testing.assert_array_equal(learner.should_ask(np.array([[0.1], [0.9]])), [False, True])
    with pytest.raises(ValueError, match="threshold= or budget="):
        ActiveLearner(LogisticRegression(), uncertainty_model=ScoreByFeature(0)).should_ask(
            np.array([0.5]))
    with pytest.raises(ValueError, match="budget must be"):
        BudgetGate(1.5)


def planted_duplicates() -> tuple[np.ndarray, np.ndarray]:
    """5 very uncertain spots, each sampled 12 times with tiny noise, among 300 others."""
    rng = np.random.default_rng(0)
    spots = rng.normal(size=(5, 4)) * 5
    copies = np.repeat(spots, 12, axis=0) + rng.normal(scale=0.01, size=(60, 4))
    others = rng.normal(size=(300, 4)) * 5
    X = np.vstack([copies, others])
    scores = np.concatenate([rng.uniform(0.9, 1.0, 60), rng.uniform(0.5, 0.85, 300)])
    return X, scores


def near_duplicates(X: np.ndarray, chosen: np.ndarray) -> int:
    """Chosen samples within 0.1 of an earlier chosen one."""
    picked = X[chosen]
    d = np.linalg.norm(picked[:, None] - picked[None], axis=2)
    return int((np.tril(d < 0.1, k=-1)).any(axis=1).sum())


def test_diversity_picks_fewer_near_duplicates_than_top_n() -> None:
    X, scores = planted_duplicates()
    rng = np.random.default_rng(0)
    plain = top_n(scores, 10, rng)
    diverse = diverse_batch(X, scores, 10, 0.5, rng)
    assert near_duplicates(X, plain) >= 5  # 10 picks among 5 spots
    assert near_duplicates(X, diverse) == 0
    # still uncertain: every spot is represented once
    assert (diverse < 60).sum() == 5


def test_diversity_through_the_learner_counts_labeled_samples_too() -> None:
    X, scores = planted_duplicates()
    data = np.column_stack([scores, X])
    learner = ActiveLearner(LogisticRegression(), uncertainty_model=ScoreByFeature(0),
                            random_state=0)
    plain, _ = learner.query(data, n=10)
    diverse, diverse_scores = learner.query(data, n=10, diversity=0.5)
    assert near_duplicates(data, plain) > near_duplicates(data, diverse) == 0
    np.testing.assert_allclose(diverse_scores, scores[diverse])
    # once a spot is labeled, its copies stop being attractive
    learner._labels.extend(data[:1], np.array([0]))
    again, _ = learner.query(data, n=5, diversity=0.5)
    assert not np.isin(again, np.arange(12)).any()


def test_diversity_bounds_and_degenerate_cases() -> None:
    rng = np.random.default_rng(0)
    X, scores = planted_duplicates()
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        diverse_batch(X, scores, 3, 1.5, rng)
    np.testing.assert_array_equal(
        diverse_batch(X, scores, 3, 0.0, np.random.default_rng(1)),
        top_n(scores, 3, np.random.default_rng(1)),
    )
    assert len(diverse_batch(X[:4], scores[:4], 10, 0.5, rng)) == 4
    same = diverse_batch(np.zeros((6, 2)), np.ones(6), 3, 1.0, rng)
    assert len(set(same.tolist())) == 3
    with pytest.raises(ValueError, match="n must be"):
        ActiveLearner(LogisticRegression()).query(X, n=0)


def test_top_n_breaks_ties_at_random_and_puts_nan_last() -> None:
    scores = np.array([np.nan, 1.0, 1.0, 1.0, 0.5])
    firsts = {int(top_n(scores, 1, np.random.default_rng(s))[0]) for s in range(30)}
    assert firsts == {1, 2, 3}
    assert top_n(scores, 5, np.random.default_rng(0))[-1] == 0
    big = np.random.default_rng(0).random(1000)
    np.testing.assert_array_equal(top_n(big, 5, np.random.default_rng(0)), np.argsort(-big)[:5])
