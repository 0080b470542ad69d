"""What a PoolLoop asks next: the plan it makes in a worker thread after each model update.

Until the model can score, the cold start: the most central samples of k-means
clusters of the feature space (or random ones). After that, the unlabeled
samples ranked by the model's uncertainty (traded for spread with `diversity`):
pending requests still among the best stay, the rest are canceled, the best new
ones are asked (a pending request the loop calls young, asked a few labels ago,
stays too). Beyond its asks a plan ranks the next samples too, for the
refills between a label and the next plan.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from swergio_al.feedback.tutor import SampleId, one_core
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
             pending: dict[SampleId, int], labeled: NDArray[np.bool_],
             young: Collection[SampleId] = (), horizon: int = 0) -> Plan:
        """`young`: pending requests that stay whatever the scores (see PoolLoop's
        keep_for). `horizon`: the labels expected while a cancel made now still holds
        back a unit of the budget (PoolLoop's CANCEL_GRACE_SECONDS)."""
        # Near the budget nothing is canceled: a canceled request may still be answered,
        # so until its grace is over it keeps a sample from being asked in its place.
        closing = room < target + len(pending) + horizon
        with one_core():
            if self.can_score():
                plan = self._plan_scored(unlabeled, target, closing, pending, labeled, young)
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
        wanted = max(target - (len(pending) - len(cancel)), 0)
        # The picks of the batch under way, still free: they do not depend on the model,
        # so the plans after the next labels take them in turn and cluster again only
        # once they are used up (clustering after each label took its farthest pick
        # each time: outlying samples, one class over and over).
        batch = [r for r in self.next if r[2] is None and not labeled[r[0]]
                 and self.pool.ids[r[0]] not in pending]
        if len(batch) < max(wanted, 1):
            batch = [(int(i), -float(self._cold_order + k + 1), None, None)
                     for k, i in enumerate(self._cold_picks(unlabeled, wanted, target,
                                                            pending, labeled))]
            self._cold_order += len(batch)
        asks: list[tuple[SampleId, float, Any, float | None]] = [
            (self.pool.ids[i], priority, None, None) for i, priority, _, _ in batch[:wanted]]
        self.next = batch[wanted:]
        return Plan(cancel, {}, asks)

    def _cold_picks(self, unlabeled: NDArray[np.intp], wanted: int, target: int,
                    pending: dict[SampleId, int], labeled: NDArray[np.bool_]
                    ) -> NDArray[np.intp]:
        """A batch of cold-start picks: the asks and a `target` more, which wait in `next`
        for the refills and the plans after the next labels."""
        taken = np.concatenate([np.flatnonzero(labeled),
                                np.fromiter(pending.values(), dtype=np.intp)])
        n = wanted + target
        if self.cold_start == "diverse" and self.pool.features is not None:
            return representative(self.pool.features, n, self.rng, taken=taken, among=unlabeled)
        free = np.setdiff1d(unlabeled, taken)
        return self.rng.choice(free, size=min(n, free.size), replace=False)

    def _plan_scored(self, unlabeled: NDArray[np.intp], target: int, closing: bool,
                     pending: dict[SampleId, int], labeled: NDArray[np.bool_],
                     young: Collection[SampleId]) -> Plan:
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
            stay = [sid for sid, i in ranked_pending if i in position or sid in young][:target]
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
        # every request that stays gets its new score, ranked or not (a young one)
        at = np.searchsorted(unlabeled, [pending[sid] for sid in stay])
        rescore = {sid: float(scores[j]) for sid, j in zip(stay, at, strict=True)
                   if j < unlabeled.size and unlabeled[j] == pending[sid]
                   and math.isfinite(scores[j])}
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
