"""Access control, origin check, abuse limits: against a real server."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest

from swergio_al.cli import secure_exposed
from swergio_al.config import Config
from tests.conftest import MakeServer
from tests.helpers import RawClient

COMPONENT, LABELER = "c-secret", "l-secret"


async def _register(url: str, name: str, **fields: Any) -> RawClient:
    client = await RawClient.connect(url)
    await client.send({"TYPE": "COMMAND/REGISTER", "NAME": name, **fields})
    client.name = name
    return client


async def _frames_within(client: RawClient, seconds: float) -> list[dict[str, Any]]:
    frames = []
    try:
        while True:
            frames.append(await client.recv(timeout=seconds))
    except TimeoutError:
        return frames


async def _refused_and_closed(client: RawClient, code: str, close: int) -> None:
    error = await client.expect("ERROR")
    assert error["CODE"] == code
    frame = await client.ws.receive(timeout=5)
    assert frame.type is aiohttp.WSMsgType.CLOSE and frame.data == close


@pytest.fixture
async def guarded(make_server: MakeServer) -> str:
    server = await make_server(component_token=COMPONENT, labeler_token=LABELER)
    return str(server.make_url("/ws"))


@pytest.mark.parametrize("fields", [
    {},                                            # anonymous
    {"TOKEN": "wrong"},
    {"TOKEN": LABELER},                            # labeler token, component role
    {"ROLE": "labeler", "TOKEN": "wrong"},
    {"ROLE": "labeler"},
])
async def test_registration_without_the_right_token_is_refused_and_closed(
        guarded: str, fields: dict[str, Any]) -> None:
    client = await _register(guarded, "intruder", **fields)
    try:
        await _refused_and_closed(client, "unauthorized", 4003)
    finally:
        await client.close()


async def test_unregistered_client_can_do_nothing(guarded: str) -> None:
    async with await RawClient.connect(guarded) as client:
        for message in ({"TYPE": "COMMAND/JOINROOM", "ROOM": "models"},
                        {"TYPE": "DATA/TEXT", "TO_ROOM": "models", "DATA": "x"},
                        {"TYPE": "FEEDBACK/LABEL", "TO_ROOM": "feedback", "DATA": {}}):
            await client.send(message)
            assert (await client.expect("ERROR"))["CODE"] == "not_registered"


async def test_tokens_grant_their_roles(guarded: str) -> None:
    model = await _register(guarded, "model", TOKEN=COMPONENT)
    labeler = await _register(guarded, "ann", ROLE="labeler", TOKEN=LABELER)
    boss = await _register(guarded, "boss", ROLE="labeler", TOKEN=COMPONENT)
    try:
        await model.sync()  # registered: a message to oneself comes back
        for client in (labeler, boss):  # labelers may not message anyone; they may skip
            await client.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "feedback"})
            await client.send({"TYPE": "FEEDBACK/SKIP", "TO_ROOM": "feedback",
                               "DATA": {"task_id": "none"}})
            assert (await client.expect("ERROR"))["CODE"] == "unknown_task"
    finally:
        for client in (model, labeler, boss):
            await client.close()


@pytest.mark.parametrize("message", [
    {"TYPE": "COMMAND/JOINROOM", "ROOM": "models"},
    {"TYPE": "COMMAND/JOINROOM", "ROOM": "_logging"},
    {"TYPE": "COMMAND/JOINROOM", "ROOM": "kpi"},
    {"TYPE": "DATA/TEXT", "TO_ROOM": "feedback", "DATA": "hi"},
    {"TYPE": "DATA/FORWARD", "TO_ROOM": "feedback", "DATA": [1]},
    {"TYPE": "COMMAND/CUSTOM", "TO_ROOM": "feedback"},
    {"TYPE": "COMMAND/SAVEMODELWEIGHTS", "TO_ROOM": "feedback"},
    {"TYPE": "LOG/KPI", "TO_ROOM": "feedback", "DATA": {}},
    {"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": "feedback", "DATA": {"sample_id": 1}},
    {"TYPE": "FEEDBACK/CANCEL", "TO_ROOM": "feedback", "DATA": {"sample_ids": [1]}},
    {"TYPE": "FEEDBACK/HISTORY", "TO_ROOM": "feedback", "DATA": {}},
    {"TYPE": "FEEDBACK/LABEL", "TO": "model", "DATA": {"task_id": "t", "answer": 1}},
    {"TYPE": "DATA/TEXT", "TO": "model", "DATA": "psst"},
])
async def test_labeler_forbidden_actions(guarded: str, message: dict[str, Any]) -> None:
    model = await _register(guarded, "model", TOKEN=COMPONENT)
    labeler = await _register(guarded, "ann", ROLE="labeler", TOKEN=LABELER)
    try:
        for room in ("models", "feedback", "kpi", "_logging"):
            await model.send({"TYPE": "COMMAND/JOINROOM", "ROOM": room})
        await labeler.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "feedback"})
        await model.sync()
        message = {"ID": "bad-1", **message}
        await labeler.send(message)
        error = await labeler.expect("ERROR")
        assert (error["CODE"], error["REF"]) == ("forbidden", "bad-1")
        # Nothing reached the model, and the labeler is still connected and in its room.
        assert [f for f in await _frames_within(model, 0.2)
                if f["TYPE"] != "FEEDBACK/STATS"] == []
        await labeler.send({"TYPE": "FEEDBACK/SKIP", "TO_ROOM": "feedback",
                            "DATA": {"task_id": "none"}})
        assert (await labeler.expect("ERROR"))["CODE"] == "unknown_task"
    finally:
        await model.close()
        await labeler.close()


async def test_labeler_never_sees_model_traffic(guarded: str) -> None:
    model = await _register(guarded, "model", TOKEN=COMPONENT)
    peer = await _register(guarded, "peer", TOKEN=COMPONENT)
    labeler = await _register(guarded, "ann", ROLE="labeler", TOKEN=LABELER)
    try:
        for client in (model, peer):
            await client.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "models"})
            await client.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "_logging"})
            await client.sync()
        await labeler.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "feedback"})
        await model.send({"TYPE": "DATA/FORWARD", "TO_ROOM": "models", "DATA": [1]})
        assert (await peer.expect("DATA/FORWARD"))["DATA"] == [1]
        frames = await _frames_within(labeler, 0.3)
        assert all(f["TYPE"] in ("FEEDBACK/STATS", "ERROR") for f in frames), frames
    finally:
        for client in (model, peer, labeler):
            await client.close()


async def test_foreign_origin_cannot_open_ws(make_server: MakeServer) -> None:
    server = await make_server(allowed_origins=["http://trusted.example"])
    url = str(server.make_url("/ws"))
    host = f"http://{server.host}:{server.port}"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, origin="http://evil.example")
        assert refused.value.status == 403
        for origin in (host, "http://trusted.example", None):
            ws = await session.ws_connect(url, origin=origin)
            await ws.close()


async def test_rate_limit_errors_then_closes_with_1008(make_server: MakeServer) -> None:
    server = await make_server(rate_per_second=5, rate_burst=10)
    url = str(server.make_url("/ws"))
    async with await RawClient.connect(url) as flooder, \
            await RawClient.connect(url, "calm", rooms=("r",)) as calm, \
            await RawClient.connect(url, "other", rooms=("r",)) as other:
        await flooder.send({"TYPE": "COMMAND/REGISTER", "NAME": "flood", "ROLE": "labeler"})
        for _ in range(30):
            await flooder.send({"TYPE": "FEEDBACK/SKIP", "TO_ROOM": "feedback",
                                "DATA": {"task_id": "x"}})
        while True:
            error = await flooder.expect("ERROR")
            if error["CODE"] == "rate_limited":
                break
        frame = await flooder.ws.receive(timeout=5)
        assert frame.type is aiohttp.WSMsgType.CLOSE and frame.data == 1008
        # Components (registered, unlimited by default) are unaffected.
        for i in range(50):
            await calm.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": i})
        assert [(await other.expect("DATA/TEXT"))["DATA"] for _ in range(50)] == list(range(50))


async def test_connections_per_address_are_capped(make_server: MakeServer) -> None:
    server = await make_server(max_connections_per_ip=2)
    url = str(server.make_url("/ws"))
    first, second = await RawClient.connect(url), await RawClient.connect(url)
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)
            assert refused.value.status == 429
        await first.close()
        third = await RawClient.connect(url)  # a slot is free again
        await third.close()
    finally:
        await second.close()


async def test_pages_carry_security_headers(server: Any) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/", "/dashboard"):
            async with session.get(server.make_url(path)) as response:
                assert response.status == 200
                csp = response.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
                assert "unsafe-inline" not in csp
                assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_exposed_server_without_tokens_generates_them() -> None:
    open_config = Config(host="127.0.0.1")
    assert secure_exposed(open_config) == [] and open_config.component_token == ""
    exposed = Config(host="0.0.0.0", port=9000)
    lines = secure_exposed(exposed)
    assert exposed.component_token and exposed.labeler_token
    assert exposed.component_token != exposed.labeler_token
    assert any(f"/?token={exposed.labeler_token}" in line for line in lines)
    # A link to share names the machine: nobody else's browser can open 0.0.0.0.
    assert any(f"http://{socket.gethostname()}:9000/?token=" in line for line in lines), lines
    assert not any("0.0.0.0" in line for line in lines)
    configured = Config(host="0.0.0.0", labeler_token="mine")
    assert secure_exposed(configured) == [] and configured.labeler_token == "mine"


async def test_labeler_may_round_trip_to_itself_only(guarded: str) -> None:
    labeler = await _register(guarded, "ann", ROLE="labeler", TOKEN=LABELER)
    try:
        await labeler.sync()  # TO itself, no room: reaches nobody else
        await labeler.send({"ID": "x", "TYPE": "DATA/CUSTOM", "TO": "ann", "TO_ROOM": "feedback"})
        assert (await labeler.expect("ERROR"))["CODE"] == "forbidden"
    finally:
        await labeler.close()


async def test_api_wants_the_component_token_when_one_is_set(make_server: MakeServer) -> None:
    server = await make_server(component_token=COMPONENT)
    async with aiohttp.ClientSession() as session:
        for path in ("/api/stats", "/api/labels.csv", "/api/labels.jsonl"):
            async with session.get(server.make_url(path)) as response:
                assert response.status == 401
            async with session.get(server.make_url(path),
                                   headers={"Authorization": "Bearer wrong"}) as response:
                assert response.status == 401
            async with session.get(server.make_url(path),
                                   headers={"Authorization": f"Bearer {COMPONENT}"}) as response:
                assert response.status == 200
            async with session.get(server.make_url(path).with_query(token=COMPONENT)) as response:
                assert response.status == 200
