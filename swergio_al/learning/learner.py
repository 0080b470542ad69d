"""ActiveLearner: a model that chooses what to ask and learns from each answer at once."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from swergio_al.learning.fitting import (
    fit_from_scratch,
    is_regression,
    replay_step,
    teach_in_place,
)
from swergio_al.learning.labeled import LabeledSet, check_labels, check_sample_weight
from swergio_al.learning.selection import diverse_batch, top_n
from swergio_al.learning.strategies import accepts_random_state, finite_scores, get_strategy
from swergio_al.learning.stream import BudgetGate

# diversity measures distance to at most this many labeled rows (a random sample)
_MAX_REFERENCE_ROWS = 2000


@dataclass(frozen=True)
class Refit:
    """A model fitted from scratch on the first ``n_labels`` labels, ready for ``swap_in``."""

    estimator: Any
    n_labels: int
    seconds: float
    generation: int
    n_classes: int


class ActiveLearner(BaseEstimator):
    """Wraps an estimator: picks the samples worth a person's time, learns from each label.

    Parameters
    ----------
    estimator : estimator
        Cloned into ``estimator_``; the original is never touched.
    strategy : str or callable, default="margin"
        A registered strategy name (see ``available_strategies()``) or a function
        ``(model, X) -> scores``, higher = ask sooner.
    classes : array-like or None
        All labels a classifier can get. Needed up front for ``partial_fit``; when
        given, a label outside it is an error. When None, learned from the labels.
    uncertainty_model : object or None
        Scores uncertainty instead of the estimator: its ``uncertainty(X)`` if it has
        one, else the strategy applied to it. It is taught the same labels, in place:
        ``partial_fit`` with the new ones where it has it, else ``fit`` on all of them
        (a classifier once two classes are seen); with neither it is used as is.
        The estimator itself may also have ``uncertainty(X)``.
    incremental : {"auto", True, False}, default="auto"
        Learn with ``partial_fit`` (when the estimator has it) instead of a refit on
        all labels after every ``teach``.
    replay_size : int, default=128
        Earlier labels replayed with the new ones in each incremental step.
    replay_passes : int, default=2
        How often each step shows the new labels, each time with a fresh replay sample.
    refit_every : int or None, default=20
        In incremental mode ``refit_due`` turns true after this many labels since the
        last full refit; run ``fit_full()`` in a worker thread and ``swap_in`` the result.
    refit_growth : float, default=0.1
        ...and only once the labels grew by this fraction since the last refit, so the
        refits' total cost stays proportional to the labels (a refit on 10 000 labels
        costs seconds).
    threshold : float or None
        Stream mode: ``should_ask`` is true when the score exceeds it.
    budget : float or None
        Stream mode without a threshold: ask about roughly this fraction of the
        samples that stream past (the top scores, by an online quantile estimate).
    random_state : int, Generator or None
        Seeds the replay samples, tie-breaking and random scores.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import SGDClassifier
    >>> from swergio_al.learning import ActiveLearner
    >>> rng = np.random.default_rng(0)
    >>> pool = rng.normal(size=(200, 2))
    >>> learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0),
    ...                         classes=[0, 1], random_state=0)
    >>> for _ in range(5):
    ...     (i,), _ = learner.query(pool)
    ...     learner = learner.teach(pool[[i]], [int(pool[i, 0] > 0)])
    >>> learner.version_, learner.n_labels_
    (5, 5)
    """

    def __init__(
        self,
        estimator: Any,
        strategy: Any = "margin",
        *,
        classes: ArrayLike | None = None,
        uncertainty_model: Any = None,
        incremental: bool | str = "auto",
        replay_size: int = 128,
        replay_passes: int = 2,
        refit_every: int | None = 20,
        refit_growth: float = 0.1,
        threshold: float | None = None,
        budget: float | None = None,
        random_state: Any = None,
    ) -> None:
        self.estimator = estimator
        self.strategy = strategy
        self.classes = classes
        self.uncertainty_model = uncertainty_model
        self.incremental = incremental
        self.replay_size = replay_size
        self.replay_passes = replay_passes
        self.refit_every = refit_every
        self.refit_growth = refit_growth
        self.threshold = threshold
        self.budget = budget
        self.random_state = random_state

    # --- state ---------------------------------------------------------------------------

    def _ensure_state(self) -> None:
        if hasattr(self, "rng_"):
            return
        if self.incremental not in ("auto", True, False):
            raise ValueError(f"incremental must be 'auto', True or False, got {self.incremental!r}")
        self.strategy_ = get_strategy(self.strategy)
        self._strategy_takes_rng = accepts_random_state(self.strategy_)
        self.regression_ = is_regression(self.estimator)
        self.incremental_ = hasattr(self.estimator, "partial_fit") and self.incremental in (
            "auto",
            True,
        )
        if self.incremental is True and not self.incremental_:
            raise ValueError(f"incremental=True needs partial_fit; {self.estimator!r} has none")
        if self.classes is not None and not self.regression_:
            classes = np.unique(np.asarray(self.classes))
            if classes.size == 0:
                raise ValueError("classes must not be empty")
            self.classes_: NDArray[Any] | None = classes
        else:
            self.classes_ = None
        self.estimator_: Any = None
        self.version_ = 0
        self.fit_seconds_ = 0.0
        self.refit_seconds_ = 0.0
        self.labels_at_refit_ = 0
        self.gate_ = BudgetGate(self.budget) if self.budget is not None else None
        self._labels = LabeledSet()
        self._generation = 0
        self._lock = threading.RLock()
        self.rng_ = np.random.default_rng(self.random_state)  # last: marks the state as ready

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "rng_" in state:
            self._lock = threading.RLock()

    @property
    def n_labels_(self) -> int:
        self._ensure_state()
        return self._labels.n

    @property
    def X_labeled_(self) -> NDArray[Any]:
        self._ensure_state()
        return self._labels.view()[0]

    @property
    def y_labeled_(self) -> NDArray[Any]:
        self._ensure_state()
        return self._labels.view()[1]

    @property
    def refit_due(self) -> bool:
        """Incremental mode: enough labels arrived since the last full refit."""
        self._ensure_state()
        if not self.incremental_ or self.refit_every is None:
            return False
        needed = max(int(self.refit_every), int(np.ceil(self.refit_growth * self.labels_at_refit_)))
        return self._labels.n - self.labels_at_refit_ >= needed

    # --- learning ------------------------------------------------------------------------

    def _checked(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None
    ) -> tuple[NDArray[Any], NDArray[Any], NDArray[np.float64] | None]:
        declared = self.classes_ if self.classes is not None else None
        Xa, ya = check_labels(X, y, regression=self.regression_, classes=declared)
        return Xa, ya, check_sample_weight(sample_weight, len(ya))

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Forget all labels and learn from these (e.g. seed labels), with a full fit.

        ``sample_weight`` (one per label) reaches the estimator where its ``fit`` and
        ``partial_fit`` take one, and is kept with the labels for later refits.
        """
        generation = getattr(self, "_generation", -1) + 1
        version = getattr(self, "version_", 0)  # never goes back: clients compare versions
        self.__dict__.pop("rng_", None)  # start over: new labeled set, new model
        self._ensure_state()
        self._generation = generation
        self.version_ = version
        Xa, ya, wa = self._checked(X, y, sample_weight)
        with self._lock:
            self._labels.extend(Xa, ya, wa)
            self._learn_classes(ya)
            started = time.perf_counter()
            self.estimator_ = self._fit_from_scratch(*self._labels.view(),
                                                     self._labels.weights())
            self._teach_uncertainty_model(0)
            self.fit_seconds_ = time.perf_counter() - started
            self.labels_at_refit_ = self._labels.n
            self.version_ += 1
        return self

    def teach(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Learn from new labels at once; keeps them in the labeled set; bumps ``version_``."""
        self._ensure_state()
        Xa, ya, wa = self._checked(X, y, sample_weight)
        with self._lock:
            start = self._labels.n
            self._labels.extend(Xa, ya, wa)
            grew = self._learn_classes(ya)
            started = time.perf_counter()
            if not self.incremental_ or self.estimator_ is None or grew:
                self.estimator_ = self._fit_from_scratch(*self._labels.view(),
                                                         self._labels.weights())
                self.labels_at_refit_ = self._labels.n
            else:
                self._partial_step(self.estimator_, start, self._labels.n)
            self._teach_uncertainty_model(start)
            self.fit_seconds_ = time.perf_counter() - started
            self.version_ += 1
        return self

    def _teach_uncertainty_model(self, start: int) -> None:
        """The uncertainty model learns the labels it has not seen (see the class)."""
        model = self.uncertainty_model
        if model is None:
            return
        X, y = self._labels.view()
        seen = min(getattr(self, "_uncertainty_rows", 0), start)
        if teach_in_place(model, X, y, seen, regression=self.regression_,
                          classes=self.classes_, declared=self.classes is not None):
            self._uncertainty_rows = len(y)

    def _learn_classes(self, y: NDArray[Any]) -> bool:
        """With ``classes=None`` the classes are the labels seen; True when they grew."""
        if self.regression_ or self.classes is not None:
            return False
        seen = np.unique(y)
        if self.classes_ is None:
            self.classes_ = seen
            return True
        if np.isin(seen, self.classes_).all():
            return False
        self.classes_ = np.union1d(self.classes_, seen)
        return True

    def _fit_from_scratch(self, X: NDArray[Any], y: NDArray[Any],
                          w: NDArray[np.float64] | None = None) -> Any:
        return fit_from_scratch(
            self.estimator, X, y, w, regression=self.regression_,
            incremental=self.incremental_, classes=self.classes_,
            replay_passes=self.replay_passes, rng=self.rng_,
        )

    def _partial_step(self, model: Any, start: int, stop: int) -> None:
        replay_step(model, self._labels, start, stop, replay_size=self.replay_size,
                    replay_passes=self.replay_passes, rng=self.rng_)

    def fit_full(self) -> Refit:
        """Fit a new model from scratch on all labels so far; safe to run in a worker thread.

        Hand the result to :meth:`swap_in`. Only the snapshot is taken under the lock,
        so ``teach`` and ``query`` go on meanwhile.
        """
        self._ensure_state()
        with self._lock:
            n = self._labels.n
            X, y = self._labels.view(n)
            w = self._labels.weights(n)
            generation = self._generation
            n_classes = 0 if self.classes_ is None else len(self.classes_)
        started = time.perf_counter()
        model = self._fit_from_scratch(X, y, w) if n else None
        return Refit(model, n, time.perf_counter() - started, generation, n_classes)

    def swap_in(self, refit: Refit) -> bool:
        """Make a :meth:`fit_full` result the current model, atomically.

        Labels taught since its snapshot are replayed into it first (incremental mode).
        Returns False, changing nothing, when the result is stale: made before a
        ``fit``, before new classes appeared, or (refit mode) before newer labels.
        """
        with self._lock:
            n_classes = 0 if self.classes_ is None else len(self.classes_)
            if (
                refit.estimator is None
                or refit.generation != self._generation
                or refit.n_classes != n_classes
                or refit.n_labels > self._labels.n
                or (refit.n_labels < self._labels.n and not self.incremental_)
            ):
                return False
            if refit.n_labels < self._labels.n:
                self._partial_step(refit.estimator, refit.n_labels, self._labels.n)
            self.estimator_ = refit.estimator
            self.refit_seconds_ = refit.seconds
            self.labels_at_refit_ = self._labels.n
            self.version_ += 1
            return True

    def refit(self) -> bool:
        """``swap_in(fit_full())`` in the calling thread."""
        return self.swap_in(self.fit_full())

    # --- predicting ----------------------------------------------------------------------

    def _current(self) -> Any:
        self._ensure_state()
        return self.estimator_

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The current model's prediction; before a model can be fitted, the label seen most."""
        model = self._current()
        if model is not None:
            return np.asarray(model.predict(X))
        n = len(np.asarray(X))
        _, y = self._labels.view()
        if len(y) == 0:
            if self.classes_ is None:
                raise NotFittedError("no labels yet: teach some, or pass classes=")
            return np.repeat(self.classes_[:1], n)
        if self.regression_:
            return np.full(n, float(np.mean(y)))
        values, counts = np.unique(y, return_counts=True)
        return np.repeat(values[np.argmax(counts)], n)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Probabilities over ``classes_`` (uniform before a model can be fitted)."""
        model = self._current()
        if self.regression_:
            raise AttributeError("a regressor has no predict_proba")
        n = len(np.asarray(X))
        if self.classes_ is None:
            raise NotFittedError("no labels yet: teach some, or pass classes=")
        if model is None:
            return np.full((n, len(self.classes_)), 1.0 / len(self.classes_))
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        own = np.asarray(getattr(model, "classes_", self.classes_))
        if len(own) == len(self.classes_) and (own == self.classes_).all():
            return proba
        # a refit on labels of fewer classes than were declared
        out = np.zeros((n, len(self.classes_)))
        out[:, np.searchsorted(self.classes_, own)] = proba
        return out

    def uncertainty(self, X: ArrayLike) -> NDArray[np.float64]:
        """Uncertainty scores, higher = ask sooner; all equal (1.0) before the first fit."""
        self._ensure_state()
        with self._lock:
            source = self.uncertainty_model
            if source is None:
                source = self.estimator_
            if source is None:
                return np.ones(len(np.asarray(X)))
            if hasattr(source, "uncertainty"):
                raw = source.uncertainty(X)
            elif self._strategy_takes_rng:
                raw = self.strategy_(source, X, random_state=self.rng_)
            else:
                raw = self.strategy_(source, X)
        return finite_scores(raw)

    def query(
        self, X_pool: ArrayLike, n: int = 1, diversity: float = 0.0
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Indices of the ``n`` pool samples to ask about, and their scores.

        ``diversity`` in [0, 1] trades uncertainty against distance to the samples already
        picked and labeled (see :func:`~swergio_al.learning.selection.diverse_batch`).
        """
        if int(n) < 1:
            raise ValueError(f"n must be at least 1, got {n!r}")
        scores = self.uncertainty(X_pool)
        if diversity:
            Xp = np.asarray(X_pool)
            if not np.issubdtype(Xp.dtype, np.number):
                raise ValueError("diversity needs numeric feature vectors in X_pool")
            chosen = diverse_batch(
                Xp, scores, int(n), float(diversity), self.rng_, labeled=self._reference_rows()
            )
        else:
            chosen = top_n(scores, int(n), self.rng_)
        return chosen, scores[chosen]

    def _reference_rows(self) -> NDArray[Any] | None:
        X, _ = self._labels.view()
        if len(X) == 0:
            return None
        if len(X) > _MAX_REFERENCE_ROWS:
            X = X[self.rng_.choice(len(X), _MAX_REFERENCE_ROWS, replace=False)]
        return X

    def should_ask(self, x: ArrayLike) -> Any:
        """Stream mode: ask a person about this sample? (an array of answers for a batch)

        True when its score exceeds ``threshold``, or, with ``budget``, when it is in
        the top ``budget`` fraction of the scores seen (online estimate).
        """
        self._ensure_state()
        xa = np.asarray(x)
        single = xa.ndim == 1
        scores = self.uncertainty(xa.reshape(1, -1) if single else xa)
        if self.threshold is not None:
            asks = scores > float(self.threshold)
        elif self.gate_ is not None:
            asks = np.array([self.gate_.should_ask(s) for s in scores], dtype=bool)
        else:
            raise ValueError("should_ask needs threshold= or budget= on the ActiveLearner")
        return bool(asks[0]) if single else asks
