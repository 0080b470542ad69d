"""SIGKILL the server while labelers submit: no acknowledged label is lost or doubled."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.feedback.helpers import Peer, feedback, label_message, labeler, request_message
from tests.helpers import ServerProcess

SAMPLES = 40
GONE = (AssertionError, ConnectionError, aiohttp.ClientError, TimeoutError)


class Tally(dict[str, object]):
    """label id -> sample id, with a way to wait until enough have come in."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Condition()

    async def add(self, label_id: str, sample_id: object) -> None:
        self[label_id] = sample_id
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, done: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(done)


async def _label_until_gone(peer: Peer, acked: Tally) -> None:
    """Answer tasks as fast as they come; record each ACKed label id. Ends with the server."""
    try:
        while True:
            task = await peer.next("FEEDBACK/TASK", timeout=10)
            await peer.send(label_message(task["DATA"]["task_id"], "cat"))
            ack = await peer.next("FEEDBACK/ACK", timeout=10)
            assert ack["DATA"]["task_id"] == task["DATA"]["task_id"]
            await acked.add(ack["DATA"]["label_id"], task["DATA"]["sample_id"])
    except GONE:
        return


async def _receive_until_gone(model: Peer, received: Tally, events: list[str]) -> None:
    try:
        while True:
            label = await model.next("FEEDBACK/LABEL", timeout=10)
            events.append(label["DATA"]["label_id"])
            await received.add(label["DATA"]["label_id"], label["DATA"]["sample_id"])
            await model.send(feedback("ACK", label_id=label["DATA"]["label_id"]))
    except GONE:
        return


async def test_acked_labels_survive_sigkill_and_reach_the_restarted_model(
        tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    server = ServerProcess("--store", f"sqlite:///{path}", "--lease-seconds", "30",
                           log_path=tmp_path / "server.log")
    acked = Tally()  # as the labelers saw the ACKs
    received = Tally()  # as the model got the labels
    events: list[str] = []
    try:
        await asyncio.to_thread(server.start)
        model = await Peer.connect(server.ws_url, "model")
        for i in range(SAMPLES):
            await model.send(request_message(i))
        await model.client.sync()
        receiver = asyncio.create_task(_receive_until_gone(model, received, events))
        peers = [await labeler(server.ws_url, name) for name in ("ann", "bob", "cy")]
        workers = [asyncio.create_task(_label_until_gone(p, acked)) for p in peers]
        await acked.wait_for(lambda: len(acked) >= SAMPLES // 3, timeout=10)
        server.kill()  # mid-stream: labels are in flight right now
        await asyncio.gather(*workers, receiver)
        for peer in (*peers, model):
            await peer.close()
        acked_before_kill = dict(acked)
        assert 0 < len(acked_before_kill) < SAMPLES

        await asyncio.to_thread(server.start)
        model = await Peer.connect(server.ws_url, "model")  # unacked labels come on REGISTER
        receiver = asyncio.create_task(_receive_until_gone(model, received, events))
        peers = [await labeler(server.ws_url, name) for name in ("ann", "bob", "cy")]
        workers = [asyncio.create_task(_label_until_gone(p, acked)) for p in peers]
        await received.wait_for(lambda: len(set(received.values())) >= SAMPLES, timeout=20)
        for peer in (*peers, model):
            await peer.close()
        await asyncio.gather(*workers, receiver)
    finally:
        server.kill()

    with sqlite3.connect(path) as db:
        stored = dict(db.execute("SELECT label_id, sample_id FROM labels").fetchall())
    # Every label a labeler saw acknowledged before the kill is in the store...
    assert set(acked_before_kill) <= set(stored)
    # ...and reached the restarted model; nothing was labeled twice.
    assert set(acked) <= set(received)
    assert sorted(int(s) for s in stored.values()) == list(range(SAMPLES))
    assert set(received) == set(stored)
    # Replays may repeat a label the model got but had not acked yet: at-least-once,
    # deduplicated by label id, which the set above did.
    assert len(events) >= len(received)
