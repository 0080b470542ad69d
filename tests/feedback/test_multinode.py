"""Two server processes sharing Redis and PostgreSQL run one feedback queue.

Skipped unless Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, db test)
are both reachable. Each run has its own Redis key prefix and its own schema.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.feedback.helpers import Peer, label_message, labeler, request_message, requester
from tests.feedback.postgres import drop_schema, fresh_schema_url, require_postgres
from tests.helpers import Message, ServerProcess
from tests.multinode import (
    broker_url,
    delete_keys,
    new_prefix,
    require_redis,
    start_nodes,
    stop_nodes,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

LEASE_SECONDS = 1.5


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[str, str]]:
    """(broker url, store url) for this run; removed afterwards."""
    require_redis()
    require_postgres()
    prefix, store = new_prefix(), fresh_schema_url()
    yield broker_url(prefix), store
    delete_keys(prefix)
    asyncio.run(drop_schema(store))


def start_feedback_nodes(backends: tuple[str, str], logs: Path,
                         count: int) -> list[ServerProcess]:
    broker, store = backends
    return start_nodes(count, "--broker", broker, "--store", store,
                       "--lease-seconds", str(LEASE_SECONDS), logs=logs,
                       env={"SWERGIO_AL_STATS_INTERVAL_SECONDS": "0.05"})


@pytest.fixture(scope="module")
def nodes(backends: tuple[str, str],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    started = start_feedback_nodes(backends, tmp_path_factory.mktemp("feedback-nodes"), 2)
    yield started
    assert stop_nodes(started) == [0] * len(started), "a node did not shut down cleanly"


def room() -> str:
    return f"feedback/{uuid.uuid4().hex[:8]}"


async def answer_all(peer: Peer, room: str, answer: str, stop: asyncio.Event, *,
                     think: float = 0.0) -> list[Message]:
    """Label every task this labeler gets until `stop`, taking `think` seconds over
    each (as a person would); returns the ACKs."""
    acks = []
    while not stop.is_set():
        try:
            task = await peer.next("FEEDBACK/TASK", timeout=0.1)
        except TimeoutError:
            continue
        await asyncio.sleep(think)
        await peer.send(label_message(task["DATA"]["task_id"], answer, room=room))
        acks.append(await peer.next("FEEDBACK/ACK"))
    return acks


async def labels_for(model: Peer, count: int, *, timeout: float = 10.0) -> list[Message]:
    labels = []
    for _ in range(count):
        label = await model.next("FEEDBACK/LABEL", timeout=timeout)
        labels.append(label)
        await model.send({"TYPE": "FEEDBACK/ACK", "TO_ROOM": label["TO_ROOM"],
                          "DATA": {"label_id": label["DATA"]["label_id"]}})
    return labels


async def test_labelers_on_both_nodes_drain_one_queue_each_sample_labeled_once(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    # Both labelers wait before any request exists: node 2 must hear of the
    # requests stored by node 1 to hand them out.
    async with await labeler(one.ws_url, "ann", r) as ann, \
            await labeler(two.ws_url, "bob", r) as bob, \
            await requester(one.ws_url, f"model-{r}", r) as model:
        for i in range(30):
            await model.send(request_message(i, priority=i, room=r))
        stop = asyncio.Event()
        # Instant answers would let one labeler drain 30 tasks before the other node
        # has heard of them (seen on an idle machine); 20 ms each leaves it ~0.3 s.
        workers = [asyncio.create_task(answer_all(ann, r, "cat", stop, think=0.02)),
                   asyncio.create_task(answer_all(bob, r, "dog", stop, think=0.02))]
        labels = await labels_for(model, 30)
        stop.set()
        acks = [ack for worker in workers for ack in await worker]
        await model.none_of("FEEDBACK/LABEL", 0.3)

    assert sorted(label["DATA"]["sample_id"] for label in labels) == list(range(30))
    assert {a["DATA"]["label_id"] for a in acks} == {lb["DATA"]["label_id"] for lb in labels}
    assert {lb["DATA"]["labeler"] for lb in labels} == {"ann", "bob"}, \
        "labelers on both nodes should have worked"
    for label in labels:
        assert label["DATA"]["answer"] == {"ann": "cat", "bob": "dog"}[label["DATA"]["labeler"]]


async def test_new_requests_reach_an_idle_labeler_on_the_other_node(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await labeler(two.ws_url, "carl", r) as carl, \
            await requester(one.ws_url, f"model-{r}", r) as model:
        await carl.none_of("FEEDBACK/TASK", 0.2)  # joined, nothing to do yet
        await model.send(request_message("late", room=r))
        task = await carl.next("FEEDBACK/TASK", timeout=3)
        assert task["DATA"]["sample_id"] == "late"


async def test_killed_nodes_leases_expire_and_the_other_node_finishes_them(
        backends: tuple[str, str], nodes: list[ServerProcess], tmp_path: Path) -> None:
    (doomed,) = start_feedback_nodes(backends, tmp_path, 1)
    survivor = nodes[1]
    r = room()
    try:
        async with await requester(survivor.ws_url, f"model-{r}", r) as model:
            ann = await labeler(doomed.ws_url, "ann", r)
            for i in range(6):
                await model.send(request_message(i, priority=10 - i, room=r))
            held = [(await ann.next("FEEDBACK/TASK"))["DATA"]["sample_id"] for _ in range(2)]
            doomed.kill()  # with ann's two leases
            await ann.close()

            async with await labeler(survivor.ws_url, "bob", r) as bob:
                stop = asyncio.Event()
                worker = asyncio.create_task(answer_all(bob, r, "dog", stop))
                labels = await labels_for(model, 6, timeout=LEASE_SECONDS + 5)
                stop.set()
                await worker
                await model.none_of("FEEDBACK/LABEL", 0.3)
    finally:
        doomed.kill()

    assert sorted(label["DATA"]["sample_id"] for label in labels) == list(range(6))
    assert {label["DATA"]["labeler"] for label in labels} == {"bob"}
    assert set(held) <= {label["DATA"]["sample_id"] for label in labels}


async def stats_within(peer: Peer, seconds: float) -> list[dict[str, object]]:
    """Every FEEDBACK/STATS `peer` gets in the next `seconds`."""
    got = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            message = await peer.client.recv(left)
        except TimeoutError:
            break
        if message.get("TYPE") == "FEEDBACK/STATS":
            got.append(message["DATA"])
    return got


async def test_stats_reach_every_node_once_from_the_shared_store(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await requester(one.ws_url, f"model-{r}", r) as model, \
            await Peer.connect(two.ws_url, f"watcher-{r}", room=r) as watcher:
        await stats_within(watcher, 0.5)  # whatever the joins caused
        await model.send(request_message("s1", room=r))
        stats = await stats_within(watcher, 1.0)
    assert len(stats) == 1, f"one STATS per change, from the watcher's own node: {stats}"
    assert (stats[0]["queued"], stats[0]["labeled"]) == (1, 0)


async def close_code(peer: Peer, timeout: float = 5.0) -> int:
    """Read (and drop) frames until the server closes the connection; its close code."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await peer.client.ws.receive()
            if frame.type is aiohttp.WSMsgType.CLOSE:
                return int(frame.data)
            if frame.type is not aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"expected a close frame, got {frame!r}")


