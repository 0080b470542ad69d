"""Calls of one kind that arrive while one is under way go together in the next.

A model streams its requests and ACKs (relay/pipeline.py), each a round trip to
PostgreSQL when sent alone. A `Coalescer` sends the first at once and, while it
is under way, gathers the ones that arrive; they then go as one batch, one round
trip, in the order they came. Under load batches grow and round trips per call
fall; alone, a call costs what it did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class Coalescer(Generic[A, R]):
    def __init__(self, run: Callable[[list[A]], Awaitable[Sequence[R | BaseException]]],
                 *, most: int = 500) -> None:
        self._run = run
        self.most = most  # calls in one batch at the most
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def call(self, argument: A) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((argument, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="store-batches")
        return await future

    async def close(self) -> None:
        """Wait until everything handed in has been sent (the store is closing)."""
        if self._sender is not None:
            await asyncio.wait([self._sender])

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
        finally:  # cancelled (a shutdown): nobody may wait forever
            self._sender = None
            stranded, self._waiting = batch + self._waiting, []
            for _, future in stranded:
                if not future.done():
                    future.cancel()
