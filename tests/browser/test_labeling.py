"""The labeling page in real Chromium against a real server and FeedbackService."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import PageWatch, screenshot_path
from tests.browser.pages import MEDIA, answer_with_keyboard, next_task, play_and_stop, wait_state
from tests.browser.samples import (
    KINDS,
    connect_model,
    no_label_within,
    request,
    sample,
    take_labels,
)
from tests.conftest import MakeServer
from tests.helpers import RawClient, ServerProcess

pytestmark = pytest.mark.browser


async def test_every_kind_is_labeled_with_the_keyboard_and_reaches_the_model(
        make_server: MakeServer, new_page: Any) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    async with await RawClient.connect(str(server.make_url("/ws")), "model",
                                       rooms=("feedback",)) as model:
        for k, kind in enumerate(KINDS):  # grouped by kind: higher priority is asked first
            for i in range(5):
                await request(model, "feedback", f"{kind}-{i}", kind, i,
                              priority=100 - 10 * k - i)
        page = await new_page()
        await page.goto(str(server.make_url("/label/feedback?undo=0.3")))
        await page.wait_for_selector("[data-name-form]:not([hidden])")
        # no socket before a name: the badge says so (it said "connecting…")
        assert await page.text_content("[data-conn]") == \
            "not connected — enter your name to start"
        await page.fill("[data-name-input]", "ada")  # asked once, then kept
        await page.keyboard.press("Enter")
        await wait_state(page, "open")

        # The next task is already in the page, so answering shows it without a round trip.
        first = (await next_task(page))["sample"]
        await page.wait_for_selector('[data-module="label-app"][data-prefetched="1"]')
        await page.keyboard.press("2")
        await page.keyboard.press("Enter")
        assert await page.get_attribute("[data-task]", "data-sample-id") not in (None, first)
        await page.keyboard.press("u")
        assert await page.get_attribute("[data-task]", "data-sample-id") == first

        expected: dict[str, Any] = {}
        shot: set[str] = set()
        previous = None
        for _ in range(5 * len(KINDS)):
            task = await next_task(page, previous)
            kind, sample_id = task["kind"], task["sample"]
            if kind not in shot:
                if kind == "melody":  # names its pitches, shades its rests
                    axis = await page.inner_text(".pitch-axis")
                    assert "C4" in axis.split(), axis
                    assert await page.locator(".piano-roll .rest").count() > 0
                    await page.keyboard.press(" ")  # shows the playhead moving
                    await page.wait_for_selector('[data-play][data-playing="true"]')
                # The picture shows this task alone, not the last answer's undo bar.
                await page.wait_for_selector("[data-undo]", state="hidden")
                await page.screenshot(path=screenshot_path(f"label-{kind}"))
                shot.add(kind)
                if kind == "melody":
                    await page.keyboard.press(" ")
                    await page.wait_for_selector('[data-play][data-playing="false"]')
            if kind in MEDIA:
                await play_and_stop(page, kind)
            if kind == "table":  # 1.4 + 2 / 5 reads 1.8, its exact value on hover
                cells = await page.eval_on_selector_all(
                    ".sample-table td", "tds => tds.map((td) => [td.textContent, td.title])")
                assert all(len(text.partition(".")[2]) <= 4 for text, _ in cells), cells
                exact = list(sample(kind, int(sample_id[-1]))["content"].values())
                assert [float(title or text) for text, title in cells] == exact
                assert [round(float(text), 4) for text, _ in cells] == [round(v, 4) for v in exact]
            expected[sample_id] = await answer_with_keyboard(page, kind, int(sample_id[-1]))
            previous = sample_id

        labels = await take_labels(model, len(expected))
        assert {sid: label["answer"] for sid, label in labels.items()} == expected
        assert {label["labeler"] for label in labels.values()} == {"ada"}
        assert shot == set(KINDS)
        await page.wait_for_selector('[data-stat="session"]:text-is("25")')
        await page.wait_for_selector("[data-waiting]:not([hidden])")

        await page.reload()
        await wait_state(page, "open")
        assert await page.is_hidden("[data-name-form]")
        assert await page.text_content("[data-labeler-name]") == "ada"
        await page.click("[data-change-name]")
        await page.wait_for_selector("[data-name-form]:not([hidden])")


async def test_undo_brings_an_answer_back_and_skip_sends_no_label(
        make_server: MakeServer, new_page: Any) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    async with await RawClient.connect(str(server.make_url("/ws")), "model",
                                       rooms=("feedback",)) as model:
        for i in range(4):
            await request(model, "feedback", f"t{i}", "text", i, priority=10 - i)
        page = await new_page(name="bo")
        await page.goto(str(server.make_url("/label/feedback?undo=2")))

        assert (await next_task(page))["sample"] == "t0"
        await page.keyboard.press("1")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("[data-undo]:not([hidden])")
        assert (await next_task(page, "t0"))["sample"] == "t1"
        await page.keyboard.press("u")  # back to t0, with its answer still picked
        assert (await next_task(page, "t1"))["sample"] == "t0"
        assert await page.get_attribute('[data-answer] [data-value="positive"]',
                                        "aria-checked") == "true"
        assert await page.is_hidden("[data-undo]")
        await page.keyboard.press("2")
        await page.keyboard.press("Enter")
        await next_task(page, "t0")
        await page.keyboard.press("Control+z")  # the other undo key
        assert (await next_task(page, "t1"))["sample"] == "t0"
        await page.keyboard.press("Enter")  # "negative" is still picked
        assert (await next_task(page, "t0"))["sample"] == "t1"
        await page.keyboard.press("s")
        assert (await next_task(page, "t1"))["sample"] == "t2"
        await page.keyboard.press("3")
        await page.keyboard.press("Enter")

        labels = await take_labels(model, 2)
        assert {sid: label["answer"] for sid, label in labels.items()} == {
            "t0": "negative", "t2": "neutral"}
        await no_label_within(model, 0.8)  # the skipped t1 got no label, t0 only one


XSS = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2;alert(2)</script>'


async def test_hostile_sample_text_renders_as_text(make_server: MakeServer, new_page: Any,
                                                   watch: PageWatch) -> None:
    server = await make_server()
    async with await RawClient.connect(str(server.make_url("/ws")), "model",
                                       rooms=("feedback",)) as model:
        hostile = [
            ("text", XSS, {"type": "choice", "choices": [XSS, "fine"]}),
            ("table", {XSS: XSS, "rows": [XSS]}, {"type": "text", "max_length": 50}),
            ("no-such-kind", {"html": XSS}, {"type": "rating", "min": 0, "max": 2, "step": 1}),
            ("image", {"src": "javascript:alert(3)", "alt": XSS}, {"type": "choice",
                                                                  "choices": ["a", "b"]}),
        ]
        for i, (kind, content, answer) in enumerate(hostile):
            await request(model, "feedback", f"x{i}", kind, 0, priority=10 - i, content=content,
                          answer=answer, question=XSS, prediction=XSS)
        page = await new_page(name="eve")
        await page.goto(str(server.make_url("/label/feedback?undo=0")))
        previous = None
        for _ in hostile:
            previous = (await next_task(page, previous))["sample"]
            task_text = await page.text_content("[data-task]")
            assert task_text is not None and XSS in task_text
            injected = await page.evaluate(
                "document.querySelectorAll('[data-task] img, [data-task] script').length")
            assert injected == 0
            if previous == "x2":  # the JSON fallback, showing hostile text harmlessly
                await page.screenshot(path=screenshot_path("label-fallback"))
            await page.keyboard.press("Escape")  # leaves a text box, if there is one
            await page.keyboard.press("s")
        assert await page.evaluate("window.__xss") is None
        assert watch.dialogs == []


async def test_token_from_the_link_is_sent_on_register_and_leaves_the_address_bar(
        server: Any, new_page: Any) -> None:
    page = await new_page(name="tia")
    registers: list[dict[str, Any]] = []
    both = asyncio.Event()

    def on_frame(frame: str) -> None:
        if '"COMMAND/REGISTER"' in frame:
            registers.append(json.loads(frame))
            if len(registers) == 2:
                both.set()

    def on_socket(ws: Any) -> None:
        ws.on("framesent", on_frame)

    page.on("websocket", on_socket)
    await page.goto(str(server.make_url("/label/feedback?token=s3cret&undo=1")))
    await wait_state(page, "open")
    assert "token" not in page.url and page.url.endswith("/label/feedback?undo=1")
    await page.reload()  # the tab keeps the token; the URL never shows it again
    await asyncio.wait_for(both.wait(), 10)
    assert [(r["NAME"], r["ROLE"], r["TOKEN"]) for r in registers] == [
        ("tia", "labeler", "s3cret")] * 2


async def test_a_sample_the_model_cancels_leaves_the_screen(make_server: MakeServer,
                                                            new_page: Any) -> None:
    server = await make_server()
    async with await RawClient.connect(str(server.make_url("/ws")), "model",
                                       rooms=("feedback",)) as model:
        for i in range(3):
            await request(model, "feedback", f"c{i}", "text", i, priority=3 - i)
        page = await new_page(name="cat")
        await page.goto(str(server.make_url("/label/feedback?undo=0")))
        assert (await next_task(page))["sample"] == "c0"
        await model.send({"TYPE": "FEEDBACK/CANCEL", "TO_ROOM": "feedback",
                          "DATA": {"sample_ids": ["c0"]}})
        assert (await next_task(page, "c0"))["sample"] == "c1"
        assert "no longer needs" in (await page.text_content("[data-message]") or "")
        await page.keyboard.press("1")
        await page.keyboard.press("Enter")
        assert set(await take_labels(model, 1)) == {"c1"}


async def test_an_answer_in_its_undo_window_survives_leaving_the_page(
        tmp_path: Path, new_page: Any) -> None:
    # A served process, as in production: aiohttp's TestServer cancels a handler whose
    # client is gone, which would cut the label's delivery short after its commit.
    server = ServerProcess("--store", f"sqlite:///{tmp_path / 'store.db'}")
    await asyncio.to_thread(server.start)
    try:
        async with await RawClient.connect(server.ws_url, "model",
                                           rooms=("feedback",)) as model:
            await request(model, "feedback", "bye", "text", 0, priority=1)
            page = await new_page(name="gus")
            await page.goto(f"{server.url}/label/feedback?undo=30")
            assert (await next_task(page))["sample"] == "bye"
            await page.keyboard.press("2")
            await page.keyboard.press("Enter")
            await page.wait_for_selector("[data-undo]:not([hidden])")
            await page.goto("about:blank")  # sent on the way out, or on the next visit
            await page.goto(f"{server.url}/label/feedback?undo=0")
            assert (await take_labels(model, 1))["bye"]["answer"] == "negative"
            await page.wait_for_selector('[data-module="label-app"][data-unsent="0"]')

            await request(model, "feedback", "later", "text", 1, priority=1)
            assert (await next_task(page))["sample"] == "later"

        # Answered while the server is down, then the tab is closed: the next visit sends it.
        await asyncio.to_thread(server.kill)
        await wait_state(page, "reconnecting")
        await page.keyboard.press("3")
        await page.keyboard.press("Enter")
        await page.wait_for_selector('[data-module="label-app"][data-unsent="1"]')
        context = page.context
        await page.close()
        await asyncio.to_thread(server.start)
        async with await connect_model(server.ws_url) as model:
            page = await context.new_page()
            await page.goto(f"{server.url}/label/feedback")
            assert (await take_labels(model, 1))["later"]["answer"] == "neutral"
            await page.wait_for_selector('[data-module="label-app"][data-unsent="0"]')
            await no_label_within(model, 0.3)
            outboxes = "Object.keys(localStorage).filter((k) => k.includes('outbox'))"
            assert await page.evaluate(outboxes) == []
    finally:
        server.kill()


async def test_a_number_answer_reaches_the_model_as_a_number(make_server: MakeServer,
                                                              new_page: Any) -> None:
    """`--answer number` (issue 12): the page sent the typed text, which the server
    refuses for a number schema, so no number task could ever be labeled."""
    server = await make_server()
    async with await RawClient.connect(str(server.make_url("/ws")), "model",
                                       rooms=("feedback",)) as model:
        await model.send({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": "feedback", "DATA": {
            "sample_id": "n1", "kind": "text", "content": "How many legs has a spider?",
            "answer": {"type": "number"}, "priority": 1}})
        page = await new_page()
        await page.goto(str(server.make_url("/label/feedback?undo=0")))
        await page.fill("[data-name-input]", "ada")
        await page.keyboard.press("Enter")
        await wait_state(page, "open")
        await next_task(page)
        await page.keyboard.type("eight")
        await page.keyboard.press("Enter")  # not a number: nothing is sent
        await page.wait_for_selector("text=Type a number, then Enter.")
        await page.keyboard.press("Control+A")
        await page.keyboard.type("8")
        await page.keyboard.press("Enter")
        labels = await take_labels(model, 1)
        assert labels["n1"]["answer"] == 8


async def test_no_empty_queue_message_flashes_between_tasks(make_server: MakeServer,
                                                            new_page: Any) -> None:
    """With an answer held in its undo window, the next task arrives a round trip after
    the answer before it is sent; meanwhile the page said "No samples to label right
    now" although the queue was full."""
    server = await make_server()
    async with await RawClient.connect(str(server.make_url("/ws")), "model",
                                       rooms=("feedback",)) as model:
        for i in range(6):
            await request(model, "feedback", f"f{i}", "text", i, priority=10 - i)
        page = await new_page()
        await page.goto(str(server.make_url("/label/feedback?undo=1")))
        await page.fill("[data-name-input]", "ada")
        await page.keyboard.press("Enter")
        await wait_state(page, "open")
        await next_task(page)
        await page.evaluate("""() => {
            const empty = document.querySelector('[data-waiting-empty]');
            const card = document.querySelector('[data-waiting]');
            window.emptyShown = 0;
            new MutationObserver(() => {
                if (!card.hidden && !empty.hidden) window.emptyShown += 1;
            }).observe(card, { attributes: true, subtree: true });
        }""")
        previous = None
        for _ in range(4):
            task = await next_task(page, previous)
            await answer_with_keyboard(page, "text", int(task["sample"][-1]))
            previous = task["sample"]
        await take_labels(model, 3)  # the fourth waits in its undo window
        assert await page.evaluate("window.emptyShown") == 0
