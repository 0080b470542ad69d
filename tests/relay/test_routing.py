"""Who gets a message: rooms, TO, SENT_BY, IDs, the _logging mirror, names."""

from __future__ import annotations

import json

from aiohttp.test_utils import TestServer

from swergio_al.protocol import CloseCode
from tests.helpers import RawClient
from tests.relay.support import (
    HEX_UUID,
    assert_silent,
    close_code_of,
    hub_of,
    no_trace,
    until,
    ws_url_of,
)

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
        # A lone surrogate is not text that can travel on (docs/security.md): refused.
        await a.send({"ID": "s", "TYPE": "DATA/CUSTOM", "TO_ROOM": "r",
                      "DATA": "lone \ud800 surrogate"})
        await a.ws.send_str(' \n {"ID": "2", "TYPE": "DATA/CUSTOM", "TO_ROOM": "r"}\t')
        got = await b.recv()
        assert got == {"ID": "1", "TYPE": "DATA/CUSTOM", "TO_ROOM": "r", **payload,
                       "SENT_BY": "a"}
        assert (await b.recv())["ID"] == "2"
        refused = await a.expect("ERROR")
        assert (refused["CODE"], refused["REF"]) == ("bad_string", "s")


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
