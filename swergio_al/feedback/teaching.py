"""What the model learns when several people answer: each sample's aggregate, once.

The FeedbackLoop hands every raw label to an `AggregateTeacher`, which asks its
`Consensus` for the current aggregates and returns a `Lesson`: the samples not
taught yet (their aggregate, weighted by its confidence), or, when an earlier
sample's aggregate flipped, every sample again in one full fit so that no
sample counts twice. The teacher's memory of what was taught only moves on once
the learner took the lesson, so a failed lesson is simply asked for again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from swergio_al.feedback.consensus import Consensus


@dataclass(frozen=True)
class Lesson:
    X: NDArray[Any]
    y: NDArray[Any]
    weight: NDArray[np.float64]
    refit: bool  # True: forget everything and fit on these (an aggregate flipped)
    taught: dict[Hashable, Any]  # sample -> aggregate value, once learned
    # The rows to test before learning them (prequential); None: every row.
    tested: NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class AggregateTeacher:
    consensus: Consensus
    target: Callable[[Any], Any] = field(default=lambda value: value)
    features: dict[Hashable, NDArray[Any]] = field(default_factory=dict)
    taught: dict[Hashable, Any] = field(default_factory=dict)
    flips: int = 0  # samples re-taught because their aggregate changed
    seed: tuple[NDArray[Any], NDArray[Any]] | None = None  # kept through full fits

    def add(self, label_id: str, sample_id: Hashable, labeler: str, answer: Any,
            x: NDArray[Any], seconds: float | None = None) -> None:
        if self.consensus.add(label_id, sample_id, labeler, answer, seconds):
            self.features[sample_id] = x

    def lesson(self) -> Lesson:
        result = self.consensus.aggregate()
        weights = self._weights(result.confidence)
        current: dict[Hashable, tuple[Any, float]] = {}
        for i, sample in enumerate(result.samples):
            if sample in self.features:
                current[sample] = (result.values[i], float(weights[i]))
        flipped = [s for s, (v, _) in current.items() if s in self.taught and
                   self.taught[s] != v]
        chosen = list(current) if flipped else [s for s in current if s not in self.taught]
        X = [self.features[s] for s in chosen]
        y = [self.target(current[s][0]) for s in chosen]
        w = [current[s][1] for s in chosen]
        if flipped and self.seed is not None and len(self.seed[1]):
            X, y = [*self.seed[0], *X], [*self.seed[1], *y]
            w = [1.0] * len(self.seed[1]) + w
        return Lesson(np.asarray(X), np.asarray(y), np.asarray(w, dtype=float), bool(flipped),
                      {s: current[s][0] for s in chosen})

    def learned(self, lesson: Lesson) -> None:
        if lesson.refit:
            self.flips += sum(1 for s, v in lesson.taught.items()
                              if s in self.taught and self.taught[s] != v)
        self.taught.update(lesson.taught)

    def _weights(self, confidence: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.consensus.settings.method == "mean":
            # A standard error, not a probability: a sure mean weighs 1, a vague one less.
            return 1.0 / (1.0 + confidence ** 2)
        return confidence
