"""The model's side of a feedback room: its requests, acks, cancels, rescores and
history, and the labels delivered (or replayed) to it.

`ModelSide` is a mixin of `FeedbackService`, which sets the attributes declared
here (and in the mixins it builds on).
"""

from __future__ import annotations

import time
from typing import Any

from swergio_al.feedback.answers import answer_problem, schema_problem
from swergio_al.feedback.frame_data import field_error, frame_data
from swergio_al.feedback.gold import GOLD_KEY, is_gold_room
from swergio_al.feedback.queue_signals import QueueSignals
from swergio_al.feedback.records import FeedbackRequest, Label, Submitted
from swergio_al.protocol import (
    DATA,
    ID,
    TO,
    TO_ROOM,
    TYPE,
    Message,
    MessageType,
    encode,
    is_finite_number,
    new_id,
)
from swergio_al.relay.broker import Envelope
from swergio_al.relay.connection import Connection

MAX_OVERLAP = 100
# The FEEDBACK/REQUEST fields the service reads; any other DATA key is the
# requester's own (features, say) and comes back with each label of the sample.
REQUEST_FIELDS = frozenset({"sample_id", "kind", "content", "question", "answer", "prediction",
                            "confidence", "priority", "overlap"})
# Replays are written in slices, waiting for each to drain, so ten thousand
# unacked labels never overflow a connection's outbox.
REPLAY_SLICE = 256


def is_sample_id(value: Any) -> bool:
    return (isinstance(value, str) and value != "") or \
        (isinstance(value, int) and not isinstance(value, bool))


