"""RedisBroker on its own: two brokers in this process stand for two nodes.

Needs Redis at 127.0.0.1:6379 (skipped otherwise); each test has its own prefix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from swergio_al.relay.broker import Envelope
from swergio_al.relay.redis_broker import BATCH_CHARS, RedisBroker
from tests.multinode import REDIS, delete_keys, new_prefix, require_redis

pytestmark = pytest.mark.redis


class Node:
    """A broker and what reached it from the others."""

    def __init__(self, url: str) -> None:
        self.broker = RedisBroker(url)
        self.envelopes: list[Envelope] = []
        self.signals: list[tuple[str, dict[str, Any]]] = []
        self.taken: list[str] = []
        self.arrived = asyncio.Event()

    async def start(self) -> Node:
        self.broker.on_signal = lambda topic, data: self._got(self.signals, (topic, data))
        self.broker.on_taken_over = lambda name: self._got(self.taken, name)
        await self.broker.start(lambda envelope: self._got(self.envelopes, envelope))
        return self

    def _got(self, into: list[Any], item: Any) -> None:
        into.append(item)
        self.arrived.set()

    async def wait_for(self, into: list[Any], count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(into) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[Node, Node]]:
    require_redis()
    prefix = new_prefix()
    url = f"{REDIS}?prefix={prefix}&presence_ttl=0.3"
    one, two = Node(url), Node(url)
    await one.start()
    await two.start()
    try:
        yield one, two
    finally:
        await one.broker.stop()
        await two.broker.stop()
        delete_keys(prefix)


def room_envelope(text: str, room: str = "r", exclude: str | None = "sender") -> Envelope:
    return Envelope(text=text, room=room, to=None, exclude=exclude)


async def test_envelopes_reach_the_other_node_once_in_order_never_their_own(
        nodes: tuple[Node, Node]) -> None:
    one, two = nodes
    texts = [f'{{"N":{i}}}' for i in range(2000)]
    for text in texts:
        await one.broker.publish(room_envelope(text))
    await two.wait_for(two.envelopes, len(texts))
    assert [e.text for e in two.envelopes] == texts
    assert {(e.room, e.to, e.exclude) for e in two.envelopes} == {("r", None, "sender")}
    await two.broker.publish(room_envelope("back"))
    await one.wait_for(one.envelopes, 1)
    assert [e.text for e in one.envelopes] == ["back"], "a node got its own envelopes"


async def test_text_survives_exactly_whatever_it_contains(nodes: tuple[Node, Node]) -> None:
    one, two = nodes
    texts = ["", "two\nlines\n", "ümlaut, 😀 and 中文", '["x",1,"d",null,null,null,5]\nhello',
             "x" * (BATCH_CHARS + 10)]  # larger than a batch: goes alone
    for text in texts:
        one.broker.publish_nowait(room_envelope(text))
    await two.wait_for(two.envelopes, len(texts))
    assert [e.text for e in two.envelopes] == texts


async def test_presence_names_online_elsewhere_only(nodes: tuple[Node, Node]) -> None:
    one, two = nodes
    await one.broker.claim("model")
    assert await two.broker.is_online("model")
    assert not await one.broker.is_online("model"), "is_online means on *another* node"
    assert not await two.broker.is_online("nobody")
    await one.broker.release("model")
    # Node two remembers "model" as online until node one's GONE arrives; the
    # fence published after it proves it has.
    await one.broker.publish(room_envelope("fence"))
    await two.wait_for(two.envelopes, 1)
    assert not await two.broker.is_online("model")


async def test_heartbeat_keeps_names_beyond_their_ttl(nodes: tuple[Node, Node]) -> None:
    one, two = nodes
    await one.broker.claim("steady")
    # Three TTLs later the heartbeat has refreshed the name again and again.
    await asyncio.sleep(3 * one.broker.presence_ttl_seconds)
    assert await two.broker.is_online("steady")


async def test_claiming_a_name_held_by_another_node_tells_that_node(
        nodes: tuple[Node, Node]) -> None:
    one, two = nodes
    await one.broker.claim("model")
    await two.broker.claim("model")
    await one.wait_for(one.taken, 1)
    assert one.taken == ["model"]
    assert await one.broker.is_online("model")  # now on node two
    await one.broker.release("model")  # the closed old connection going away
    assert await one.broker.is_online("model"), "releasing must not remove the new owner"


async def test_a_claim_records_its_holder_for_the_other_nodes(
        nodes: tuple[Node, Node]) -> None:
    one, two = nodes
    await one.broker.claim("model", "component:2")
    assert await two.broker.holder_elsewhere("model") == "component:2"
    assert await one.broker.holder_elsewhere("model") is None, "not *another* node"
    assert await two.broker.holder_elsewhere("nobody") is None
    await asyncio.sleep(2 * one.broker.presence_ttl_seconds)  # refreshed, holder kept
    assert await two.broker.holder_elsewhere("model") == "component:2"


async def test_signals_carry_their_topic_and_data(nodes: tuple[Node, Node]) -> None:
    one, two = nodes
    one.broker.signal("feedback/queue", {"room": "feedback/x", "ended": ["t1"]})
    await two.wait_for(two.signals, 1)
    assert two.signals == [("feedback/queue", {"room": "feedback/x", "ended": ["t1"]})]
    assert one.signals == []


async def test_a_direct_envelope_for_a_local_name_stays_home(nodes: tuple[Node, Node]) -> None:
    one, two = nodes
    await one.broker.claim("here")
    await one.broker.publish(Envelope(text="for here", room=None, to="here", exclude=None))
    await one.broker.publish(room_envelope("fence"))
    await two.wait_for(two.envelopes, 1)
    assert [e.text for e in two.envelopes] == ["fence"]


async def test_stop_is_clean_and_publishing_after_it_is_a_no_op(
        nodes: tuple[Node, Node]) -> None:
    one, _ = nodes
    await one.broker.stop()
    one.broker.publish_nowait(room_envelope("late"))
    assert not await one.broker.is_online("anyone")
    await one.broker.stop()  # twice is fine
    with pytest.raises(RuntimeError, match="expected broker state new, got stopped"):
        await one.broker.start(lambda envelope: None)


async def test_a_stopping_node_takes_its_names_offline_everywhere() -> None:
    require_redis()
    prefix = new_prefix()
    url = f"{REDIS}?prefix={prefix}&presence_ttl=30"  # nothing ages out during the test
    one, two, three = Node(url), Node(url), Node(url)
    for node in (one, two, three):
        await node.start()
    try:
        for name in ("asked before", "never asked"):
            await one.broker.claim(name)
        assert await two.broker.is_online("asked before")  # now remembered by node two
        await one.broker.stop()  # returns once its last envelopes are published
        assert not await two.broker.is_online("never asked")  # gone from Redis
        # Redis hands a subscriber messages in the order it took them, so a fence
        # published by a third node after the stop arrives after node one's notice.
        await three.broker.publish(room_envelope("fence"))
        await two.wait_for(two.envelopes, 1)
        assert not await two.broker.is_online("asked before"), "node two still remembers it"
    finally:
        for node in (one, two, three):
            await node.broker.stop()
        delete_keys(prefix)
