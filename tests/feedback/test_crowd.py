"""A crowd costs the same per label whatever its size (issue 17).

Through a real server: the store calls and the labelers looked at for one
request and one label are counted with 10 and with 1,000 labelers in the room.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from swergio_al.feedback.service import FeedbackService
from swergio_al.feedback.store import Store
from swergio_al.keys import FEEDBACK
from tests.conftest import MakeServer
from tests.feedback.helpers import (
    ROOM,
    label_message,
    labeler,
    request_message,
    requester,
    until,
)


class CountingStore:
    """The service's store, counting the calls made through it (but the room
    figures, which the STATS timer reads now and then, per room)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        if name != "stats":
            self.calls[name] += 1
        return getattr(self.store, name)


async def costs_with(make_server: MakeServer, n: int, store: Path) -> dict[str, Any]:
    server = await make_server(prefetch=1, stats_interval_seconds=0.05,
                               store=f"sqlite:///{store}")
    url = str(server.make_url("/ws"))
    service: FeedbackService = server.app[FEEDBACK]
    # No cap on the session's connections (aiohttp's default is 100).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session, \
            await requester(url) as model, \
            await labeler(url, "first") as first:
        await until(lambda: ROOM in service._crowds, "first labeler seated")
        crowd = service._crowds[ROOM]
        others = []
        for i in range(n - 1):
            ws = await session.ws_connect(url)
            await ws.send_str(json.dumps({"TYPE": "COMMAND/REGISTER", "NAME": f"l{i}",
                                          "ROLE": "labeler"}))
            await ws.send_str(json.dumps({"TYPE": "COMMAND/JOINROOM", "ROOM": ROOM}))
            others.append(ws)
        await until(lambda: len(crowd.seats) == n and crowd.hungry_count() == n and
                    not crowd.claiming, f"{n} labelers seated, all waiting for work")
        counting = CountingStore(service.store)
        service.store = counting  # type: ignore[assignment]

        # A hungry crowd: one request goes to the labeler waiting longest.
        crowd.examined = 0
        await model.send(request_message("a"))
        task = await first.next("FEEDBACK/TASK")
        hungry_request = dict(counting.calls), crowd.examined

        # A busy crowd (everyone holds a task, more are queued): a label commits,
        # and the labeler's next task comes out of the same store call.
        for i in range(n):
            await model.send(request_message(f"b{i}"))
        await until(lambda: crowd.hungry_count() == 0 and not crowd.claiming,
                    "every labeler holds a task")
        counting.calls.clear()
        crowd.examined = 0
        await first.send(label_message(task["DATA"]["task_id"], "cat"))
        await first.next("FEEDBACK/ACK")
        assert (await first.next("FEEDBACK/TASK"))["DATA"]["sample_id"] == f"b{n - 1}"
        busy_label = dict(counting.calls), crowd.examined
        for ws in others:
            await ws.close()
    return {"hungry request": hungry_request, "busy label": busy_label}


async def test_the_fill_path_does_no_work_proportional_to_the_labelers(
        make_server: MakeServer, tmp_path: Path) -> None:
    small = await costs_with(make_server, 10, tmp_path / "small.db")
    large = await costs_with(make_server, 1000, tmp_path / "large.db")
    assert small == large, (small, large)
    calls, examined = large["hungry request"]
    assert calls == {"submit": 1, "claim_many": 1} and examined == 1
    calls, examined = large["busy label"]
    assert calls == {"label_and_claim": 1} and examined == 0
