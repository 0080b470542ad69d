"""Slow calls about one thing (a room's label quality), run in order off the event loop.

A call that may take a tenth of a second (Dawid–Skene over a large room) must not
run on the event loop: everything the server does would wait for it. `InOrder`
runs such calls in a worker thread (the loop's default executor), one batch at a
time (a `Coalescer`), so calls about the same state never overlap and keep the
order they were made in; the calls made while a batch runs go together in the
next batch, and their results come back to the loop in one wake-up.

Nothing here outlives the calls: the batch in hand ends once its calls have run,
and each call is awaited by whoever made it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from swergio_al.feedback.coalesce import Coalescer

T = TypeVar("T")


def _run(calls: list[Callable[[], Any]]) -> list[Any]:
    outcomes: list[Any] = []
    for call in calls:
        try:
            outcomes.append(call())
        except Exception as exc:  # it belongs to that call's caller, not to the batch
            outcomes.append(exc)
    return outcomes


async def _in_a_thread(calls: list[Callable[[], Any]]) -> list[Any]:
    return await asyncio.get_running_loop().run_in_executor(None, _run, calls)


class InOrder:
    """Calls run one after another in a worker thread, never two at once."""

    def __init__(self) -> None:
        self._calls: Coalescer[Callable[[], Any], Any] = Coalescer(_in_a_thread)

    @property
    def busy(self) -> bool:
        """Whether calls are queued or running."""
        return self._calls.busy

    async def run(self, call: Callable[[], T]) -> T:
        """`call()` in the worker thread, after every call queued before it."""
        return await self._calls.call(call)