async def test_a_labeler_reconnecting_to_the_other_node_keeps_their_tasks(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await requester(one.ws_url, f"model-{r}", r) as model:
        old = await labeler(one.ws_url, "dana", r)
        for i in range(2):
            await model.send(request_message(i, room=r))
        held = {(await old.next("FEEDBACK/TASK"))["DATA"]["task_id"] for _ in range(2)}
        async with await labeler(two.ws_url, "dana", r) as new:
            # The newer connection takes the name over; the leases go with it.
            assert await close_code(old) == 4001
            resent = {(await new.next("FEEDBACK/TASK"))["DATA"]["task_id"] for _ in range(2)}
            assert resent == held
            for task_id in sorted(held):
                await new.send(label_message(task_id, "cat", room=r))
                assert (await new.next("FEEDBACK/ACK"))["DATA"]["task_id"] == task_id
            labels = await labels_for(model, 2)
        await old.close()
    assert sorted(label["DATA"]["sample_id"] for label in labels) == [0, 1]


async def test_a_cancel_on_one_node_withdraws_the_task_a_labeler_holds_on_the_other(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await labeler(two.ws_url, "erin", r) as erin, \
            await requester(one.ws_url, f"model-{r}", r) as model:
        await model.send(request_message("doomed", room=r))
        task = await erin.next("FEEDBACK/TASK")
        await model.send({"TYPE": "FEEDBACK/CANCEL", "TO_ROOM": r,
                          "DATA": {"sample_ids": ["doomed"]}})
        cancel = await erin.next("FEEDBACK/CANCEL")
        assert cancel["DATA"]["task_ids"] == [task["DATA"]["task_id"]]
        await erin.send(label_message(task["DATA"]["task_id"], "cat", room=r))
        await erin.error("unknown_task")


async def labelers_reach(peer: Peer, count: int, timeout: float = 5.0) -> None:
    """Wait until a FEEDBACK/STATS to `peer` counts `count` labelers online."""
    async with asyncio.timeout(timeout):
        while True:
            stats = (await peer.next("FEEDBACK/STATS", timeout=timeout))["DATA"]
            if stats["labelers"] == count:
                return


async def test_labelers_online_are_counted_over_both_nodes(nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await Peer.connect(one.ws_url, f"watch1-{r}", room=r) as watch_one, \
            await Peer.connect(two.ws_url, f"watch2-{r}", room=r) as watch_two:
        async with await labeler(one.ws_url, f"ann-{r}", r), \
                await labeler(two.ws_url, f"bob-{r}", r):
            await labelers_reach(watch_one, 2)
            await labelers_reach(watch_two, 2)
        # Both gone: each node hears of the other's departure too.
        await labelers_reach(watch_one, 0)
        await labelers_reach(watch_two, 0)


async def test_kpi_reports_sent_to_one_node_are_served_by_the_other(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await requester(one.ws_url, f"model-{r}", r) as model, \
            await Peer.connect(two.ws_url, f"watcher-{r}", room=r) as watcher:
        # In the room on node two before anything is relayed: a report node two hears
        # of before it has handled the watcher's join is (rightly) not for the watcher.
        await watcher.client.sync()
        for version in (1, 2):
            await model.send({"TYPE": "LOG/KPI", "TO_ROOM": r,
                              "DATA": {"version": version, "prequential": 0.5}})
        for _ in range(2):  # relayed only after node one kept it in the shared store
            await watcher.next("LOG/KPI", timeout=5)
    url = two.ws_url.replace("ws://", "http://").replace("/ws", "/api/kpi")
    async with aiohttp.ClientSession() as session, \
            session.get(url, params={"room": r}) as response:
        points = (await response.json())["kpi"]
    assert [(p["model"], p["version"]) for p in points] == [(f"model-{r}", 1), (f"model-{r}", 2)]


async def test_a_gold_question_stored_on_one_node_is_the_first_task_on_the_other(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await requester(one.ws_url, f"model-{r}", r) as model:
        await model.send(request_message("gold", gold="cat", room=r))
        await model.send(request_message("plain", room=r))
        await model.client.sync()  # both stored
        async with await labeler(two.ws_url, f"hank-{r}", r) as hank:
            assert (await hank.next("FEEDBACK/TASK"))["DATA"]["sample_id"] == "gold"


async def test_a_labeler_at_work_on_one_node_gets_gold_questions_stored_on_the_other(
        nodes: list[ServerProcess]) -> None:
    one, two = nodes
    r = room()
    async with await requester(one.ws_url, f"model-{r}", r) as model, \
            await labeler(two.ws_url, f"gina-{r}", r) as gina:
        for i in range(80):
            await model.send(request_message(i, room=r))
        task = (await gina.next("FEEDBACK/TASK"))["DATA"]
        # Node two looked for gold questions in the room for her first task: none then.
        await model.send(request_message("gold", gold="cat", room=r))
        async with asyncio.timeout(20):
            while task["sample_id"] != "gold":  # it comes on one of her gold turns
                await asyncio.sleep(0.05)  # a person's pace: 80 tasks take seconds
                await gina.send(label_message(task["task_id"], "cat", room=r))
                await gina.next("FEEDBACK/ACK")
                task = (await gina.next("FEEDBACK/TASK"))["DATA"]
