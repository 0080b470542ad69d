"""The model side of the feedback loop: predict, ask about the uncertain, learn from each label.

A `FeedbackLoop` is a component around an `ActiveLearner`::

    loop = FeedbackLoop(ActiveLearner(SGDClassifier(loss="log_loss"), classes=[0, 1]),
                        name="spam-model", url="ws://127.0.0.1:8080/ws",
                        answer={"type": "choice", "choices": [0, 1]},
                        input_room="mail", output_room="mail/verdicts")
    async with loop:
        await loop.wait_closed()

Samples arrive in `input_room` as ``{"DATA": {"samples": [{"sample_id", "x"}]}}``
(or are handed to `observe`/`ask` directly); predictions go to `output_room`;
the samples the learner's strategy and budget pick go to the feedback room as
FEEDBACK/REQUEST carrying their features. Each label is learned in a worker
thread (labels that arrive meanwhile are learned together, so the event loop
never blocks), acknowledged only once learned, and followed by LOG/KPI and a
rescoring of what is still pending. On start the loop asks the server for its
label history, so a restarted model catches up; label ids make that idempotent.
A restart is a new run (`run` in LOG/KPI): versions count from 1 again, and the
replayed labels are learned but not tested (they were when first learned).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from swergio_al.client import Component
from swergio_al.feedback.consensus import SETTINGS_KEY, Consensus, Settings
from swergio_al.feedback.seed_labels import load_seed_labels
from swergio_al.feedback.teaching import AggregateTeacher, Lesson
from swergio_al.feedback.tutor import Fresh, SampleId, Tutor, plain
from swergio_al.protocol import DATA, TO_ROOM, TYPE, Message, MessageType

log = logging.getLogger(__name__)

Render = Callable[[SampleId, NDArray[Any]], dict[str, Any]]


def render_table(sample_id: SampleId, x: NDArray[Any]) -> dict[str, Any]:
    """Default rendering: the feature vector as a key/value table."""
    return {"kind": "table", "content": {f"x{i}": float(v) for i, v in enumerate(x)}}


class FeedbackLoop:
    """A model component that learns from people while it works.

    Parameters
    ----------
    learner : ActiveLearner
        Its strategy scores uncertainty; its ``threshold``/``budget`` decide
        which streamed samples are asked about (without either, all are).
    answer : dict
        The answer schema of the requests (choice, rating or text).
    target : callable, optional
        Turns an answer into a training target (default: the answer itself).
    validation : (X, y), optional
        A held-out set scored after every update and reported in LOG/KPI.
    cancel_below : float, optional
        After an update, pending requests scoring below this are canceled;
        the rest are re-prioritized with their new scores.
    rescore_interval : float, default=1.0
        Seconds between two rescorings of the pending requests: rescoring is
        O(pending), so it is not done after every single label.
    overlap : int, default=1
        How many people answer each sample. Above 1 (or with `aggregate` or
        `flag_below` set) the model learns each sample's aggregate answer,
        weighted by its confidence, instead of every raw answer; a sample whose
        aggregate a later answer flips is re-taught (a full fit: never twice).
    aggregate : {"dawid_skene", "majority", "mean"}, optional
        How answers are combined (default: Dawid–Skene for choices, a
        bias/precision-weighted mean for ratings).
    flag_below : float, optional
        Labelers whose estimated accuracy falls below this are flagged; their
        later answers are kept but stop counting.
    adaptive : bool, default=False
        With overlap k > 1: ask one person first, a second when the first
        labeler's estimated accuracy is low or their answer and the model's
        prediction differ, a third when those two disagree, up to k.
    """

    def __init__(self, learner: Any, *, name: str, url: str, answer: dict[str, Any],
                 feedback_room: str = "feedback", input_room: str | None = None,
                 output_room: str | None = None, kpi_room: str | None = None,
                 question: str = "", render: Render = render_table,
                 target: Callable[[Any], Any] | None = None,
                 validation: tuple[Any, Any] | None = None, cancel_below: float | None = None,
                 rescore_interval: float = 1.0,
                 seed_labels: str | Path | None = None, token: str | None = None,
                 history_timeout: float = 30.0, reconnect: bool = True, overlap: int = 1,
                 aggregate: str | None = None, flag_below: float | None = None,
                 adaptive: bool = False) -> None:
        self.learner = learner
        self.answer = answer
        self.feedback_room = feedback_room
        self.input_room = input_room
        self.output_room = output_room
        self.kpi_room = kpi_room
        self.question = question
        self.render = render
        self.target = target or (lambda value: value)
        self.validation = validation
        self.cancel_below = cancel_below
        self.rescore_interval = rescore_interval
        self._rescored_at = float("-inf")
        self.seed_labels = seed_labels
        self.history_timeout = history_timeout
        self.overlap = overlap
        self.adaptive = adaptive
        self.teacher: AggregateTeacher | None = None
        if overlap > 1 or aggregate is not None or flag_below is not None:
            settings = Settings.for_schema(answer, method=aggregate, flag_below=flag_below)
            self.teacher = AggregateTeacher(Consensus(settings), target=self.target)
        self.tutor = Tutor(learner, answer=answer, target=self.target, validation=validation,
                           teacher=self.teacher)
        self.component = Component(name, url, token=token, reconnect=reconnect)
        self.pending: dict[SampleId, NDArray[Any]] = {}
        self.learned: set[str] = set()  # label ids in the training set
        self.kpis: list[dict[str, Any]] = []
        # When this run started (unix seconds), in every LOG/KPI: a restarted model counts
        # its versions and its prequential score from the start again, and the dashboard
        # tells its runs apart by this.
        self.run: float | None = None
        self._inbox: list[Message] = []
        self._arrived = asyncio.Event()
        self._updated = asyncio.Condition()
        self._history_done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refitting = False
        self._busy = False
        self._connections = 0
        self._history_count = 0
        self._wire()

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def version(self) -> int:
        return int(getattr(self.learner, "version_", 0))

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self.run = time.time()
        if self.seed_labels is not None:
            X, y = load_seed_labels(self.seed_labels)
            if len(y):
                await asyncio.to_thread(self.learner.teach, X, y)
                if self.teacher is not None:
                    self.teacher.seed = (X, y)
        self._spawn(self._learn_forever())
        if self.kpi_room is not None:
            await self.component.join(self.kpi_room)  # recorded now, joined on connect
        await self.component.connect()
        await self.catch_up()

    async def catch_up(self) -> int:
        """Ask the server for every label this model was given; returns how many it had."""
        self._history_done.clear()
        await self.component.send({TYPE: MessageType.FEEDBACK_HISTORY.value,
                                    TO_ROOM: self.feedback_room, DATA: {}})
        async with asyncio.timeout(self.history_timeout):
            await self._history_done.wait()
        await self.settled()
        return self._history_count

    async def stop(self) -> None:
        # Learning stops first: a label cut off mid-way is unacked and comes back later.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.component.close()

    async def wait_closed(self) -> None:
        await self.component.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- asking --------------------------------------------------------------

    async def observe(self, samples: Sequence[tuple[SampleId, Any]]) -> list[dict[str, Any]]:
        """Predict for streamed samples; ask people about those the learner picks."""
        if not samples:
            return []
        ids = [sid for sid, _ in samples]
        X = np.asarray([np.asarray(x, dtype=float) for _, x in samples])
        predictions, scores, asks = await asyncio.to_thread(self.tutor.judge, X)
        for sid, x, score, ask in zip(ids, X, scores, asks, strict=True):
            if ask and sid not in self.pending:
                await self.ask(sid, x, priority=float(score))
        return [{"sample_id": sid, "prediction": plain(p), "uncertainty": float(s)}
                for sid, p, s in zip(ids, predictions, scores, strict=True)]

    async def ask(self, sample_id: SampleId, x: Any, *, priority: float | None = None,
                  overlap: int | None = None) -> None:
        """Send one sample to the feedback room (higher priority = asked sooner)."""
        features = np.asarray(x, dtype=float)
        if priority is None:
            priority = float(np.asarray(self.learner.uncertainty(features[None, :]))[0])
        prediction = next(iter(self.tutor.predict(features[None, :])))
        view = self.render(sample_id, features)
        self.pending[sample_id] = features
        await self._send_request(sample_id, view, prediction=plain(prediction),
                                 priority=priority, overlap=overlap or self.overlap,
                                 **self.tutor.doubt(features, priority), features=features.tolist())

    async def _send_request(self, sample_id: SampleId, view: dict[str, Any],
                            **fields: Any) -> None:
        """FEEDBACK/REQUEST for one sample as `view` (from render) shows it; `fields` are
        the rest of its DATA (prediction, priority, gold, the requester's own keys)."""
        await self.component.send({
            TYPE: MessageType.FEEDBACK_REQUEST.value, TO_ROOM: self.feedback_room,
            DATA: {"sample_id": sample_id, "kind": view.get("kind", "text"),
                   "content": view.get("content"),
                   "question": view.get("question", self.question), "answer": self.answer,
                   **fields, **self._quality_settings()}})

    def _quality_settings(self) -> dict[str, Any]:
        # Stored with the request and echoed with each label: /api/quality and the
        # export aggregate the room the way this model does.
        if self.teacher is None:
            return {}
        settings = {SETTINGS_KEY: self.teacher.consensus.settings.to_wire()}
        return {**settings, "adaptive": True} if self.adaptive else settings

    async def ask_gold(self, sample_id: SampleId, x: Any, answer: Any) -> None:
        """A gold question: a sample whose answer is known. The service mixes it into each
        labeler's stream (once per labeler) to measure them; it is never a label here."""
        features = np.asarray(x, dtype=float)
        await self._send_request(sample_id, self.render(sample_id, features), gold=answer)

    async def _ask_again(self) -> None:
        pending = list(self.pending.items())
        if not pending:
            return
        scores = await asyncio.to_thread(self.learner.uncertainty,
                                         np.asarray([x for _, x in pending]))
        for (sample_id, x), score in zip(pending, scores, strict=True):
            if sample_id in self.pending:
                await self.ask(sample_id, x, priority=float(score))
        log.info("%s: asked again about %d pending samples after reconnecting", self.name,
                 len(pending))

    # -- learning ------------------------------------------------------------

    def _wire(self) -> None:
        c = self.component

        @c.on(MessageType.FEEDBACK_LABEL.value, room=self.feedback_room)
        def on_label(message: Message) -> None:
            self._inbox.append(message)
            self._arrived.set()

        @c.on_connect
        async def ask_again() -> None:
            # Requests sent just before a server died may never have been stored; the
            # server dedupes by sample id, so asking again for everything pending is safe.
            if self._connections:
                await self._ask_again()
            self._connections += 1

        @c.on(MessageType.FEEDBACK_HISTORY.value, room=self.feedback_room)
        def on_history(message: Message) -> None:
            data = message.get(DATA)
            self._history_count = int(data.get("count", 0)) if isinstance(data, dict) else 0
            self._history_done.set()

        if self.input_room is not None:
            answers = self.output_room or self.input_room

            @c.on("DATA/*", room=self.input_room, respond_to=answers,
                  response_type=MessageType.FORWARD.value, direct=False)
            async def on_samples(message: Message) -> dict[str, Any] | None:
                data = message.get(DATA)
                samples = data.get("samples") if isinstance(data, dict) else None
                if not isinstance(samples, list):
                    log.warning("%s: ignoring %s without DATA.samples", self.name,
                                message.get(TYPE))
                    return None
                parsed = [(s["sample_id"], s["x"]) for s in samples
                          if isinstance(s, dict) and "sample_id" in s and "x" in s]
                return {DATA: {"predictions": await self.observe(parsed),
                               "version": self.version}}

    async def _learn_forever(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            batch, self._inbox = self._inbox, []
            self._busy = True
            try:
                await self._learn(batch)
            except Exception:
                log.exception("%s: learning from %d labels failed; they stay unacked",
                              self.name, len(batch))
            finally:
                self._busy = False
                async with self._updated:
                    self._updated.notify_all()

    async def _learn(self, batch: list[Message]) -> None:
        fresh: Fresh = {}
        duplicates: list[str] = []
        for message in batch:
            data = message.get(DATA)
            if not isinstance(data, dict) or not isinstance(data.get("label_id"), str):
                log.warning("%s: malformed FEEDBACK/LABEL %s", self.name, message.get("ID"))
                continue
            label_id, sample_id = data["label_id"], data.get("sample_id")
            if label_id in self.learned or label_id in fresh:
                duplicates.append(label_id)
                continue
            x = self._features_of(sample_id, data)
            if x is None:
                log.error("%s: label %s for unknown sample %r has no features; not learned",
                          self.name, label_id, sample_id)
                continue
            fresh[label_id] = (sample_id, x, data)
        if fresh:
            # Aggregating (Dawid–Skene over the room) can take a while: off the event loop.
            lesson = await asyncio.to_thread(self.tutor.lesson, fresh)
            for sample_id, _, _ in fresh.values():
                self.pending.pop(sample_id, None)
            # Rescoring is O(pending): at most every rescore_interval. The snapshot is
            # taken here, on the loop, because ask() may add to `pending` meanwhile.
            now = time.monotonic()
            due = bool(self.pending) and now - self._rescored_at >= self.rescore_interval
            if due:
                self._rescored_at = now
            report = await asyncio.to_thread(self._teach, lesson,
                                             list(self.pending.items()) if due else [])
            if self.teacher is not None:
                self.teacher.learned(lesson)
            self.learned.update(fresh)
            replayed = sum(bool(data.get("replay")) for _, _, data in fresh.values())
            await self._publish_kpi(report, labels=len(fresh), replayed=replayed)
            await self._rescore(report.pop("pending_scores"))
        for label_id in (*fresh, *duplicates):
            await self.component.send({TYPE: MessageType.FEEDBACK_ACK.value,
                                       TO_ROOM: self.feedback_room, DATA: {"label_id": label_id}})
        if fresh and getattr(self.learner, "refit_due", False) and not self._refitting:
            self._spawn(self._refit())

    def _features_of(self, sample_id: Any, data: dict[str, Any]) -> NDArray[Any] | None:
        if isinstance(data.get("features"), list):
            try:
                return np.asarray(data["features"], dtype=float)
            except (TypeError, ValueError):
                return None
        return self.pending.get(sample_id)  # the server echoes features; this is a fallback

    def _teach(self, lesson: Lesson,
               pending: list[tuple[SampleId, NDArray[Any]]]) -> dict[str, Any]:
        """Runs in a worker thread: learn, measure, and score the `pending` snapshot."""
        return self.tutor.teach(lesson, pending, self.learned)

    async def _refit(self) -> None:
        """A full refit off the event loop, swapped in atomically when it is done."""
        self._refitting = True
        try:
            refit = await asyncio.to_thread(self.learner.fit_full)
            swapped = await asyncio.to_thread(self.learner.swap_in, refit)
            if swapped:
                report = await asyncio.to_thread(self.tutor.measure, self.learned)
                report["fit_seconds"] = refit.seconds
                await self._publish_kpi(report, labels=0, refit=True)
                async with self._updated:
                    self._updated.notify_all()
        finally:
            self._refitting = False

    async def _publish_kpi(self, report: dict[str, Any], *, labels: int, replayed: int = 0,
                           refit: bool = False) -> None:
        kpi = {"model": self.name, "version": report["version"], "labels": report["labels"],
               "score": report["score"], "score_metric": report.get("score_metric"),
               "prequential": report.get("prequential"),
               "prequential_metric": report.get("prequential_metric"),
               "prequential_labels": report.get("prequential_labels", 0),
               "fit_seconds": report["fit_seconds"],
               "new_labels": labels, "replayed": replayed, "refit": refit, "run": self.run,
               "time": time.time()}
        self.kpis.append(kpi)
        for room in {self.feedback_room, self.kpi_room} - {None}:
            await self.component.send({TYPE: MessageType.KPI.value, TO_ROOM: room, DATA: kpi})

    async def _rescore(self, scores: dict[SampleId, float]) -> None:
        if not scores:
            return
        if self.cancel_below is not None:
            settled = [sid for sid, s in scores.items() if s < self.cancel_below]
            if settled:
                for sid in settled:
                    self.pending.pop(sid, None)
                await self.component.send({TYPE: MessageType.FEEDBACK_CANCEL.value,
                                           TO_ROOM: self.feedback_room,
                                           DATA: {"sample_ids": settled}})
            scores = {sid: s for sid, s in scores.items() if sid in self.pending}
        if scores:
            await self.component.send({TYPE: MessageType.FEEDBACK_RESCORE.value,
                                       TO_ROOM: self.feedback_room,
                                       DATA: {"priorities": {str(k): v
                                                             for k, v in scores.items()}}})

    async def settled(self) -> None:
        """Wait until every label received so far has been learned."""
        async with self._updated:
            await self._updated.wait_for(lambda: not (self._inbox or self._busy))

    async def wait_learned(self, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` labels have been learned (or, aggregated, taken in) and the
        LOG/KPI of the last of them is sent."""
        async with asyncio.timeout(timeout), self._updated:
            await self._updated.wait_for(lambda: len(self.learned) >= count and not self._busy)

    async def wait_for_version(self, version: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self._updated:
            await self._updated.wait_for(lambda: self.version >= version)

    async def wait_for_kpis(self, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` LOG/KPI reports were sent (`kpis`) in this process."""
        async with asyncio.timeout(timeout), self._updated:
            await self._updated.wait_for(lambda: len(self.kpis) >= count)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

