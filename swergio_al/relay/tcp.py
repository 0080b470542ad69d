"""A TCP listener speaking the framing of the original swergio 0.0.2 package.

Every message is a 10-byte ASCII header holding the UTF-8 byte length of the
body (left-justified, padded with spaces), then the body: one JSON object.
Connections feed the same Hub as /ws, so 0.0.2 clients share rooms with
WebSocket clients. They receive only what the 0.0.2 server would have sent:
never ERROR frames (a refused message is logged and dropped), no acks.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from swergio_al.protocol import (
    ID,
    SENT_BY,
    TYPE,
    CloseCode,
    ErrorCode,
    MessageType,
    ProtocolError,
    Role,
    decode,
    validate,
)
from swergio_al.relay.connection import DEFAULT_CLOSE_TIMEOUT, Connection
from swergio_al.relay.hub import Hub
from swergio_al.relay.limits import ConnectionCounter, TokenBucket

log = logging.getLogger(__name__)

HEADER_LENGTH = 10
READ_BYTES = 64 * 1024
_DIGITS = frozenset(b"0123456789")
# Refusals after which retrying cannot help: as on /ws the connection is closed
# (here without the ERROR frame a 0.0.2 client would not understand).
_CLOSING_REFUSALS = {ErrorCode.UNAUTHORIZED: CloseCode.UNAUTHORIZED,
                     ErrorCode.RATE_LIMITED: CloseCode.POLICY_VIOLATION}


# A body that is not a JSON object ends the stream as 0.0.2's own server did;
# other refusals (bad_string, bad_number, ...) only drop that one message.
_UNREADABLE = frozenset({ErrorCode.INVALID_JSON, ErrorCode.NOT_AN_OBJECT})


class FramingError(Exception):
    """The byte stream cannot be read as 0.0.2 frames; the connection is closed."""


def encode_frame(text: str) -> bytes:
    body = text.encode("utf-8")
    return f"{len(body):<{HEADER_LENGTH}}".encode("ascii") + body


def parse_header(header: bytes, *, max_size: int) -> int:
    """The body length announced by a header, or FramingError."""
    digits = header.strip(b" ")
    if not digits or not _DIGITS.issuperset(digits):
        raise FramingError(f"header {header!r} is not a length")
    length = int(digits)
    if length > max_size:
        raise FramingError(f"body of {length} bytes exceeds the limit of {max_size}")
    return length


class FrameDecoder:
    """Splits a byte stream into frame bodies, however the bytes were cut into reads (no I/O)."""

    def __init__(self, *, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._length: int | None = None  # of the body whose header has been read
        #: Set once the stream turned out unreadable; nothing after it is parsed.
        self.error: FramingError | None = None

    @property
    def mid_frame(self) -> bool:
        """True when part of a frame has arrived but not all of it."""
        return bool(self._buffer) or self._length is not None

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the stream; return the bodies completed by them, in order.

        Bodies before a bad header are still returned; then `error` is set.
        """
        if self.error is not None:
            raise self.error
        buffer = self._buffer
        buffer += data
        bodies = []
        start = 0
        while True:
            if self._length is None:
                if len(buffer) - start < HEADER_LENGTH:
                    break
                try:
                    self._length = parse_header(bytes(buffer[start:start + HEADER_LENGTH]),
                                                max_size=self.max_size)
                except FramingError as exc:
                    self.error = exc
                    break
                start += HEADER_LENGTH
            end = start + self._length
            if len(buffer) < end:
                break
            bodies.append(bytes(buffer[start:end]))
            start = end
            self._length = None
        del buffer[:start]  # once per read, not once per frame
        return bodies


def _is_error_frame(text: str) -> bool:
    # Cheap test first: only frames mentioning "ERROR" are parsed again.
    return '"ERROR"' in text and decode(text).get(TYPE) == MessageType.ERROR


