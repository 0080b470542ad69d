"""ActiveLearner: teaching, cold start, classes, background refit, sklearn manners."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDRegressor

from swergio_al.learning import ActiveLearner, Committee
from tests.learning.doubles import FixedProba, rows


class CountingSGD(SGDClassifier):
    """A real SGDClassifier that counts how it was taught."""

    def fit(self, X: Any, y: Any, **kwargs: Any) -> CountingSGD:
        self.fits_ = getattr(self, "fits_", 0) + 1
        return super().fit(X, y, **kwargs)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, **kwargs: Any) -> CountingSGD:
        self.partial_fits_ = getattr(self, "partial_fits_", 0) + 1
        self.last_batch_ = len(y)
        return super().partial_fit(X, y, classes=classes, **kwargs)


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=300, n_features=5, n_informative=3, n_redundant=0,
                               n_classes=3, n_clusters_per_class=1, class_sep=2.0, random_state=0)
    return X, y


def test_teach_uses_partial_fit_with_replay_and_keeps_the_labels(blobs: Any) -> None:
    X, y = blobs
    learner = ActiveLearner(CountingSGD(loss="log_loss", random_state=0), classes=[0, 1, 2],
                            replay_size=8, replay_passes=2, random_state=0)
    learner.fit(X[:30], y[:30])
    model = learner.estimator_
    assert model.fits_ == 1 and learner.version_ == 1
    learner.teach(X[30:31], y[30:31])
    assert learner.estimator_ is model  # learned in place, no refit
    assert model.fits_ == 1 and model.partial_fits_ == 1
    assert model.last_batch_ == 2 * (1 + 8)  # two passes of the new label and 8 earlier ones
    assert learner.version_ == 2 and learner.n_labels_ == 31
    np.testing.assert_array_equal(learner.y_labeled_, y[:31])
    np.testing.assert_array_equal(learner.X_labeled_, X[:31])
    assert learner.fit_seconds_ > 0


def test_teach_refits_on_all_labels_without_partial_fit(blobs: Any) -> None:
    X, y = blobs
    learner = ActiveLearner(LogisticRegression(), classes=[0, 1, 2])
    learner.teach(X[:20], y[:20])
    first = learner.estimator_
    learner.teach(X[20:25], y[20:25])
    assert learner.estimator_ is not first
    reference = LogisticRegression().fit(X[:25], y[:25])
    np.testing.assert_allclose(learner.estimator_.coef_, reference.coef_)
    assert learner.version_ == 2 and learner.n_labels_ == 25


def test_incremental_false_refits_even_with_partial_fit(blobs: Any) -> None:
    X, y = blobs
    learner = ActiveLearner(CountingSGD(loss="log_loss", random_state=0), classes=[0, 1, 2],
                            incremental=False).teach(X[:20], y[:20])
    learner.teach(X[20:21], y[20:21])
    assert learner.estimator_.fits_ == 1 and not hasattr(learner.estimator_, "partial_fits_")
    misconfigured = ActiveLearner(LogisticRegression(), incremental=True)
    for _ in range(2):  # the error stays: no half-made state lets a second call through
        with pytest.raises(ValueError, match="partial_fit"):
            misconfigured.teach(X[:5], y[:5])
    with pytest.raises(ValueError, match="incremental must be"):
        ActiveLearner(LogisticRegression(), incremental="sometimes").teach(X[:5], y[:5])


def test_the_users_estimator_is_never_touched(blobs: Any) -> None:
    X, y = blobs
    sgd = SGDClassifier(loss="log_loss")
    learner = ActiveLearner(sgd, classes=[0, 1, 2]).teach(X[:10], y[:10])
    assert not hasattr(sgd, "coef_") and learner.estimator_ is not sgd
    assert clone(learner).get_params()["estimator"] is not sgd


def test_before_the_first_fit_everything_is_maximally_uncertain() -> None:
    learner = ActiveLearner(LogisticRegression(), classes=["cat", "dog"], random_state=0)
    X = np.random.default_rng(0).normal(size=(6, 2))
    np.testing.assert_array_equal(learner.uncertainty(X), np.ones(6))
    indices, scores = learner.query(X, n=3)
    assert len(set(indices.tolist())) == 3 and (scores == 1.0).all()
    np.testing.assert_allclose(learner.predict_proba(X), 0.5)
    assert learner.predict(X).tolist() == ["cat"] * 6
    with pytest.raises(NotFittedError, match="classes="):
        ActiveLearner(LogisticRegression()).predict(X)


def test_one_class_seen_so_far(blobs: Any) -> None:
    X, y = blobs
    ones = np.flatnonzero(y == 1)[:4]
    # a refit learner cannot fit one class: it stays cold, predicting what it saw
    learner = ActiveLearner(LogisticRegression(), classes=[0, 1, 2]).teach(X[ones], y[ones])
    assert learner.estimator_ is None and learner.version_ == 1
    assert (learner.predict(X[:5]) == 1).all()
    np.testing.assert_array_equal(learner.uncertainty(X[:5]), np.ones(5))
    # partial_fit knows all classes from the start
    sgd = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1, 2])
    sgd.teach(X[ones], y[ones])
    assert sgd.predict_proba(X[:5]).shape == (5, 3)
    # without classes, the first class alone is not enough to fit; the second is
    free = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0)).teach(X[ones], y[ones])
    assert free.estimator_ is None
    zero = np.flatnonzero(y == 0)[:1]
    free.teach(X[zero], y[zero])
    assert free.classes_.tolist() == [0, 1] and free.estimator_ is not None


def test_refit_on_fewer_classes_than_declared_pads_probabilities(blobs: Any) -> None:
    X, y = blobs
    two = np.flatnonzero(y != 2)[:10]
    learner = ActiveLearner(LogisticRegression(), classes=[0, 1, 2]).teach(X[two], y[two])
    proba = learner.predict_proba(X[:4])
    assert proba.shape == (4, 3)
    np.testing.assert_array_equal(proba[:, 2], 0.0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_a_label_outside_classes_is_a_clear_error(blobs: Any) -> None:
    X, _ = blobs
    learner = ActiveLearner(SGDClassifier(), classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"label 7 is not one of the classes \[0, 1, 2\]"):
        learner.teach(X[:2], [0, 7])
    assert learner.n_labels_ == 0 and learner.version_ == 0
    with pytest.raises(ValueError, match="same number of samples"):
        learner.teach(X[:3], [0, 1])
    with pytest.raises(ValueError, match="at least one label"):
        learner.teach(X[:0], [])


def test_new_classes_without_declared_classes_are_learned(blobs: Any) -> None:
    X, y = blobs
    learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), random_state=0)
    known = np.flatnonzero(y < 2)[:20]
    learner.teach(X[known], y[known])
    assert learner.classes_.tolist() == [0, 1]
    new = np.flatnonzero(y == 2)[:3]
    learner.teach(X[new], y[new])
    assert learner.classes_.tolist() == [0, 1, 2]
    assert learner.predict_proba(X[:5]).shape == (5, 3)


def test_nan_probabilities_are_never_picked_first() -> None:
    proba = [[np.nan, np.nan], [0.0, 0.0], [0.9, 0.1], [0.6, 0.4]]
    for seed in range(10):
        learner = ActiveLearner(LogisticRegression(), uncertainty_model=FixedProba(proba),
                                random_state=seed)
        indices, scores = learner.query(rows(4), n=2)
        assert indices.tolist() == [3, 2]
        assert np.isfinite(scores).all()


def test_background_refit_is_swapped_in_with_the_labels_taught_meanwhile(blobs: Any) -> None:
    X, y = blobs
    learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1, 2],
                            refit_every=10, random_state=0)
    learner.fit(X[:20], y[:20])
    for i in range(20, 30):
        learner.teach(X[i:i + 1], y[i:i + 1])
    assert learner.refit_due
    box: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: box.setdefault("refit", learner.fit_full()))
    worker.start()
    for i in range(30, 40):  # the model keeps learning while the refit runs
        learner.teach(X[i:i + 1], y[i:i + 1])
    worker.join(timeout=30)
    refit = box["refit"]
    assert 30 <= refit.n_labels <= 40 and refit.seconds > 0
    version = learner.version_
    assert learner.swap_in(refit)
    assert learner.estimator_ is refit.estimator
    assert learner.version_ == version + 1 and not learner.refit_due
    assert (learner.predict(X[200:]) == y[200:]).mean() > 0.8


def test_stale_refits_are_refused(blobs: Any) -> None:
    X, y = blobs
    learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1, 2])
    learner.fit(X[:20], y[:20])
    refit = learner.fit_full()
    learner.fit(X[20:40], y[20:40])  # starts over: the snapshot is from another labeled set
    assert not learner.swap_in(refit)
    lr = ActiveLearner(LogisticRegression()).fit(X[:20], y[:20])
    refit = lr.fit_full()
    lr.teach(X[20:21], y[20:21])  # a refit learner is already fit on more labels
    assert not lr.swap_in(refit)
    assert ActiveLearner(LogisticRegression()).fit(X[:20], y[:20]).refit()


def test_random_state_makes_queries_reproducible(blobs: Any) -> None:
    X, y = blobs

    def picks(seed: int) -> list[int]:
        learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1, 2],
                                random_state=seed)
        learner.fit(X[:6], y[:6])
        chosen = []
        for _ in range(15):
            (i,), _ = learner.query(X, n=1)
            learner.teach(X[[i]], y[[i]])
            chosen.append(int(i))
        return chosen

    assert picks(1) == picks(1)


def test_regression_with_std_from_a_forest_and_from_an_incremental_committee() -> None:
    X, y = make_regression(n_samples=120, n_features=3, noise=1.0, random_state=0)
    forest = ActiveLearner(RandomForestRegressor(n_estimators=10, random_state=0), "std",
                           random_state=0).teach(X[:30], y[:30])
    indices, scores = forest.query(X[30:], n=3)
    assert len(indices) == 3 and (scores > 0).all()
    with pytest.raises(ValueError, match="numeric labels"):
        forest.teach(X[:1], ["high"])
    committee = ActiveLearner(Committee(SGDRegressor(random_state=0), n_members=4, random_state=0),
                              "std", random_state=0)
    committee.teach(X[:20], y[:20])
    committee.teach(X[20:21], y[20:21])
    assert committee.uncertainty(X[:5]).shape == (5,)
    assert committee.predict(X[:5]).shape == (5,)
    with pytest.raises(AttributeError):
        committee.predict_proba(X[:5])


def test_committee_learns_incrementally_as_a_classifier(blobs: Any) -> None:
    X, y = blobs
    learner = ActiveLearner(Committee(SGDClassifier(loss="log_loss"), n_members=3, random_state=0),
                            "vote_entropy", classes=[0, 1, 2], random_state=0)
    learner.fit(X[:30], y[:30])
    for i in range(30, 60):
        learner.teach(X[i:i + 1], y[i:i + 1])
    assert (learner.predict(X[200:]) == y[200:]).mean() > 0.7
    assert learner.uncertainty(X[:50]).max() > 0


def test_clone_and_pickle_keep_the_learner_usable(blobs: Any) -> None:
    X, y = blobs
    learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), "entropy",
                            classes=[0, 1, 2], random_state=0).fit(X[:30], y[:30])
    assert clone(learner).get_params()["strategy"] == "entropy"
    copy = pickle.loads(pickle.dumps(learner))
    np.testing.assert_array_equal(copy.predict(X[:10]), learner.predict(X[:10]))
    copy.teach(X[30:31], y[30:31])
    assert copy.version_ == learner.version_ + 1


def test_refits_come_less_often_as_labels_grow(blobs: Any) -> None:
    X, y = blobs
    learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1, 2],
                            refit_every=5, refit_growth=0.1, random_state=0)
    learner.fit(X[:100], y[:100])  # a refit on 100 labels: the next is due 10 labels later
    learner.teach(X[100:109], y[100:109])
    assert not learner.refit_due
    learner.teach(X[109:110], y[109:110])
    assert learner.refit_due
    assert not ActiveLearner(LogisticRegression()).fit(X[:30], y[:30]).teach(
        X[30:90], y[30:90]).refit_due  # a refit learner is always fresh


def test_an_uncertainty_model_is_taught_the_same_labels() -> None:
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    incremental = SGDClassifier(loss="log_loss", random_state=0)
    learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1],
                            uncertainty_model=incremental)
    learner.teach(X[:1], y[:1])  # partial_fit learns even one class, given all classes
    assert list(incremental.classes_) == [0, 1]
    learner.teach(X[1:], y[1:])
    assert incremental.score(X, y) > 0.8
    batch = LogisticRegression()
    learner = ActiveLearner(LogisticRegression(), uncertainty_model=batch)
    learner.teach(X[y == 0][:3], y[y == 0][:3])
    assert not hasattr(batch, "coef_")  # fit needs two classes: not yet
    learner.teach(X, y)
    assert batch.score(X, y) > 0.8  # fitted on every label so far


def test_a_regressor_without_probabilities_is_told_the_fix() -> None:
    from sklearn.linear_model import LinearRegression

    X = np.arange(10.0).reshape(-1, 1)
    learner = ActiveLearner(LinearRegression()).teach(X, X[:, 0] * 2)
    with pytest.raises(TypeError, match=r"regressor.*strategy='std'.*uncertainty\(X\)"):
        learner.uncertainty(X)
