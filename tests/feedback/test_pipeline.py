"""A model's REQUEST and ACK frames do not wait for each other's store writes
(swergio_al/relay/pipeline.py), and nothing about their order is lost.

Through a real server and its real store; the store's writes are held at a gate
the test opens, so what runs while a write is still under way can be seen.
"""

from __future__ import annotations

import asyncio
from typing import Any

from swergio_al.feedback.service import FeedbackService
from swergio_al.feedback.store import Store
from swergio_al.keys import FEEDBACK, HUB
from swergio_al.relay.pipeline import DEPTH
from tests.conftest import MakeServer
from tests.feedback.helpers import ROOM, feedback, request_message, requester, until


class GatedStore:
    """The service's real store; `submit` and `ack` wait at a gate first, and every
    call is written down as it starts and ends."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gate = asyncio.Event()
        self.events: list[tuple[str, str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.store, name)
        if name not in ("submit", "ack", "cancel"):
            return real

        async def call(*args: Any, **kwargs: Any) -> Any:
            what = args[0].sample_id if name == "submit" else args[0]
            self.events.append(("start", name, what))
            if name != "cancel":
                await self.gate.wait()
            try:
                return await real(*args, **kwargs)
            finally:
                self.events.append(("end", name, what))

        return call

    def started(self, name: str) -> int:
        return sum(1 for edge, call, _ in self.events if edge == "start" and call == name)


async def gated_server(make_server: MakeServer) -> tuple[Any, FeedbackService, GatedStore]:
    server = await make_server()
    service: FeedbackService = server.app[FEEDBACK]
    gated = GatedStore(service.store)
    service.store = gated  # type: ignore[assignment]
    return server, service, gated


async def test_a_burst_of_requests_is_under_way_at_once_and_a_cancel_after_it_waits(
        make_server: MakeServer) -> None:
    server, _, gated = await gated_server(make_server)
    async with await requester(str(server.make_url("/ws"))) as model:
        for i in range(50):
            await model.send(request_message(i))
        # Before: each REQUEST waited for its write, so one at a time was under way.
        await until(lambda: gated.started("submit") == 50, "all 50 writes under way at once")
        await model.send(feedback("CANCEL", sample_ids=list(range(50))))
        gated.gate.set()
        await until(lambda: gated.started("cancel") == 1, "the cancel ran")
        await until(lambda: ("end", "cancel", ROOM) in gated.events, "the cancel ended")
    cancel_at = gated.events.index(("start", "cancel", ROOM))
    ended = [i for i, (edge, call, _) in enumerate(gated.events)
             if edge == "end" and call == "submit"]
    assert len(ended) == 50 and max(ended) < cancel_at, "the cancel ran before a request it names"
    stats = await gated.store.stats(ROOM, now=0.0)
    assert stats.queued == 0, "a request sent before the cancel outlived it"


async def test_the_same_sample_twice_is_written_in_turn(make_server: MakeServer) -> None:
    server, _, gated = await gated_server(make_server)
    async with await requester(str(server.make_url("/ws"))) as model:
        await model.send(request_message("x", priority=1.0))
        await model.send(request_message("x", priority=2.0))
        await model.send(request_message("y"))
        await until(lambda: gated.started("submit") == 1, "the first write under way")
        # The second "x" waits for the first (and "y" behind it: frames stay in order).
        await model.send(feedback("CANCEL", sample_ids=[]))  # a frame that must wait for all
        assert gated.started("submit") == 1
        gated.gate.set()
        await until(lambda: gated.started("cancel") == 1, "everything before the cancel done")
    starts = [what for edge, call, what in gated.events if edge == "start" and call == "submit"]
    assert starts == ["x", "x", "y"]


async def test_writes_in_flight_are_bounded_per_connection(make_server: MakeServer) -> None:
    server, service, gated = await gated_server(make_server)
    async with await requester(str(server.make_url("/ws"))) as model:
        for i in range(DEPTH + 20):
            await model.send(request_message(i))
        await until(lambda: gated.started("submit") == DEPTH, f"{DEPTH} writes under way")
        conn = service.hub.names["model"]
        assert conn in server.app[HUB].pipes
        assert gated.started("submit") == DEPTH, "more than DEPTH writes of one model at once"
        gated.gate.set()
        await until(lambda: gated.started("submit") == DEPTH + 20, "the rest written after")
        await until(lambda: conn not in server.app[HUB].pipes, "nothing left in flight")


async def test_errors_of_pipelined_frames_come_before_the_answer_to_a_later_frame(
        make_server: MakeServer) -> None:
    server, _, gated = await gated_server(make_server)
    gated.gate.set()
    async with await requester(str(server.make_url("/ws"))) as model:
        for i in range(5):
            await model.send({**feedback("ACK", label_id=f"nope-{i}"), "ID": f"ack-{i}"})
        await model.send({"ID": "marker", "TYPE": "DATA/CUSTOM", "TO": "model"})
        refs = []
        while True:
            message = await model.client.recv(10)
            if message.get("ID") == "marker":
                break
            if message.get("TYPE") == "ERROR":
                assert message["CODE"] == "bad_field", message
                refs.append(message["REF"])
    assert sorted(refs) == [f"ack-{i}" for i in range(5)]
