"""The /ws endpoint: JSON text frames, one message per frame."""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web

from swergio_al.keys import CONFIG, HUB
from swergio_al.protocol import (
    CloseCode,
    ErrorCode,
    ProtocolError,
    decode,
    encode,
    error_frame,
    validate,
)
from swergio_al.relay.connection import Connection
from swergio_al.relay.hub import Hub

log = logging.getLogger(__name__)


class WebSocketConnection(Connection):
    transport = "ws"

    def __init__(self, ws: web.WebSocketResponse, *, remote: str, outbox_limit: int) -> None:
        super().__init__(remote=remote, outbox_limit=outbox_limit)
        self.ws = ws

    async def write(self, text: str) -> None:
        await self.ws.send_str(text)

    async def close(self, code: CloseCode, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode())

    def refuse(self, error: ProtocolError) -> None:
        log.info("refused from %s (%s): %s %s", self.name, self.remote, error.code.value,
                 error.message)
        self.deliver(encode(error_frame(error.code, error.message, error.ref)))


async def handle_frame(hub: Hub, conn: WebSocketConnection, text: str) -> None:
    try:
        message = validate(decode(text))
        await hub.handle(conn, message)
    except ProtocolError as error:
        conn.refuse(error)


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    config, hub = request.app[CONFIG], request.app[HUB]
    ws = web.WebSocketResponse(max_msg_size=config.max_frame_size,
                               heartbeat=config.heartbeat_seconds or None)
    await ws.prepare(request)
    conn = WebSocketConnection(ws, remote=request.remote or "?",
                               outbox_limit=config.outbound_queue_size)
    try:
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                await handle_frame(hub, conn, frame.data)
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
    return ws
