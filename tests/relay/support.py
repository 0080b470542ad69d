"""Helpers for the relay tests: waiting on server state, a raw socket client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from swergio_al.keys import HUB
from swergio_al.relay.hub import Hub
from tests.helpers import RawClient

Message = dict[str, Any]
HEX_UUID = re.compile(r"^[0-9a-f]{32}$")


def ws_url_of(server: TestServer) -> str:
    return str(server.make_url("/ws"))


def hub_of(server: TestServer) -> Hub:
    return server.app[HUB]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for server-side state to reach a condition (checked every 10 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(0.01)


async def assert_silent(client: RawClient) -> None:
    """Nothing is queued for `client`: the next frame it gets is its own round trip.

    Deliveries are queued in the order the server handles frames, so anything
    routed to `client` before this call would arrive ahead of the marker.
    """
    marker = os.urandom(8).hex()
    await client.send({"TYPE": "DATA/CUSTOM", "TO": client.name, "SYNC": marker})
    got = await client.recv()
    assert got.get("SYNC") == marker, f"{client.name} received an unexpected frame: {got}"


async def close_code_of(client: RawClient, timeout: float = 5.0) -> int | None:
    """Read until the server closes `client`; the close code it sent."""
    while True:
        frame = await client.ws.receive(timeout=timeout)
        if frame.type is aiohttp.WSMsgType.CLOSE:
            return int(frame.data)  # the code in the server's close frame
        if frame.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return client.ws.close_code


async def exchange(a: RawClient, b: RawClient, room: str) -> None:
    """`a` and `b` still talk: one message each way through `room`."""
    for src, dst in ((a, b), (b, a)):
        marker = os.urandom(4).hex()
        await src.send({"TYPE": "DATA/TEXT", "TO_ROOM": room, "DATA": marker})
        got = await dst.expect("DATA/TEXT")
        while got.get("DATA") != marker:  # skip what others sent `dst` meanwhile
            got = await dst.expect("DATA/TEXT")
        assert got["SENT_BY"] == src.name


def no_trace(hub: Hub, name: str) -> Callable[[], bool]:
    """The hub has forgotten `name`: not registered, not a member anywhere."""
    def check() -> bool:
        in_rooms = any(member.name == name for members in hub.rooms.values()
                       for member in members)
        live = any(conn.name == name for conn in hub.connections)
        return name not in hub.names and not in_rooms and not live
    return check


class SocketClient:
    """A WebSocket client on a bare asyncio stream, with tiny receive buffers.

    Unlike aiohttp's client it can stop reading altogether, so the server's
    socket buffers fill up as they do behind a stalled receiver, and it can
    vanish without a close handshake.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, buffer: int = 4096) -> SocketClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=buffer)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send_frame(self, payload: bytes, opcode: int = 0x1) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        repeated = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
            size, "big")
        self.writer.write(header + mask + masked)

    def send(self, message: Message) -> None:
        self.send_frame(json.dumps(message).encode())

    async def read_frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(size)

    async def recv(self) -> Message:
        opcode, payload = await self.read_frame()
        while opcode == 0x9:  # a heartbeat ping: deliberately never answered
            opcode, payload = await self.read_frame()
        assert opcode == 0x1, (opcode, payload)
        return json.loads(payload)  # type: ignore[no-any-return]

    async def join(self, name: str, room: str) -> None:
        """Register, join `room`, and wait for the server to have done both."""
        self.send({"TYPE": "COMMAND/REGISTER", "NAME": name, "TO_ROOM": "_command"})
        self.send({"TYPE": "COMMAND/JOINROOM", "ROOM": room, "TO_ROOM": "_command"})
        self.send({"TYPE": "DATA/CUSTOM", "TO": name, "SYNC": "joined"})
        assert (await self.recv())["SYNC"] == "joined"

    async def close_code(self) -> int:
        """Read (and discard) frames until the server's close frame; its code."""
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x8:
                self.send_frame(payload[:2], opcode=0x8)  # complete the handshake
                return int(struct.unpack("!H", payload[:2])[0])

    def reset(self) -> None:
        """Vanish with a TCP reset: no close frame, no FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


ConnectSocket = Callable[[int], Awaitable[SocketClient]]

