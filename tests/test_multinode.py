"""Several `swergio-al serve` processes linked by the Redis broker act as one relay.

Needs Redis at 127.0.0.1:6379 (skipped otherwise). Every run uses its own key
prefix, so parallel runs do not see each other's traffic, and removes its keys.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from swergio_al.relay.broker import create_broker
from tests.helpers import RawClient, ServerProcess, free_port
from tests.multinode import (
    REDIS,
    broker_url,
    delete_keys,
    new_prefix,
    require_redis,
    start_nodes,
    stop_nodes,
)

PRESENCE_TTL = 1.0  # seconds; short so a killed node's names expire within a test

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    require_redis()
    prefix = new_prefix()
    yield prefix
    delete_keys(prefix)


def start_relays(prefix: str, logs: Path, count: int) -> list[ServerProcess]:
    """Nodes for relay tests: shared Redis, each its own throwaway feedback store."""
    return start_nodes(count, "--broker", broker_url(prefix, presence_ttl=PRESENCE_TTL),
                       "--store", "sqlite:///:memory:", logs=logs)


@pytest.fixture(scope="module")
def nodes(prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    started = start_relays(prefix, tmp_path_factory.mktemp("nodes"), 2)
    yield started
    assert stop_nodes(started) == [0] * len(started), "a node did not shut down cleanly"


def room() -> str:
    return f"r-{uuid.uuid4().hex[:8]}"


def name(role: str) -> str:
    return f"{role}-{uuid.uuid4().hex[:6]}"


async def collect(client: RawClient, end: str, *, timeout: float = 5.0) -> list[Any]:
    """DATA of every DATA/TEXT up to and including the one whose DATA is `end`."""
    seen: list[Any] = []
    while not seen or seen[-1] != end:
        message = await client.expect("DATA/TEXT", timeout)
        seen.append(message["DATA"])
    return seen


async def test_room_spans_nodes_both_ways_each_member_once_sender_excluded(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await RawClient.connect(one.ws_url, name("a"), rooms=(r,)) as a, \
            await RawClient.connect(two.ws_url, name("b"), rooms=(r,)) as b, \
            await RawClient.connect(two.ws_url, name("c"), rooms=(r,)) as c:
        # node 1 → node 2
        sent = [f"a{i}" for i in range(20)] + ["a-end"]
        for data in sent:
            await a.send({"TYPE": "DATA/TEXT", "TO_ROOM": r, "DATA": data})
        assert await collect(b, "a-end") == sent
        assert await collect(c, "a-end") == sent
        # node 2 → node 1 and to the other member on node 2
        sent = [f"b{i}" for i in range(20)] + ["b-end"]
        for data in sent:
            await b.send({"TYPE": "DATA/TEXT", "TO_ROOM": r, "DATA": data})
        assert await collect(a, "b-end") == sent
        assert await collect(c, "b-end") == sent
        for client in (a, b, c):
            await client.nothing_within(0.3)


async def test_sender_on_one_node_is_excluded_by_name_on_every_node(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await RawClient.connect(one.ws_url, name("a"), rooms=(r,)) as a, \
            await RawClient.connect(two.ws_url, name("b"), rooms=(r,)) as b:
        await a.send({"TYPE": "DATA/TEXT", "TO_ROOM": r, "DATA": "hello"})
        got = await b.expect("DATA/TEXT")
        assert (got["DATA"], got["SENT_BY"]) == ("hello", a.name)
        await a.nothing_within(0.3)


async def test_to_reaches_a_component_on_another_node_once(nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await RawClient.connect(one.ws_url, name("a"), rooms=(r,)) as a, \
            await RawClient.connect(two.ws_url, name("b"), rooms=(r,)) as b, \
            await RawClient.connect(two.ws_url, name("lonely")) as lonely:
        await a.send({"TYPE": "DATA/TEXT", "TO": lonely.name, "DATA": "direct"})
        got = await lonely.expect("DATA/TEXT")
        assert (got["DATA"], got["SENT_BY"]) == ("direct", a.name)
        # TO and TO_ROOM together: the union, each recipient once.
        await a.send({"TYPE": "DATA/TEXT", "TO": b.name, "TO_ROOM": r, "DATA": "both"})
        assert (await b.expect("DATA/TEXT"))["DATA"] == "both"
        # and back from node 2 to node 1
        await lonely.send({"TYPE": "DATA/TEXT", "TO": a.name, "DATA": "reply"})
        assert (await a.expect("DATA/TEXT"))["DATA"] == "reply"
        for client in (a, b, lonely):
            await client.nothing_within(0.3)


async def test_to_nobody_on_any_node_is_an_error(nodes: list[ServerProcess]) -> None:
    async with await RawClient.connect(nodes[0].ws_url, name("a")) as a:
        await a.send({"ID": "m1", "TYPE": "DATA/TEXT", "TO": name("ghost"), "DATA": 1})
        error = await a.expect("ERROR")
        assert (error["CODE"], error["REF"]) == ("unknown_recipient", "m1")


async def test_logging_mirror_is_produced_once_for_listeners_on_every_node(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await RawClient.connect(one.ws_url, name("a"), rooms=(r,)) as a, \
            await RawClient.connect(two.ws_url, name("b"), rooms=(r,)) as b, \
            await RawClient.connect(one.ws_url, name("log"), rooms=("_logging",)) as log1, \
            await RawClient.connect(two.ws_url, name("log"), rooms=("_logging",)) as log2:
        for sender in (a, b):
            await sender.send({"ID": f"fwd-{sender.name}", "TYPE": "DATA/FORWARD",
                               "TO_ROOM": r, "DATA": [1, 2]})
        for listener in (log1, log2):
            mirrored: list[str] = []
            deadline = asyncio.get_running_loop().time() + 5
            while len(mirrored) < 2 and asyncio.get_running_loop().time() < deadline:
                message = await listener.expect("LOG/MESSAGES")
                if message["MESSAGE"]["TO_ROOM"] == r:
                    mirrored.append(message["MESSAGE"]["SENT_BY"])
            assert sorted(mirrored) == sorted([a.name, b.name])
            await listener.nothing_within(0.3)


async def test_a_name_registered_on_another_node_takes_the_name_over(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    shared = name("model")
    async with await RawClient.connect(one.ws_url, shared) as old, \
            await RawClient.connect(one.ws_url, name("a")) as a:
        async with await RawClient.connect(two.ws_url, shared) as new:
            closed = await old.ws.receive(timeout=5)
            assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, 4001)
            await a.send({"TYPE": "DATA/TEXT", "TO": shared, "DATA": "for the new one"})
            assert (await new.expect("DATA/TEXT"))["DATA"] == "for the new one"
            await new.nothing_within(0.3)


async def test_a_takeover_across_nodes_never_crosses_roles(nodes: list[ServerProcess]) -> None:
    """A labeler on node two cannot take a component's name held on node one (issue 16)."""
    one, two = nodes
    shared = name("model")
    async with await RawClient.connect(one.ws_url, shared) as model, \
            await RawClient.connect(two.ws_url) as intruder:
        await intruder.send({"ID": "grab", "TYPE": "COMMAND/REGISTER", "NAME": shared,
                             "ROLE": "labeler"})
        refused = await intruder.expect("ERROR")
        assert (refused["CODE"], refused["REF"]) == ("name_taken", "grab")
        await model.sync()  # untouched: still holds its name
        async with await RawClient.connect(two.ws_url, name("a")) as a:
            await a.send({"TYPE": "DATA/TEXT", "TO": shared, "DATA": "still yours"})
            assert (await model.expect("DATA/TEXT"))["DATA"] == "still yours"


