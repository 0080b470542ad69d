"""Pool mode: keep people busy with the most informative samples of a fixed pool.

A `PoolLoop` is a `FeedbackLoop` that owns its samples (a `Pool`) instead of
waiting for them to stream past::

    pool = Pool(ids=["a", "b", ...], inputs=texts, render=lambda i: {"kind": "text",
                                                                    "content": texts[i]})
    loop = PoolLoop(ActiveLearner(model, classes=["pos", "neg"]), pool, name="reviews-model",
                    url="ws://127.0.0.1:8080/ws", answer={"type": "choice",
                                                           "choices": ["pos", "neg"]},
                    feedback_room="feedback/reviews", budget=40)
    async with loop:
        await loop.finished.wait()

It keeps `labelers x prefetch + reserve` requests pending so nobody waits for
the next task. After every model update it scores the unlabeled samples and
re-plans: pending requests that are still among the most informative stay
(re-prioritized), as does one asked fewer than `keep_for` labels ago, the rest are
canceled (except what a person holds: the server keeps those open, and they stay
pending), and the best new ones are asked. A sample that is labeled or pending is
never asked. Until the model can score
(no labels yet, or not every class seen) it asks the most central samples of
k-means clusters of the feature space, farthest from what is labeled first,
not random ones. It stops at `budget`
labels (exactly: near the end it only asks as many as the budget has left)
or when every sample is labeled. On start it learns the room's label history
and cancels whatever an earlier run left pending, so a restart neither asks a
labeled sample again nor learns a label twice. Samples given as `gold` (their
answer known) are asked once, at start, as gold questions: the service mixes
them into each labeler's stream to measure them; the loop never asks them as
labels and never learns their answers.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.feedback.planning import Planner
from swergio_al.feedback.tutor import SampleId, one_core, plain
from swergio_al.protocol import DATA, TO_ROOM, TYPE, Message, MessageType

# CANCEL messages carry at most this many sample ids (frames stay far below 1 MiB).
CANCEL_CHUNK = 1000
# A canceled request may still be answered (the label crossed the CANCEL on the wire):
# near the budget such requests count as pending for this long.
CANCEL_GRACE_SECONDS = 3.0

OnLabel = Callable[[SampleId, dict[str, Any]], None]


@dataclass
class Pool:
    """The samples to label.

    ids : one per sample, unique (str or int, as the feedback protocol carries them).
    inputs : what the model takes per sample: a 2-D numeric array, or a sequence of
        strings (texts) or arrays; ``rows(idx)`` stacks them.
    render : index -> ``{"kind", "content"}``, what a person is shown.
    features : numeric rows for the cold start and batch diversity; default: the
        inputs, standardized, when they are numeric.
    """

    ids: Sequence[SampleId]
    inputs: Any
    render: Callable[[int], dict[str, Any]]
    features: NDArray[Any] | None = None
    index: dict[SampleId, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {sid: i for i, sid in enumerate(self.ids)}
        if len(self.index) != len(self.ids):
            raise ValueError("pool sample ids must be unique")
        if len(self.inputs) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.inputs)} inputs")
        if self.features is None:
            arr = np.asarray(self.inputs) if len(self.ids) else np.empty((0, 0))
            if arr.ndim >= 2 and np.issubdtype(arr.dtype, np.number):
                flat = arr.reshape(len(arr), -1).astype(np.float64)
                sd = flat.std(axis=0)
                self.features = (flat - flat.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        elif len(self.features) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.features)} feature rows")

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, idx: Sequence[int] | NDArray[np.intp]) -> Any:
        if isinstance(self.inputs, np.ndarray):
            return self.inputs[np.asarray(idx, dtype=np.intp)]
        rows = [self.inputs[int(i)] for i in idx]
        if rows and isinstance(rows[0], str):
            return np.asarray(rows, dtype=object)
        return np.asarray(rows)


class PoolLoop(FeedbackLoop):
    """A FeedbackLoop over a fixed pool (see the module docstring).

    Parameters (beyond FeedbackLoop's)
    ----------
    learner : ActiveLearner or None
        None asks in cold-start order and learns nothing (e.g. free-text answers).
    pool : Pool
    budget : int, optional
        Total labels for this pool in the room (earlier runs count); the loop stops there.
    prefetch, reserve : int
        Pending requests kept = labelers in the room x prefetch + reserve.
    cold_start : "diverse" | "random"
    diversity : float in [0, 1]
        Once the model scores: trade uncertainty for spread (ranked batch-mode).
    keep : float
        A pending request stays while it ranks within ``keep x`` the pending target.
    keep_for : int, optional
        ...and for at least this many labels after it was asked (default: the pending
        target, about the labels that come before it is answered). Each cancel holds back
        a unit of the budget for CANCEL_GRACE_SECONDS; re-planning a fast labeler's
        queue after every label canceled most of it, and that starved the queue long
        before the budget.
    on_label : callable(sample_id, label DATA), optional
        Called once per new label of a pool sample (before it is learned).
    gold : mapping sample id -> known answer, optional
        Pool samples asked as gold questions only (see the module docstring).
    """

    def __init__(self, learner: Any, pool: Pool, *, name: str, url: str,
                 answer: dict[str, Any], feedback_room: str = "feedback", question: str = "",
                 budget: int | None = None, prefetch: int = 2, reserve: int = 2,
                 cold_start: str = "diverse", diversity: float = 0.0, keep: float = 2.0,
                 keep_for: int | None = None, seed: int | None = None,
                 on_label: OnLabel | None = None, gold: Mapping[SampleId, Any] | None = None,
                 **loop_options: Any) -> None:
        if cold_start not in ("diverse", "random"):
            raise ValueError(f"cold_start must be 'diverse' or 'random', got {cold_start!r}")
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity must be within [0, 1], got {diversity!r}")
        if budget is not None and budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget!r}")
        super().__init__(learner, name=name, url=url, answer=answer,
                         feedback_room=feedback_room, question=question, **loop_options)
        self.pool = pool
        self.budget = budget
        self.prefetch = prefetch
        self.reserve = reserve
        self.keep_for = keep_for
        self.on_label = on_label
        self.planner = Planner(pool, learner, cold_start=cold_start, diversity=diversity,
                               keep=keep, rng=np.random.default_rng(seed))
        self.labeled = np.zeros(len(pool), dtype=bool)
        self.gold = dict(gold or {})
        # Gold samples count as labeled for planning: never asked, never pending.
        self.labeled[[pool.index[sid] for sid in self.gold]] = True
        self.labels: dict[str, SampleId] = {}  # label id -> sample, every label of the pool
        self.labelers = 0
        self.dry = 0  # FEEDBACK/STATS that found labelers with an empty queue
        self.asked = 0  # requests sent for samples not pending before (a re-ask counts)
        self.finished = asyncio.Event()
        self._priority: dict[SampleId, float] = {}
        self._asked_at: dict[SampleId, int] = {}  # n_labels when last asked
        self._label_times: deque[float] = deque()  # arrivals in the last second
        self._pace = 0  # the most labels seen within a second
        self._canceled: dict[SampleId, float] = {}
        # re-plan cancels keep what a person holds: their priority, in case the server
        # answers that it kept them open (they are pending again then)
        self._dropped: dict[SampleId, float] = {}
        self._planning = asyncio.Lock()
        self._ready = False
        self._refilling = False
        self._answers: set[str] = set()  # every answer seen (as repr)
        self._wake: asyncio.TimerHandle | None = None

        self.component.on(MessageType.FEEDBACK_LABEL.value, room=feedback_room)(self._on_label)
        self.component.on(MessageType.FEEDBACK_CANCEL.value, room=feedback_room)(self._on_kept)

        @self.component.on(MessageType.FEEDBACK_STATS.value, room=feedback_room, direct=False)
        def on_stats(message: Message) -> None:
            data = message.get(DATA)
            if not isinstance(data, dict):
                return
            count, labeled = data.get("labelers"), data.get("labeled")
            # at the budget the server has the last label before the loop hears of it:
            # nothing is left to hand out then (gold answers count here too)
            spent = self.budget is not None and isinstance(labeled, int) \
                and labeled >= self.budget
            if self._ready and not self.finished.is_set() and not self.labeled.all() \
                    and not spent and count and data.get("queued") == 0 \
                    and data.get("in_flight") == 0:
                self.dry += 1  # labelers present, nothing to hand them
            if isinstance(count, int) and count != self.labelers:
                grew = count > self.labelers
                self.labelers = count
                if grew and self._ready:
                    self._spawn(self.top_up())

    # -- lifecycle -----------------------------------------------------------

    async def stop(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
        await super().stop()

    async def start(self) -> None:
        await super().start()  # learns the history: labeled samples are known from here on
        await self._cancel(self._stale(), remember=False)
        for sample_id, answer in self.gold.items():  # the service keeps each once
            await self.ask_gold(sample_id, None, answer)
        self._ready = True
        await self.top_up()

    def _stale(self) -> list[SampleId]:
        # What an earlier run left pending is unknown here; canceling every
        # unlabeled sample of the pool clears it (the server ignores the rest).
        return [self.pool.ids[int(i)] for i in np.flatnonzero(~self.labeled)]

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    # -- learning ------------------------------------------------------------

    def _on_label(self, message: Message) -> None:
        """On arrival, before it is learned: the sample is labeled and no longer pending,
        and the pending requests are topped up from the last plan at once."""
        data = message.get(DATA)
        if not isinstance(data, dict):
            return
        label_id, sample_id = data.get("label_id"), data.get("sample_id")
        index = self.pool.index.get(sample_id) if isinstance(sample_id, str | int) else None
        if not isinstance(label_id, str) or label_id in self.labels or index is None:
            return
        sample_id = self.pool.ids[index]
        self.labels[label_id] = sample_id
        self.labeled[index] = True
        self.pending.pop(sample_id, None)
        self._canceled.pop(sample_id, None)
        self._dropped.pop(sample_id, None)
        self._asked_at.pop(sample_id, None)
        if self._ready:  # the pace of labelers (not of the history learned at start)
            self._label_times.append(time.monotonic())
        if self.on_label is not None:
            self.on_label(sample_id, data)
        self._answers.add(repr(data.get("answer")))
        if self._ready and not self._refilling:
            self._refilling = True
            self._spawn(self._refill())

    def _on_kept(self, message: Message) -> None:
        """The server kept these requests open (a person holds them): pending again,
        unless labeled meanwhile; after the budget end they are withdrawn after all."""
        data = message.get(DATA)
        kept = data.get("kept") if isinstance(data, dict) else None
        if not isinstance(kept, list):
            return
        late: list[SampleId] = []
        for sample_id in kept:
            index = self.pool.index.get(sample_id) if isinstance(sample_id, str | int) else None
            if index is None or self.labeled[index]:
                continue
            sample_id = self.pool.ids[index]
            priority = self._dropped.pop(sample_id, 0.0)
            if self.finished.is_set():
                late.append(sample_id)
            elif sample_id not in self.pending:
                self._canceled.pop(sample_id, None)  # counted as pending from here on
                self.pending[sample_id] = self.pool.rows([index])[0]
                self._priority[sample_id] = priority
        if late:
            self._spawn(self._cancel(late))

    async def _learn(self, batch: list[Message]) -> None:
        await super()._learn(batch)
        if self._ready:
            await self.top_up()

    def _features_of(self, sample_id: Any, data: dict[str, Any]) -> Any:
        index = self.pool.index.get(sample_id) if isinstance(sample_id, str | int) else None
        return None if index is None else self.pool.rows([index])[0]

    def _teach(self, lesson: Any, pending: list[tuple[SampleId, Any]]) -> dict[str, Any]:
        # Pending requests are re-planned by top_up, not rescored here.
        if self.learner is None:
            return {"fit_seconds": 0.0, "score": None, "version": 0,
                    "labels": self.n_labels, "pending_scores": {}}
        with one_core():  # the server may share this process (see one_core)
            return super()._teach(lesson, [])

    async def _ask_again(self) -> None:
        # After a reconnect: requests sent just before a server died may be lost.
        for sample_id in list(self.pending):
            await self.ask(sample_id, priority=self._priority.get(sample_id, 0.0))

    # -- asking --------------------------------------------------------------

    async def ask(self, sample_id: SampleId, x: Any = None, *, priority: float | None = None,
                  overlap: int | None = None, prediction: Any = None,
                  confidence: float | None = None) -> None:
        """Ask about one pool sample (`x` is ignored: the pool has it)."""
        index = self.pool.index[sample_id]
        view = self.pool.render(index)
        priority = 0.0 if priority is None else float(priority)
        if sample_id not in self.pending:
            self.asked += 1
        self.pending[sample_id] = self.pool.rows([index])[0]
        self._priority[sample_id] = priority
        self._asked_at[sample_id] = self.n_labels
        self._canceled.pop(sample_id, None)
        await self._send_request(
            sample_id, view, prediction=plain(prediction), confidence=confidence,
            priority=priority, overlap=overlap or self.overlap,
            # not read by the server: comes back with the label, for the outputs
            asked_prediction=plain(prediction), asked_confidence=confidence)

    async def ask_gold(self, sample_id: SampleId, x: Any, answer: Any) -> None:
        """A gold question about one pool sample (`x` is ignored: the pool has it)."""
        await self._send_request(sample_id, self.pool.render(self.pool.index[sample_id]),
                                 gold=plain(answer))

    async def _cancel(self, sample_ids: list[SampleId], *, remember: bool = True,
                      keep_leased: bool = False) -> None:
        """`keep_leased`: what a person holds stays asked (the server says which, and
        those are pending again: `_on_kept`); else even that is withdrawn."""
        now = time.monotonic()
        for sid in sample_ids:
            self.pending.pop(sid, None)
            priority = self._priority.pop(sid, 0.0)
            if keep_leased:
                self._dropped[sid] = priority
            if remember:
                self._canceled[sid] = now
        options = {"keep_leased": True} if keep_leased else {}
        for start in range(0, len(sample_ids), CANCEL_CHUNK):
            chunk = list(sample_ids[start:start + CANCEL_CHUNK])
            await self.component.send({TYPE: MessageType.FEEDBACK_CANCEL.value,
                                       TO_ROOM: self.feedback_room,
                                       DATA: {"sample_ids": chunk, **options}})

    def _targets(self) -> tuple[NDArray[np.intp], int, float] | None:
        """Unlabeled samples, how many requests to keep pending, and how many more
        labels may come at most (pending + canceled + new asks); None when done."""
        unlabeled = np.flatnonzero(~self.labeled)
        remaining = math.inf if self.budget is None else self.budget - self.n_labels
        if remaining <= 0 or unlabeled.size == 0:
            return None
        full = self._full()
        now = time.monotonic()
        self._canceled = {s: t for s, t in self._canceled.items()
                          if now - t < CANCEL_GRACE_SECONDS}
        self._dropped = {s: p for s, p in self._dropped.items() if s in self._canceled}
        # A recently canceled request may still be answered (the label crossed the
        # CANCEL): it counts against the budget as if it were pending.
        room = remaining - len(self._canceled)
        return unlabeled, int(min(full, unlabeled.size, max(room, 0))), room

    def _recent_labels(self) -> int:
        """How many labels may come within CANCEL_GRACE_SECONDS, at the fastest pace seen
        over a second: that long a cancel made now still counts against the budget (at a
        momentary lull the last second's pace let cancels through that then held asks
        back at the budget)."""
        now = time.monotonic()
        while self._label_times and self._label_times[0] < now - 1.0:
            self._label_times.popleft()
        self._pace = max(self._pace, len(self._label_times))
        return math.ceil(self._pace * CANCEL_GRACE_SECONDS)

    def _full(self) -> int:
        """How many requests to keep pending."""
        return max(self.labelers, 1) * self.prefetch + self.reserve

    async def top_up(self) -> None:
        """Re-plan the pending requests with the current model (see the module docstring)."""
        async with self._planning:
            if self.finished.is_set():
                return
            targets = self._targets()
            if targets is None:
                await self._finish()
                return
            unlabeled, target, room = targets
            if self._canceled and room <= len(self.pending) + self.reserve:
                self._wake_when_grace_ends()
            # Snapshots taken here, on the loop: labels may arrive while the plan is made.
            pending = {sid: self.pool.index[sid] for sid in self.pending}
            keep_for = self._full() if self.keep_for is None else self.keep_for
            young = {sid for sid in pending
                     if self.n_labels - self._asked_at.get(sid, -keep_for) < keep_for}
            plan = await asyncio.to_thread(self.planner.plan, unlabeled, target, room, pending,
                                           self.labeled.copy(), young, self._recent_labels())
            # New asks go first, cancels last: the queue never empties in between. A
            # refill may have asked meanwhile: what it asked is skipped, its count kept.
            now_targets = self._targets()  # labels and refills came in meanwhile
            if now_targets is None:
                plan.ask = []
            else:
                target, room = now_targets[1], now_targets[2]
            kept = sum(1 for sid in self.pending if sid not in plan.cancel)
            room_now = min(target - kept, room - len(self.pending))  # canceled ones count
            for sample_id, priority, prediction, confidence in plan.ask:
                index = self.pool.index[sample_id]
                if room_now <= 0 or self.labeled[index] or sample_id in self.pending:
                    continue
                await self.ask(sample_id, priority=priority, prediction=prediction,
                               confidence=confidence)
                room_now -= 1
            if plan.rescore:
                self._priority.update(plan.rescore)
                await self.component.send({TYPE: MessageType.FEEDBACK_RESCORE.value,
                                           TO_ROOM: self.feedback_room,
                                           DATA: {"priorities": {str(k): v for k, v
                                                                 in plan.rescore.items()}}})
            if plan.cancel:  # a person reading one of them keeps it
                await self._cancel([sid for sid in plan.cancel if sid in self.pending],
                                   keep_leased=True)

    def _wake_when_grace_ends(self) -> None:
        """Canceled requests hold back asks near the budget; plan again once their grace
        is over (nothing else would: no label is coming for them)."""
        if self._wake is not None and not self._wake.cancelled():
            return
        delay = min(self._canceled.values()) + CANCEL_GRACE_SECONDS - time.monotonic()

        def wake() -> None:
            self._wake = None
            self._spawn(self.top_up())

        self._wake = asyncio.get_running_loop().call_later(max(delay, 0.0) + 0.01, wake)

    async def _refill(self) -> None:
        """Between a label and the re-plan after learning it: ask the next samples of
        the last plan's ranking at once, so fast labelers never find the queue empty.
        It does not wait for a plan being made: that plan skips what this asked."""
        try:
            while self.planner.next and not self.finished.is_set():
                targets = self._targets()  # again after each ask: labels keep coming
                if targets is None:
                    return
                wanted = min(targets[1], targets[2])
                if self.planner.next[0][2] is None and self._cold_start_over():
                    # Cold-start picks once every class has an answer: the next plan,
                    # warm, chooses better, but it waits for a fit; until it replaces
                    # them they only keep each labeler's prefetch, so nobody waits.
                    wanted = min(wanted, max(self.labelers, 1) * self.prefetch)
                if wanted <= len(self.pending):
                    return
                index, priority, prediction, confidence = self.planner.next.pop(0)
                sample_id = self.pool.ids[index]
                if not (self.labeled[index] or sample_id in self.pending):
                    await self.ask(sample_id, priority=priority, prediction=prediction,
                                   confidence=confidence)
        finally:
            self._refilling = False

    async def _finish(self) -> None:
        # At the budget: withdraw what is left (a leased task goes back to nobody).
        leftover = list(self.pending)
        if leftover:
            await self._cancel(leftover)
        self.finished.set()

    def _cold_start_over(self) -> bool:
        """Every choice answered at least once (other answers: two different ones)."""
        if self.learner is None:
            return False
        choices = self.answer.get("choices") if self.answer.get("type") == "choice" else None
        if choices is not None:
            return all(repr(c) in self._answers for c in choices)
        return len(self._answers) >= 2
