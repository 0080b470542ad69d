"""swergio 0.0.2 compatibility: the TCP listener and its original length-prefixed framing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from swergio_al.keys import SWERGIO_LISTENER
from swergio_al.protocol import ErrorCode, error_frame
from swergio_al.relay.tcp import FrameDecoder, FramingError
from tests.conftest import MakeServer
from tests.helpers import RawClient, ServerProcess, free_port

Message = dict[str, Any]
MAX_FRAME = 4096


def frame(body: bytes) -> bytes:
    """The 0.0.2 framing: 10-byte ASCII length header, left-justified, space-padded."""
    return f"{len(body):<10}".encode() + body


def message_frame(message: Message) -> bytes:
    return frame(json.dumps(message).encode())


class TcpClient:
    """A bare swergio 0.0.2 peer speaking the framing by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 name: str | None) -> None:
        self.reader = reader
        self.writer = writer
        self.name = name

    @classmethod
    async def connect(cls, port: int, name: str | None = None, *,
                      rooms: tuple[str, ...] = ()) -> TcpClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = cls(reader, writer, name)
        if name is not None:
            # What swergio.Client.register() sends: REGISTER, then JOINROOM _command.
            await client.send({"ID": os.urandom(16).hex(), "TYPE": "COMMAND/REGISTER",
                               "NAME": name, "TO_ROOM": "_command"})
            await client.join("_command")
        for room in rooms:
            await client.join(room)
        if name is not None:
            await client.sync()
        return client

    async def join(self, room: str) -> None:
        await self.send({"ID": os.urandom(16).hex(), "TYPE": "COMMAND/JOINROOM", "ROOM": room,
                         "TO_ROOM": "_command"})

    async def send(self, message: Message) -> None:
        await self.send_raw(message_frame(message))

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> Message:
        async with asyncio.timeout(timeout):
            header = await self.reader.readexactly(10)
            body = await self.reader.readexactly(int(header))
        return json.loads(body)  # type: ignore[no-any-return]

    async def sync(self, timeout: float = 5.0) -> None:
        """Round trip to ourselves (0.0.2 has no acks): everything sent before is handled."""
        marker = os.urandom(8).hex()
        await self.send({"TYPE": "DATA/CUSTOM", "TO": self.name, "SYNC": marker})
        async with asyncio.timeout(timeout):
            while (await self.recv(timeout)).get("SYNC") != marker:
                pass

    async def closed_by_server(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            rest = await self.reader.read()
        assert rest == b"", f"expected the server to close, got {rest!r}"

    async def nothing_within(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                data = await self.reader.read(1)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected bytes (or close) from the server: {data!r}")

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


@pytest.fixture
async def compat_server(make_server: MakeServer) -> TestServer:
    return await make_server(swergio_port=0, max_frame_size=MAX_FRAME)


@pytest.fixture
def swergio_port(compat_server: TestServer) -> int:
    port = compat_server.app[SWERGIO_LISTENER].port
    assert port
    return port


@pytest.fixture
def compat_ws_url(compat_server: TestServer) -> str:
    return str(compat_server.make_url("/ws"))


async def test_tcp_and_websocket_clients_share_a_room(swergio_port: int,
                                                      compat_ws_url: str) -> None:
    tcp = await TcpClient.connect(swergio_port, "old", rooms=("r",))
    try:
        async with await RawClient.connect(compat_ws_url, "new", rooms=("r",)) as ws:
            await tcp.send({"ID": "m1", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "héllo",
                            "SENT_BY": "spoof"})
            got = await ws.expect("DATA/TEXT")
            assert (got["ID"], got["DATA"], got["SENT_BY"]) == ("m1", "héllo", "old")
            # With an ID and no SENT_BY the frame is relayed as it came, sender appended.
            await tcp.send({"ID": "m0", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": {"k": [1]}})
            got = await ws.expect("DATA/TEXT")
            assert got == {"ID": "m0", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": {"k": [1]},
                           "SENT_BY": "old"}

            await ws.send({"ID": "m2", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "ünïcode"})
            back = await tcp.recv()
            assert back == {"ID": "m2", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "ünïcode",
                            "SENT_BY": "new"}

            await ws.send({"TYPE": "DATA/CUSTOM", "TO": "old", "X": 1})
            direct = await tcp.recv()
            assert (direct["X"], direct["SENT_BY"]) == (1, "new")
    finally:
        await tcp.close()


async def test_refused_messages_are_logged_never_answered(
        swergio_port: int, compat_ws_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="swergio_al.relay.tcp")
    unregistered = await TcpClient.connect(swergio_port)
    tcp = await TcpClient.connect(swergio_port, "old", rooms=("r",))
    try:
        async with await RawClient.connect(compat_ws_url, "new", rooms=("r",)) as ws:
            await unregistered.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "x"})
            await tcp.send({"TYPE": "DATA/TEXT", "TO_ROOM": "elsewhere", "DATA": "x"})
            await tcp.send({"TYPE": "DATA/TEXT", "TO": "nobody", "DATA": "x"})
            await tcp.send({"TYPE": "NO/SUCH", "TO_ROOM": "r"})
            await tcp.send({"TYPE": "DATA/TEXT", "DATA": "no recipient"})
            # 0.0.2 broadcast every command to _command; here only the server reads it.
            await tcp.send({"TYPE": "COMMAND/SAVEMODELWEIGHTS", "TO_ROOM": "_command"})
            # The next frame the client sees is its own sync: no ERROR, no ack came first.
            await tcp.sync()
            await unregistered.nothing_within(0.1)
            await ws.nothing_within(0.05)
            # The connection still works after the refusals.
            await tcp.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "still here"})
            assert (await ws.expect("DATA/TEXT"))["DATA"] == "still here"
    finally:
        await tcp.close()
        await unregistered.close()
    refusals = [r.getMessage() for r in caplog.records if "refused from swergio" in r.getMessage()]
    codes = ("not_registered", "not_in_room", "unknown_recipient", "unknown_type", "no_recipient",
             "reserved_room")
    for code in codes:
        assert any(code in line for line in refusals), (code, refusals)


