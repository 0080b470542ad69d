"""Labelers online per feedback room, counted over every node.

Each node knows its own labelers (the Hub's members). With a distributed
broker, every node also tells the others its counts: at once (coalesced) when
a labeler comes or goes, and as a heartbeat, so a node that died stops counting
after a few missed beats. One process (the memory broker) has nobody to tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from swergio_al.protocol import Role
from swergio_al.relay.hub import Hub

PRESENCE_SIGNAL = "feedback/presence"


class Presence:
    def __init__(self, hub: Hub, owns: Callable[[str], bool], *, heartbeat: float = 10.0,
                 coalesce: float = 0.2, clock: Callable[[], float] = time.monotonic,
                 count_local: Callable[[str], int] | None = None) -> None:
        self.hub = hub
        self.owns = owns
        # How many labelers a room has on this node, where the caller keeps count
        # (the service does, in O(1)); by default, counted among the room's members.
        self.count_local = count_local
        self.heartbeat = heartbeat
        self.coalesce = coalesce
        self.clock = clock
        self.node = uuid.uuid4().hex
        # node id -> (when heard, {room: labelers there})
        self._remote: dict[str, tuple[float, dict[str, int]]] = {}
        self._changed = asyncio.Event()

    def local(self, room: str) -> int:
        if self.count_local is not None:
            return self.count_local(room)
        return sum(1 for member in self.hub.members(room) if member.role is Role.LABELER)

    def online(self, room: str) -> int:
        """This node's labelers in `room` plus those other nodes reported lately."""
        fresh = self.clock() - 3 * self.heartbeat
        remote = sum(rooms.get(room, 0) for heard, rooms in self._remote.values()
                     if heard >= fresh)
        return self.local(room) + remote

    def changed(self) -> None:
        """A labeler joined or left here: tell the other nodes soon."""
        if self.hub.broker.distributed:
            self._changed.set()

    def heard(self, data: dict[str, Any]) -> set[str]:
        """Another node's counts; returns the rooms whose total may have changed."""
        node, rooms = data.get("node"), data.get("rooms")
        if not isinstance(node, str) or node == self.node or not isinstance(rooms, dict):
            return set()
        counts = {room: n for room, n in rooms.items()
                  if isinstance(room, str) and self.owns(room) and type(n) is int and n > 0}
        _, before = self._remote.get(node, (0.0, {}))
        if data.get("gone"):
            self._remote.pop(node, None)
            counts = {}
        else:
            self._remote[node] = (self.clock(), counts)
        return {room for room in before.keys() | counts.keys()
                if before.get(room) != counts.get(room)}

    def _counts(self) -> dict[str, int]:
        counts = {room: self.local(room) for room in list(self.hub.rooms) if self.owns(room)}
        return {room: n for room, n in counts.items() if n}

    async def run(self) -> None:
        """Publish this node's counts on change (coalesced) and every heartbeat."""
        broker = self.hub.broker
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self.heartbeat)
                self._changed.clear()
                if broker.distributed:
                    broker.signal(PRESENCE_SIGNAL, {"node": self.node, "rooms": self._counts()})
                await asyncio.sleep(self.coalesce)
        finally:
            if broker.distributed:
                broker.signal(PRESENCE_SIGNAL, {"node": self.node, "rooms": {}, "gone": True})
