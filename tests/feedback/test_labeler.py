"""swergio_al.feedback.Labeler against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

from swergio_al.feedback import SKIP, Labeler
from tests.conftest import MakeServer
from tests.feedback.helpers import ROOM, feedback, request_message, requester


async def test_two_python_labelers_answer_twenty_samples(make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.02)
    url = str(server.make_url("/ws"))
    seen: dict[str, list[Any]] = {"ann": [], "bob": []}

    def by_ann(task: dict[str, Any]) -> str:
        seen["ann"].append(task["sample_id"])
        return "cat"

    async def by_bob(task: dict[str, Any]) -> str:
        seen["bob"].append(task["sample_id"])
        await asyncio.sleep(0)  # an async answer works the same way
        return "dog"

    async with await requester(url) as model, \
            Labeler("ann", url, by_ann, room=ROOM) as ann, \
            Labeler("bob", url, by_bob, room=ROOM) as bob:
        for i in range(20):
            await model.send(request_message(i, priority=i % 3))
        labels = [await model.next("FEEDBACK/LABEL") for _ in range(20)]
        for label in labels:
            await model.send(feedback("ACK", label_id=label["DATA"]["label_id"]))
        await ann.wait_acked(len(seen["ann"]), timeout=5)
        await bob.wait_acked(len(seen["bob"]), timeout=5)
        assert sorted(lb["DATA"]["sample_id"] for lb in labels) == list(range(20))
        assert sorted(seen["ann"] + seen["bob"]) == list(range(20))  # each exactly once
        assert seen["ann"] and seen["bob"], seen
        assert ann.acked + bob.acked == 20 and ann.refused == bob.refused == 0
        for label in labels:
            assert label["DATA"]["answer"] == {"ann": "cat", "bob": "dog"}[
                label["DATA"]["labeler"]]
            assert label["DATA"]["seconds"] >= 0


async def test_skip_sentinel_hands_the_task_on(make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.02)
    url = str(server.make_url("/ws"))
    async with await requester(url) as model, \
            Labeler("picky", url, lambda task: SKIP, room=ROOM) as picky:
        await model.send(request_message("s1"))
        async with Labeler("eager", url, lambda task: "dog", room=ROOM) as eager:
            label = await model.next("FEEDBACK/LABEL")
            assert (label["DATA"]["labeler"], label["DATA"]["answer"]) == ("eager", "dog")
            await eager.wait_acked(1, timeout=5)
            assert picky.skipped == 1 and picky.acked == 0
