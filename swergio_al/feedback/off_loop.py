"""Slow calls about one thing (a room's label quality), run in order off the event loop.

A call that may take a tenth of a second (Dawid–Skene over a large room) must not
run on the event loop: everything the server does would wait for it. `InOrder`
runs such calls in a worker thread (the loop's default executor), one batch at a
time, so calls about the same state never overlap and keep the order they were
made in; the calls made while a batch runs go together in the next batch, and
their results come back to the loop in one wake-up.

There is no task of its own to stop: each call is awaited by whoever made it, and
a batch starts only when a call is queued and ends once its calls have run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
Outcome = tuple[Any, BaseException | None]


def _run(calls: list[Callable[[], Any]]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for call in calls:
        try:
            outcomes.append((call(), None))
        except Exception as exc:  # it belongs to that call's caller, not to the batch
            outcomes.append((None, exc))
    return outcomes


def _fail(results: list[asyncio.Future[Any]], error: BaseException | None) -> None:
    for result in results:
        if result.done():
            continue
        if error is None:
            result.cancel()
        else:
            result.set_exception(error)


class InOrder:
    """Calls run one after another in a worker thread, never two at once."""

    def __init__(self) -> None:
        self._queued: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._batch: asyncio.Future[list[Outcome]] | None = None

    async def run(self, call: Callable[[], T]) -> T:
        """`call()` in the worker thread, after every call queued before it."""
        loop = asyncio.get_running_loop()
        result: asyncio.Future[T] = loop.create_future()
        self._queued.append((call, result))
        self._start(loop)
        return await result

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._batch is not None or not self._queued:
            return
        queued, self._queued = self._queued, []
        results = [result for _, result in queued]
        try:
            self._batch = loop.run_in_executor(None, _run, [call for call, _ in queued])
        except RuntimeError as exc:  # the executor is shut down: the loop is closing
            _fail(results, exc)
            return
        self._batch.add_done_callback(partial(self._finished, loop, results))

    def _finished(self, loop: asyncio.AbstractEventLoop, results: list[asyncio.Future[Any]],
                  batch: asyncio.Future[list[Outcome]]) -> None:
        self._batch = None
        if batch.cancelled() or batch.exception() is not None:  # not one call's failure
            _fail(results, None if batch.cancelled() else batch.exception())
        else:
            for result, (value, error) in zip(results, batch.result(), strict=True):
                if result.done():  # its caller was cancelled; the call ran all the same
                    continue
                if error is not None:
                    result.set_exception(error)
                else:
                    result.set_result(value)
        self._start(loop)  # what was queued meanwhile
