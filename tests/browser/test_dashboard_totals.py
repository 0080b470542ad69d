"""The dashboard's tiles over several rooms, in real Chromium: a labeler in two rooms is
one person online, not two."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.pages import wait_state
from tests.browser.samples import connect_model, request
from tests.conftest import MakeServer
from tests.helpers import RawClient

pytestmark = pytest.mark.browser

ROOMS = ("feedback/a", "feedback/b")


async def room_labelers(page: Any, room: str, count: int) -> None:
    cell = f'tr[data-room="{room}"] td[data-key="labelers"]'
    await page.wait_for_selector(f'{cell}:text-is("{count}")')


async def test_a_labeler_in_two_rooms_counts_once_in_the_total(make_server: MakeServer,
                                                               new_page: Any) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    ws_url = str(server.make_url("/ws"))
    async with await connect_model(ws_url, "model", ROOMS[0]) as model:
        await model.send({"TYPE": "COMMAND/JOINROOM", "ROOM": ROOMS[1], "TO_ROOM": "_command"})
        for i, room in enumerate(ROOMS):
            await request(model, room, f"s{i}", "text", i, priority=1)
        async with await RawClient.connect(ws_url, "ann", role="labeler", rooms=ROOMS) as ann, \
                await RawClient.connect(ws_url, "bo", role="labeler", rooms=ROOMS[:1]):
            everything = await new_page(width=1000)
            await everything.goto(str(server.make_url("/dashboard")))
            await wait_state(everything, "open")
            await room_labelers(everything, ROOMS[0], 2)
            await room_labelers(everything, ROOMS[1], 1)
            # ann and bo: two people, though the rooms' columns add up to three
            await everything.wait_for_selector('[data-stat="labelers"]:text-is("2")')

            only_b = await new_page(width=1000)
            await only_b.goto(str(server.make_url("/dashboard").with_query(room=ROOMS[1])))
            await room_labelers(only_b, ROOMS[1], 1)
            await only_b.wait_for_selector('[data-stat="labelers"]:text-is("1")')

            await ann.ws.close()  # the total follows people leaving
            await room_labelers(everything, ROOMS[1], 0)
            await everything.wait_for_selector('[data-stat="labelers"]:text-is("1")')
            await only_b.wait_for_selector('[data-stat="labelers"]:text-is("0")')
