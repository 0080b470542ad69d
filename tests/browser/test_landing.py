"""The landing page and the empty states, in real Chromium (also at 360 px)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import screenshot_path
from tests.browser.pages import next_task, wait_state
from tests.browser.samples import connect_model, request
from tests.conftest import MakeServer

pytestmark = pytest.mark.browser

PHONE = 360


async def test_an_empty_server_says_so_on_both_pages(make_server: MakeServer,
                                                     new_page: Any) -> None:
    server = await make_server()
    page = await new_page(width=PHONE, height=700, name="eve")
    await page.goto(str(server.make_url("/")))
    assert "No room has work waiting" in await page.inner_text("[data-empty]")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE
    await page.goto(str(server.make_url("/label/feedback")))
    await wait_state(page, "open")
    await page.wait_for_selector("[data-waiting]:visible")  # shown on connect, not only later
    assert await page.is_hidden("[data-task]")
    await page.goto(str(server.make_url("/dashboard")))  # each table says it is empty
    for rows, says in (("room-rows", "no feedback room has work yet"),
                       ("models", "no model has reported"), ("labeler-rows", "no labels yet")):
        assert await page.is_visible(f"[data-{rows}] .empty td")  # at 360 px too
        assert says in await page.inner_text(f"[data-{rows}]")


async def test_landing_lists_rooms_with_work_and_links_to_them(make_server: MakeServer,
                                                               new_page: Any) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    url = str(server.make_url("/ws"))
    async with await connect_model(url, "texts", room="feedback/reviews") as texts, \
            await connect_model(url, "tunes", room="feedback/melody") as tunes:
        for i in range(3):
            await request(texts, "feedback/reviews", f"r{i}", "text", i, priority=i)
        await request(tunes, "feedback/melody", "m0", "melody", 0, priority=0)
        while (await texts.expect("FEEDBACK/STATS"))["DATA"]["queued"] != 3:
            pass  # all three stored
        labeler = await new_page(name="lea")
        await labeler.goto(str(server.make_url("/label/feedback/melody")))
        await next_task(labeler)  # one labeler online in feedback/melody, its task in flight

        page = await new_page(width=PHONE, height=740, name="lee")
        await page.goto(str(server.make_url("/")))
        rooms = await page.eval_on_selector_all(
            "[data-rooms-with-work] [data-room]", "items => items.map((i) => i.dataset.room)")
        assert rooms == ["feedback/reviews", "feedback/melody"]  # most waiting first
        reviews = '[data-room="feedback/reviews"]'
        assert await page.inner_text(f'{reviews} [data-key="queued"]') == "3"
        assert await page.inner_text('[data-room="feedback/melody"] [data-key="labelers"]') == "1"
        assert await page.is_visible(f"{reviews} .room-question")
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE
        await page.screenshot(path=screenshot_path("landing-phone"), full_page=True)
        await page.set_viewport_size({"width": 900, "height": 600})
        await page.screenshot(path=screenshot_path("landing"), full_page=True)
        await page.click(f"{reviews} a")
        await page.wait_for_url("**/label/feedback/reviews")
        assert (await next_task(page))["kind"] == "text"
        assert await page.is_visible("a[href='/dashboard']")


async def test_label_without_a_room_leads_to_the_rooms(make_server: MakeServer,
                                                       new_page: Any) -> None:
    """A newcomer shortening the printed link to /label gets the room list, not a 404."""
    server = await make_server(labeler_token="labeler-secret")
    async with await connect_model(str(server.make_url("/ws")), "texts",
                                   room="feedback/reviews") as texts:
        await request(texts, "feedback/reviews", "r0", "text", 0, priority=0)
        while (await texts.expect("FEEDBACK/STATS"))["DATA"]["queued"] != 1:
            pass  # stored: the landing page lists it
        page = await new_page(name="lea")
        for path in ("/label", "/label/"):
            await page.goto(str(server.make_url(path).with_query(token="labeler-secret")))
            link = page.locator('a[href^="/label/feedback/reviews"]')
            await link.wait_for()
            assert "token=labeler-secret" in (await link.get_attribute("href") or "")
