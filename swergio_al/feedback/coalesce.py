"""Calls of one kind that arrive while one is under way go together in the next.

A `Coalescer` sends the first call at once and, while it is under way, gathers
the ones that arrive; they then go as one batch, in the order they came. The
PostgreSQL store sends a model's streamed requests and ACKs this way, one round
trip a batch; `off_loop.InOrder` runs a room's slow quality calls this way, one
worker-thread hand-off a batch. Under load batches grow and round trips per call
fall; alone, a call costs what it did. With `lanes` above 1, that many batches
may be under way at once (for calls whose order does not matter): a call waits
only when every lane is busy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class Coalescer(Generic[A, R]):
    def __init__(self, run: Callable[[list[A]], Awaitable[Sequence[R | BaseException]]],
                 *, most: int = 500, lanes: int = 1) -> None:
        self._run = run
        self.most = most  # calls in one batch at the most
        self.lanes = lanes
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []
        self._senders: set[asyncio.Task[None]] = set()

    async def call(self, argument: A) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((argument, future))
        if len(self._senders) < self.lanes:
            sender = asyncio.create_task(self._send(), name="store-batches")
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await future

    @property
    def busy(self) -> bool:
        """Whether calls are queued or a batch is under way."""
        return bool(self._waiting or self._senders)

    async def close(self) -> None:
        """Wait until everything handed in has been sent (the store is closing)."""
        if self._senders:
            await asyncio.wait(list(self._senders))

    async def _send(self) -> None:
        batch: list[tuple[A, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:self.most], self._waiting[self.most:]
                try:
                    # `run` gives one outcome per call, in order: a value or its exception.
                    outcomes: Sequence[R | BaseException] = await self._run(
                        [argument for argument, _ in batch])
                except Exception as exc:  # the whole batch failed: each call raises it
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller went away
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                batch = []
        finally:
            # Out of the lanes now, not when the done-callback runs: a call arriving
            # in between would otherwise find every lane taken and wait forever.
            self._senders.discard(asyncio.current_task())
            stranded = batch  # cancelled (a shutdown): nobody may wait forever
            if not self._senders:  # no other lane takes the rest
                stranded, self._waiting = stranded + self._waiting, []
            for _, future in stranded:
                if not future.done():
                    future.cancel()