async def test_a_killed_nodes_names_expire_from_presence(
        prefix: str, nodes: list[ServerProcess], tmp_path: Path) -> None:
    import redis.asyncio as aioredis

    (doomed,) = start_relays(prefix, tmp_path, 1)
    try:
        victim = name("victim")
        client = await RawClient.connect(doomed.ws_url, victim)
        async with await RawClient.connect(nodes[0].ws_url, name("a")) as a:
            await a.send({"TYPE": "DATA/TEXT", "TO": victim, "DATA": "alive?"})
            assert (await client.expect("DATA/TEXT"))["DATA"] == "alive?"
            doomed.kill()
            await client.close()
            killed_at = asyncio.get_running_loop().time()
            # Until the TTL runs out the name still counts as online; then it is gone.
            while True:
                await a.send({"ID": "probe", "TYPE": "DATA/TEXT", "TO": victim, "DATA": 0})
                try:
                    error = await a.expect("ERROR", timeout=0.2)
                    break
                except TimeoutError:
                    assert asyncio.get_running_loop().time() - killed_at < PRESENCE_TTL + 3
            assert error["CODE"] == "unknown_recipient"
        redis = aioredis.from_url(REDIS)
        try:
            assert await redis.exists(f"{prefix}:0:name:{victim}") == 0
        finally:
            await redis.aclose()
    finally:
        doomed.kill()


async def test_a_node_that_stops_removes_its_names_at_once(
        prefix: str, tmp_path: Path) -> None:
    import redis.asyncio as aioredis

    (node,) = start_relays(prefix, tmp_path, 1)
    member = name("member")
    redis = aioredis.from_url(REDIS)
    try:
        client = await RawClient.connect(node.ws_url, member)
        assert await redis.exists(f"{prefix}:0:name:{member}") == 1
        assert node.terminate() == 0
        await client.close()
        assert await redis.exists(f"{prefix}:0:name:{member}") == 0
    finally:
        await redis.aclose()
        node.kill()


