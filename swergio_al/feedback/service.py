"""FeedbackService: the Hub's owner of feedback rooms.

Requests are stored and queued, never broadcast; each labeler holds at most
`prefetch` leased tasks; a label is committed before anyone hears of it, then
acknowledged to its labeler and delivered to the requester, who acks it in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from swergio_al.feedback.adaptive import ADAPTIVE_KEY
from swergio_al.feedback.answers import answer_problem, schema_problem
from swergio_al.feedback.crowd import Crowd, Seat
from swergio_al.feedback.dispatch import Dispatch
from swergio_al.feedback.gold import GOLD_KEY, QualityDesk, base_room, gold_room, is_gold_room
from swergio_al.feedback.kpi import kpi_record
from swergio_al.feedback.presence import PRESENCE_SIGNAL, Presence
from swergio_al.feedback.records import (
    FeedbackRequest,
    Label,
    LimitReached,
    NotYourTask,
    StoreError,
    StoreUnavailable,
    Submitted,
    Task,
    TaskStatus,
    UnknownTask,
)
from swergio_al.feedback.stats_broadcast import StatsBroadcast
from swergio_al.feedback.store import Store
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
    Role,
    encode,
    is_finite_number,
    new_id,
)
from swergio_al.relay.broker import Envelope
from swergio_al.relay.connection import Connection
from swergio_al.relay.hub import Hub
from swergio_al.relay.pipeline import PIPELINED_TYPES

if TYPE_CHECKING:
    from swergio_al.metrics import Metrics

log = logging.getLogger(__name__)

Handler = Callable[["FeedbackService", Connection, Message], Awaitable[None]]
MAX_OVERLAP = 100
# The FEEDBACK/REQUEST fields the service reads; any other DATA key is the
# requester's own (features, say) and comes back with each label of the sample.
REQUEST_FIELDS = frozenset({"sample_id", "kind", "content", "question", "answer", "prediction",
                            "confidence", "priority", "overlap"})
# Replays are written in slices, waiting for each to drain, so ten thousand
# unacked labels never overflow a connection's outbox.
REPLAY_SLICE = 256
# Broker signal between the services of several nodes: a room's queue changed.
QUEUE_SIGNAL = "feedback/queue"


def _field_error(message: Message, text: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FIELD, f"{message[TYPE]}: {text}", message[ID])


def _task_ids(value: Any) -> list[str]:
    return [t for t in value if isinstance(t, str)] if isinstance(value, list) else []


def _is_sample_id(value: Any) -> bool:
    return (isinstance(value, str) and value != "") or \
        (isinstance(value, int) and not isinstance(value, bool))


class FeedbackService(Dispatch, StatsBroadcast):
    """Implements the Hub's `RoomService` for rooms named `<prefix>...`."""

    def __init__(self, hub: Hub, store: Store, *, prefix: str = "feedback",
                 lease_seconds: float = 120.0, prefetch: int = 2,
                 stats_interval: float = 0.5, max_pending: int = 100_000,
                 gold_rate: float = 0.1, clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.store = store
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.prefetch = prefetch
        self.stats_interval = stats_interval
        self.max_pending = max_pending
        self.clock = clock
        # Gold questions and adaptive overlap (label quality, swergio_al/feedback/gold.py).
        self.desk = QualityDesk(store, gold_rate=gold_rate, max_overlap=MAX_OVERLAP)
        # Tasks this node handed out and that are still leased: answers a label
        # without a store round trip; the store re-checks inside the commit.
        self._tasks: dict[str, Task] = {}
        # Each room's labelers on this node, and who of them gets work next.
        self._crowds: dict[str, Crowd] = {}
        # Each room's other members on this node (models, dashboards): every STATS.
        self._watchers: dict[str, set[Connection]] = {}
        # Labelers of a room still owed its latest STATS (served a few per tick).
        self._stats_owed: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._dirty_event = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._chores: set[asyncio.Task[None]] = set()
        # Rooms other nodes changed, still to top up here (one refill per room at a time).
        # (room -> tasks that may have become claimable there; None: any number)
        self._stale: dict[str, int | None] = {}
        self._refilling: set[str] = set()
        self._withdrawn: dict[str, list[Task]] = {}
        self.presence = Presence(hub, self.owns, count_local=self._local_labelers)
        self._last_stats: dict[str, dict[str, Any]] = {}
        #: Counts for /metrics, when served (swergio_al.metrics).
        self.metrics: Metrics | None = None

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self.hub.broker.on_signal = self._on_signal
        try:
            await self.desk.load()
        except StoreError as exc:
            log.warning("could not look up the rooms with gold questions: %s", exc)
        self._loops = [asyncio.create_task(self._expire_leases(), name="feedback-leases"),
                       asyncio.create_task(self._broadcast_stats(), name="feedback-stats"),
                       asyncio.create_task(self.presence.run(), name="feedback-presence")]

    async def stop(self) -> None:
        loops, self._loops = self._loops, []
        for loop in loops:
            loop.cancel()
        for loop in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        # Chores (returning leases) finish: they only touch the store briefly.
        if self._chores:
            await asyncio.gather(*self._chores, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)
        return task

    # -- RoomService -------------------------------------------------------

    def owns(self, room: str) -> bool:
        return room.startswith(self.prefix)

    async def registered(self, conn: Connection) -> None:
        assert conn.name is not None
        try:
            labels = await self.store.unacked(conn.name)
        except StoreError as exc:
            log.warning("could not replay labels to %s: %s", conn.name, exc)
            return
        await self._replay(conn, labels)

    async def joined(self, conn: Connection, room: str) -> None:
        self._touch(room)
        if conn.role is not Role.LABELER or conn.name is None or is_gold_room(room):
            self._watchers.setdefault(room, set()).add(conn)  # a gold room gives no work
            return
        self.presence.changed()
        crowd = self._crowd(room)
        seat = crowd.sit(conn.name, conn)
        last = self._last_stats.get(room)
        if last is not None:
            # The figures the room's labelers have: a broadcast sends them only when
            # they change, and a reconnect (a page reload) may change nothing.
            conn.deliver(self._stats_frame(room, last))
            self._count_stats(1)
        # Not hungry while the leases it may already hold are looked up.
        seat.reserved += self.prefetch
        try:
            try:
                # Leases that outlived a reconnect or a server restart are shown again.
                leased = await self.store.leased_to(room, conn.name, now=self.clock())
            finally:
                seat.reserved -= self.prefetch
            for task in leased:
                if task.task_id not in seat.held:
                    seat.held.add(task.task_id)
                    self._tasks[task.task_id] = task
                    self._send_task(conn, task)
                    if self.metrics is not None:
                        self.metrics.redelivered("task")
            crowd.place(seat)
            await self._fill(room, seat)
        except StoreError as exc:
            crowd.place(seat)
            log.warning("no tasks for %s in %s: %s", conn.name, room, exc)

    async def left(self, conn: Connection, room: str) -> None:
        self._touch(room)
        if conn.role is not Role.LABELER or conn.name is None or is_gold_room(room):
            watchers = self._watchers.get(room)
            if watchers is not None:
                watchers.discard(conn)
                if not watchers:
                    del self._watchers[room]
            return
        self.presence.changed()
        crowd = self._crowds.get(room)
        seat = crowd.seats.get(conn.name) if crowd is not None else None
        self.desk.left(room, conn.name)
        if crowd is not None and seat is not None and seat.conn is conn:
            crowd.stand(conn.name)
            for task_id in seat.held:
                self._tasks.pop(task_id, None)
            if not crowd.seats:
                del self._crowds[room]
        if self.hub.names.get(conn.name) is not conn:
            return  # the name was taken over on another node: its leases go with it
        # A closing connection's handler may be cancelled while it cleans up; the
        # leases must go back all the same, so the work runs in a task we own.
        await asyncio.shield(self._spawn(self._return_leases(room, conn.name)))

    async def _return_leases(self, room: str, labeler: str) -> None:
        try:
            returned = await self.store.release(room, labeler, now=self.clock())
            await self.store.release(gold_room(room), labeler, now=self.clock())
            if returned:
                self._announce(room, count=len(returned))
                await self._fill_room(room, budget=len(returned))
        except StoreError as exc:
            log.warning("could not return the tasks of %s in %s: %s", labeler, room, exc)

    async def handle(self, conn: Connection, message: Message) -> None:
        kind = message[TYPE]
        handler = self._handlers.get(kind)
        if handler is None:
            if kind in (MessageType.FEEDBACK_TASK, MessageType.FEEDBACK_STATS):
                raise ProtocolError(ErrorCode.FORBIDDEN, f"only the server sends {kind}",
                                    message[ID])
            # Anything else (LOG/KPI for a dashboard, chat) is relayed as in any room;
            # a model's KPI reports are also kept (before the relay: whoever saw one
            # can read it back), for dashboards opened later.
            if kind == MessageType.KPI and conn.name is not None:
                record = kpi_record(message.get(DATA))
                if record is not None:
                    await self._keep_kpi(message[TO_ROOM], conn.name, record)
            await self.hub.publish(message, exclude=conn.name)
            return
        if is_gold_room(message[TO_ROOM]):
            raise ProtocolError(ErrorCode.FORBIDDEN, "gold rooms are the feedback service's own; "
                                "send gold questions to the room with DATA.gold", message[ID])
        seat = self._seat(message[TO_ROOM], conn)
        if seat is not None and seat.idle:  # they are back: work for them again
            seat.idle = False
            self._crowd(message[TO_ROOM]).place(seat)
        if kind in PIPELINED_TYPES:  # not waited for: see relay/pipeline.py
            await self.hub.pipes.start(conn, self._answered(conn, message, handler, seat),
                                       spawn=self._spawn, key=self._write_key(message))
            return
        await self._act(conn, message, handler, seat)

    async def _act(self, conn: Connection, message: Message, handler: Handler,
                   seat: Seat | None) -> None:
        """Run `handler`, turning what the store refused into the ERROR to answer."""
        try:
            await handler(self, conn, message)
        except UnknownTask as exc:
            # Typically a late answer to a lapsed lease: the labeler is back, so top them up.
            if seat is not None:
                await self._fill(message[TO_ROOM], seat)
            raise ProtocolError(ErrorCode.UNKNOWN_TASK, str(exc), message[ID]) from None
        except NotYourTask as exc:
            raise ProtocolError(ErrorCode.NOT_YOUR_TASK, str(exc), message[ID]) from None
        except LimitReached as exc:
            raise ProtocolError(ErrorCode.LIMIT_REACHED, str(exc), message[ID]) from None
        except StoreUnavailable as exc:
            log.error("feedback store unavailable: %s", exc)
            raise ProtocolError(ErrorCode.UNAVAILABLE, "feedback store unavailable; retry later",
                                message[ID]) from None

    async def _answered(self, conn: Connection, message: Message, handler: Handler,
                        seat: Seat | None) -> None:
        """`_act` in a pipelined task: nobody up the stack answers its errors, so it does."""
        try:
            await self._act(conn, message, handler, seat)
        except ProtocolError as error:
            if conn.is_open:
                conn.refuse(error)
        except Exception:
            log.exception("handling %s from %s failed", message[TYPE], conn.name)
            if conn.is_open:
                conn.refuse(ProtocolError(ErrorCode.INTERNAL,
                                          "the server failed to handle this message",
                                          message[ID]))

    @staticmethod
    def _write_key(message: Message) -> Hashable | None:
        """What a pipelined REQUEST writes: one sample's request (an ACK: its own label)."""
        data = message.get(DATA)
        if message[TYPE] != MessageType.FEEDBACK_REQUEST or not isinstance(data, dict):
            return None
        sample_id = data.get("sample_id")
        return (message[TO_ROOM], sample_id) if isinstance(sample_id, (str, int)) else None

    async def _keep_kpi(self, room: str, model: str, record: dict[str, Any]) -> None:
        try:
            await self.store.record_kpi(room, model, record, now=self.clock())
        except StoreError as exc:
            log.warning("could not keep a KPI report of %s in %s: %s", model, room, exc)

    # -- model side --------------------------------------------------------

    async def _on_request(self, conn: Connection, message: Message) -> None:
        room, data = message[TO_ROOM], self._data(message)
        if not _is_sample_id(data.get("sample_id")):
            raise _field_error(message, "sample_id must be a non-empty string or an integer")
        problem = schema_problem(data.get("answer"))
        if problem is not None:
            raise _field_error(message, problem)
        kind, question = data.get("kind", "text"), data.get("question", "")
        priority, confidence = data.get("priority", 0.0), data.get("confidence")
        overlap = data.get("overlap", 1)
        if not isinstance(kind, str) or not isinstance(question, str):
            raise _field_error(message, "kind and question must be strings")
        if not is_finite_number(priority) or \
                (confidence is not None and not is_finite_number(confidence)):
            raise _field_error(message, "priority and confidence must be numbers")
        if not isinstance(overlap, int) or isinstance(overlap, bool) or \
                not 1 <= overlap <= MAX_OVERLAP:
            raise _field_error(message, f"overlap must be an integer in 1..{MAX_OVERLAP}")
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
                raise _field_error(message, f"gold: {problem}")
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
        label_id = self._data(message).get("label_id")
        if not isinstance(label_id, str):
            raise _field_error(message, "label_id must be a string")
        assert conn.name is not None
        started = time.perf_counter()
        if not await self.store.ack(label_id, conn.name, now=self.clock()):
            raise _field_error(message, f"no label {label_id!r:.80} was sent to you")
        if self.metrics is not None:
            self.metrics.store_write("ack", time.perf_counter() - started)
            self.metrics.label_acked(label_id)

    async def _on_cancel(self, conn: Connection, message: Message) -> None:
        sample_ids = self._data(message).get("sample_ids")
        if not isinstance(sample_ids, list) or not all(_is_sample_id(s) for s in sample_ids):
            raise _field_error(message, "sample_ids must be a list of sample ids")
        keep_leased = self._data(message).get("keep_leased", False)
        if not isinstance(keep_leased, bool):
            raise _field_error(message, "keep_leased must be true or false")
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
        priorities = self._data(message).get("priorities")
        if not isinstance(priorities, dict) or \
                not all(is_finite_number(p) for p in priorities.values()):
            raise _field_error(message, "priorities must map sample ids to numbers")
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

    # -- labeler side ------------------------------------------------------

    def _task_id(self, message: Message) -> str:
        task_id = self._data(message).get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise _field_error(message, "task_id must be a non-empty string")
        return task_id

    async def _on_label(self, conn: Connection, message: Message) -> None:
        received = time.perf_counter()
        room, data = message[TO_ROOM], self._data(message)
        task_id = self._task_id(message)
        if "answer" not in data:
            raise _field_error(message, "answer is missing")
        seconds = data.get("seconds")
        if seconds is not None and (not is_finite_number(seconds) or seconds < 0):
            raise _field_error(message, "seconds must be a non-negative number")
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

    _handlers: ClassVar[dict[str, Handler]] = {
        MessageType.FEEDBACK_REQUEST: _on_request,
        MessageType.FEEDBACK_LABEL: _on_label,
        MessageType.FEEDBACK_ACK: _on_ack,
        MessageType.FEEDBACK_SKIP: _on_skip,
        MessageType.FEEDBACK_CANCEL: _on_cancel,
        MessageType.FEEDBACK_RESCORE: _on_rescore,
        MessageType.FEEDBACK_HISTORY: _on_history,
    }

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

    # -- background --------------------------------------------------------

    async def _expire_leases(self) -> None:
        interval = max(0.02, min(self.lease_seconds / 4, 5.0))
        while True:
            await asyncio.sleep(interval)
            try:
                expired = [self.desk.as_seen(t) for t in await self.store.expire(now=self.clock())]
                if self.metrics is not None:
                    self.metrics.leases_expired(len(expired))
                rooms: dict[str, list[Task]] = {}
                for task in expired:
                    self._forget(task, idle=True)
                    rooms.setdefault(task.request.room, []).append(task)
                for room, tasks in rooms.items():
                    self._touch(room)
                    self._announce(room, ended=tasks, count=len(tasks))
                    await self._fill_room(room, budget=len(tasks))
            except StoreError as exc:
                log.warning("lease expiry failed, retrying: %s", exc)

    # -- several nodes -----------------------------------------------------
    # With the Redis broker, the services of the other nodes hear of every
    # change to a room's queue: work to hand to their labelers, leases this
    # node ended (expired) or the requester canceled that a labeler there holds.

    def _announce(self, room: str, *, count: int, ended: Iterable[Task] = (),
                  canceled: Iterable[Task] = ()) -> None:
        """`count`: how many tasks the change can have made claimable (that many
        labelers are asked on the other nodes, not all of them)."""
        self.hub.broker.signal(QUEUE_SIGNAL, {"room": room, "count": count,
                                              "ended": [t.task_id for t in ended],
                                              "canceled": [t.task_id for t in canceled]})

    def _on_signal(self, topic: str, data: dict[str, Any]) -> None:
        if topic == PRESENCE_SIGNAL:
            for changed in self.presence.heard(data):
                self._touch(changed)
            return
        room = data.get("room")
        if topic != QUEUE_SIGNAL or not isinstance(room, str) or not self.owns(room):
            return
        for task_id in _task_ids(data.get("ended")):
            task = self._tasks.get(task_id)
            if task is not None:  # its lease ran out, as if it had expired here
                self._forget(task, idle=True)
        self._withdrawn.setdefault(room, []).extend(
            self._tasks[t] for t in _task_ids(data.get("canceled")) if t in self._tasks)
        count = data.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            count = None  # a node that does not say: everyone hungry is asked
        before = self._stale.get(room, 0)
        self._stale[room] = None if count is None or before is None else before + count
        if room not in self._refilling:
            self._refilling.add(room)
            self._spawn(self._refill(room))

    async def _refill(self, room: str) -> None:
        """Top up this node's labelers after changes elsewhere; a burst of signals
        (many requests at once) costs a few runs, not one each."""
        try:
            while room in self._stale:
                budget = self._stale.pop(room)
                await self._withdraw(self._withdrawn.pop(room, []))
                self._touch(room)
                if budget != 0:
                    await self._fill_room(room, budget=budget)
        except StoreError as exc:
            log.warning("could not hand out the tasks of %s: %s", room, exc)
        finally:
            self._refilling.discard(room)

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _data(message: Message) -> dict[str, Any]:
        data = message.get(DATA, {})
        if not isinstance(data, dict):
            raise _field_error(message, "DATA must be an object")
        return data
