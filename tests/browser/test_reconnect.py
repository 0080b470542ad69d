"""Killing the server mid-session: the page shows it, keeps what was typed, loses no label."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import screenshot_path
from tests.browser.pages import next_task, wait_state
from tests.browser.samples import TEXT, connect_model, no_label_within, request, take_labels
from tests.conftest import MakeServer
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
            await page.goto(f"{server.url}/label/feedback?undo=0.3")
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


async def test_an_answer_given_after_the_lease_ran_out_still_reaches_the_model(
        make_server: MakeServer, new_page: Any) -> None:
    server = await make_server(lease_seconds=1.5, stats_interval_seconds=0.05)
    async with await connect_model(str(server.make_url("/ws"))) as model:
        for i in range(2):
            await request(model, "feedback", f"slow{i}", "text", i, priority=2 - i)
        page = await new_page(name="slowpoke")
        await page.goto(str(server.make_url("/label/feedback?undo=0")))
        assert (await next_task(page))["sample"] == "slow0"
        await page.wait_for_selector('[data-stat="queued"]:text-is("0")')
        # Thinking longer than the lease: the server takes both tasks back.
        await page.wait_for_selector('[data-stat="queued"]:text-is("2")', timeout=5000)
        await page.keyboard.press("3")
        await page.keyboard.press("Enter")
        labels = await take_labels(model, 1)
        assert labels["slow0"]["answer"] == "neutral"
        assert labels["slow0"]["labeler"] == "slowpoke"
        await page.wait_for_selector('[data-module="label-app"][data-unsent="0"]')
        assert (await next_task(page, "slow0"))["sample"] == "slow1"


async def test_an_answer_for_a_sample_someone_else_took_over_is_dropped_with_a_note(
        make_server: MakeServer, new_page: Any) -> None:
    server = await make_server(lease_seconds=0.6, stats_interval_seconds=0.05)
    ws_url = str(server.make_url("/ws"))
    async with await connect_model(ws_url) as model, await RawClient.connect(ws_url) as other:
        await request(model, "feedback", "only", "text", 0, priority=1)
        page = await new_page(name="slowpoke")
        await page.goto(str(server.make_url("/label/feedback?undo=0")))
        assert (await next_task(page))["sample"] == "only"
        await other.send({"TYPE": "COMMAND/REGISTER", "NAME": "quick", "ROLE": "labeler",
                          "TO_ROOM": "_command"})
        await other.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "feedback", "TO_ROOM": "_command"})
        task = await other.expect("FEEDBACK/TASK")  # after slowpoke's lease ran out
        await other.send({"TYPE": "FEEDBACK/LABEL", "TO_ROOM": "feedback",
                          "DATA": {"task_id": task["DATA"]["task_id"], "answer": "negative"}})
        labels = await take_labels(model, 1)
        assert (labels["only"]["labeler"], labels["only"]["answer"]) == ("quick", "negative")
        await page.keyboard.press("1")  # slowpoke answers at last
        await page.keyboard.press("Enter")
        await page.wait_for_selector('[data-message]:has-text("was labeled meanwhile")')
        assert await page.get_attribute('[data-module="label-app"]', "data-unsent") == "0"
        assert await page.text_content('[data-stat="session"]') == "0"
        await no_label_within(model, 0.3)
