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
import contextlib
import gc
from collections.abc import AsyncIterator

# A generation-2 threshold the count of young collections never reaches.
_NEVER = 2**31 - 1

_apps = 0  # servers running in this process (tests run several)
_saved: tuple[int, int, int] = gc.get_threshold()


@contextlib.asynccontextmanager
async def paced_full_collections(every: float) -> AsyncIterator[None]:
    """Full collections every `every` seconds while this is entered (0: Python's own)."""
    global _apps, _saved
    if every <= 0:
        yield
        return
    if _apps == 0:
        _saved = gc.get_threshold()
    _apps += 1
    young, middle, _ = _saved
    if young:  # 0: automatic collection is off, and stays so
        gc.set_threshold(young, middle, _NEVER)
    timer = asyncio.create_task(_collect_every(every), name="full-gc")
    try:
        yield
    finally:
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
        _apps -= 1
        if _apps == 0:
            gc.set_threshold(*_saved)


async def _collect_every(every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if gc.isenabled():  # gc.disable() by whoever runs us is theirs to keep
            gc.collect()
