"""Each strategy against values computed by hand on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    BaggingClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF
from sklearn.linear_model import LogisticRegression

from swergio_al.learning import (
    clean_probabilities,
    entropy,
    kl_consensus,
    least_confidence,
    margin,
    member_probabilities,
    random_scores,
    std,
    vote_entropy,
)
from tests.learning.doubles import FixedCommittee, FixedProba, FixedRegressors, rows

# certain, uniform, ordinary, a tie for the top class
PROBA = [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.3, 0.2], [0.4, 0.4, 0.2]]
UNUSABLE = [[np.nan, 0.5, 0.5], [0.0, 0.0, 0.0], [np.inf, 0.0, 0.0], [-0.5, 1.0, 0.5]]


def scores(strategy, proba):  # type: ignore[no-untyped-def]
    return strategy(FixedProba(proba), rows(len(proba)))


def test_least_confidence_is_one_minus_top_probability() -> None:
    np.testing.assert_allclose(scores(least_confidence, PROBA), [0.0, 2 / 3, 0.5, 0.6])


def test_margin_is_one_minus_gap_between_top_two() -> None:
    # a tie at the top is a gap of 0: the most uncertain a margin can be
    np.testing.assert_allclose(scores(margin, PROBA), [0.0, 1.0, 0.8, 1.0])


def test_entropy_in_nats_with_zero_log_zero_as_zero() -> None:
    expected = [
        0.0,
        math.log(3),
        -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)),
        -(0.8 * math.log(0.4) + 0.2 * math.log(0.2)),
    ]
    np.testing.assert_allclose(scores(entropy, PROBA), expected)
    np.testing.assert_allclose(expected[2:], [1.029653, 1.054920], atol=1e-6)


@pytest.mark.parametrize("strategy", [least_confidence, margin, entropy])
def test_single_class_column_is_certain(strategy) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_allclose(scores(strategy, [[1.0], [1.0]]), [0.0, 0.0])


@pytest.mark.parametrize("strategy", [least_confidence, margin, entropy])
def test_probabilities_of_exactly_zero_and_one(strategy) -> None:  # type: ignore[no-untyped-def]
    got = scores(strategy, [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    assert got[0] == 0.0 and got[1] == 0.0
    even = {least_confidence: 0.5, margin: 1.0, entropy: math.log(2)}[strategy]
    assert got[2] == pytest.approx(even)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("strategy", [least_confidence, margin, entropy])
def test_unusable_probabilities_score_lowest_without_warnings(strategy) -> None:  # type: ignore[no-untyped-def]
    got = scores(strategy, [*UNUSABLE, [0.6, 0.3, 0.1]])
    np.testing.assert_array_equal(got[:4], 0.0)
    assert got[4] > 0.0


def test_clean_probabilities_renormalizes_and_flags_bad_rows() -> None:
    p, ok = clean_probabilities([[2.0, 2.0], [np.nan, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(ok, [True, False, False])
    with pytest.raises(ValueError, match="2-D"):
        clean_probabilities(np.zeros((2, 2, 2)))


def test_vote_entropy_counts_members_top_classes() -> None:
    a, b, c = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    committee = FixedCommittee(
        [[a, a, a], [a, a, b], [a, b, c]],  # member m's row i
        classes=[0, 1, 2],
    )
    # sample 0: votes a,a,a; sample 1: a,a,b; sample 2: a,b,c
    expected = [0.0, -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)), math.log(3)]
    np.testing.assert_allclose(vote_entropy(committee, rows(3)), expected)


def test_vote_entropy_tie_inside_a_member_goes_to_the_first_class() -> None:
    committee = FixedCommittee([[[0.5, 0.5]], [[0.5, 0.5]]], classes=[0, 1])
    np.testing.assert_allclose(vote_entropy(committee, rows(1)), [0.0])


def test_kl_consensus_is_mean_divergence_from_the_mean() -> None:
    committee = FixedCommittee(
        [[[1.0, 0.0], [0.8, 0.2], [0.3, 0.7]], [[0.0, 1.0], [0.4, 0.6], [0.3, 0.7]]],
        classes=[0, 1],
    )
    kl1 = 0.8 * math.log(0.8 / 0.6) + 0.2 * math.log(0.2 / 0.4)
    kl2 = 0.4 * math.log(0.4 / 0.6) + 0.6 * math.log(0.6 / 0.4)
    np.testing.assert_allclose(
        kl_consensus(committee, rows(3)), [math.log(2), (kl1 + kl2) / 2, 0.0], atol=1e-12
    )
    assert (kl1 + kl2) / 2 == pytest.approx(0.086305, abs=1e-6)


def test_committee_members_that_know_fewer_classes_are_aligned() -> None:
    # member 2 only knows classes 0 and 2: its columns land on the committee's 0 and 2
    committee = FixedCommittee(
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0]]], classes=[0, 1, 2], member_classes=[None, [0, 2]]
    )
    np.testing.assert_allclose(vote_entropy(committee, rows(1)), [0.0])
    np.testing.assert_allclose(kl_consensus(committee, rows(1)), [0.0])


def test_committee_member_with_unusable_probabilities_abstains() -> None:
    committee = FixedCommittee([[[np.nan, np.nan]], [[0.9, 0.1]], [[0.8, 0.2]]], classes=[0, 1])
    np.testing.assert_allclose(vote_entropy(committee, rows(1)), [0.0])
    assert np.isfinite(kl_consensus(committee, rows(1))).all()


def test_query_by_committee_needs_a_committee() -> None:
    X, y = make_classification(n_samples=60, random_state=0)
    boosted = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="not a committee"):
        vote_entropy(boosted, X)
    with pytest.raises(TypeError, match="not a committee"):
        kl_consensus(LogisticRegression().fit(X, y), X)


def test_sklearn_ensembles_work_as_committees() -> None:
    X, y = make_classification(n_samples=120, n_classes=3, n_informative=4, random_state=0)
    for model in (
        RandomForestClassifier(n_estimators=7, random_state=0),
        BaggingClassifier(LogisticRegression(), n_estimators=5, max_features=0.5, random_state=0),
    ):
        model.fit(X, y)
        for strategy in (vote_entropy, kl_consensus):
            got = strategy(model, X)
            assert got.shape == (120,)
            assert (got >= 0).all() and got.max() > 0


def test_std_over_ensemble_members() -> None:
    ensemble = FixedRegressors([[1.0, 5.0, 2.0], [3.0, 5.0, 2.0]])
    np.testing.assert_allclose(std(ensemble, rows(3)), [1.0, 0.0, 0.0])


def test_std_from_predict_with_return_std() -> None:
    X, y = make_regression(n_samples=30, n_features=2, noise=0.1, random_state=0)
    gp = GaussianProcessRegressor(RBF(length_scale=2.0), optimizer=None).fit(X, y)
    far = np.array([[50.0, -50.0]])
    got = std(gp, np.vstack([X[:1], far]))
    np.testing.assert_allclose(got, gp.predict(np.vstack([X[:1], far]), return_std=True)[1])
    assert got[1] > got[0]


def test_std_of_a_random_forest_is_the_trees_spread() -> None:
    X, y = make_regression(n_samples=80, n_features=3, random_state=0)
    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y)
    trees = np.stack([tree.predict(X) for tree in forest.estimators_])
    np.testing.assert_allclose(std(forest, X), trees.std(axis=0))


def test_random_scores_follow_the_random_state() -> None:
    X = rows(50)
    first = random_scores(None, X, random_state=7)
    np.testing.assert_array_equal(first, random_scores(None, X, random_state=7))
    assert not np.array_equal(first, random_scores(None, X, random_state=8))
    assert first.shape == (50,) and ((first >= 0) & (first < 1)).all()


def test_strategy_without_predict_proba_says_what_to_use() -> None:
    with pytest.raises(TypeError, match="predict_proba"):
        margin(object(), rows(2))


def test_members_of_a_bagging_ensemble_on_other_labels_are_mapped_by_position() -> None:
    # labels 10/20/30: sklearn's members learn them as 0/1/2, a bootstrap may miss one
    X, y = make_classification(n_samples=60, n_classes=3, n_informative=4, random_state=1)
    labels = np.array([10, 20, 30])[y]
    bagging = BaggingClassifier(LogisticRegression(), n_estimators=6, max_samples=0.2,
                                random_state=0).fit(X, labels)
    proba, ok = member_probabilities(bagging, X)
    assert ok.all()
    np.testing.assert_allclose(proba.mean(axis=0), bagging.predict_proba(X), atol=1e-12)


def test_committee_members_with_labels_unknown_to_the_committee_are_an_error() -> None:
    committee = FixedCommittee([[[0.5, 0.5]], [[0.5, 0.5]]], classes=["a", "b"],
                               member_classes=[None, ["a", "z"]])
    committee.estimators_[0].classes_ = np.array(["a", "b"])
    with pytest.raises(ValueError, match="do not hold"):
        vote_entropy(committee, rows(1))
