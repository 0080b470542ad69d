"""The learner's side of a FeedbackLoop: what it predicts and doubts, and each lesson
taught, tested and measured.

Plain computation on the learner, no I/O: the loop runs these in worker threads
so the event loop never blocks on a fit or a scoring pass.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from swergio_al.feedback.prequential import PrequentialScore, metric_for
from swergio_al.feedback.teaching import AggregateTeacher, Lesson

SampleId = str | int
# label id -> (sample id, features, the label's DATA)
Fresh = dict[str, tuple[Any, NDArray[Any], dict[str, Any]]]


class Tutor:
    """Teaches a FeedbackLoop's learner and reports on it (see FeedbackLoop's parameters)."""

    def __init__(self, learner: Any, *, answer: dict[str, Any], target: Callable[[Any], Any],
                 validation: tuple[Any, Any] | None,
                 teacher: AggregateTeacher | None) -> None:
        self.learner = learner
        self.answer = answer
        self.target = target
        self.validation = validation
        self.teacher = teacher
        self._prequential: PrequentialScore | None = None  # made at the first label

    @property
    def version(self) -> int:
        return int(getattr(self.learner, "version_", 0))

    # -- asking --------------------------------------------------------------

    def judge(self, X: NDArray[Any]) -> tuple[list[Any], NDArray[Any], list[bool]]:
        """Predictions, uncertainty scores, and which samples to ask people about."""
        scores = np.asarray(self.learner.uncertainty(X), dtype=float)
        predictions = list(self.predict(X))
        gate = self.learner.threshold is not None or self.learner.budget is not None
        asks = [bool(self.learner.should_ask(x)) if gate else True for x in X]
        return predictions, scores, asks

    def predict(self, X: NDArray[Any]) -> Iterable[Any]:
        try:
            return self.learner.predict(X)
        except (ValueError, AttributeError, RuntimeError):  # NotFittedError is a ValueError
            return [None] * len(X)

    def doubt(self, x: NDArray[Any], priority: float) -> dict[str, Any]:
        """What the label page says about the model's doubt: a classifier's probability
        for its prediction and its two likeliest classes ("torn between cat and dog");
        a regressor's uncertainty in the answer's unit."""
        if getattr(self.learner, "regression_", False):
            return {"confidence": None, "uncertainty": priority}
        classes = getattr(self.learner, "classes_", None)
        try:
            proba = np.asarray(self.learner.predict_proba(x[None, :]))[0]
        except (ValueError, AttributeError, RuntimeError):  # not fitted yet
            return {"confidence": None}
        if classes is None or len(classes) != len(proba):
            return {"confidence": round(float(proba.max()), 4)}
        order = np.argsort(proba)[::-1][:2]
        return {"confidence": round(float(proba[order[0]]), 4),
                "top": [[plain(classes[i]), round(float(proba[i]), 4)] for i in order]}

    # -- learning ------------------------------------------------------------

    def lesson(self, fresh: Fresh) -> Lesson:
        """Every raw answer (overlap 1), or what the aggregates have to teach."""
        if self.teacher is None:
            rows = list(fresh.values())
            lesson = Lesson(np.asarray([x for _, x, _ in rows]),
                            np.asarray([self.target(d.get("answer")) for _, _, d in rows]),
                            np.ones(len(rows)), refit=False, taught={})
        else:
            for label_id, (sample_id, x, data) in fresh.items():
                seconds = data.get("seconds")
                self.teacher.add(label_id, sample_id, str(data.get("labeler")),
                                 data.get("answer"), x,
                                 seconds if isinstance(seconds, int | float) else None)
            lesson = self.teacher.lesson()
        return replace(lesson, tested=self._tested_rows(lesson, fresh))

    def teach(self, lesson: Lesson, pending: list[tuple[SampleId, NDArray[Any]]],
              learned: Collection[Hashable]) -> dict[str, Any]:
        """Learn, measure, and score the `pending` snapshot. `learned`: the label ids
        learned before this lesson."""
        if self._prequential is None:
            self._prequential = PrequentialScore(metric_for(
                self.answer, regression=bool(getattr(self.learner, "regression_", False))))
        # Test, then train: each label scores the prediction made before it is learned
        # (a refit re-teaches what was learned already: nothing new to test). A learner
        # that has learned nothing has no prediction, only a placeholder (an
        # ActiveLearner answers its first declared class): nothing to test either.
        rows = lesson.tested if lesson.tested is not None else np.ones(len(lesson), dtype=bool)
        if not lesson.refit and rows.any() and self._has_learned():
            self._prequential.update(self.predict(lesson.X[rows]), lesson.y[rows])
        started = time.perf_counter()
        if lesson.refit:
            self.learner.fit(lesson.X, lesson.y, **_weighted(self.learner.fit, lesson))
        elif len(lesson):
            self.learner.teach(lesson.X, lesson.y, **_weighted(self.learner.teach, lesson))
        report = {"fit_seconds": time.perf_counter() - started, **self.measure(learned)}
        scores: dict[SampleId, float] = {}
        if pending:
            values = self.learner.uncertainty(np.asarray([x for _, x in pending]))
            scores = {sid: float(v) for (sid, _), v in zip(pending, values, strict=True)}
        report["pending_scores"] = scores
        return report

    def _has_learned(self) -> bool:
        return int(getattr(self.learner, "n_labels_", 1)) > 0

    def _tested_rows(self, lesson: Lesson, fresh: Fresh) -> NDArray[np.bool_]:
        """The lesson's rows to test: all but those only labels replayed from the store
        taught (after a restart: they were tested when first learned)."""
        replayed = {label_id for label_id, (_, _, data) in fresh.items() if data.get("replay")}
        if self.teacher is None:  # raw answers: one row per fresh label, in order
            return np.asarray([label_id not in replayed for label_id in fresh], dtype=bool)
        live = {sample_id for label_id, (sample_id, _, _) in fresh.items()
                if label_id not in replayed}
        return np.asarray([sample in live for sample in lesson.taught], dtype=bool)

    def measure(self, learned: Collection[Hashable]) -> dict[str, Any]:
        """The LOG/KPI figures: validation score, prequential score, version, labels."""
        score, score_metric = None, None
        if self.validation is not None:
            X_val, y_val = self.validation
            predicted = np.asarray(self.learner.predict(X_val))
            if getattr(self.learner, "regression_", False):
                from sklearn.metrics import r2_score

                score, score_metric = float(r2_score(y_val, predicted)), "r2"
            else:
                score = float(np.mean(predicted == np.asarray(y_val)))
                score_metric = "accuracy"
        prequential = self._prequential.report() if self._prequential is not None else {}
        return {"score": score, "score_metric": score_metric, **prequential,
                "version": self.version,
                "labels": int(getattr(self.learner, "n_labels_", len(learned)))}


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Native thread pools (BLAS, OpenMP) at one thread while a worker computes. Where
    the server shares the process (`swergio-al label`), a k-means spreading over both
    cores of a busy 2-core box took the core the event loop needed and ran 5-10x slower
    than on one thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _weighted(method: Callable[..., Any], lesson: Lesson) -> dict[str, Any]:
    """Confidence weights for a learner method that takes them (never for raw labels)."""
    if not lesson.taught or "sample_weight" not in inspect.signature(method).parameters:
        return {}
    return {"sample_weight": lesson.weight}


def plain(value: Any) -> Any:
    """numpy scalars to JSON-able Python values."""
    return value.item() if isinstance(value, np.generic) else value
