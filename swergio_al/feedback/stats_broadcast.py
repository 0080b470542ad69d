"""FEEDBACK/STATS: a feedback room's figures, sent to its members on this node.

`StatsBroadcast` is a mixin of `FeedbackService`, which sets the attributes
declared here. A change marks its room; the broadcast loop sends each marked
room's figures at once, then at most every `stats_interval`: to every watcher
(model, dashboard) each time, to labelers only when the figures changed, a few
per tick in turn, so the cost per tick does not grow with the crowd.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from swergio_al.feedback.crowd import Crowd
from swergio_al.feedback.presence import Presence
from swergio_al.feedback.records import StoreError
from swergio_al.feedback.store import Store
from swergio_al.protocol import DATA, ID, TO_ROOM, TYPE, MessageType, encode, new_id
from swergio_al.relay.connection import Connection
from swergio_al.relay.hub import Hub

if TYPE_CHECKING:
    from swergio_al.metrics import Metrics

log = logging.getLogger(__name__)

# Labelers sent a room's FEEDBACK/STATS per tick, in turn: a crowd of thousands
# costs the same per tick as a hundred (each sees fresh figures every few seconds).
STATS_LABELERS_PER_TICK = 100


class StatsBroadcast:
    """Each feedback room's figures to its members, throttled."""

    # Set by FeedbackService.__init__.
    hub: Hub
    store: Store
    presence: Presence
    clock: Callable[[], float]
    stats_interval: float
    metrics: Metrics | None
    _crowds: dict[str, Crowd]
    _watchers: dict[str, set[Connection]]
    _stats_owed: dict[str, int]
    _last_stats: dict[str, dict[str, Any]]
    _dirty: set[str]
    _dirty_event: asyncio.Event

    def _touch(self, room: str) -> None:
        self._dirty.add(room)
        self._dirty_event.set()

    async def _broadcast_stats(self) -> None:
        """FEEDBACK/STATS to each changed room at once, then at most every interval.

        Every watcher (model, dashboard) gets each; labelers get them in turn, a
        few per tick, so the cost per tick does not grow with the crowd.
        """
        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            rooms, self._dirty = self._dirty, set()
            for room in rooms:
                if room not in self.hub.rooms:  # nobody left to tell (names are anyone's)
                    self._stats_owed.pop(room, None)
                    self._last_stats.pop(room, None)
                    continue
                try:
                    stats = await self.room_stats(room)
                except StoreError as exc:
                    log.warning("stats for %s failed: %s", room, exc)
                    continue
                self._send_stats(room, stats)
            await asyncio.sleep(self.stats_interval)

    def _send_stats(self, room: str, stats: dict[str, Any]) -> None:
        # Local members only: every node sends its own (from the shared store),
        # so with several nodes nobody gets two streams of figures.
        text = self._stats_frame(room, stats)
        sent = 0
        for conn in self._watchers.get(room, ()):
            conn.deliver(text)
            sent += 1
        crowd = self._crowds.get(room)
        if crowd is not None:
            # New figures are owed to every labeler; the same ones only to those
            # whose turn has not come yet.
            owed = len(crowd) if stats != self._last_stats.get(room) else \
                self._stats_owed.get(room, 0)
            for seat in crowd.stats_turn(min(owed, STATS_LABELERS_PER_TICK)):
                seat.conn.deliver(text)
                sent += 1
                owed -= 1
            if owed > 0:  # the rest get their turn on the next ticks
                self._stats_owed[room] = owed
                self._touch(room)
            else:
                self._stats_owed.pop(room, None)
        self._last_stats[room] = stats
        self._count_stats(sent)

    @staticmethod
    def _stats_frame(room: str, stats: dict[str, Any]) -> str:
        return encode({ID: new_id(), TYPE: MessageType.FEEDBACK_STATS.value, TO_ROOM: room,
                       DATA: stats})

    def _count_stats(self, sent: int) -> None:
        self.hub.delivered += sent
        if self.metrics is not None:
            self.metrics.delivered(MessageType.FEEDBACK_STATS.value, sent)

    async def room_stats(self, room: str) -> dict[str, Any]:
        stats = await self.store.stats(room, now=self.clock())
        labelers = self.presence.online(room)
        return {"queued": stats.queued, "in_flight": stats.in_flight, "labeled": stats.labeled,
                "labelers": labelers, "labels_per_minute": stats.labels_per_minute}
