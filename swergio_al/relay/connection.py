"""One client's side of the relay, whatever transport it came in on."""

from __future__ import annotations

import asyncio
import collections
import logging
from abc import ABC, abstractmethod
from enum import Enum

from swergio_al.protocol import CloseCode, ProtocolError, Role
from swergio_al.relay.access import Credential

log = logging.getLogger(__name__)

#: How long a close handshake may take before the transport is simply dropped.
DEFAULT_CLOSE_TIMEOUT = 5.0
#: Outbox length at which `deliver` writes synchronously instead of waiting for the writer.
SYNC_WRITE_AT = 64
#: Bytes of queued frames put into one socket write, and the unsent bytes above
#: which a peer counts as behind (its frames then wait in the bounded outbox).
BATCH_BYTES = 64 * 1024


class ConnectionState(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_OPEN = ConnectionState.OPEN


class Connection(ABC):
    """A client of the Hub: a name, a role, its rooms, and a bounded outbox.

    Delivery never waits on the receiver: frames go into the outbox and one
    short-lived writer task per busy connection drains it. A receiver whose
    outbox overflows is too slow to keep up and is closed with 1013, so one
    stuck client never slows the others (docs/protocol.md, "Slow consumers"). A
    close handshake that the peer does not complete within `close_timeout`
    (a client that stopped reading cannot even take the close frame) ends
    with the transport aborted, so a stuck peer never holds server memory.
    """

    transport = "abstract"

    def __init__(self, *, remote: str, outbox_limit: int,
                 close_timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        self.remote = remote
        self.name: str | None = None
        self.role = Role.COMPONENT
        self.credential = Credential.NONE  # what it showed at REGISTER (the takeover rule)
        self.rooms: set[str] = set()
        self.state = ConnectionState.OPEN
        #: The code this side closed with (None while open or when the peer closed first).
        self.close_code: CloseCode | None = None
        self.dropped = 0
        self.close_timeout = close_timeout
        self._outbox: collections.deque[str] = collections.deque()
        self._outbox_limit = outbox_limit
        self._write_at = min(SYNC_WRITE_AT, outbox_limit)
        self._flush_soon: asyncio.Handle | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self.state is _OPEN

    def deliver(self, text: str) -> None:
        """Queue one encoded frame for this client; never blocks."""
        if self.state is not _OPEN:
            return
        outbox = self._outbox
        if len(outbox) >= self._write_at:
            # One incoming read can hold hundreds of frames, all routed before the
            # writer task gets a turn: hand what the socket can take over now, so
            # the outbox only ever holds frames the receiver is really behind on.
            self.write_now(outbox)
        if len(outbox) >= self._outbox_limit:
            self.dropped += 1
            log.warning("closing %s (%s): outbox full (%d frames), receiver too slow",
                        self.name, self.remote, self._outbox_limit)
            self.close_soon(CloseCode.TRY_AGAIN_LATER, "too slow: outbound queue full")
            return
        outbox.append(text)
        if self._flush_soon is None and self._writer is None:
            # Written once the current batch of incoming frames has been routed, so
            # frames routed together leave together; a plain callback, as a task
            # (a coroutine to wait on the socket) is needed only when the peer is behind.
            self._flush_soon = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = None
        outbox = self._outbox
        if self.state is not _OPEN or not outbox:
            return
        self.write_now(outbox)
        if outbox and self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        outbox = self._outbox
        try:
            while outbox and self.state is _OPEN:
                await self.write_from(outbox)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("write to %s failed: %s", self.name, exc)
            self.close_soon(CloseCode.GOING_AWAY, "write failed")
        finally:
            self._writer = None

    async def flush(self) -> None:
        """Wait until everything queued so far has been written."""
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush()
        while self._writer is not None:
            await asyncio.shield(self._writer)

    def close_soon(self, code: CloseCode, reason: str) -> None:
        """Start closing; safe to call from delivery paths and more than once."""
        if self.state is not _OPEN:
            return
        self.state = ConnectionState.CLOSING
        self.close_code = code
        self._outbox.clear()
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def wait_closed(self) -> None:
        """Await a close started by `close_soon` and stop the writer (the endpoint
        calls this on its way out, so no task outlives its connection)."""
        if self._closer is not None:
            await self._closer
        self.state = ConnectionState.CLOSED
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        writer = self._writer
        if writer is not None:
            writer.cancel()
            try:
                await writer
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # we are being cancelled ourselves, not just the writer

    async def _close(self, code: CloseCode, reason: str) -> None:
        try:
            async with asyncio.timeout(self.close_timeout):
                await self.close(code, reason)
        except TimeoutError:
            log.info("close handshake with %s (%s) timed out; dropping the connection",
                     self.name, self.remote)
            self.abort()
        except (ConnectionError, RuntimeError) as exc:
            log.debug("close of %s failed: %s", self.name, exc)
        finally:
            self.state = ConnectionState.CLOSED

    @abstractmethod
    async def write(self, text: str) -> None:
        """Send one encoded frame."""

    def batch_transport(self) -> asyncio.WriteTransport | None:
        """The socket that whole batches of frames may be written to, if any."""
        return None

    def encode_frame(self, text: str) -> bytes:
        """One frame as bytes on the wire (needed with `batch_transport`)."""
        raise NotImplementedError

    def write_now(self, outbox: collections.deque[str]) -> None:
        """Without waiting, send frames from the front of `outbox` in one socket
        write, as many as the transport can take right away (none when its peer
        is behind: they stay in the outbox, where the slow-consumer rule sees them)."""
        transport = self.batch_transport()
        if (transport is None or transport.is_closing()
                or transport.get_write_buffer_size() >= BATCH_BYTES):
            return
        batch: list[bytes] = []
        size = 0
        while outbox and size < BATCH_BYTES:
            frame = self.encode_frame(outbox.popleft())
            batch.append(frame)
            size += len(frame)
        transport.write(b"".join(batch))

    async def write_from(self, outbox: collections.deque[str]) -> None:
        """Send at least the first frame of `outbox`, removing what was sent."""
        before = len(outbox)
        self.write_now(outbox)
        if len(outbox) == before:
            await self.write(outbox.popleft())  # behind: `write` waits for the socket

    @abstractmethod
    def refuse(self, error: ProtocolError) -> None:
        """Answer a message this client sent that the server refused, as its protocol can."""

    @abstractmethod
    async def close(self, code: CloseCode, reason: str) -> None:
        """Close the transport with a close code (where the transport has them)."""

    def abort(self) -> None:  # noqa: B027  (optional hook, not abstract)
        """Drop the transport at once, discarding unsent data (peer stopped reading)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.remote} {self.state.value}>"
