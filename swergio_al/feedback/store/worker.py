"""One thread that runs a store's blocking calls in order, for an asyncio caller.

Like a one-worker ThreadPoolExecutor, with one difference that matters under
load: calls queued while the thread is busy are taken as one batch and their
results go back to the event loop in one wake-up. A busy store then costs the
loop one thread hand-off per batch instead of one per call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

Job = tuple[Callable[[], Any], "asyncio.Future[Any] | None", asyncio.AbstractEventLoop]
Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def settle(outcomes: list[Outcome]) -> None:
    """Hand each outcome to its future (on the loop that waits for them)."""
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class StoreThread:
    def __init__(self, name: str) -> None:
        self._jobs: list[Job] = []
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def post(self, fn: Callable[[], Any], future: asyncio.Future[Any] | None,
             loop: asyncio.AbstractEventLoop) -> None:
        """Queue `fn()`; its outcome settles `future` (when given) on `loop`."""
        with self._ready:
            if self._stopping:
                raise RuntimeError("the store thread is stopping")
            self._jobs.append((fn, future, loop))
            self._ready.notify()

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread (blocks; call it off the loop)."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join()

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._jobs and not self._stopping:
                    self._ready.wait()
                if not self._jobs:
                    return
                batch, self._jobs = self._jobs, []
            replies: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
            for fn, future, loop in batch:
                result: Any = None
                error: BaseException | None = None
                try:
                    result = fn()
                except Exception as exc:  # handed to the caller, who decides
                    error = exc
                if future is not None:
                    replies.setdefault(loop, []).append((future, result, error))
            for loop, outcomes in replies.items():
                try:
                    loop.call_soon_threadsafe(settle, outcomes)
                except RuntimeError:  # that loop is closed: nobody is waiting any more
                    pass
