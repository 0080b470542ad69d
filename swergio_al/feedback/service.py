"""FeedbackService: the Hub's owner of feedback rooms.

Requests are stored and queued, never broadcast; each labeler holds at most
`prefetch` leased tasks; a label is committed before anyone hears of it, then
acknowledged to its labeler and delivered to the requester, who acks it in turn.

Here: the lifecycle, the Hub's `RoomService` (members joining and leaving) and
`handle`, which routes each frame to its handler, pipelines a model's writes
(relay/pipeline.py) and turns what the store refused into ERROR frames. The
handlers and the rest are mixins, one concern each, whose attributes
`__init__` sets: a model's frames and its labels (model_side.py), a labeler's
frames (labeler_side.py), leases that end without a label (lease_returns.py),
queue changes told to and heard from other nodes (queue_signals.py), who gets
the next task (dispatch.py) and each room's figures (stats_broadcast.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import TYPE_CHECKING, Any, ClassVar

from swergio_al.feedback.crowd import Crowd, Seat
from swergio_al.feedback.gold import QualityDesk, is_gold_room
from swergio_al.feedback.kpi import kpi_record
from swergio_al.feedback.labeler_side import LabelerSide
from swergio_al.feedback.lease_returns import LeaseReturns
from swergio_al.feedback.model_side import MAX_OVERLAP, ModelSide
from swergio_al.feedback.presence import Presence
from swergio_al.feedback.records import (
    LimitReached,
    NotYourTask,
    StoreError,
    StoreUnavailable,
    Task,
    UnknownTask,
)
from swergio_al.feedback.stats_broadcast import StatsBroadcast
from swergio_al.feedback.store import Store
from swergio_al.protocol import (
    DATA,
    ID,
    TO_ROOM,
    TYPE,
    ErrorCode,
    Message,
    MessageType,
    ProtocolError,
    Role,
)
from swergio_al.relay.connection import Connection
from swergio_al.relay.hub import Hub
from swergio_al.relay.pipeline import PIPELINED_TYPES

if TYPE_CHECKING:
    from swergio_al.metrics import Metrics

log = logging.getLogger(__name__)

Handler = Callable[["FeedbackService", Connection, Message], Awaitable[None]]


class FeedbackService(ModelSide, LabelerSide, LeaseReturns, StatsBroadcast):
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

    _handlers: ClassVar[dict[str, Handler]] = {
        MessageType.FEEDBACK_REQUEST: ModelSide._on_request,
        MessageType.FEEDBACK_LABEL: LabelerSide._on_label,
        MessageType.FEEDBACK_ACK: ModelSide._on_ack,
        MessageType.FEEDBACK_SKIP: LabelerSide._on_skip,
        MessageType.FEEDBACK_CANCEL: ModelSide._on_cancel,
        MessageType.FEEDBACK_RESCORE: ModelSide._on_rescore,
        MessageType.FEEDBACK_HISTORY: ModelSide._on_history,
    }
