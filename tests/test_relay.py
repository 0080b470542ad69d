"""The relay's protocol rules (DESIGN.md, "Protocol"), checked against a real server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swergio_al.keys import HUB
from swergio_al.protocol import CloseCode, MessageType
from swergio_al.relay.hub import Hub
from tests.conftest import MakeServer
from tests.helpers import RawClient, ServerProcess

Message = dict[str, Any]
HEX_UUID = re.compile(r"^[0-9a-f]{32}$")


# -- helpers -----------------------------------------------------------------


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


@pytest.fixture
async def sockets() -> AsyncIterator[ConnectSocket]:
    """Open SocketClients to a port; all are closed when the test ends, pass or fail."""
    opened: list[SocketClient] = []

    async def connect(port: int) -> SocketClient:
        client = await SocketClient.connect(port)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        await client.aclose()


# -- routing -----------------------------------------------------------------


async def test_room_members_only_see_their_own_rooms(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a1", rooms=("A",)) as a1, \
            await RawClient.connect(url, "a2", rooms=("A",)) as a2, \
            await RawClient.connect(url, "b1", rooms=("B",)) as b1:
        await a1.send({"TYPE": "DATA/TEXT", "TO_ROOM": "A", "DATA": "for A"})
        await b1.send({"TYPE": "DATA/TEXT", "TO_ROOM": "B", "DATA": "for B"})
        assert (await a2.recv())["DATA"] == "for A"
        await assert_silent(a2)
        await assert_silent(b1)
        await assert_silent(a1)


async def test_sender_does_not_receive_its_own_room_message(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a", rooms=("r",)) as a, \
            await RawClient.connect(url, "b", rooms=("r",)) as b:
        await a.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": 1})
        assert (await b.recv())["DATA"] == 1
        await assert_silent(a)


async def test_to_delivers_directly_without_a_shared_room(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a") as a, \
            await RawClient.connect(url, "b", rooms=("elsewhere",)) as b, \
            await RawClient.connect(url, "c", rooms=("elsewhere",)) as c:
        await a.send({"TYPE": "DATA/REWARD", "TO": "b", "DATA": 0.5})
        got = await b.recv()
        assert got["DATA"] == 0.5 and got["SENT_BY"] == "a" and got["TO"] == "b"
        await assert_silent(c)


async def test_to_and_to_room_reach_the_union_each_once(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a", rooms=("r",)) as a, \
            await RawClient.connect(url, "in_room", rooms=("r",)) as in_room, \
            await RawClient.connect(url, "named", rooms=("r",)) as named, \
            await RawClient.connect(url, "outside") as outside:
        await a.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "TO": "named", "DATA": "both"})
        await a.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "TO": "outside", "DATA": "union"})
        assert [(await named.recv())["DATA"] for _ in range(2)] == ["both", "union"]
        assert [(await in_room.recv())["DATA"] for _ in range(2)] == ["both", "union"]
        assert (await outside.recv())["DATA"] == "union"
        for client in (named, in_room, outside, a):
            await assert_silent(client)


async def test_to_naming_the_sender_itself_is_delivered_despite_the_room(
        server: TestServer) -> None:
    # Regression: TO == sender used to be dropped when the sender was also in TO_ROOM.
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a", rooms=("r",)) as a, \
            await RawClient.connect(url, "b", rooms=("r",)) as b:
        await a.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "TO": "a", "DATA": "echo"})
        assert (await a.recv())["DATA"] == "echo"
        assert (await b.recv())["DATA"] == "echo"
        await assert_silent(a)


async def test_sent_by_is_always_the_registered_name(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "honest", rooms=("r",)) as honest, \
            await RawClient.connect(url, "mallory", rooms=("r",)) as mallory:
        await mallory.send({"ID": "x", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "hi",
                            "SENT_BY": "honest"})
        await mallory.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "SENT_BY": None})
        await mallory.send({"ID": "y", "TYPE": "DATA/TEXT", "TO_ROOM": "r"})
        for _ in range(3):
            assert (await honest.recv())["SENT_BY"] == "mallory"


async def test_id_kept_as_sent_or_assigned_when_missing(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a", rooms=("r",)) as a, \
            await RawClient.connect(url, "b", rooms=("r",)) as b:
        await a.send({"ID": "not a uuid / ünïcode", "TYPE": "DATA/TEXT", "TO_ROOM": "r"})
        await a.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r"})
        assert (await b.recv())["ID"] == "not a uuid / ünïcode"
        assert HEX_UUID.match((await b.recv())["ID"])


async def test_payload_passes_through_untouched(server: TestServer) -> None:
    url = ws_url_of(server)
    payload = {"DATA": {"nested": [1, 2.5, None, True, "é\u2603\U0001f600"], "lower": "ok"},
               "GENOMES": [[0, 1], [1, 0]], "FITNESS": -3, "ROOT_ID": "root", "MODEL_STATUS": 2}
    async with await RawClient.connect(url, "a", rooms=("r",)) as a, \
            await RawClient.connect(url, "b", rooms=("r",)) as b:
        # Frames with odd but valid JSON layout: spaces, newlines, a trailing blank.
        await a.ws.send_str(json.dumps({"ID": "1", "TYPE": "DATA/CUSTOM", "TO_ROOM": "r",
                                        **payload}, indent=2) + " \n")
        await a.send({"TYPE": "DATA/CUSTOM", "TO_ROOM": "r", "DATA": "lone \ud800 surrogate"})
        await a.ws.send_str(' \n {"ID": "2", "TYPE": "DATA/CUSTOM", "TO_ROOM": "r"}\t')
        got = await b.recv()
        assert got == {"ID": "1", "TYPE": "DATA/CUSTOM", "TO_ROOM": "r", **payload,
                       "SENT_BY": "a"}
        assert (await b.recv())["DATA"] == "lone \ud800 surrogate"
        assert (await b.recv())["ID"] == "2"


async def test_frames_of_every_length_encoding_arrive_intact(server: TestServer) -> None:
    """Relayed frames are written by the relay itself (batched): around the 126 and
    65536-byte boundaries of the WebSocket length field nothing is cut or garbled."""
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a", rooms=("r",)) as a, \
            await RawClient.connect(url, "b", rooms=("r",)) as b:
        def relayed_size(data: str) -> int:  # what the server sends: SENT_BY appended
            return len(json.dumps({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "ID": "i",
                                   "DATA": data})) - 1 + len(',"SENT_BY":"a"}')

        base = relayed_size("")
        sizes = [*range(120, 132), *range(65530, 65542)]
        for size in sizes:
            await a.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "ID": "i",
                          "DATA": "z" * (size - base)})
        for size in sizes:
            got = await b.recv()
            assert got["DATA"] == "z" * (size - base)
            assert relayed_size(got["DATA"]) == size


async def test_logging_mirror_of_forward_and_gradient(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "model", rooms=("r",)) as model, \
            await RawClient.connect(url, "peer", rooms=("r",)) as peer, \
            await RawClient.connect(url, "logger", rooms=("_logging",)) as logger:
        for kind in ("DATA/FORWARD", "DATA/GRADIENT"):
            sent = {"ID": kind, "TYPE": kind, "TO_ROOM": "r", "DATA": [1, 2], "ROOT_ID": "z"}
            await model.send(sent)
            assert await peer.recv() == {**sent, "SENT_BY": "model"}
            mirrored = await logger.recv()
            assert set(mirrored) == {"ID", "TYPE", "TO_ROOM", "MESSAGE"}
            assert HEX_UUID.match(mirrored["ID"])
            assert mirrored["TYPE"] == "LOG/MESSAGES"
            assert mirrored["TO_ROOM"] == "_logging"
            assert mirrored["MESSAGE"] == {**sent, "SENT_BY": "model"}
        # Assigned IDs show up in the mirror as well; DATA/TEXT is not mirrored.
        await model.send({"TYPE": "DATA/FORWARD", "TO_ROOM": "r"})
        assert (await logger.recv())["MESSAGE"]["ID"] == (await peer.recv())["ID"]
        await model.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "not mirrored"})
        assert (await peer.recv())["DATA"] == "not mirrored"
        await assert_silent(logger)


async def test_commands_are_not_relayed(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a", rooms=("r",)) as a, \
            await RawClient.connect(url, "b", rooms=("r",)) as b:
        await a.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "_command", "TO_ROOM": "_command"})
        await a.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "r2", "TO_ROOM": "_command"})
        await a.send({"TYPE": "COMMAND/LEAVEROOM", "ROOM": "r2", "TO_ROOM": "_command"})
        await a.sync()
        await assert_silent(b)
        assert set(hub_of(server).rooms) == {"r"}


async def test_leaving_a_room_stops_its_traffic(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a", rooms=("r",)) as a, \
            await RawClient.connect(url, "b", rooms=("r", "s")) as b:
        await b.send({"TYPE": "COMMAND/LEAVEROOM", "ROOM": "r", "TO_ROOM": "_command"})
        await b.sync()
        await a.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r"})
        await a.sync()
        await assert_silent(b)
        assert [m.name for m in hub_of(server).rooms["r"]] == ["a"]


# -- names -------------------------------------------------------------------


async def test_registering_a_taken_name_takes_it_over(server: TestServer) -> None:
    url = ws_url_of(server)
    hub = hub_of(server)
    async with await RawClient.connect(url, "model", rooms=("r",)) as old, \
            await RawClient.connect(url, "peer", rooms=("r",)) as peer:
        old_conn = hub.names["model"]
        async with await RawClient.connect(url, "model", rooms=("r2",)) as new:
            assert await close_code_of(old) == CloseCode.TAKEN_OVER
            await until(lambda: old_conn not in hub.connections)
            assert hub.names["model"] is not old_conn
            assert old_conn not in hub.rooms.get("r", ())
            await peer.send({"TYPE": "DATA/TEXT", "TO": "model", "DATA": "to the new one"})
            assert (await new.recv())["DATA"] == "to the new one"


async def test_a_taken_over_connection_can_no_longer_act(server: TestServer) -> None:
    # Regression: frames the old connection had already sent were still handled
    # after the takeover, under the name that now belongs to the new connection.
    url = ws_url_of(server)
    hub = hub_of(server)
    async with await RawClient.connect(url, "model", rooms=("r",)) as old, \
            await RawClient.connect(url, "peer", rooms=("r",)) as peer:
        old_conn = hub.names["model"]
        async with await RawClient.connect(url, "model") as new:
            new_conn = hub.names["model"]
            # As if these had been read from the old socket before its close:
            for late in ({"ID": "1", "TYPE": "DATA/TEXT", "TO": "peer"},
                         {"ID": "2", "TYPE": "COMMAND/REGISTER", "NAME": "model"},
                         {"ID": "3", "TYPE": "COMMAND/JOINROOM", "ROOM": "r"}):
                await hub.handle(old_conn, late)
            assert hub.names["model"] is new_conn and new_conn.is_open
            assert old_conn not in hub.rooms["r"]
            await assert_silent(peer)
            await assert_silent(new)
            assert await close_code_of(old) == CloseCode.TAKEN_OVER


async def test_disconnect_closes_normally_and_frees_the_name(server: TestServer) -> None:
    url = ws_url_of(server)
    hub = hub_of(server)
    async with await RawClient.connect(url, "leaver", rooms=("r",)) as leaver, \
            await RawClient.connect(url, "other", rooms=("r",)) as other:
        await leaver.send({"TYPE": "COMMAND/DISCONNECT", "TO_ROOM": "_command"})
        assert await close_code_of(leaver) == CloseCode.NORMAL
        await until(no_trace(hub, "leaver"))
        await other.send({"ID": "m", "TYPE": "DATA/TEXT", "TO": "leaver"})
        error = await other.recv()
        assert (error["CODE"], error["REF"]) == ("unknown_recipient", "m")
        async with await RawClient.connect(url, "leaver", rooms=("r",)) as again:
            await other.send({"TYPE": "DATA/TEXT", "TO": "leaver", "DATA": "back"})
            assert (await again.recv())["DATA"] == "back"


# -- bad input ---------------------------------------------------------------

# (frame as sent, expected CODE, expected REF). The sender is registered and in room "r".
BAD_FRAMES: list[tuple[str, str, str | None]] = [
    ('{"TYPE": "DATA/TEXT", ', "invalid_json", None),
    ("", "invalid_json", None),
    ("  ", "invalid_json", None),
    ('{"TYPE": "DATA/TEXT", "TO_ROOM": "r"} {}', "invalid_json", None),
    ('{"TYPE": "DATA/TEXT", "TO_ROOM": "r"}]', "invalid_json", None),
    ("[" * 100_000, "invalid_json", None),
    ('{"ID": "n", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": NaN}', "invalid_json", None),
    ('{"DATA": ' + "9" * 5000 + "}", "invalid_json", None),
    ("[1, 2]", "not_an_object", None),
    ('"hello"', "not_an_object", None),
    ("null", "not_an_object", None),
    ('{"ID": "m", "TO_ROOM": "r"}', "missing_type", "m"),
    ('{"ID": "m", "TYPE": "DATA/NOPE", "TO_ROOM": "r"}', "unknown_type", "m"),
    ('{"ID": "m", "TYPE": "ERROR", "TO_ROOM": "r"}', "unknown_type", "m"),
    ('{"ID": 7, "TYPE": "DATA/TEXT", "TO_ROOM": "r"}', "bad_field", None),
    ('{"ID": "m", "TYPE": 7, "TO_ROOM": "r"}', "bad_field", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "TO": ["b"]}', "bad_field", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "TO_ROOM": 3}', "bad_field", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "TO_ROOM": ""}', "bad_field", "m"),
    ('{"ID": "m", "TYPE": "COMMAND/REGISTER", "NAME": 5, "TO_ROOM": "_command"}',
     "bad_field", "m"),
    ('{"ID": "m", "TYPE": "COMMAND/REGISTER", "TO_ROOM": "_command"}', "bad_field", "m"),
    ('{"ID": "m", "TYPE": "COMMAND/REGISTER", "NAME": "x", "ROLE": "admin"}', "bad_field", "m"),
    ('{"ID": "m", "TYPE": "COMMAND/REGISTER", "NAME": "x", "ROLE": ["labeler"]}',
     "bad_field", "m"),
    ('{"ID": "m", "TYPE": "COMMAND/REGISTER", "NAME": "x", "TOKEN": 12}', "bad_field", "m"),
    ('{"ID": "m", "TYPE": "COMMAND/JOINROOM", "ROOM": null, "TO_ROOM": "_command"}',
     "bad_field", "m"),
    ('{"ID": "m", "TYPE": "COMMAND/LEAVEROOM", "ROOM": {}, "TO_ROOM": "_command"}',
     "bad_field", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "ROOT_ID": 1}', "bad_field", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "MODEL_STATUS": "1"}', "bad_field", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "MODEL_STATUS": true}', "bad_field", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "TO_ROOM": "not-joined"}', "not_in_room", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "TO_ROOM": "_command"}', "reserved_room", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "TO": "ghost"}', "unknown_recipient", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "TO": "ghost"}', "unknown_recipient", "m"),
    ('{"ID": "m", "TYPE": "DATA/TEXT", "DATA": 1}', "no_recipient", "m"),
]


@pytest.mark.parametrize(("frame", "code", "ref"), BAD_FRAMES,
                         ids=[f"{code}-{i}" for i, (_, code, _) in enumerate(BAD_FRAMES)])
async def test_bad_frame_gets_error_and_changes_nothing(
        server: TestServer, frame: str, code: str, ref: str | None) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "p1", rooms=("pair",)) as p1, \
            await RawClient.connect(url, "p2", rooms=("pair",)) as p2, \
            await RawClient.connect(url, "bad", rooms=("r",)) as bad, \
            await RawClient.connect(url, "witness", rooms=("r",)) as witness:
        await bad.ws.send_str(frame)
        error = await bad.recv()
        assert error["TYPE"] == "ERROR"
        assert (error["CODE"], error["REF"]) == (code, ref)
        assert isinstance(error["MESSAGE"], str) and error["MESSAGE"]
        assert HEX_UUID.match(error["ID"])
        await assert_silent(witness)  # nothing was delivered
        await exchange(bad, witness, "r")  # the connection keeps working ...
        await exchange(p1, p2, "pair")  # ... and so does everyone else


async def test_unregistered_client_is_told_to_register(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url) as anonymous, \
            await RawClient.connect(url, "b", rooms=("r",)) as b:
        for message in ({"ID": "1", "TYPE": "DATA/TEXT", "TO": "b"},
                        {"ID": "2", "TYPE": "COMMAND/JOINROOM", "ROOM": "r"},
                        {"ID": "3", "TYPE": "COMMAND/LEAVEROOM", "ROOM": "r"}):
            await anonymous.send(message)
            error = await anonymous.recv()
            assert (error["CODE"], error["REF"]) == ("not_registered", message["ID"])
        await assert_silent(b)
        assert [m.name for m in hub_of(server).rooms["r"]] == ["b"]


class BrokenService:
    """A room service with a bug: it fails on every message to its rooms."""

    def owns(self, room: str) -> bool:
        return room.startswith("broken")

    async def handle(self, conn: Any, message: Message) -> None:
        raise KeyError("a bug")

    async def joined(self, conn: Any, room: str) -> None:
        return None

    async def left(self, conn: Any, room: str) -> None:
        return None

    async def registered(self, conn: Any) -> None:
        return None


async def test_a_bug_behind_the_relay_costs_the_message_not_the_connection(
        server: TestServer, caplog: pytest.LogCaptureFixture) -> None:
    hub_of(server).services.insert(0, BrokenService())
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a", rooms=("broken", "r")) as a, \
            await RawClient.connect(url, "b", rooms=("r",)) as b:
        await a.send({"ID": "boom", "TYPE": "DATA/TEXT", "TO_ROOM": "broken"})
        error = await a.recv()
        assert (error["CODE"], error["REF"]) == ("internal_error", "boom")
        assert "KeyError" in caplog.text
        await exchange(a, b, "r")


async def test_joining_more_rooms_than_allowed_gets_error(make_server: MakeServer) -> None:
    server = await make_server(max_rooms_per_connection=2)
    async with await RawClient.connect(ws_url_of(server), "a", rooms=("r1", "r2")) as a:
        await a.send({"ID": "j", "TYPE": "COMMAND/JOINROOM", "ROOM": "r3", "TO_ROOM": "_command"})
        error = await a.recv()
        assert (error["CODE"], error["REF"]) == ("too_many_rooms", "j")
        assert hub_of(server).names["a"].rooms == {"r1", "r2"}
        assert "r3" not in hub_of(server).rooms


async def test_binary_frame_gets_error(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "a", rooms=("r",)) as a, \
            await RawClient.connect(url, "b", rooms=("r",)) as b:
        await a.ws.send_bytes(b'{"TYPE": "DATA/TEXT", "TO_ROOM": "r"}')
        error = await a.recv()
        assert (error["TYPE"], error["CODE"], error["REF"]) == ("ERROR", "binary_frame", None)
        await assert_silent(b)
        await exchange(a, b, "r")


async def test_oversized_frame_closes_with_1009(make_server: MakeServer) -> None:
    server = await make_server(max_frame_size=4096)
    url = ws_url_of(server)
    hub = hub_of(server)
    async with await RawClient.connect(url, "big", rooms=("r",)) as big, \
            await RawClient.connect(url, "a", rooms=("r",)) as a, \
            await RawClient.connect(url, "b", rooms=("r",)) as b:
        await big.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "x" * 3000})  # fits
        assert len((await a.recv())["DATA"]) == 3000
        assert len((await b.recv())["DATA"]) == 3000
        await big.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "x" * 5000})
        assert await close_code_of(big) == CloseCode.MESSAGE_TOO_BIG
        await until(no_trace(hub, "big"))
        await exchange(a, b, "r")


async def test_a_barrage_of_bad_frames_does_not_disturb_a_busy_pair(server: TestServer) -> None:
    url = ws_url_of(server)
    async with await RawClient.connect(url, "p1", rooms=("pair",)) as p1, \
            await RawClient.connect(url, "p2", rooms=("pair",)) as p2, \
            await RawClient.connect(url, "bad", rooms=("r",)) as bad:
        rounds = 0
        stop = asyncio.Event()

        async def ping_pong() -> None:
            nonlocal rounds
            while not stop.is_set():
                await exchange(p1, p2, "pair")
                rounds += 1

        pinger = asyncio.create_task(ping_pong())
        try:
            for frame, code, ref in BAD_FRAMES * 3:
                await bad.ws.send_str(frame)
                error = await bad.recv()
                assert (error["CODE"], error["REF"]) == (code, ref)
            await bad.ws.send_bytes(b"\x00\xff")
            assert (await bad.recv())["CODE"] == "binary_frame"
            start = rounds
            await until(lambda: rounds >= start + 3)  # still going after the barrage
        finally:
            stop.set()
            await pinger
        assert rounds >= 3


# -- slow consumers and vanishing peers --------------------------------------


async def test_slow_consumer_is_closed_with_1013_and_others_carry_on(
        make_server: MakeServer, sockets: ConnectSocket) -> None:
    server = await make_server(outbound_queue_size=8)
    url = ws_url_of(server)
    hub = hub_of(server)
    stalled = await sockets(server.port)  # type: ignore[arg-type]
    await stalled.join("stalled", "r")
    stalled_conn = hub.names["stalled"]
    async with await RawClient.connect(url, "src", rooms=("r",)) as src, \
            await RawClient.connect(url, "fast", rooms=("r",)) as fast:
        payload = "x" * 16384
        sent = 0
        # `stalled` reads nothing now; its socket buffers, then its outbox fill up.
        while stalled_conn.is_open:
            assert sent < 5000, "the stalled receiver was never disconnected"
            await src.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": payload, "N": sent})
            assert (await fast.recv())["N"] == sent  # in order, nothing lost, no waiting
            sent += 1
        assert stalled_conn.close_code == CloseCode.TRY_AGAIN_LATER
        assert stalled_conn.dropped >= 1
        await exchange(src, fast, "r")
        # Once it reads again it gets what had been written, then the close frame.
        assert await stalled.close_code() == CloseCode.TRY_AGAIN_LATER
        await until(no_trace(hub, "stalled"))
        await exchange(src, fast, "r")


async def test_a_burst_in_one_read_does_not_count_as_a_slow_receiver(
        make_server: MakeServer, sockets: ConnectSocket) -> None:
    # Regression: one socket read can hold thousands of frames, all routed before
    # the writer task runs; a receiver that reads promptly was closed with 1013.
    server = await make_server(outbound_queue_size=16)
    burst = await sockets(server.port)  # type: ignore[arg-type]
    await burst.join("burst", "r")
    async with await RawClient.connect(ws_url_of(server), "reader", rooms=("r",)) as reader:
        frames = [json.dumps({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "N": n}).encode()
                  for n in range(3000)]
        for frame in frames:
            burst.send_frame(frame)  # buffered: all leave in one write below
        await burst.writer.drain()
        for n in range(3000):
            assert (await reader.recv())["N"] == n
        await assert_silent(reader)
        assert hub_of(server).names["reader"].close_code is None


async def test_a_peer_that_never_reads_again_is_dropped_after_the_close_timeout(
        make_server: MakeServer, sockets: ConnectSocket) -> None:
    server = await make_server(outbound_queue_size=4, close_timeout_seconds=0.2)
    url = ws_url_of(server)
    hub = hub_of(server)
    stalled = await sockets(server.port)  # type: ignore[arg-type]
    await stalled.join("stalled", "r")
    stalled_conn = hub.names["stalled"]
    async with await RawClient.connect(url, "src", rooms=("r",)) as src:
        while stalled_conn.is_open:
            await src.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "y" * 65536})
            await src.sync()
        # It cannot even take the close frame: the transport is aborted, nothing leaks.
        await until(no_trace(hub, "stalled"), timeout=3.0)
        assert stalled_conn.close_code == CloseCode.TRY_AGAIN_LATER
        assert hub.connections == {hub.names["src"]}


@pytest.mark.parametrize("how", ["fin", "reset", "garbage"])
async def test_membership_is_cleaned_up_when_a_peer_vanishes(
        server: TestServer, sockets: ConnectSocket, how: str) -> None:
    url = ws_url_of(server)
    hub = hub_of(server)
    gone = await sockets(server.port)  # type: ignore[arg-type]
    await gone.join("gone", "r")
    async with await RawClient.connect(url, "stays", rooms=("r",)) as stays:
        assert len(hub.rooms["r"]) == 2
        if how == "fin":
            gone.writer.close()
        elif how == "reset":
            gone.reset()
        else:  # not a WebSocket frame at all: a protocol error, then the server closes
            gone.writer.write(b"\xff" * 64)
        await until(no_trace(hub, "gone"))
        assert [m.name for m in hub.rooms["r"]] == ["stays"]
        await stays.send({"ID": "m", "TYPE": "DATA/TEXT", "TO": "gone"})
        assert (await stays.recv())["CODE"] == "unknown_recipient"
    await until(lambda: not hub.connections and not hub.rooms and not hub.names)


async def test_a_silent_peer_is_dropped_by_the_heartbeat(make_server: MakeServer,
                                                         sockets: ConnectSocket) -> None:
    # No FIN, no RST, no pong: only the heartbeat notices (a pulled cable, a frozen host).
    server = await make_server(heartbeat_seconds=0.1)
    hub = hub_of(server)
    silent = await sockets(server.port)  # type: ignore[arg-type]
    await silent.join("silent", "r")
    await until(no_trace(hub, "silent"), timeout=3.0)


async def test_invalid_utf8_text_frame_closes_with_1007(server: TestServer,
                                                        sockets: ConnectSocket) -> None:
    hub = hub_of(server)
    broken = await sockets(server.port)  # type: ignore[arg-type]
    await broken.join("broken", "r")
    async with await RawClient.connect(ws_url_of(server), "a", rooms=("r",)) as a, \
            await RawClient.connect(ws_url_of(server), "b", rooms=("r",)) as b:
        broken.send_frame(b'{"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "\xff\xfe"}')
        assert await broken.close_code() == 1007  # invalid frame payload data
        await until(no_trace(hub, "broken"))
        await assert_silent(a)
        await exchange(a, b, "r")


async def test_every_kind_of_close_leaves_no_trace(make_server: MakeServer) -> None:
    server = await make_server(max_frame_size=1024)
    url = ws_url_of(server)
    hub = hub_of(server)
    clients = [await RawClient.connect(url, f"c{i}", rooms=("r", f"own{i}")) for i in range(4)]
    await clients[0].close()  # a clean close by the client
    await clients[1].send({"TYPE": "COMMAND/DISCONNECT", "TO_ROOM": "_command"})
    await clients[2].send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "z" * 2048})  # 1009
    async with await RawClient.connect(url, "c3") as taker:  # takes over c3
        for client in clients[1:]:
            await close_code_of(client)
        await until(lambda: set(hub.names) == {"c3"} and set(hub.rooms) == set())
        assert hub.connections == {hub.names["c3"]} and hub.names["c3"].rooms == set()
        await taker.sync()
    for client in clients:
        await client.close()
    await until(lambda: not hub.connections and not hub.names)


async def test_shutdown_closes_every_client_with_1001_promptly(tmp_path: Any) -> None:
    # Regression: open connections held SIGTERM for the whole shutdown timeout (10 s),
    # then were dropped without a close frame.
    server = ServerProcess("--store", f"sqlite:///{tmp_path / 'store.db'}")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, server.start)
    try:
        registered = await RawClient.connect(server.ws_url, "a", rooms=("r",))
        anonymous = await RawClient.connect(server.ws_url)
        started = loop.time()
        exit_code = await loop.run_in_executor(None, server.terminate)
        assert exit_code == 0
        assert loop.time() - started < 5.0  # 10.4 s before the fix
        for client in (registered, anonymous):
            assert await close_code_of(client) == CloseCode.GOING_AWAY
            await client.close()
    finally:
        server.__exit__()


# -- fuzzing the envelope ----------------------------------------------------

_ANY_JSON = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
# Values that have broken envelope handling elsewhere: wrong types, empty, unhashable.
_NASTY = st.sampled_from([None, True, False, 0, -1, 2**70, 1.5, "", " ", "\x00", [], ["r"],
                          {}, {"r": 1}, "x" * 300])
_GARBAGE = st.one_of(_NASTY, _ANY_JSON)
_TYPES = sorted(t.value for t in MessageType
                if t not in (MessageType.REGISTER, MessageType.DISCONNECT))
# A plausible message, then one envelope field replaced by any JSON value (or removed):
# every field meets every kind of value, and the rest of the message stays valid
# often enough to reach the code behind the validation.
_PLAUSIBLE = st.fixed_dictionaries({
    "ID": st.text(max_size=8),
    "TYPE": st.sampled_from(_TYPES),
    "TO_ROOM": st.sampled_from(["r", "pair", "other", "_command", "_logging", "feedback/fuzz"]),
}, optional={
    "TO": st.sampled_from(["fuzz", "p1", "ghost"]),
    "ROOM": st.sampled_from(["r", "other", "_command", "_logging", "feedback/fuzz"]),
    "ROOT_ID": st.text(max_size=8),
    "MODEL_STATUS": st.sampled_from([1, 2]),
    "DATA": _ANY_JSON,
})
_FIELDS = ["ID", "TYPE", "TO_ROOM", "TO", "ROOM", "ROOT_ID", "MODEL_STATUS", "SENT_BY", "NAME"]


def _mutate(base: Message, field: str, value: object, remove: bool) -> Message:
    message = dict(base)
    if remove:
        message.pop(field, None)
    else:
        message[field] = value
    return message


_ENVELOPES = st.builds(_mutate, _PLAUSIBLE, st.sampled_from(_FIELDS), _GARBAGE,
                       st.sampled_from([False, False, False, True]))
_FRAMES = st.one_of(*[_ENVELOPES.map(json.dumps)] * 6, st.text(max_size=40),
                    st.binary(max_size=40))


@pytest.fixture
async def fuzz_clients(server: TestServer) -> AsyncIterator[tuple[RawClient, ...]]:
    """One set of clients for all examples: state piles up as it would in a long session."""
    url = ws_url_of(server)
    clients = (await RawClient.connect(url, "fuzz", rooms=("r",)),
               await RawClient.connect(url, "p1", rooms=("pair",)),
               await RawClient.connect(url, "p2", rooms=("pair",)))
    yield clients
    for client in clients:
        await client.close()


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(_FRAMES, min_size=1, max_size=5))
async def test_no_envelope_breaks_the_connection_or_the_server(
        fuzz_clients: tuple[RawClient, ...], frames: list[str | bytes]) -> None:
    """Whatever the envelope holds, the sender's connection keeps working (it gets
    ERRORs or its message is relayed) and so does everyone else's."""
    fuzz, p1, p2 = fuzz_clients
    for frame in frames:
        if isinstance(frame, bytes):
            await fuzz.ws.send_bytes(frame)
        else:
            await fuzz.ws.send_str(frame)
    await fuzz.sync()  # still registered, still answered
    await exchange(p1, p2, "pair")
