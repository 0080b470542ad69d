"""Gold questions and adaptive overlap: the FeedbackService's label-quality desk.

Gold questions are requests with a known answer (``"gold": answer`` in the
FEEDBACK/REQUEST). They are stored in the room's gold room (``<room>/.gold``,
which no client can use: the service refuses requests and labels sent there
and gives labelers who join it no tasks) with room for every labeler, so the
store's own rule hands each one to a labeler at most once. The service mixes
them into each labeler's stream: their first task and then every
``1/gold_rate``-th is a gold question while any is left for them. A gold
answer is committed and acknowledged like any label but never delivered to the
model; it measures the labeler's accuracy, which seeds the room's Dawid–Skene.

Another node's gold questions: a room this node does not know to have any is
looked at now and then, by a labeler's claim on one of their gold turns (at most
every `LOOK_SECONDS` per room); a gold question found makes the room known.

Adaptive requests (``"adaptive": true`` with overlap k) are stored with overlap
1 and k kept with the request; after each of their labels the room's
`AdaptiveRoom` decides whether one more answer is needed, and the service raises
the request's overlap by one. That decision re-estimates the room's labelers now
and then (Dawid–Skene over every answer), so it runs in a worker thread, the
room's labels one after another in the order they came (`InOrder`), while the
event loop serves everyone else.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from functools import partial

from swergio_al.feedback.adaptive import ADAPTIVE_KEY, AdaptiveRoom, OverlapPolicy
from swergio_al.feedback.off_loop import InOrder
from swergio_al.feedback.records import FeedbackRequest, Label, Task
from swergio_al.feedback.room_quality import (
    GOLD_KEY,
    base_room,
    consensus_of,
    gold_accuracy,
    gold_room,
    is_gold_room,
    room_labels,
)
from swergio_al.feedback.store import Store

# How often (per room, at most) a labeler's gold turn looks for gold questions in a
# room this node does not know to have any: another node may have stored some.
LOOK_SECONDS = 2.0


__all__ = ["GOLD_KEY", "QualityDesk", "base_room", "gold_room", "is_gold_room"]


@dataclass
class _Adaptive:
    """A room with adaptive requests: its state, built from the store on first use, and
    the worker-thread queue every call about it goes through."""

    loading: asyncio.Lock = field(default_factory=asyncio.Lock)
    state: AdaptiveRoom | None = None
    calls: InOrder = field(default_factory=InOrder)


class QualityDesk:
    def __init__(self, store: Store, *, gold_rate: float = 0.1, max_overlap: int = 100,
                 policy: OverlapPolicy | None = None) -> None:
        if not 0 <= gold_rate <= 1:
            raise ValueError(f"gold_rate must be within 0..1, got {gold_rate}")
        self.store = store
        self.gold_every = round(1 / gold_rate) if gold_rate else 0
        self.max_overlap = max_overlap
        self.policy = policy or OverlapPolicy()
        self._handed: dict[tuple[str, str], int] = {}  # (room, labeler) -> tasks handed
        self._adaptive: dict[str, _Adaptive] = {}  # rooms with adaptive requests
        # Rooms with gold questions (submitted here, stored before this start, or found
        # since): there every gold turn claims one, while any is left for the labeler.
        self.gold_rooms: set[str] = set()
        # Elsewhere gold turns look now and then: when each room was last looked at,
        # and each labeler's last gold turn there with whether it looked.
        self._looked: dict[str, float] = {}
        self._prune_at = 64
        self._turns: dict[tuple[str, str], tuple[int, bool]] = {}

    async def load(self) -> None:
        """Learn which rooms have gold questions (at start)."""
        self.gold_rooms.update(base_room(r) for r in await self.store.rooms() if is_gold_room(r))

    # -- requests ------------------------------------------------------------

    def prepare(self, request: FeedbackRequest) -> FeedbackRequest:
        """A gold question moves to the gold room with room for every labeler; an
        adaptive request starts with one slot and keeps its k."""
        if GOLD_KEY in request.extra:
            self.gold_rooms.add(request.room)
            return replace(request, room=gold_room(request.room), overlap=self.max_overlap)
        if request.extra.get(ADAPTIVE_KEY) is True and request.overlap > 1:
            return replace(request, overlap=1,
                           extra={**request.extra, ADAPTIVE_KEY: request.overlap})
        return request

    # -- handing out ---------------------------------------------------------

    def gold_due(self, room: str, labeler: str) -> bool:
        """Is the labeler's next task in `room` a gold question (if one is left)?"""
        if not self.gold_every:
            return False
        turn = self._handed.get((room, labeler), 0)
        if turn % self.gold_every:
            return False
        return room in self.gold_rooms or self._look(room, labeler, turn)

    def _look(self, room: str, labeler: str, turn: int) -> bool:
        """Should this gold turn look for gold questions another node may have stored?"""
        last = self._turns.get((room, labeler))
        if last is not None and last[0] == turn:
            # Asked again about the same turn: after the commit of their label, the fill
            # that follows (it claims); at their first turn, a later fill (it does not).
            return last[1] and turn > 0
        now = time.monotonic()
        look = now - self._looked.get(room, -LOOK_SECONDS) >= LOOK_SECONDS
        self._turns[(room, labeler)] = (turn, look)
        if look:
            self._looked[room] = now
            if len(self._looked) > self._prune_at:  # an old entry says what no entry says
                self._looked = {r: t for r, t in self._looked.items()
                                if now - t < LOOK_SECONDS}
                self._prune_at = 2 * len(self._looked) + 64
        return look

    def handed(self, task: Task) -> None:
        key = (base_room(task.request.room), task.labeler)
        self._handed[key] = self._handed.get(key, 0) + 1
        if GOLD_KEY in task.request.extra:  # found by a look, perhaps
            self.gold_rooms.add(key[0])

    def left(self, room: str, labeler: str) -> None:
        self._handed.pop((room, labeler), None)
        self._turns.pop((room, labeler), None)

    @staticmethod
    def as_seen(task: Task) -> Task:
        """A gold task as the labeler sees it: in the room they joined."""
        if not is_gold_room(task.request.room):
            return task
        return replace(task, request=replace(task.request, room=base_room(task.request.room)))

    # -- after a label -------------------------------------------------------

    async def after_label(self, label: Label, request: FeedbackRequest) -> int | None:
        """The new overlap of the label's request, when it needs one more answer."""
        room = base_room(label.room)
        if is_gold_room(label.room):
            adaptive = self._adaptive.get(room)
            if adaptive is not None:
                measured = await gold_accuracy(self.store, room)
                async with adaptive.loading:
                    state = adaptive.state
                if state is not None:
                    await adaptive.calls.run(partial(state.measured, measured))
            return None
        limit = label.extra.get(ADAPTIVE_KEY)
        if not isinstance(limit, int) or isinstance(limit, bool):
            return None
        adaptive = self._adaptive.setdefault(room, _Adaptive())
        async with adaptive.loading:  # the first label builds it; the next ones wait
            state = adaptive.state
            if state is None:
                labels, gold = await room_labels(self.store, room), \
                    await gold_accuracy(self.store, room)
                consensus = await adaptive.calls.run(partial(consensus_of, labels, gold))
                state = adaptive.state = AdaptiveRoom(consensus, self.policy)
        return await adaptive.calls.run(partial(state.after_label, label, request, limit))
