"""Running a component's script as a process: SIGTERM and Ctrl-C end it cleanly.

Process managers (the launcher among them) stop a component with SIGTERM; the
default action would kill it mid-frame, without the DISCONNECT that tells the
server it left on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_until_stopped(main: Coroutine[Any, Any, T]) -> T | None:
    """`asyncio.run(main)`, except that SIGTERM or Ctrl-C cancels `main` and returns None.

    Write `main` with `async with component:` so the cancellation closes the
    component properly (DISCONNECT sent, tasks ended); the process then exits
    normally, with the code the script chooses.
    """

    async def guarded() -> T | None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()

        def stop() -> None:
            # Once: Ctrl-C reaches every process of the terminal and a launcher then
            # sends SIGTERM too; a second cancel would cut short the clean-up the
            # first one started (a component closing its connection and session).
            if not stopping:
                stopping.append(True)
                task.cancel()

        stopping: list[bool] = []
        for signum in _STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
                loop.add_signal_handler(signum, stop)
        try:
            return await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            log.info("stopped by a signal")
            return None
        finally:
            for signum in _STOP_SIGNALS:
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(signum)

    return asyncio.run(guarded())
