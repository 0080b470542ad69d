"""Python's cyclic garbage collector, paced for a server holding many connections.

CPython 3.11 runs a full (generation 2) collection whenever the objects that
survived the young collections reach a quarter of all long-lived ones. A server
with 2,000 labelers holds about a million objects, and every label keeps a few
alive for the seconds its labeler thinks. Measured at 1,000 labels/s: a full
collection every ~2 s, each 90-130 ms with the event loop stopped, which alone
put the p99 time to the next task at 500 ms.

While a server runs, full collections come on a timer instead (every
`full_gc_seconds`); the young generations are collected as before, so the
usual short-lived cycles (an exception and its traceback) are freed at once.
"""

from __future__ import annotations

import asyncio
import gc

# A generation-2 threshold the count of young collections never reaches.
_NEVER = 2**31 - 1

_apps = 0  # servers running in this process (tests run several)
_saved: tuple[int, int, int] = gc.get_threshold()


class PacedCollections:
    """Full collections every `every` seconds between `start` and `stop` (0: Python's own).

    `stop` does not wait for anything: it also runs when an asyncio generator
    owning it is closed at loop shutdown (a server that failed to start), where
    awaiting is not allowed; the timer only sleeps, so cancelling it is enough.
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self._timer: asyncio.Task[None] | None = None

    def start(self) -> None:
        global _apps, _saved
        if self.every <= 0 or self._timer is not None:
            return
        if _apps == 0:
            _saved = gc.get_threshold()
        _apps += 1
        young, middle, _ = _saved
        if young:  # 0: automatic collection is off, and stays so
            gc.set_threshold(young, middle, _NEVER)
        self._timer = asyncio.get_running_loop().create_task(self._collect(), name="full-gc")

    def stop(self) -> None:
        global _apps
        if self._timer is None:
            return
        self._timer.cancel()
        self._timer = None
        _apps -= 1
        if _apps == 0:
            gc.set_threshold(*_saved)

    async def _collect(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            if gc.isenabled():  # gc.disable() by whoever runs us is theirs to keep
                gc.collect()
