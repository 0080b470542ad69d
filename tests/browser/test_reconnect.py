"""Killing the server mid-session: the page shows it, keeps what was typed, loses no label."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import screenshot_path
from tests.browser.pages import next_task, wait_state
from tests.browser.samples import TEXT, connect_model, no_label_within, request, take_labels
from tests.helpers import RawClient, ServerProcess

pytestmark = pytest.mark.browser


async def test_server_killed_and_restarted_mid_session_loses_no_label(
        tmp_path: Path, new_page: Any) -> None:
    server = ServerProcess("--store", f"sqlite:///{tmp_path / 'store.db'}",
                           "--lease-seconds", "60", log_path=tmp_path / "server.log")
    await asyncio.to_thread(server.start)
    try:
        async with await RawClient.connect(server.ws_url, "model", rooms=("feedback",)) as model:
            for i in range(5):
                await request(model, "feedback", f"r{i}", "text", i, priority=10 - i,
                              **({"answer": TEXT} if i == 2 else {}))
            page = await new_page(name="cy")
            await page.goto(f"{server.url}/?undo=0.3")
            assert (await next_task(page))["sample"] == "r0"
            await page.keyboard.press("1")
            await page.keyboard.press("Enter")
            assert (await take_labels(model, 1))["r0"]["answer"] == "positive"
            assert (await next_task(page, "r0"))["sample"] == "r1"
            await page.keyboard.press("2")  # picked, not yet submitted

        await asyncio.to_thread(server.kill)
        await wait_state(page, "reconnecting")
        await page.wait_for_selector("[data-offline]:not([hidden])")
        await page.keyboard.press("Enter")  # answered while the server is down
        assert (await next_task(page, "r1"))["sample"] == "r2"
        await page.wait_for_selector('[data-module="label-app"][data-unsent="1"]')
        await page.keyboard.type("half")
        await page.screenshot(path=screenshot_path("label-reconnecting"))

        await asyncio.to_thread(server.start)  # same port, same SQLite file
        await wait_state(page, "open")
        assert await page.is_hidden("[data-offline]")
        await page.wait_for_selector('[data-module="label-app"][data-unsent="0"]')
        assert await page.input_value("[data-answer] textarea") == "half"
        await page.keyboard.type(" typed")
        await page.keyboard.press("Enter")
        for sample_id in ("r3", "r4"):
            assert (await next_task(page, "r2" if sample_id == "r3" else "r3"))["sample"] \
                == sample_id
            await page.keyboard.press("3")
            await page.keyboard.press("Enter")

        async with await connect_model(server.ws_url) as model:  # back after the restart
            labels = await take_labels(model, 4)
            assert {sid: label["answer"] for sid, label in labels.items()} == {
                "r1": "negative", "r2": "half typed", "r3": "neutral", "r4": "neutral"}
            await no_label_within(model, 0.5)
        await page.wait_for_selector('[data-stat="session"]:text-is("5")')
    finally:
        server.kill()
