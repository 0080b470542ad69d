"""What a PoolLoop asks next: the plan it makes in a worker thread after each model update.

Until the model can score, the cold start: the most central samples of k-means
clusters of the feature space (or random ones). After that, the unlabeled
samples ranked by the model's uncertainty (traded for spread with `diversity`):
pending requests still among the best stay, the rest are canceled, the best new
ones are asked. Beyond its asks a plan ranks the next samples too, for the
refills between a label and the next plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from swergio_al.feedback.tutor import SampleId
from swergio_al.learning.selection import diverse_batch, representative, top_n

if TYPE_CHECKING:
    from swergio_al.feedback.pool import Pool

# a pool index, its priority, the model's prediction and confidence (None: cold start)
Ranked = tuple[int, float, Any, float | None]


@dataclass
class Plan:
    cancel: list[SampleId]
    rescore: dict[SampleId, float]
    ask: list[tuple[SampleId, float, Any, float | None]]  # id, priority, prediction, confidence


class Planner:
    """Plans a PoolLoop's requests (see the module docstring and PoolLoop's parameters).

    ``next`` is the last plan's ranking beyond its asks, for the loop's refills.
    """

    def __init__(self, pool: Pool, learner: Any, *, cold_start: str, diversity: float,
                 keep: float, rng: np.random.Generator) -> None:
        self.pool = pool
        self.learner = learner
        self.cold_start = cold_start
        self.diversity = diversity
        self.keep = keep
        self.rng = rng
        self.next: list[Ranked] = []
        self._cold_order = 0

    def can_score(self) -> bool:
        """Whether the model's scores mean anything yet (fitted, every class seen)."""
        learner = self.learner
        if learner is None or learner.n_labels_ == 0:
            return False
        if getattr(learner, "estimator_", None) is None and learner.uncertainty_model is None:
            return False
        if getattr(learner, "regression_", False) or learner.classes_ is None:
            return True
        return bool(np.isin(learner.classes_, learner.y_labeled_).all())

    def plan(self, unlabeled: NDArray[np.intp], target: int, room: float,
              pending: dict[SampleId, int], labeled: NDArray[np.bool_]) -> Plan:
        # Near the budget nothing is canceled: a canceled request may still be answered.
        closing = room < target + len(pending)
        if self.can_score():
            plan = self._plan_scored(unlabeled, target, closing, pending, labeled)
        else:
            plan = self._plan_cold(unlabeled, target, closing, pending, labeled)
        # Every request still open or just canceled may bring a label: stay within room.
        allowed = room - len(pending)
        if len(plan.ask) > allowed:
            for sample_id, priority, prediction, confidence in plan.ask[max(int(allowed), 0):]:
                self.next.insert(0, (self.pool.index[sample_id], priority, prediction,
                                     confidence))
            plan.ask = plan.ask[:max(int(allowed), 0)]
        return plan

    def _plan_cold(self, unlabeled: NDArray[np.intp], target: int, closing: bool,
                   pending: dict[SampleId, int], labeled: NDArray[np.bool_]) -> Plan:
        cancel: list[SampleId] = []
        if len(pending) > target and not closing:
            cancel = list(pending)[target:]  # the latest asked go first
        wanted = target - (len(pending) - len(cancel))
        picks = np.empty(0, dtype=np.intp)
        if wanted > 0 or target > 0:
            taken = np.concatenate([np.flatnonzero(labeled),
                                    np.fromiter(pending.values(), dtype=np.intp)])
            # a further `target` picks wait in `next` for the refill after the next label
            n = max(wanted, 0) + target
            if self.cold_start == "diverse" and self.pool.features is not None:
                picks = representative(self.pool.features, n, self.rng, taken=taken,
                                       among=unlabeled)
            else:
                free = np.setdiff1d(unlabeled, taken)
                picks = self.rng.choice(free, size=min(n, free.size), replace=False)
        asks: list[tuple[SampleId, float, Any, float | None]] = []
        self.next = []
        for k, i in enumerate(picks):
            self._cold_order += 1
            if k < wanted:
                asks.append((self.pool.ids[int(i)], -float(self._cold_order), None, None))
            else:
                self.next.append((int(i), -float(self._cold_order), None, None))
        return Plan(cancel, {}, asks)

    def _plan_scored(self, unlabeled: NDArray[np.intp], target: int, closing: bool,
                     pending: dict[SampleId, int], labeled: NDArray[np.bool_]) -> Plan:
        learner = self.learner
        scores = np.asarray(learner.uncertainty(self.pool.rows(unlabeled)), dtype=np.float64)
        n_keep = min(unlabeled.size, max(math.ceil(self.keep * target), target))
        # ranked beyond n_keep too: the refills until the next plan take from there
        n_rank = min(unlabeled.size, n_keep + 2 * target)
        if self.diversity and self.pool.features is not None:
            labeled_rows = self.pool.features[labeled]
            ranked = diverse_batch(self.pool.features[unlabeled], scores, n_rank,
                                   self.diversity, self.rng,
                                   labeled=labeled_rows if len(labeled_rows) else None)
        else:
            ranked = top_n(scores, n_rank, self.rng)
        order = ranked[:n_keep]
        score_of = {int(unlabeled[j]): float(scores[j]) for j in ranked}
        position = {int(unlabeled[j]): rank for rank, j in enumerate(order)}
        ranked_pending = sorted(pending.items(),
                                key=lambda kv: position.get(kv[1], len(position)))
        if closing:
            stay = [sid for sid, _ in ranked_pending]
        else:
            stay = [sid for sid, i in ranked_pending if i in position][:target]
        cancel = [sid for sid in pending if sid not in set(stay)]
        wanted = target - len(stay)
        fresh = [int(unlabeled[j]) for j in order
                 if self.pool.ids[int(unlabeled[j])] not in pending][:max(wanted, 0)]
        chosen = set(fresh)
        later = [int(unlabeled[j]) for j in ranked
                 if int(unlabeled[j]) not in chosen
                 and self.pool.ids[int(unlabeled[j])] not in pending]
        # predicted now for the refills too: the outputs show what the model said when asking
        predictions, confidences = self._predict_with_confidence(fresh + later)
        told = list(zip(fresh + later, predictions, confidences, strict=True))
        self.next = [(i, score_of[i], p, c) for i, p, c in told[len(fresh):]]
        rescore = {sid: score_of[pending[sid]] for sid in stay if pending[sid] in score_of}
        asks = [(self.pool.ids[i], score_of[i], p, c) for i, p, c in told[:len(fresh)]]
        return Plan(cancel, rescore, asks)

    def _predict_with_confidence(self, idx: list[int]) -> tuple[list[Any], list[float | None]]:
        if not idx:
            return [], []
        X = self.pool.rows(idx)
        try:
            predictions = list(self.learner.predict(X))
        except (ValueError, AttributeError, RuntimeError):
            return [None] * len(idx), [None] * len(idx)
        try:
            proba = np.asarray(self.learner.predict_proba(X), dtype=np.float64)
            confidences: list[float | None] = [round(float(p), 4) for p in proba.max(axis=1)]
        except (ValueError, AttributeError, RuntimeError, TypeError):
            confidences = [None] * len(idx)
        return predictions, confidences