async def test_partial_header_several_messages_per_write_and_body_byte_by_byte(
        swergio_port: int, compat_ws_url: str) -> None:
    tcp = await TcpClient.connect(swergio_port, "old", rooms=("r",))
    try:
        async with await RawClient.connect(compat_ws_url, "new", rooms=("r",)) as ws:
            # Several frames in one write.
            await tcp.send_raw(b"".join(
                message_frame({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": i}) for i in range(3)))
            assert [(await ws.expect("DATA/TEXT"))["DATA"] for _ in range(3)] == [0, 1, 2]

            # A header split in two, then a body dribbled one byte per write. The pauses
            # spread the writes over many reads; delivery is awaited, not slept on.
            data = message_frame({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "dribbled ✓"})
            await tcp.send_raw(data[:4])
            await asyncio.sleep(0.02)
            await tcp.send_raw(data[4:10])
            for byte in data[10:]:
                await asyncio.sleep(0.002)
                await tcp.send_raw(bytes([byte]))
            assert (await ws.expect("DATA/TEXT"))["DATA"] == "dribbled ✓"

            # The tail of one frame and the head of the next in the same write.
            a = message_frame({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "a"})
            b = message_frame({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "b"})
            await tcp.send_raw(a[:15])
            await tcp.send_raw(a[15:] + b[:7])
            await tcp.send_raw(b[7:])
            assert [(await ws.expect("DATA/TEXT"))["DATA"] for _ in range(2)] == ["a", "b"]
    finally:
        await tcp.close()


@pytest.mark.parametrize("garbage", [
    pytest.param(b"abcdefghij{}", id="non-numeric-header"),
    pytest.param(b"-5        hello", id="negative-length"),
    pytest.param(b"1e3       ", id="exponent-header"),
    pytest.param(f"{MAX_FRAME + 1:<10}".encode(), id="length-over-max"),
    pytest.param(b"9999999999", id="absurd-length"),
    pytest.param(frame(b'{"TYPE": "DATA/TEXT", '), id="invalid-json"),
    pytest.param(frame(b'{"TYPE": "\xff\xfe"}'), id="invalid-utf8"),
    pytest.param(frame(b"[1, 2, 3]"), id="not-an-object"),
    pytest.param(frame(b""), id="empty-body"),
])
async def test_bad_framing_closes_only_that_connection(
        swergio_port: int, compat_ws_url: str, garbage: bytes,
        caplog: pytest.LogCaptureFixture) -> None:
    bad = await TcpClient.connect(swergio_port, "bad", rooms=("r",))
    good = await TcpClient.connect(swergio_port, "good", rooms=("r",))
    try:
        async with await RawClient.connect(compat_ws_url, "web", rooms=("r",)) as ws:
            await bad.send_raw(garbage)
            await bad.closed_by_server()

            await good.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "tcp→ws"})
            assert (await ws.expect("DATA/TEXT"))["DATA"] == "tcp→ws"
            await ws.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "ws→tcp"})
            assert (await good.recv())["DATA"] == "ws→tcp"
            # The closed client's membership and name are gone.
            await ws.send({"ID": "q", "TYPE": "DATA/TEXT", "TO": "bad", "DATA": "?"})
            error = await ws.expect("ERROR")
            assert (error["CODE"], error["REF"]) == ("unknown_recipient", "q")
    finally:
        await bad.close()
        await good.close()
    assert any("closing swergio 0.0.2 client bad" in r.getMessage() for r in caplog.records)


