"""The /ws endpoint: JSON text frames, one message per frame."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from swergio_al.config import Config
from swergio_al.keys import CONFIG, CONNECTIONS, HUB
from swergio_al.protocol import (
    ID,
    SENT_BY,
    CloseCode,
    ErrorCode,
    Message,
    ProtocolError,
    Role,
    decode,
    encode,
    error_frame,
    validate,
)
from swergio_al.relay.access import origin_allowed
from swergio_al.relay.connection import DEFAULT_CLOSE_TIMEOUT, Connection
from swergio_al.relay.hub import Hub
from swergio_al.relay.limits import TokenBucket

if TYPE_CHECKING:
    from swergio_al.metrics import Metrics

log = logging.getLogger(__name__)

def text_frame(text: str) -> bytes:
    """One unmasked, uncompressed, final text frame (server to client, RFC 6455)."""
    data = text.encode()
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 0x10000:
        return _HEADER16.pack(0x81, 126, size) + data
    return _HEADER64.pack(0x81, 127, size) + data


_HEADER16 = struct.Struct("!BBH")
_HEADER64 = struct.Struct("!BBQ")


class WebSocketConnection(Connection):
    transport = "ws"

    def __init__(self, ws: web.WebSocketResponse, *, remote: str, outbox_limit: int,
                 close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
                 transport: asyncio.Transport | None = None) -> None:
        super().__init__(remote=remote, outbox_limit=outbox_limit, close_timeout=close_timeout)
        self.ws = ws
        self._transport = transport
        #: Counts ERROR frames for /metrics, when served.
        self.metrics: Metrics | None = None

    async def write(self, text: str) -> None:
        await self.ws.send_str(text)

    def batch_transport(self) -> asyncio.WriteTransport | None:
        # Queued frames are plain RFC 6455 text frames: the response has no
        # compression, and aiohttp's own writes (pings, close) are whole frames
        # too, so nothing can interleave inside a batch.
        return None if self.ws.closed else self._transport

    def encode_frame(self, text: str) -> bytes:
        return text_frame(text)

    async def close(self, code: CloseCode, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode())

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def refuse(self, error: ProtocolError) -> None:
        if self.metrics is not None:
            self.metrics.error_sent(error.code.value)
        log.info("refused from %s (%s): %s %s", self.name, self.remote, error.code.value,
                 error.message)
        self.deliver(encode(error_frame(error.code, error.message, error.ref)))


_TEXT = WSMsgType.TEXT  # checked per frame: a global is cheaper than an Enum member lookup

# Refusals after which the connection is closed, not kept: retrying cannot help.
_CLOSING_REFUSALS = {ErrorCode.UNAUTHORIZED: CloseCode.UNAUTHORIZED,
                     ErrorCode.RATE_LIMITED: CloseCode.POLICY_VIOLATION}


async def handle_frame(hub: Hub, conn: WebSocketConnection, text: str) -> None:
    message: Message = {}
    try:
        message = decode(text)
        # The frame can go on as it came unless the server must fill in ID or SENT_BY.
        relay_as_is = ID in message and SENT_BY not in message
        await hub.handle(conn, validate(message), text=text if relay_as_is else None)
    except ProtocolError as error:
        await refuse(conn, error)
    except Exception:
        # The boundary of one message: a bug behind the relay (a room service, a
        # broker) costs this message, not the connection or anyone else's.
        log.exception("handling a frame from %s (%s) failed", conn.name, conn.remote)
        ref = message.get(ID)
        conn.refuse(ProtocolError(ErrorCode.INTERNAL, "the server failed to handle this message",
                                  ref if isinstance(ref, str) else None))


async def refuse(conn: WebSocketConnection, error: ProtocolError) -> None:
    """Answer with ERROR; for refusals that end the connection, close after it is written."""
    conn.refuse(error)
    code = _CLOSING_REFUSALS.get(error.code)
    if code is not None:
        await conn.flush()
        conn.close_soon(code, error.message)


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    config, hub = request.app[CONFIG], request.app[HUB]
    if not origin_allowed(request.headers.get("Origin"), request.host, config.allowed_origins):
        log.warning("refused /ws from origin %s (allowed: same origin%s)",
                    request.headers.get("Origin"),
                    "".join(f", {o}" for o in config.allowed_origins))
        raise web.HTTPForbidden(text="this origin may not open /ws\n")
    remote = request.remote or "?"
    counter = request.app[CONNECTIONS]
    if not counter.acquire(remote):
        log.warning("refused /ws from %s: %d connections already open", remote, counter.limit)
        raise web.HTTPTooManyRequests(text=f"at most {counter.limit} connections per address\n")
    try:
        return await _serve(request, config, hub, remote)
    finally:
        counter.release(remote)


async def _serve(request: web.Request, config: Config, hub: Hub,
                 remote: str) -> web.WebSocketResponse:
    close_timeout = config.close_timeout_seconds
    # No permessage-deflate: frames are small and fan-out would compress each
    # one once per recipient, which costs far more CPU than it saves bandwidth.
    # aiohttp refuses a message of exactly max_msg_size; ours may be exactly the limit.
    ws = web.WebSocketResponse(max_msg_size=config.max_frame_size + 1, compress=False,
                               heartbeat=config.heartbeat_seconds or None,
                               timeout=close_timeout)
    await ws.prepare(request)
    conn = WebSocketConnection(ws, remote=remote,
                               outbox_limit=config.outbound_queue_size,
                               close_timeout=close_timeout, transport=request.transport)
    conn.metrics = hub.metrics
    hub.attach(conn)
    # aiohttp can cancel this handler the moment the peer's TCP stream ends
    # (`handler_cancellation`, on in its test server): the frames it read before
    # would be dropped and the hub left half cleaned up. The session is a task of
    # its own that finishes what was read; only a second cancellation (a forced
    # shutdown) cuts it short.
    session = asyncio.create_task(_relay(ws, conn, config, hub))
    try:
        await asyncio.shield(session)
    except asyncio.CancelledError:
        try:
            await asyncio.shield(session)
        finally:
            if not session.done():
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
        raise
    return ws


async def _relay(ws: web.WebSocketResponse, conn: WebSocketConnection, config: Config,
                 hub: Hub) -> None:
    """Handle one connection's frames in order until it closes, then forget it."""
    bucket = TokenBucket(config.rate_per_second, config.rate_burst)
    try:
        async for frame in ws:
            if bucket.rate and not bucket.take():
                await refuse(conn, ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"over {bucket.rate:g} messages/s (burst {bucket.burst})"))
                if hub.metrics is not None:
                    hub.metrics.rate_limit_closed(conn.transport)
                break
            if frame.type is _TEXT:
                anonymous = conn.name is None
                await handle_frame(hub, conn, frame.data)
                if anonymous and conn.name is not None and conn.role is Role.COMPONENT:
                    bucket = TokenBucket(config.component_rate_per_second,
                                         max(config.rate_burst, 1000))
            elif frame.type is WSMsgType.BINARY:
                conn.refuse(ProtocolError(ErrorCode.BINARY_FRAME,
                                          "binary frames are not part of the protocol; "
                                          "send JSON text frames"))
            elif frame.type is WSMsgType.ERROR:
                log.info("websocket error from %s (%s): %s", conn.name, conn.remote,
                         ws.exception())
    finally:
        await hub.disconnect(conn)
        if conn.is_open:
            conn.close_soon(CloseCode.NORMAL, "")
        await conn.wait_closed()
