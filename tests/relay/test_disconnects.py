"""Slow consumers, vanishing peers, every kind of close, shutdown: nothing is left behind."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from swergio_al.protocol import CloseCode
from tests.conftest import MakeServer
from tests.helpers import RawClient, ServerProcess
from tests.relay.support import (
    ConnectSocket,
    assert_silent,
    close_code_of,
    exchange,
    hub_of,
    no_trace,
    until,
    ws_url_of,
)


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