async def test_disconnect_command_and_dropped_socket_clean_up_membership(
        compat_server: TestServer, swergio_port: int, compat_ws_url: str) -> None:
    hub = compat_server.app[SWERGIO_LISTENER].hub
    polite = await TcpClient.connect(swergio_port, "polite", rooms=("r",))
    rude = await TcpClient.connect(swergio_port, "rude", rooms=("r",))
    async with await RawClient.connect(compat_ws_url, "web", rooms=("r",)) as ws:
        await polite.send({"TYPE": "COMMAND/DISCONNECT", "TO_ROOM": "_command"})
        await polite.closed_by_server()
        await polite.close()
        rude.writer.transport.abort()  # no DISCONNECT, no FIN handshake
        for name in ("polite", "rude"):
            # The reset may still be in flight when the first probe arrives: probe until
            # the name is gone (a probe that reaches a live socket is delivered, not refused).
            async with asyncio.timeout(5):
                while True:
                    await ws.send({"ID": name, "TYPE": "DATA/TEXT", "TO": name, "DATA": "?"})
                    try:
                        error = await ws.expect("ERROR", timeout=0.5)
                    except TimeoutError:
                        continue
                    if error["CODE"] == "unknown_recipient" and error["REF"] == name:
                        break
        assert {conn.name for conn in hub.members("r")} == {"web"}
    assert not compat_server.app[SWERGIO_LISTENER].connections


async def test_a_reconnecting_tcp_client_takes_its_name_over(swergio_port: int,
                                                             compat_ws_url: str) -> None:
    first = await TcpClient.connect(swergio_port, "model", rooms=("r",))
    second = await TcpClient.connect(swergio_port, "model", rooms=("r",))
    try:
        await first.closed_by_server()
        async with await RawClient.connect(compat_ws_url, "web", rooms=("r",)) as ws:
            await ws.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "to the new one"})
            assert (await second.recv())["DATA"] == "to the new one"
    finally:
        await first.close()
        await second.close()


async def test_shutdown_closes_tcp_clients_and_the_port(make_server: MakeServer) -> None:
    server = await make_server(swergio_port=0)
    listener = server.app[SWERGIO_LISTENER]
    port = listener.port
    assert port is not None
    tcp = await TcpClient.connect(port, "old", rooms=("r",))
    idle = await TcpClient.connect(port)
    await idle.send_raw(b"12")  # half a header: the session is mid-read at shutdown
    try:
        await server.close()
        await tcp.closed_by_server()
        await idle.closed_by_server()
        assert not listener.connections
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
    finally:
        await tcp.close()
        await idle.close()


async def test_listener_is_off_unless_configured(server: TestServer) -> None:
    assert SWERGIO_LISTENER not in server.app


