"""Frames whose handling may overlap: a model's requests and acks.

A connection's frames are handled one at a time, in order. A model streams
FEEDBACK/REQUEST and FEEDBACK/ACK frames, each a store write; waiting for each
commit before reading the next frame capped a model at one store round trip per
frame, and with it the whole room (about 500 labels/s, whatever the crowd).

Those frames are started in order instead and finish in tasks of their own: each
one hands its write to the store before it first waits, so writes still reach
the store in frame order and share its group commits. Any other frame from the
connection first waits for all of them (the Hub sees to it), so a CANCEL sees the
REQUESTs sent before it and every ERROR they earn comes before the answer to a
later frame; so does a REQUEST for a sample whose earlier REQUEST is still in
flight. At most `depth` frames per connection are in flight: a model that
outruns the store is slowed down, not buffered without bound.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from swergio_al.protocol import MessageType
from swergio_al.relay.connection import Connection

DEPTH = 256
#: The frame types a room service may take this way; any other frame waits.
PIPELINED_TYPES = frozenset({MessageType.FEEDBACK_REQUEST, MessageType.FEEDBACK_ACK})


class Pipe:
    """The writes in flight of one connection."""

    __slots__ = ("keys", "tasks")

    def __init__(self) -> None:
        self.tasks: deque[asyncio.Task[None]] = deque()
        self.keys: Counter[Hashable] = Counter()


class Pipelines:
    def __init__(self, depth: int = DEPTH) -> None:
        self.depth = depth
        self._pipes: dict[Connection, Pipe] = {}

    def __len__(self) -> int:
        """Connections with writes in flight (none once everything settled)."""
        return len(self._pipes)

    def __contains__(self, conn: Connection) -> bool:
        return conn in self._pipes

    async def start(self, conn: Connection, step: Coroutine[Any, Any, None], *,
                    spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
                    key: Hashable | None = None) -> None:
        """Run `step` (it must not raise: it answers its own errors) in a task made by
        `spawn` (its owner, who stops it); `key`: what it writes, which no other
        step in flight may write too."""
        pipe = self._pipes.get(conn)
        if pipe is not None and (len(pipe.tasks) >= self.depth or
                                 (key is not None and pipe.keys[key])):
            try:
                await self.drain(conn)
            except BaseException:  # cancelled (a forced shutdown): `step` never runs
                step.close()
                raise
            pipe = self._pipes.get(conn)
        if pipe is None:
            pipe = self._pipes[conn] = Pipe()
        task = spawn(step)
        pipe.tasks.append(task)
        if key is not None:
            pipe.keys[key] += 1
        task.add_done_callback(lambda done: self._settled(conn, pipe, done, key))

    async def drain(self, conn: Connection) -> None:
        """Wait until every write `conn` started has finished."""
        pipe = self._pipes.get(conn)
        if pipe is not None and pipe.tasks:
            # wait(), not gather(): if this frame's handler is cancelled (its
            # connection closed), the writes already under way still finish.
            await asyncio.wait(list(pipe.tasks))

    def _settled(self, conn: Connection, pipe: Pipe, task: asyncio.Task[None],
                 key: Hashable | None) -> None:
        if pipe.tasks and pipe.tasks[0] is task:
            pipe.tasks.popleft()
        else:
            pipe.tasks.remove(task)
        if key is not None:
            pipe.keys[key] -= 1
            if not pipe.keys[key]:
                del pipe.keys[key]
        if not pipe.tasks and self._pipes.get(conn) is pipe:
            del self._pipes[conn]
