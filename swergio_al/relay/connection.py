"""One client's side of the relay, whatever transport it came in on."""

from __future__ import annotations

import asyncio
import collections
import logging
from abc import ABC, abstractmethod
from enum import Enum

from swergio_al.protocol import CloseCode, Role

log = logging.getLogger(__name__)


class ConnectionState(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Connection(ABC):
    """A client of the Hub: a name, a role, its rooms, and a bounded outbox.

    Delivery never waits on the receiver: frames go into the outbox and one
    short-lived writer task per busy connection drains it. A receiver whose
    outbox overflows is too slow to keep up and is closed with 1013, so one
    stuck client never slows the others (see README, "Slow consumers").
    """

    transport = "abstract"

    def __init__(self, *, remote: str, outbox_limit: int) -> None:
        self.remote = remote
        self.name: str | None = None
        self.role = Role.COMPONENT
        self.rooms: set[str] = set()
        self.state = ConnectionState.OPEN
        self.dropped = 0
        self._outbox: collections.deque[str] = collections.deque()
        self._outbox_limit = outbox_limit
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self.state is ConnectionState.OPEN

    def deliver(self, text: str) -> None:
        """Queue one encoded frame for this client; never blocks."""
        if not self.is_open:
            return
        if len(self._outbox) >= self._outbox_limit:
            self.dropped += 1
            log.warning("closing %s (%s): outbox full (%d frames), receiver too slow",
                        self.name, self.remote, self._outbox_limit)
            self.close_soon(CloseCode.TRY_AGAIN_LATER, "too slow: outbound queue full")
            return
        self._outbox.append(text)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._outbox and self.is_open:
                await self.write(self._outbox.popleft())
        except (ConnectionError, RuntimeError) as exc:
            log.debug("write to %s failed: %s", self.name, exc)
            self.close_soon(CloseCode.GOING_AWAY, "write failed")
        finally:
            self._writer = None

    async def flush(self) -> None:
        """Wait until everything queued so far has been written."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    def close_soon(self, code: CloseCode, reason: str) -> None:
        """Start closing; safe to call from delivery paths and more than once."""
        if self.state is not ConnectionState.OPEN:
            return
        self.state = ConnectionState.CLOSING
        self._outbox.clear()
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def wait_closed(self) -> None:
        """Await a close started by `close_soon` (the endpoint calls this on its way out)."""
        if self._closer is not None:
            await self._closer

    async def _close(self, code: CloseCode, reason: str) -> None:
        try:
            await self.close(code, reason)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("close of %s failed: %s", self.name, exc)
        finally:
            self.state = ConnectionState.CLOSED

    @abstractmethod
    async def write(self, text: str) -> None:
        """Send one encoded frame."""

    @abstractmethod
    async def close(self, code: CloseCode, reason: str) -> None:
        """Close the transport with a close code (where the transport has them)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.remote} {self.state.value}>"