async def test_nodes_recover_from_lost_redis_connections_and_keep_clients(
        prefix: str, nodes: list[ServerProcess]) -> None:
    import redis.asyncio as aioredis

    one, two = nodes
    r = room()
    redis = aioredis.from_url(REDIS, decode_responses=True)
    try:
        async with await RawClient.connect(one.ws_url, name("a"), rooms=(r,)) as a, \
                await RawClient.connect(two.ws_url, name("b"), rooms=(r,)) as b:
            ours = [c for c in await redis.client_list() if c["name"].startswith(f"{prefix}:")]
            assert len(ours) >= 4  # a subscriber and a publisher per node at least
            for client in ours:
                await redis.client_kill_filter(_id=client["id"])
            # Pub/sub loses what is sent while a node is away: probe each way until through.
            await until_through(a, b, r)
            await until_through(b, a, r)
            # Clients stayed connected; traffic after recovery arrives once, in order.
            sent = [f"after{i}" for i in range(10)] + ["end"]
            for data in sent:
                await b.send({"TYPE": "DATA/TEXT", "TO_ROOM": r, "DATA": data})
            received = [d for d in await collect(a, "end") if not str(d).startswith("probe")]
            assert received == sent
            await a.send({"TYPE": "DATA/TEXT", "TO": b.name, "DATA": "direct"})
            assert [d for d in await collect(b, "direct") if not str(d).startswith("probe")] \
                == ["direct"]
            await a.nothing_within(0.3)
    finally:
        await redis.aclose()
    for node in nodes:
        assert "retrying in" in (node.log_path.read_text() if node.log_path else "")


async def until_through(sender: RawClient, receiver: RawClient, room: str) -> None:
    """Send probes until one arrives (within 10 s): the path between two nodes is back."""
    deadline = asyncio.get_running_loop().time() + 10
    probe = 0
    while True:
        probe += 1
        await sender.send({"TYPE": "DATA/TEXT", "TO_ROOM": room, "DATA": f"probe{probe}"})
        try:
            got = await receiver.expect("DATA/TEXT", timeout=0.3)
        except TimeoutError:
            assert asyncio.get_running_loop().time() < deadline, "no recovery in 10s"
            continue
        assert str(got["DATA"]).startswith("probe")
        return


async def test_unreachable_redis_fails_at_start_with_the_address_not_the_password() -> None:
    broker = create_broker(f"redis://:sekret@127.0.0.1:{free_port()}/0")
    with pytest.raises(ConnectionError, match=r"cannot reach Redis at redis://:\*\*\*@127\.0\.0\.1"
                       ) as raised:
        await broker.start(lambda envelope: None)
    assert "sekret" not in str(raised.value)


@pytest.mark.parametrize("ttl", ["soon", "0", "-1", "nan", "inf"])
def test_bad_presence_ttl_is_refused_with_a_clear_error(ttl: str) -> None:
    with pytest.raises(ValueError, match="presence_ttl") as raised:
        create_broker(f"redis://:sekret@127.0.0.1:6379/0?presence_ttl={ttl}")
    assert "sekret" not in str(raised.value)


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "swergio_al.relay.redis_broker", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'swergio-al\[redis\]'"):
        create_broker("redis://127.0.0.1:6379/0")


async def test_malformed_envelopes_on_the_channel_are_ignored(
        prefix: str, nodes: list[ServerProcess]) -> None:
    import redis.asyncio as aioredis

    one, two = nodes
    r = room()
    redis = aioredis.from_url(REDIS)
    try:
        async with await RawClient.connect(one.ws_url, name("a"), rooms=(r,)) as a, \
                await RawClient.connect(two.ws_url, name("b"), rooms=(r,)) as b:
            for garbage in ("no header", "[1, 2]\n{}",
                            '["x", [["seq", "d", null, null, null, 2]]]\n{}',
                            '["x", [[1, "d", "r", null, null, 99]]]\n{}',
                            '["x", [[2, "s", null, "feedback/queue", null, 8]]]\nnot json'):
                assert await redis.publish(f"{prefix}:0:relay", garbage) == 2
            await a.send({"TYPE": "DATA/TEXT", "TO_ROOM": r, "DATA": "still here"})
            assert (await b.expect("DATA/TEXT"))["DATA"] == "still here"
    finally:
        await redis.aclose()
    assert all("malformed envelope" in (node.log_path.read_text() if node.log_path else "")
               for node in nodes)
