"""The FeedbackService through a real server and raw WebSocket clients."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import MakeServer
from tests.feedback.helpers import (
    ROOM,
    Peer,
    feedback,
    label_message,
    labeler,
    request_message,
    requester,
)
from tests.helpers import Message

FAST = {"stats_interval_seconds": 0.02}


async def _url(make_server: MakeServer, **overrides: Any) -> str:
    server = await make_server(**{**FAST, **overrides})
    return str(server.make_url("/ws"))


async def _answer_all(peer: Peer, answer: str, stop: asyncio.Event) -> list[Message]:
    """Label every task until `stop`; returns the ACKs."""
    acks = []
    while not stop.is_set():
        try:
            task = await peer.next("FEEDBACK/TASK", timeout=0.2)
        except TimeoutError:
            continue
        await peer.send(label_message(task["DATA"]["task_id"], answer))
        acks.append(await peer.next("FEEDBACK/ACK"))
    return acks


async def test_two_labelers_label_twenty_samples_exactly_once(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann, \
            await labeler(url, "bob") as bob:
        for i in range(20):
            await model.send(request_message(i, priority=i))
        stop = asyncio.Event()
        workers = [asyncio.create_task(_answer_all(ann, "cat", stop)),
                   asyncio.create_task(_answer_all(bob, "dog", stop))]
        labels = [await model.next("FEEDBACK/LABEL") for _ in range(20)]
        stop.set()
        acks = [ack for worker in workers for ack in await worker]

        assert sorted(label["DATA"]["sample_id"] for label in labels) == list(range(20))
        assert {a["DATA"]["label_id"] for a in acks} == {lb["DATA"]["label_id"] for lb in labels}
        by_labeler = {lb["DATA"]["labeler"] for lb in labels}
        assert by_labeler == {"ann", "bob"}, "both labelers should have worked"
        for label in labels:
            data = label["DATA"]
            assert data["answer"] == {"ann": "cat", "bob": "dog"}[data["labeler"]]
            assert data["replay"] is False and data["seconds"] == 1.0
            assert label["TO"] == "model"


async def test_tasks_come_in_priority_order(make_server: MakeServer) -> None:
    url = await _url(make_server, prefetch=1)
    async with await requester(url) as model:
        for sample, priority in [("low", 0.1), ("top", 0.9), ("mid", 0.5), ("mid2", 0.5)]:
            await model.send(request_message(sample, priority=priority))
        await model.client.sync()
        async with await labeler(url, "ann") as ann:
            order = []
            for _ in range(4):
                task = await ann.next("FEEDBACK/TASK")
                order.append(task["DATA"]["sample_id"])
                await ann.send(label_message(task["DATA"]["task_id"], "cat"))
    assert order == ["top", "mid", "mid2", "low"]  # equal priorities: oldest first


async def test_prefetch_caps_outstanding_tasks(make_server: MakeServer) -> None:
    url = await _url(make_server, prefetch=2)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        for i in range(5):
            await model.send(request_message(i))
        first = [await ann.next("FEEDBACK/TASK") for _ in range(2)]
        await ann.none_of("FEEDBACK/TASK", 0.2)
        await ann.send(label_message(first[0]["DATA"]["task_id"], "dog"))
        third = await ann.next("FEEDBACK/TASK")
        assert third["DATA"]["sample_id"] not in {t["DATA"]["sample_id"] for t in first}
        assert third["DATA"]["lease_expires"] > 0 and third["DATA"]["question"] == "cat or dog?"


async def test_expired_lease_goes_to_another_labeler(make_server: MakeServer) -> None:
    url = await _url(make_server, lease_seconds=0.3)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("s1"))
        held = await ann.next("FEEDBACK/TASK")
        async with await labeler(url, "bob") as bob:
            again = await bob.next("FEEDBACK/TASK", timeout=3)
            assert again["DATA"]["sample_id"] == "s1"
            assert again["DATA"]["task_id"] != held["DATA"]["task_id"]
            # Ann's late answer is refused: the lease is gone.
            await ann.send(label_message(held["DATA"]["task_id"], "cat"))
            await ann.error("unknown_task")
            await bob.send(label_message(again["DATA"]["task_id"], "dog"))
            label = await model.next("FEEDBACK/LABEL")
            assert (label["DATA"]["labeler"], label["DATA"]["answer"]) == ("bob", "dog")


async def test_disconnected_labelers_task_is_requeued(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model:
        ann = await labeler(url, "ann")
        await model.send(request_message("s1"))
        await ann.next("FEEDBACK/TASK")
        async with await labeler(url, "bob") as bob:
            await bob.none_of("FEEDBACK/TASK", 0.1)
            await ann.close()
            got = await bob.next("FEEDBACK/TASK")
            assert got["DATA"]["sample_id"] == "s1"


async def test_labeler_leaving_the_room_returns_its_tasks(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("s1"))
        await ann.next("FEEDBACK/TASK")
        async with await labeler(url, "bob") as bob:
            await ann.send({"TYPE": "COMMAND/LEAVEROOM", "ROOM": ROOM, "TO_ROOM": "_command"})
            got = await bob.next("FEEDBACK/TASK")
            assert got["DATA"]["sample_id"] == "s1"


async def test_skipped_task_goes_to_someone_else(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("s1"))
        task = await ann.next("FEEDBACK/TASK")
        async with await labeler(url, "bob") as bob:
            await bob.none_of("FEEDBACK/TASK", 0.1)  # leased to ann
            await ann.send(feedback("SKIP", task_id=task["DATA"]["task_id"]))
            got = await bob.next("FEEDBACK/TASK")
            assert got["DATA"]["sample_id"] == "s1"
            await ann.none_of("FEEDBACK/TASK", 0.2)


async def test_overlap_two_distinct_labelers_each_labeled(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann, \
            await labeler(url, "bob") as bob, await labeler(url, "cy") as cy:
        await model.send(request_message("s1", overlap=2))
        tasks = {}
        for peer in (ann, bob, cy):
            try:
                tasks[peer.name] = await peer.next("FEEDBACK/TASK", timeout=0.5)
            except TimeoutError:
                pass
        assert len(tasks) == 2, tasks
        assert {t["DATA"]["sample_id"] for t in tasks.values()} == {"s1"}
        peers = {p.name: p for p in (ann, bob, cy)}
        for name, task in tasks.items():
            await peers[name].send(label_message(task["DATA"]["task_id"], "cat"))
        labels = [await model.next("FEEDBACK/LABEL") for _ in range(2)]
        assert {lb["DATA"]["labeler"] for lb in labels} == set(tasks)
        assert {lb["DATA"]["sample_id"] for lb in labels} == {"s1"}
        await model.none_of("FEEDBACK/LABEL", 0.2)
