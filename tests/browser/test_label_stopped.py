"""A label page the server no longer serves (its name opened elsewhere, or refused) says
so in place of the task, in real Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import PageWatch
from tests.browser.pages import next_task, wait_state
from tests.browser.samples import connect_model, request, take_labels
from tests.conftest import MakeServer

pytestmark = pytest.mark.browser

ROOMS = ("feedback/a", "feedback/b")


async def test_a_page_taken_over_by_another_tab_stops_and_enter_takes_it_back(
        make_server: MakeServer, new_page: Any, watch: PageWatch) -> None:
    server = await make_server()
    async with await connect_model(str(server.make_url("/ws")), "model", ROOMS[0]) as model:
        await model.send({"TYPE": "COMMAND/JOINROOM", "ROOM": ROOMS[1], "TO_ROOM": "_command"})
        await request(model, ROOMS[0], "a0", "text", 0, priority=1)
        await request(model, ROOMS[1], "b0", "text", 1, priority=1)
        first = await new_page(name="pat")
        await first.goto(str(server.make_url(f"/label/{ROOMS[0]}?undo=0")))
        assert (await next_task(first))["sample"] == "a0"

        # The same person opens the other room in a second tab of the same browser.
        second = await first.context.new_page()
        watch.attach(second)
        await second.goto(str(server.make_url(f"/label/{ROOMS[1]}?undo=0")))
        assert (await next_task(second))["sample"] == "b0"

        await first.wait_for_selector('[data-stopped-why="taken-over"]')
        assert await first.is_hidden("[data-task]")  # no sample left to answer for nothing
        assert await first.is_hidden("[data-waiting]")
        assert await first.is_hidden("[data-shortcuts]")  # its keys answer nothing here
        assert "pat" in await first.inner_text("[data-stopped]")
        await first.keyboard.press("1")  # answer keys do nothing here

        await first.keyboard.press("Enter")  # label here instead
        await wait_state(first, "open")
        assert (await next_task(first))["sample"] == "a0"
        await second.wait_for_selector('[data-stopped-why="taken-over"]')
        await first.keyboard.press("1")
        await first.keyboard.press("Enter")
        label = (await take_labels(model, 1))["a0"]
        assert (label["labeler"], label["answer"]) == ("pat", "positive")


async def test_a_refused_page_says_so_rather_than_waiting_for_samples(
        make_server: MakeServer, new_page: Any) -> None:
    server = await make_server(labeler_token="labeler-secret")
    page = await new_page(name="pat")
    await page.goto(str(server.make_url(f"/label/{ROOMS[0]}")))  # the link without its token
    await page.wait_for_selector('[data-stopped-why="refused"]')
    assert "token" in await page.inner_text("[data-stopped]")
    assert await page.is_hidden("[data-waiting]")
    assert await page.is_hidden('[data-stopped-why="taken-over"]')