class TcpConnection(Connection):
    """One swergio 0.0.2 client on a plain TCP stream."""

    transport = "tcp"

    def __init__(self, writer: asyncio.StreamWriter, *, remote: str, outbox_limit: int,
                 close_timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        super().__init__(remote=remote, outbox_limit=outbox_limit, close_timeout=close_timeout)
        self.writer = writer

    def deliver(self, text: str) -> None:
        # 0.0.2 clients do not know ERROR; whoever sends one (Hub, services) is not answered.
        if _is_error_frame(text):
            log.info("not sending ERROR to swergio 0.0.2 client %s (%s): %s", self.name,
                     self.remote, text[:200])
            return
        super().deliver(text)

    def refuse(self, error: ProtocolError) -> None:
        """Logged: 0.0.2 clients get no ERROR, but some refusals close."""
        code = _CLOSING_REFUSALS.get(error.code)
        log.log(logging.WARNING if code else logging.INFO,
                "refused from swergio 0.0.2 client %s (%s): %s %s%s", self.name, self.remote,
                error.code.value, error.message, "; closing" if code else "")
        if code is not None:
            self.close_soon(code, error.message)

    async def write(self, text: str) -> None:
        self.writer.write(encode_frame(text))
        await self.writer.drain()

    def batch_transport(self) -> asyncio.WriteTransport | None:
        return self.writer.transport

    def encode_frame(self, text: str) -> bytes:
        return encode_frame(text)

    async def close(self, code: CloseCode, reason: str) -> None:
        # TCP has no close codes: the reason only goes to the log.
        log.debug("closing %s (%s): %s %s", self.name, self.remote, code.name, reason)
        if code is CloseCode.TRY_AGAIN_LATER:
            self.abort()  # it stopped reading: a graceful close would wait on it forever
            return
        self.writer.close()  # flushes what is queued; past close_timeout the base class aborts
        await self.writer.wait_closed()

    def abort(self) -> None:
        self.writer.transport.abort()


class SwergioListener:
    """Accepts swergio 0.0.2 clients on a TCP port; `port` is the bound one once started."""

    def __init__(self, hub: Hub, *, host: str, port: int, max_frame_size: int,
                 outbox_limit: int, frame_timeout: float | None = 30.0,
                 close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
                 counter: ConnectionCounter | None = None, rate_per_second: float = 0.0,
                 rate_burst: int = 1, component_rate_per_second: float = 0.0) -> None:
        self.hub = hub
        self.host = host
        self.requested_port = port
        self.max_frame_size = max_frame_size
        self.outbox_limit = outbox_limit
        self.frame_timeout = frame_timeout
        self.close_timeout = close_timeout
        self.counter = counter
        self.rate_per_second = rate_per_second
        self.rate_burst = rate_burst
        self.component_rate_per_second = component_rate_per_second
        self.port: int | None = None
        self.connections: set[TcpConnection] = set()
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("swergio listener already started")
        self._server = await asyncio.start_server(self._accept, self.host, self.requested_port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("swergio 0.0.2 clients: tcp://%s:%d", self.host, self.port)
        if self.hub.access.component_token:
            log.warning("a component token is set: swergio 0.0.2 clients cannot send it, so "
                        "their REGISTER will be refused")

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for session in list(self._sessions):
            session.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = asyncio.get_running_loop().create_task(self._session(reader, writer))
        self._sessions.add(session)
        session.add_done_callback(self._sessions.discard)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if isinstance(peer, tuple):
            address, remote = str(peer[0]), f"{peer[0]}:{peer[1]}"
        else:
            address = remote = "?"
        counter = self.counter
        if counter is not None and not counter.acquire(address):
            log.warning("refused swergio 0.0.2 client from %s: %d connections already open",
                        address, counter.limit)
            writer.transport.abort()
            return
        try:
            await self._serve(reader, writer, remote)
        finally:
            if counter is not None:
                counter.release(address)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     remote: str) -> None:
        self._keep_alive(writer)
        conn = TcpConnection(writer, remote=remote, outbox_limit=self.outbox_limit,
                             close_timeout=self.close_timeout)
        self.connections.add(conn)
        self.hub.attach(conn)
        try:
            await self._read_frames(reader, conn)
        except FramingError as exc:
            log.warning("closing swergio 0.0.2 client %s (%s): %s", conn.name, remote, exc)
        except OSError as exc:  # reset, keepalive timeout, unreachable: the peer is gone
            log.info("lost swergio 0.0.2 client %s (%s): %r", conn.name, remote, exc)
        except Exception:
            # The boundary of one client's session: a bug must cost this client, not the server.
            log.exception("swergio 0.0.2 session of %s (%s) failed", conn.name, remote)
        finally:
            self.connections.discard(conn)
            await self.hub.disconnect(conn)
            if conn.is_open:
                conn.close_soon(CloseCode.NORMAL, "")
            await conn.wait_closed()

    def _keep_alive(self, writer: asyncio.StreamWriter) -> None:
        # 0.0.2 has no heartbeat: TCP keepalive notices a peer that vanished
        # (machine gone, cable pulled) about as soon as /ws's heartbeat would.
        sock = writer.get_extra_info("socket")
        if sock is None:
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle = max(1, int(self.frame_timeout or 30))
        for option, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", max(1, idle // 3)),
                              ("TCP_KEEPCNT", 3)):
            if hasattr(socket, option):  # Linux and most BSDs; elsewhere the OS default
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)

    async def _read_frames(self, reader: asyncio.StreamReader, conn: TcpConnection) -> None:
        # An idle client may stay silent for ever, but a frame once begun must be
        # finished within `frame_timeout`: a stalled half frame only holds memory.
        decoder = FrameDecoder(max_size=self.max_frame_size)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        bucket = TokenBucket(self.rate_per_second, self.rate_burst)
        while conn.is_open:
            try:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(READ_BYTES)
            except TimeoutError:
                if deadline is None or loop.time() < deadline:
                    raise  # ETIMEDOUT from the socket: keepalive found the peer gone
                raise FramingError(f"frame not completed within {self.frame_timeout}s") from None
            if not data:
                if decoder.mid_frame:
                    raise FramingError("stream ended inside a frame")
                return
            bodies = decoder.feed(data)
            for body in bodies:
                if bucket.rate and not bucket.take():
                    conn.refuse(ProtocolError(
                        ErrorCode.RATE_LIMITED,
                        f"over {bucket.rate:g} messages/s (burst {bucket.burst})"))
                    if self.hub.metrics is not None:
                        self.hub.metrics.rate_limit_closed(conn.transport)
                    return
                anonymous = conn.name is None
                await self._handle_body(conn, body)
                if not conn.is_open:
                    return  # DISCONNECT, a refusal or a takeover: later bytes are not read
                if anonymous and conn.name is not None and conn.role is Role.COMPONENT:
                    # As on /ws: components get their own (by default unlimited) rate.
                    bucket = TokenBucket(self.component_rate_per_second,
                                         max(self.rate_burst, 1000))
            if decoder.error is not None:
                raise decoder.error
            if not decoder.mid_frame or self.frame_timeout is None:
                deadline = None
            elif bodies or deadline is None:  # a new frame has begun
                deadline = loop.time() + self.frame_timeout

    async def _handle_body(self, conn: TcpConnection, body: bytes) -> None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FramingError(f"body is not UTF-8: {exc}") from None
        try:
            message = decode(text)
        except ProtocolError as exc:
            if exc.code in _UNREADABLE:
                raise FramingError(exc.message) from None
            conn.refuse(exc)  # readable JSON with a bad string or number: dropped
            return
        # As on /ws: relay the frame as it came unless the server fills in ID or SENT_BY.
        as_is = ID in message and SENT_BY not in message
        try:
            await self.hub.handle(conn, validate(message), text=text if as_is else None)
        except ProtocolError as error:
            conn.refuse(error)
        except Exception:
            # The boundary of one message: a bug behind the relay (a room service, a
            # broker) costs this message, not the connection or anyone else's.
            log.exception("handling a frame from swergio 0.0.2 client %s (%s) failed",
                          conn.name, conn.remote)