class Legacy:
    """The real swergio 0.0.2 `Client` (blocking sockets) with its `listen()` loop in a thread."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.thread = threading.Thread(target=self._listen, name=f"swergio-{client.name}",
                                       daemon=True)

    @classmethod
    async def connect(cls, port: int, name: str) -> Legacy:
        from swergio.client import Client

        return cls(await asyncio.to_thread(Client, name, "127.0.0.1", port))

    def _listen(self) -> None:
        try:
            self.client.listen()
        except OSError:
            pass  # listen() answers the server's close with a DISCONNECT into a closed socket
        finally:
            self.client.client.close()  # 0.0.2 skips this when that DISCONNECT fails

    def start(self) -> None:
        self.thread.start()

    async def stop(self) -> None:
        """Send DISCONNECT as the 0.0.2 client does; the server's close ends `listen()`."""
        if self.thread.is_alive():
            await asyncio.to_thread(self.client.send,
                                    {"TYPE": "COMMAND/DISCONNECT", "TO_ROOM": "_command"})
            await asyncio.to_thread(self.thread.join, 5)
            assert not self.thread.is_alive(), "listen() did not return after DISCONNECT"
        else:
            self.client.client.close()


def thread_safe_inbox() -> tuple[asyncio.Queue[Message], Any]:
    """A queue for the event loop and a plain function a foreign thread may call to fill it."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Message] = asyncio.Queue()

    def put(message: Message) -> None:  # returns None: a 0.0.2 handler result is a reply
        loop.call_soon_threadsafe(inbox.put_nowait, message)

    return inbox, put


async def test_real_swergio_client_talks_with_a_websocket_peer(swergio_port: int,
                                                               compat_ws_url: str) -> None:
    from swergio.client import Trigger
    from swergio.messageType import MESSAGE_TYPE

    rewards, record = thread_safe_inbox()

    def double(message: Message) -> Message:
        return {"DATA": message["DATA"] * 2}

    async with await RawClient.connect(compat_ws_url, "web", rooms=("r",)) as ws:
        legacy = await Legacy.connect(swergio_port, "legacy")
        try:
            await asyncio.to_thread(
                legacy.client.add_eventHandler, double, MESSAGE_TYPE.DATA.GRADIENT,
                responseRooms="r", trigger=Trigger(MESSAGE_TYPE.DATA.FORWARD, "r"))
            await asyncio.to_thread(
                legacy.client.add_eventHandler, record, None,
                trigger=Trigger(MESSAGE_TYPE.DATA.REWARD, "r"))
            # Same connection, so once this arrives its REGISTER and JOINROOMs were handled.
            await asyncio.to_thread(legacy.client.send,
                                    {"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "ready"})
            hello = await ws.expect("DATA/TEXT")
            assert (hello["DATA"], hello["SENT_BY"]) == ("ready", "legacy")
            legacy.start()

            await ws.send({"ID": "f1", "TYPE": "DATA/FORWARD", "TO_ROOM": "r", "DATA": [1, 2],
                           "ROOT_ID": "root-1", "MODEL_STATUS": 1})
            gradient = await ws.expect("DATA/GRADIENT")
            assert gradient["DATA"] == [1, 2, 1, 2]
            assert (gradient["SENT_BY"], gradient["TO_ROOM"]) == ("legacy", "r")
            assert (gradient["ROOT_ID"], gradient["MODEL_STATUS"]) == ("root-1", 1)

            await ws.send({"TYPE": "DATA/REWARD", "TO_ROOM": "r", "DATA": 0.5})
            async with asyncio.timeout(5):
                reward = await rewards.get()
            assert (reward["DATA"], reward["SENT_BY"]) == (0.5, "web")
        finally:
            await legacy.stop()
        # DISCONNECT took the name off the Hub.
        await ws.send({"ID": "gone", "TYPE": "DATA/TEXT", "TO": "legacy", "DATA": "?"})
        assert (await ws.expect("ERROR"))["CODE"] == "unknown_recipient"


async def test_swergio_client_and_component_handlers_trigger_each_other(
        swergio_port: int, compat_ws_url: str) -> None:
    """A chain FORWARD → GRADIENT (0.0.2 handler) → REWARD (Component handler) → 0.0.2."""
    from swergio.client import Trigger
    from swergio.messageType import MESSAGE_TYPE

    from swergio_al.client import Component

    rewards, record = thread_safe_inbox()
    modern = Component("modern", compat_ws_url, reconnect=False)
    ready: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    gradients: list[Message] = []

    @modern.on("DATA/TEXT", room="r")
    def on_text(message: Message) -> None:
        if not ready.done():
            ready.set_result(message)

    @modern.on("DATA/GRADIENT", room="r", response_type="DATA/REWARD")
    def on_gradient(message: Message) -> Message:
        gradients.append(message)
        return {"DATA": sum(message["DATA"])}

    def double(message: Message) -> Message:
        return {"DATA": message["DATA"] * 2}

    async with modern:
        legacy = await Legacy.connect(swergio_port, "legacy")
        try:
            await asyncio.to_thread(
                legacy.client.add_eventHandler, double, MESSAGE_TYPE.DATA.GRADIENT,
                responseRooms="r", trigger=Trigger(MESSAGE_TYPE.DATA.FORWARD, "r"))
            await asyncio.to_thread(
                legacy.client.add_eventHandler, record, None,
                trigger=Trigger(MESSAGE_TYPE.DATA.REWARD, "r"))
            await asyncio.to_thread(legacy.client.send,
                                    {"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "ready"})
            async with asyncio.timeout(5):
                assert (await ready)["SENT_BY"] == "legacy"
            legacy.start()

            await modern.send({"TYPE": "DATA/FORWARD", "TO_ROOM": "r", "DATA": [1, 2],
                               "ROOT_ID": "chain-1"})
            async with asyncio.timeout(5):
                reward = await rewards.get()
            assert (reward["TYPE"], reward["DATA"], reward["SENT_BY"]) == ("DATA/REWARD", 6,
                                                                           "modern")
            assert reward["ROOT_ID"] == "chain-1"
            assert [(g["DATA"], g["SENT_BY"]) for g in gradients] == [([1, 2, 1, 2], "legacy")]
        finally:
            await legacy.stop()


async def test_error_frames_from_any_server_part_never_reach_a_tcp_client(
        compat_server: TestServer, swergio_port: int) -> None:
    tcp = await TcpClient.connect(swergio_port, "old")
    try:
        hub = compat_server.app[SWERGIO_LISTENER].hub
        conn = hub.names["old"]
        hub.send_to(conn, error_frame(ErrorCode.FORBIDDEN, "a service refused something"))
        hub.send_to(conn, {"TYPE": "DATA/TEXT", "TO": "old", "DATA": "after"})
        assert (await tcp.recv())["DATA"] == "after"
    finally:
        await tcp.close()


def test_serve_flag_opens_the_port_for_a_real_swergio_client(tmp_path: Path) -> None:
    from swergio.client import Client

    tcp_port = free_port()
    with ServerProcess("--swergio-port", str(tcp_port), "--store",
                       f"sqlite:///{tmp_path / 'store.db'}"):
        first = Client("first", "127.0.0.1", tcp_port)
        second = Client("second", "127.0.0.1", tcp_port)
        try:
            for client in (first, second):
                client.client.settimeout(5)  # receive() then returns False instead of hanging
            first.join_room("r")
            second.join_room("r")
            # Round trip through the server proves second's JOINROOM was handled.
            second.send({"TYPE": "DATA/CUSTOM", "TO": "second", "SYNC": 1})
            assert second.receive()["SYNC"] == 1
            first.send({"ID": "x", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "over tcp"})
            got = second.receive()
            assert (got["ID"], got["DATA"], got["SENT_BY"]) == ("x", "over tcp", "first")
        finally:
            first.close()
            second.close()


async def test_a_tcp_client_that_stops_reading_is_cut_off_alone(make_server: MakeServer) -> None:
    server = await make_server(swergio_port=0, outbound_queue_size=4)
    port = server.app[SWERGIO_LISTENER].port
    assert port is not None
    stuck = await TcpClient.connect(port, "stuck", rooms=("r",))
    good = await TcpClient.connect(port, "good", rooms=("r",))
    stuck.writer.transport.pause_reading()  # from here on it reads nothing
    try:
        async with await RawClient.connect(str(server.make_url("/ws")), "web",
                                           rooms=("r",)) as ws:
            chunk = "x" * 60_000
            for i in range(200):  # ~12 MB: more than the socket buffers hold
                await ws.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": chunk, "N": i})
                assert (await good.recv())["N"] == i  # the reader keeps pace; stuck does not
            # Cut off at once, not after a close grace period spent waiting on a dead reader.
            async with asyncio.timeout(2):
                while True:
                    await ws.send({"ID": "probe", "TYPE": "DATA/TEXT", "TO": "stuck", "DATA": 1})
                    try:
                        await ws.expect("ERROR", timeout=0.2)
                        break
                    except TimeoutError:
                        continue
            await good.sync()
    finally:
        await stuck.close()
        await good.close()


async def test_a_stalled_half_frame_is_closed_an_idle_client_is_not(
        make_server: MakeServer) -> None:
    server = await make_server(swergio_port=0, heartbeat_seconds=0.3)
    port = server.app[SWERGIO_LISTENER].port
    assert port is not None
    idle = await TcpClient.connect(port, "idle", rooms=("r",))
    half_header = await TcpClient.connect(port, "half_header")
    half_body = await TcpClient.connect(port, "half_body")
    try:
        started = asyncio.get_running_loop().time()
        await half_header.send_raw(b"42  ")
        await half_body.send_raw(message_frame({"TYPE": "DATA/TEXT", "TO": "idle"})[:20])
        await half_header.closed_by_server(timeout=3)
        await half_body.closed_by_server(timeout=3)
        assert asyncio.get_running_loop().time() - started >= 0.3
        await idle.sync()  # silent for longer than the frame timeout, still served
    finally:
        for client in (idle, half_header, half_body):
            await client.close()


async def test_a_tcp_client_in_logging_gets_the_0_0_2_mirror(swergio_port: int,
                                                             compat_ws_url: str) -> None:
    logger = await TcpClient.connect(swergio_port, "logger", rooms=("_logging",))
    try:
        async with await RawClient.connect(compat_ws_url, "web", rooms=("r",)) as ws:
            await ws.send({"ID": "f", "TYPE": "DATA/FORWARD", "TO_ROOM": "r", "DATA": [1]})
            mirror = await logger.recv()
            assert (mirror["TYPE"], mirror["TO_ROOM"]) == ("LOG/MESSAGES", "_logging")
            assert mirror["MESSAGE"] == {"ID": "f", "TYPE": "DATA/FORWARD", "TO_ROOM": "r",
                                         "DATA": [1], "SENT_BY": "web"}
    finally:
        await logger.close()


@pytest.mark.redis
async def test_tcp_client_on_one_node_talks_to_a_websocket_client_on_another(
        make_server: MakeServer, tmp_path: Path) -> None:
    from tests.multinode import broker_url, delete_keys, new_prefix, require_redis

    require_redis()
    prefix = new_prefix()
    try:
        broker = broker_url(prefix)
        node_a = await make_server(swergio_port=0, broker=broker,
                                   store=f"sqlite:///{tmp_path / 'a.db'}")
        node_b = await make_server(broker=broker, store=f"sqlite:///{tmp_path / 'b.db'}")
        port = node_a.app[SWERGIO_LISTENER].port
        assert port is not None
        tcp = await TcpClient.connect(port, "legacy", rooms=("r",))
        try:
            async with await RawClient.connect(str(node_b.make_url("/ws")), "web",
                                               rooms=("r",)) as ws:
                # Subscriptions across nodes settle asynchronously: repeat until one lands.
                async with asyncio.timeout(5):
                    while True:
                        await tcp.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "a→b"})
                        try:
                            got = await ws.expect("DATA/TEXT", timeout=0.2)
                            break
                        except TimeoutError:
                            continue
                assert (got["DATA"], got["SENT_BY"]) == ("a→b", "legacy")
                await ws.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "b→a", "N": 1})
                await ws.send({"TYPE": "DATA/CUSTOM", "TO": "legacy", "N": 2})
                received = [await tcp.recv(), await tcp.recv()]
                assert sorted((m["N"], m["SENT_BY"]) for m in received) == [(1, "web"),
                                                                            (2, "web")]
        finally:
            await tcp.close()
    finally:
        delete_keys(prefix)


@settings(max_examples=100, deadline=None)
@given(bodies=st.lists(st.binary(max_size=40), max_size=8), data=st.data())
def test_decoder_returns_the_bodies_however_the_stream_is_cut(bodies: list[bytes],
                                                              data: st.DataObject) -> None:
    stream = b"".join(frame(body) for body in bodies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = FrameDecoder(max_size=40)
    got: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += decoder.feed(stream[start:end])
    assert got == bodies
    assert not decoder.mid_frame


def test_decoder_hands_out_the_frames_before_a_bad_header_then_fails() -> None:
    decoder = FrameDecoder(max_size=100)
    assert decoder.feed(frame(b"{}") + frame(b"[]") + b"oops      {}") == [b"{}", b"[]"]
    assert isinstance(decoder.error, FramingError)
    with pytest.raises(FramingError, match="not a length"):
        decoder.feed(b"more")


async def test_good_frames_before_garbage_in_one_write_are_delivered(
        swergio_port: int, compat_ws_url: str) -> None:
    tcp = await TcpClient.connect(swergio_port, "old", rooms=("r",))
    try:
        async with await RawClient.connect(compat_ws_url, "new", rooms=("r",)) as ws:
            await tcp.send_raw(
                message_frame({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "last words"})
                + b"garbage!!!")
            assert (await ws.expect("DATA/TEXT"))["DATA"] == "last words"
            await tcp.closed_by_server()
    finally:
        await tcp.close()


async def test_connections_per_address_count_tcp_and_websocket_together(
        make_server: MakeServer, caplog: pytest.LogCaptureFixture) -> None:
    server = await make_server(swergio_port=0, max_connections_per_ip=2)
    port = server.app[SWERGIO_LISTENER].port
    assert port is not None
    first = await TcpClient.connect(port, "first")
    try:
        async with await RawClient.connect(str(server.make_url("/ws")), "web"):
            third = await TcpClient.connect(port)
            await third.closed_by_server()
            await third.close()
        # The WebSocket's slot is free again.
        fourth = await TcpClient.connect(port, "fourth")
        await fourth.close()
    finally:
        await first.close()
    assert any("2 connections already open" in r.getMessage() for r in caplog.records)


async def test_anonymous_flood_is_cut_off_registered_components_are_not(
        make_server: MakeServer) -> None:
    server = await make_server(swergio_port=0, rate_per_second=1.0, rate_burst=5)
    port = server.app[SWERGIO_LISTENER].port
    assert port is not None
    anonymous = await TcpClient.connect(port)
    component = await TcpClient.connect(port, "model", rooms=("r",))
    try:
        await anonymous.send_raw(message_frame({"TYPE": "COMMAND/JOINROOM", "ROOM": "r"}) * 10)
        await anonymous.closed_by_server()
        for _ in range(5):  # 100 frames at once: components have their own (unlimited) rate
            await component.send_raw(message_frame({"TYPE": "DATA/TEXT", "TO_ROOM": "r"}) * 20)
        await component.sync()
    finally:
        await anonymous.close()
        await component.close()


async def test_without_the_component_token_a_0_0_2_register_closes_the_connection(
        make_server: MakeServer, caplog: pytest.LogCaptureFixture) -> None:
    server = await make_server(swergio_port=0, component_token="s3cret")
    port = server.app[SWERGIO_LISTENER].port
    assert port is not None
    assert any("cannot send it" in r.getMessage() for r in caplog.records)
    refused = await TcpClient.connect(port)
    await refused.send({"TYPE": "COMMAND/REGISTER", "NAME": "legacy", "TO_ROOM": "_command"})
    await refused.closed_by_server()
    await refused.close()
    assert not any("s3cret" in r.getMessage() for r in caplog.records)
    # A client that does send the token (a patched 0.0.2 register()) gets in.
    admitted = await TcpClient.connect(port)
    try:
        admitted.name = "patched"
        await admitted.send({"TYPE": "COMMAND/REGISTER", "NAME": "patched", "TOKEN": "s3cret",
                             "TO_ROOM": "_command"})
        await admitted.sync()
    finally:
        await admitted.close()


async def test_tcp_keepalive_is_on_for_0_0_2_clients(make_server: MakeServer) -> None:
    server = await make_server(swergio_port=0, heartbeat_seconds=12)
    listener = server.app[SWERGIO_LISTENER]
    assert listener.port is not None
    tcp = await TcpClient.connect(listener.port, "old")
    try:
        (conn,) = listener.connections
        sock = conn.writer.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 12
    finally:
        await tcp.close()
