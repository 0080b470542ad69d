"""Bad input: each frame gets the right ERROR (CODE, REF) or close code, and nobody else notices."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from swergio_al.protocol import CloseCode
from tests.conftest import MakeServer
from tests.helpers import RawClient
from tests.relay.support import (
    HEX_UUID,
    Message,
    assert_silent,
    close_code_of,
    exchange,
    hub_of,
    no_trace,
    until,
    ws_url_of,
)

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
        exactly = {"ID": "edge", "TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": ""}
        exactly["DATA"] = "x" * (4096 - len(json.dumps(exactly)))  # the limit itself fits
        await big.send(exactly)
        assert len((await a.recv())["DATA"]) == len(exactly["DATA"])
        await b.recv()
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
