"""The labeler's side of a feedback room: labels committed, skips, and the adaptive
overlap a label may call for.

`LabelerSide` is a mixin of `FeedbackService`, which sets the attributes
declared here (and in the mixins it builds on). A label is committed before
anyone hears of it, then acknowledged to its labeler and delivered to the
requester; the same commit claims the labeler's next task when they are next
in line anyway.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from swergio_al.feedback.adaptive import ADAPTIVE_KEY
from swergio_al.feedback.answers import answer_problem
from swergio_al.feedback.frame_data import field_error, frame_data
from swergio_al.feedback.gold import GOLD_KEY, base_room
from swergio_al.feedback.queue_signals import QueueSignals
from swergio_al.feedback.records import (
    FeedbackRequest,
    Label,
    NotYourTask,
    Task,
    TaskStatus,
    UnknownTask,
)
from swergio_al.protocol import (
    DATA,
    ID,
    TO,
    TO_ROOM,
    TYPE,
    ErrorCode,
    Message,
    MessageType,
    ProtocolError,
    is_finite_number,
    new_id,
)
from swergio_al.relay.connection import Connection


class _Deliver(Protocol):
    async def __call__(self, label: Label, *, replay: bool) -> None: ...


class LabelerSide(QueueSignals):
    """A labeler's FEEDBACK/LABEL and FEEDBACK/SKIP frames."""

    _deliver: _Deliver  # the label to its requester (ModelSide)

    def _task_id(self, message: Message) -> str:
        task_id = frame_data(message).get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise field_error(message, "task_id must be a non-empty string")
        return task_id

    async def _on_label(self, conn: Connection, message: Message) -> None:
        received = time.perf_counter()
        room, data = message[TO_ROOM], frame_data(message)
        task_id = self._task_id(message)
        if "answer" not in data:
            raise field_error(message, "answer is missing")
        seconds = data.get("seconds")
        if seconds is not None and (not is_finite_number(seconds) or seconds < 0):
            raise field_error(message, "seconds must be a non-negative number")
        assert conn.name is not None
        task = self._tasks.get(task_id) or await self.store.task(task_id)
        if task is not None:
            task = self.desk.as_seen(task)
        if task is None or task.request.room != room:
            raise UnknownTask(f"no task {task_id!r:.80} in {room}")
        if task.labeler != conn.name:
            raise NotYourTask(f"task {task_id!r:.80} is leased to someone else")
        if task.status is TaskStatus.DONE:
            # The same labeler again: its label was committed but the ACK may have
            # died with a server. Labels are idempotent: answer with the original ACK.
            label = await self.store.label_of_task(task_id)
            if label is not None:
                self._send_ack(conn, label)
                return
        if task.status is not TaskStatus.LEASED:
            raise UnknownTask(f"task {task_id!r:.80} is {task.status.value}, no longer leased")
        problem = answer_problem(task.request.answer, data["answer"])
        if problem is not None:
            raise ProtocolError(ErrorCode.INVALID_ANSWER, problem, message[ID])
        # Once the commit starts, the label must also reach the model even if this
        # handler is cancelled (its client vanished): the rest runs shielded.
        await asyncio.shield(self._spawn(self._commit_label(
            conn, task, data["answer"], None if seconds is None else float(seconds), received)))

    async def _commit_label(self, conn: Connection, task: Task, answer: Any,
                            seconds: float | None, received: float) -> None:
        room, task_id = task.request.room, task.task_id
        assert conn.name is not None
        # The common case of a busy crowd: nobody waits for work more than this
        # labeler will once the label is in, so the same commit claims their next
        # task. Otherwise the task goes to whoever has waited longest, below.
        seat = self._seat(room, conn)
        crowd = self._crowds.get(room)
        claim = 0
        gold = GOLD_KEY in task.request.extra
        overlapping = task.request.overlap > 1 or ADAPTIVE_KEY in task.request.extra
        next_for_them = seat is not None and crowd is not None and not seat.idle and \
            not crowd.hungrier_than(seat.load - 1, but=seat)
        # After a gold question, or when one is due, their next task is claimed below
        # (the one path that mixes gold in), still for them.
        via_gold = next_for_them and (gold or self.desk.gold_due(room, conn.name))
        if next_for_them and not via_gold:
            claim = max(0, self.prefetch - (seat.load - 1))  # type: ignore[union-attr]
        if seat is not None and crowd is not None and claim:
            seat.reserved += claim
            crowd.place(seat)
            crowd.claiming += 1
        started = time.perf_counter()
        try:
            label, tasks = await self.store.label_and_claim(
                task_id, conn.name, answer, seconds, label_id=new_id(), now=self.clock(),
                claim=claim, lease_seconds=self.lease_seconds)
        finally:
            if seat is not None and crowd is not None and claim:
                seat.reserved -= claim
                crowd.claiming -= 1
                crowd.place(seat)
        self._forget(task)
        self._send_ack(conn, label)
        if self.metrics is not None:
            self.metrics.store_write("label", time.perf_counter() - started)
            self.metrics.label_committed(label.label_id, received)
        if gold:  # it measures the labeler; it never reaches the model as a label
            await self.desk.after_label(label, task.request)
            await self.store.ack(label.label_id, label.requester, now=self.clock())
        else:
            try:
                await self._ask_more(room, label, task.request)
            finally:  # whatever the adaptive step met, the model gets its label
                await self._deliver(label, replay=False)
        self._touch(room)
        if seat is not None and claim:
            await self._hand_out(room, [seat], tasks)
        elif seat is not None and via_gold:
            await self._fill(room, seat)
        else:
            await self._fill_room(room, budget=1)
            if seat is not None and seat.load == 0 and overlapping:
                # Whoever got the turn may have answered what is left already (overlap
                # above 1); this labeler may not have: never leave them idle beside it.
                await self._fill(room, seat)

    async def _ask_more(self, room: str, label: Label, request: FeedbackRequest) -> None:
        """Adaptive overlap: open one more slot on the label's request when it needs one."""
        more = await self.desk.after_label(label, request)
        if more is not None and await self.store.raise_overlap(
                room, label.requester, label.sample_id, more, now=self.clock()):
            self._announce(room, count=1)
            await self._fill_room(room, budget=1)

    def _send_ack(self, conn: Connection, label: Label) -> None:
        self.hub.send_to(conn, {ID: new_id(), TYPE: MessageType.FEEDBACK_ACK.value,
                                TO_ROOM: base_room(label.room), TO: conn.name,
                                DATA: {"task_id": label.task_id, "label_id": label.label_id}})

    async def _on_skip(self, conn: Connection, message: Message) -> None:
        room = message[TO_ROOM]
        assert conn.name is not None
        task = await self.store.skip(self._task_id(message), conn.name, now=self.clock())
        self._forget(task)
        self._touch(room)
        self._announce(room, count=1)
        await self._fill_room(room, budget=1, last=self._seat(room, conn))