class ModelSide(QueueSignals):
    """A requester's FEEDBACK frames, and its labels delivered to it."""

    # Set by FeedbackService.__init__.
    max_pending: int

    async def _on_request(self, conn: Connection, message: Message) -> None:
        room, data = message[TO_ROOM], frame_data(message)
        if not is_sample_id(data.get("sample_id")):
            raise field_error(message, "sample_id must be a non-empty string or an integer")
        problem = schema_problem(data.get("answer"))
        if problem is not None:
            raise field_error(message, problem)
        kind, question = data.get("kind", "text"), data.get("question", "")
        priority, confidence = data.get("priority", 0.0), data.get("confidence")
        overlap = data.get("overlap", 1)
        if not isinstance(kind, str) or not isinstance(question, str):
            raise field_error(message, "kind and question must be strings")
        if not is_finite_number(priority) or \
                (confidence is not None and not is_finite_number(confidence)):
            raise field_error(message, "priority and confidence must be numbers")
        if not isinstance(overlap, int) or isinstance(overlap, bool) or \
                not 1 <= overlap <= MAX_OVERLAP:
            raise field_error(message, f"overlap must be an integer in 1..{MAX_OVERLAP}")
        assert conn.name is not None
        request = FeedbackRequest(room=room, sample_id=data["sample_id"], requester=conn.name,
                                  answer=data["answer"], kind=kind, content=data.get("content"),
                                  question=question, prediction=data.get("prediction"),
                                  confidence=None if confidence is None else float(confidence),
                                  priority=float(priority),
                                  overlap=overlap,
                                  extra={k: v for k, v in data.items()
                                         if k not in REQUEST_FIELDS})
        started = time.perf_counter()
        if GOLD_KEY in data:
            problem = answer_problem(data["answer"], data["gold"])
            if problem is not None:
                raise field_error(message, f"gold: {problem}")
        request = self.desk.prepare(request)  # a gold question, an adaptive request
        outcome = await self.store.submit(request, max_pending=self.max_pending,
                                          now=self.clock())
        if self.metrics is not None:
            self.metrics.store_write("request", time.perf_counter() - started)
        if outcome is not Submitted.ALREADY_LABELED:
            slots = 1 if GOLD_KEY in data else request.overlap
            self._touch(room)
            self._announce(room, count=slots)
            await self._fill_room(room, budget=slots)

    async def _on_ack(self, conn: Connection, message: Message) -> None:
        label_id = frame_data(message).get("label_id")
        if not isinstance(label_id, str):
            raise field_error(message, "label_id must be a string")
        assert conn.name is not None
        started = time.perf_counter()
        if not await self.store.ack(label_id, conn.name, now=self.clock()):
            raise field_error(message, f"no label {label_id!r:.80} was sent to you")
        if self.metrics is not None:
            self.metrics.store_write("ack", time.perf_counter() - started)
            self.metrics.label_acked(label_id)

    async def _on_cancel(self, conn: Connection, message: Message) -> None:
        sample_ids = frame_data(message).get("sample_ids")
        if not isinstance(sample_ids, list) or not all(is_sample_id(s) for s in sample_ids):
            raise field_error(message, "sample_ids must be a list of sample ids")
        keep_leased = frame_data(message).get("keep_leased", False)
        if not isinstance(keep_leased, bool):
            raise field_error(message, "keep_leased must be true or false")
        room = message[TO_ROOM]
        assert conn.name is not None
        leased = await self.store.cancel(room, conn.name, sample_ids, now=self.clock(),
                                         keep_leased=keep_leased)
        if keep_leased:
            # Someone is answering those: they stay open, and the requester is told.
            kept = list(dict.fromkeys(t.request.sample_id for t in leased))
            if kept:
                self.hub.send_to(conn, {ID: new_id(), TYPE: MessageType.FEEDBACK_CANCEL.value,
                                        TO_ROOM: room, TO: conn.name, DATA: {"kept": kept}})
        else:
            self._announce(room, canceled=leased, count=0)
            await self._withdraw(leased)
        self._touch(room)

    async def _on_rescore(self, conn: Connection, message: Message) -> None:
        priorities = frame_data(message).get("priorities")
        if not isinstance(priorities, dict) or \
                not all(is_finite_number(p) for p in priorities.values()):
            raise field_error(message, "priorities must map sample ids to numbers")
        assert conn.name is not None
        await self.store.rescore(message[TO_ROOM], conn.name,
                                 {k: float(v) for k, v in priorities.items()}, now=self.clock())

    async def _on_history(self, conn: Connection, message: Message) -> None:
        room = message[TO_ROOM]
        assert conn.name is not None
        labels = await self.store.history(room, conn.name)
        await self._replay(conn, labels)
        self.hub.send_to(conn, {ID: new_id(), TYPE: MessageType.FEEDBACK_HISTORY.value,
                                TO_ROOM: room, TO: conn.name, DATA: {"count": len(labels)}})

    # -- labels to requesters ---------------------------------------------

    def _label_message(self, label: Label, *, replay: bool) -> Message:
        return {ID: new_id(), TYPE: MessageType.FEEDBACK_LABEL.value, TO_ROOM: label.room,
                TO: label.requester, DATA: label.message_data(replay=replay)}

    async def _deliver(self, label: Label, *, replay: bool) -> None:
        """To the requester by name, on this node or another; kept for later if offline."""
        message = self._label_message(label, replay=replay)
        conn = self.hub.names.get(label.requester)
        if conn is not None:
            self.hub.send_to(conn, message)
        elif self.hub.broker.distributed:
            await self.hub.broker.publish(Envelope(text=encode(message), room=None,
                                                   to=label.requester, exclude=None))

    async def _replay(self, conn: Connection, labels: list[Label]) -> None:
        for label in labels:
            if is_gold_room(label.room):  # committed just before a crash: not for the model
                await self.store.ack(label.label_id, label.requester, now=self.clock())
        labels = [label for label in labels if not is_gold_room(label.room)]
        if self.metrics is not None:
            self.metrics.redelivered("label", len(labels))
        for start in range(0, len(labels), REPLAY_SLICE):
            for label in labels[start:start + REPLAY_SLICE]:
                self.hub.send_to(conn, self._label_message(label, replay=True))
            await conn.flush()
