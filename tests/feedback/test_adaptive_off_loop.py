"""Adaptive overlap re-estimates a room's labelers off the event loop (swergio_al/feedback/gold.py).

Dawid–Skene over a large room takes a while; it used to run on the event loop
after an adaptive label, and every connection of the server waited for it.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import aiohttp

from swergio_al.feedback.adaptive import OverlapPolicy
from swergio_al.feedback.off_loop import InOrder
from swergio_al.feedback.room_quality import consensus_of, room_labels
from swergio_al.feedback.store import Store, create_store
from swergio_al.keys import FEEDBACK, STORE
from tests.conftest import MakeServer
from tests.feedback.helpers import (
    ROOM,
    label_message,
    labeler,
    make_request,
    request_message,
    requester,
)

# A room whose Dawid–Skene is deliberately slow (cost ~ labelers x choices^2 per
# iteration): 300 choices, 40 labelers; about 0.2 s on the development machine.
CHOICES = [f"c{i}" for i in range(300)]
LABELERS = [f"seed{i}" for i in range(40)]
SAMPLES = 100
ANSWER = {"type": "choice", "choices": CHOICES}
SETTINGS = {"quality": {"method": "dawid_skene", "choices": CHOICES, "flag_below": None,
                        "flag_after": 20}}


async def seed(store: Store) -> None:
    """SAMPLES answered three times each, straight into the store (mostly right)."""
    rng = random.Random(0)
    now = time.time()
    for sample in range(SAMPLES):
        request = make_request(f"s{sample}", requester="seeder", overlap=3, answer=ANSWER)
        request.extra.update(SETTINGS)
        await store.submit(request, max_pending=10_000, now=now)
        truth = rng.choice(CHOICES)
        for name in rng.sample(LABELERS, 3):
            task = await store.claim(ROOM, name, lease_seconds=60, now=now)
            assert task is not None
            answer = truth if rng.random() < 0.8 else rng.choice(CHOICES)
            await store.record_label(task.task_id, name, answer, 1.0,
                                     label_id=f"{name}-{sample}", now=now)


async def round_trips(url: str, stop: asyncio.Event) -> list[float]:
    """GET /healthz again and again until `stop`; each round trip's seconds."""
    times = []
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.get(url) as response:
                assert response.status == 200
            times.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)  # a steady probe, not a flood competing for the CPU
    return times


async def test_the_event_loop_serves_others_while_a_rooms_labelers_are_re_estimated(
        make_server: MakeServer) -> None:
    server = await make_server(gold_rate=0.0)
    url = str(server.make_url("/ws"))
    store = server.app[STORE]
    await seed(store)
    stop = asyncio.Event()
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        # The room's first adaptive label: the desk builds the room from the store and
        # estimates every labeler (Dawid–Skene over everything) before it decides.
        await model.send(request_message("new", answer=ANSWER, overlap=3, adaptive=True,
                                         prediction="c1", **SETTINGS))
        task = (await ann.next("FEEDBACK/TASK"))["DATA"]
        probe = asyncio.create_task(round_trips(str(server.make_url("/healthz")), stop))
        try:
            sent = time.perf_counter()
            await ann.send(label_message(task["task_id"], "c1"))
            await model.next("FEEDBACK/LABEL", timeout=30)  # after the desk's decision
            decided = time.perf_counter() - sent
        finally:
            stop.set()
            times = await probe
    # The label waited for the estimate (it really was large) while the loop answered
    # /healthz in a small fraction of that time, again and again.
    assert decided > 0.1, f"the estimate took {decided:.3f} s: too small to show anything"
    assert len(times) >= 5, times
    assert max(times) < decided / 4, (max(times), decided)

    # The decision came from the same estimates the room's answers give on the loop.
    labels = await room_labels(store, ROOM)
    reference = consensus_of(labels)
    estimates = reference.recent_accuracy()
    state = server.app[FEEDBACK].desk._adaptive[ROOM].state
    assert state is not None
    assert state.consensus.recent_accuracy() == estimates
    assert state.consensus.aggregate().values == reference.aggregate().values
    assert len(estimates) == len(LABELERS) + 1  # ann too
    # One answer from a labeler the room barely knows: a second one was asked for.
    assert estimates["ann"] < OverlapPolicy().trusted
    async with await labeler(url, "bob") as bob:
        assert (await bob.next("FEEDBACK/TASK"))["DATA"]["sample_id"] == "new"


async def test_stopping_the_server_waits_for_the_decision_under_way(
        make_server: MakeServer, tmp_path: Path) -> None:
    server = await make_server(gold_rate=0.0)
    url = str(server.make_url("/ws"))
    await seed(server.app[STORE])
    desk = server.app[FEEDBACK].desk
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("new", answer=ANSWER, overlap=3, adaptive=True,
                                         prediction="c1", **SETTINGS))
        task = (await ann.next("FEEDBACK/TASK"))["DATA"]
        await ann.send(label_message(task["task_id"], "c1"))
        await ann.next("FEEDBACK/ACK")  # committed: the decision is under way
        await server.close()
    calls = desk._adaptive[ROOM].calls
    assert not calls.busy  # nothing left running
    store = create_store(f"sqlite:///{tmp_path / 'store.db'}")
    await store.open()
    try:  # the decision was applied before the store closed: "new" takes 2 answers
        assert not await store.raise_overlap(ROOM, "model", "new", 2, now=time.time())
    finally:
        await store.close()


async def test_calls_run_in_order_one_batch_at_a_time() -> None:
    calls = InOrder()
    running: list[int] = []
    seen: list[int] = []

    def call(i: int) -> int:
        running.append(i)
        assert len(running) == 1, "two calls at once"
        time.sleep(0.01)
        seen.append(i)
        running.remove(i)
        if i == 3:
            raise ValueError("three")
        return i * 10

    results = await asyncio.gather(*(calls.run(lambda i=i: call(i)) for i in range(6)),
                                   return_exceptions=True)
    assert seen == list(range(6))
    assert results[:3] == [0, 10, 20] and results[4:] == [40, 50]
    assert isinstance(results[3], ValueError)  # one call's error is that call's alone


async def test_a_cancelled_caller_leaves_the_others_served() -> None:
    calls = InOrder()
    first = asyncio.create_task(calls.run(lambda: time.sleep(0.05)))
    waiting = [asyncio.create_task(calls.run(lambda i=i: i)) for i in range(3)]
    await asyncio.sleep(0)  # every task has queued its call
    waiting[1].cancel()
    assert await asyncio.gather(first, waiting[0], waiting[2]) == [None, 0, 2]
    assert waiting[1].cancelled()
