"""SIGKILL the server while labelers submit: no acknowledged label is lost or doubled."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp

from tests.feedback.helpers import Peer, feedback, label_message, labeler, request_message
from tests.helpers import ServerProcess

SAMPLES = 40
GONE = (AssertionError, ConnectionError, aiohttp.ClientError, TimeoutError)


async def _label_until_gone(peer: Peer, acked: dict[str, object]) -> None:
    """Answer tasks as fast as they come; record each ACKed label id. Ends with the server."""
    try:
        while True:
            task = await peer.next("FEEDBACK/TASK", timeout=10)
            await peer.send(label_message(task["DATA"]["task_id"], "cat"))
            ack = await peer.next("FEEDBACK/ACK", timeout=10)
            assert ack["DATA"]["task_id"] == task["DATA"]["task_id"]
            acked[ack["DATA"]["label_id"]] = task["DATA"]["sample_id"]
    except GONE:
        return


async def _receive_until_gone(model: Peer, received: dict[str, object],
                              events: list[str]) -> None:
    try:
        while True:
            label = await model.next("FEEDBACK/LABEL", timeout=10)
            events.append(label["DATA"]["label_id"])
            received[label["DATA"]["label_id"]] = label["DATA"]["sample_id"]
            await model.send(feedback("ACK", label_id=label["DATA"]["label_id"]))
    except GONE:
        return


async def test_acked_labels_survive_sigkill_and_reach_the_restarted_model(
        tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    server = ServerProcess("--store", f"sqlite:///{path}", "--lease-seconds", "30",
                           log_path=tmp_path / "server.log")
    acked: dict[str, object] = {}  # label id -> sample id, as the labelers saw the ACKs
    received: dict[str, object] = {}
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
        async with asyncio.timeout(10):
            while len(acked) < SAMPLES // 3:
                await asyncio.sleep(0.005)
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
        async with asyncio.timeout(20):
            while len(set(received.values())) < SAMPLES:
                await asyncio.sleep(0.01)
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
