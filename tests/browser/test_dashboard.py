"""The dashboard and the 360 px phone layout, in real Chromium."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout
from sklearn.linear_model import SGDClassifier

from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.learning import ActiveLearner
from tests.browser.conftest import screenshot_path
from tests.browser.pages import next_task, wait_state
from tests.browser.samples import connect_model, request, take_labels
from tests.conftest import MakeServer
from tests.helpers import RawClient

pytestmark = pytest.mark.browser

PHONE = 360
XSS = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script>'


async def test_learning_curve_and_numbers_follow_the_labels(make_server: MakeServer,
                                                            new_page: Any) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    ws_url = str(server.make_url("/ws"))
    dashboard = await new_page(width=1000, height=820)
    await dashboard.goto(str(server.make_url("/dashboard")))
    await wait_state(dashboard, "open")
    await dashboard.wait_for_selector('[data-room-rows] tr.empty')

    async with await connect_model(ws_url, "sentiment") as model, \
            await RawClient.connect(ws_url, "melody-model", rooms=("kpi", "feedback")) as other:
        for i in range(3):
            await request(model, "feedback", f"d{i}", "text", i, priority=3 - i)
        labeler = await new_page(name="di")
        await labeler.goto(str(server.make_url("/label/feedback?undo=0")))
        previous = None
        for n in range(1, 4):
            previous = (await next_task(labeler, previous))["sample"]
            await labeler.keyboard.press("1")
            await labeler.keyboard.press("Enter")
            await take_labels(model, 1)
            # What a model loop does after learning from a label (the service relays it).
            await model.send({"TYPE": "LOG/KPI", "TO_ROOM": "feedback", "DATA": {
                "model": "sentiment", "version": n, "labels": n, "score": 0.5 + 0.1 * n,
                "fit_seconds": 0.004}})
            await dashboard.wait_for_selector(
                f'[data-curve="sentiment"] .line-plot[data-points="{n}"]')
        for n in (2, 4):  # a model publishing each report to both rooms: one point each
            for room in ("kpi", "feedback"):
                await other.send({"TYPE": "LOG/KPI", "TO_ROOM": room, "DATA": {
                    "version": n // 2, "labels": n, "score": 0.3 + 0.1 * n,
                    "fit_seconds": 0.02, "time": 1700000000 + n}})
        await dashboard.wait_for_selector('[data-curve="melody-model"] .line-plot[data-points="2"]')
        await dashboard.wait_for_selector('[data-module="models-panel"][data-points="5"]')

        await dashboard.wait_for_selector('[data-stat="labeled"]:text-is("3")')
        assert await dashboard.text_content('[data-stat="labelers"]') == "1"
        assert await dashboard.text_content('[data-stat="queued"]') == "0"
        row = await dashboard.inner_text('tr[data-model="sentiment"]')
        assert row.split("\t")[:5] == ["sentiment", "3", "3", "–", "0.800 score"]
        assert await dashboard.is_visible('tr[data-model="melody-model"]')
        assert await dashboard.inner_text('tr[data-room="feedback"] td:first-child') == "feedback"
        row = '[data-labeler-rows] tr[data-labeler="di"]'
        await dashboard.wait_for_selector(f'{row} td:nth-child(3):text-is("3")')
        labeler_row = (await dashboard.inner_text(row)).split("\t")
        assert labeler_row[:3] == ["di", "feedback", "3"] and labeler_row[4] == "0"
        await dashboard.screenshot(path=screenshot_path("dashboard-choices"))

        await dashboard.set_viewport_size({"width": PHONE, "height": 800})
        assert await dashboard.evaluate("document.documentElement.scrollWidth") <= PHONE
        await dashboard.screenshot(path=screenshot_path("dashboard-phone"))

        # A hostile model name is shown as text, like any sample text.
        await other.send({"TYPE": "LOG/KPI", "TO_ROOM": "kpi", "DATA": {
            "model": XSS, "version": 1, "labels": 1, "score": 0.5}})
        await dashboard.wait_for_selector('[data-module="models-panel"][data-points="6"]')
        assert XSS in (await dashboard.inner_text("[data-curves]"))
        assert XSS in (await dashboard.inner_text("[data-models]"))
        assert await dashboard.evaluate(
            "document.querySelectorAll('main img, main script').length") == 0
        assert await dashboard.evaluate("window.__xss") is None


async def test_labeling_page_fits_a_phone(make_server: MakeServer, new_page: Any) -> None:
    server = await make_server()
    async with await connect_model(str(server.make_url("/ws"))) as model:
        await request(model, "feedback", "m0", "melody", 0, priority=1)
        await request(model, "feedback", "t0", "table", 0, priority=0)
        page = await new_page(width=PHONE, height=740, name="a-rather-long-labeler-name",
                              touch=True)
        await page.goto(str(server.make_url("/label/feedback?undo=0.5")))
        assert (await next_task(page))["kind"] == "melody"
        await page.wait_for_selector('[data-stat="queued"]:text-is("0")')
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE
        await page.screenshot(path=screenshot_path("label-phone"), full_page=True)
        await page.tap("[data-answer] button:nth-child(4)")  # touch works as well as keys
        await page.tap("[data-submit]")
        assert (await next_task(page, "m0"))["kind"] == "table"
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE
        assert (await take_labels(model, 1))["m0"]["answer"] == 3


async def test_a_real_model_loop_learns_from_the_browser_and_its_curve_grows(
        make_server: MakeServer, new_page: Any) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    url = str(server.make_url("/ws"))
    room = "feedback/blobs"
    dashboard = await new_page()
    await dashboard.goto(str(server.make_url(f"/dashboard?room={room}")))
    await wait_state(dashboard, "open")

    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 2)) * 2
    X_val = rng.normal(size=(60, 2)) * 2
    y_val = (X_val.sum(axis=1) > 0).astype(int)
    learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1],
                            random_state=0)
    loop = FeedbackLoop(learner, name="blobs-model", url=url, feedback_room=room,
                        answer={"type": "choice", "choices": [0, 1]}, kpi_room="kpi",
                        validation=(X_val, y_val))
    async with loop:
        for i, x in enumerate(X):
            await loop.ask(f"b{i}", x)
        labeler = await new_page(name="bea")
        await labeler.goto(str(server.make_url(f"/label/{room}?undo=0")))
        previous = None
        for _ in X:
            previous = (await next_task(labeler, previous))["sample"]
            x0, x1 = await labeler.eval_on_selector_all(
                ".sample-table td", "cells => cells.map((td) => Number(td.textContent))")
            await labeler.keyboard.press("2" if x0 + x1 > 0 else "1")  # choice 1 or 0
            await labeler.keyboard.press("Enter")
        async with asyncio.timeout(15):
            while len(loop.learned) < len(X):
                await loop.wait_for_version(loop.version + 1)
        await loop.settled()

        # One point per report, though the loop sends each to its feedback room and to kpi.
        # (A background refit may still add a report: wait until both sides agree.)
        async with asyncio.timeout(15):
            while True:
                reports = len(loop.kpis)
                try:
                    await dashboard.wait_for_selector(
                        f'[data-module="models-panel"][data-points="{reports}"]', timeout=2000)
                except PlaywrightTimeout:
                    continue
                if len(loop.kpis) == reports:
                    break
        last = loop.kpis[-1]
        assert last["labels"] == len(X)
        row = await dashboard.inner_text('tr[data-model="blobs-model"]')
        assert row.split()[:3] == ["blobs-model", str(last["version"]), str(len(X))]


async def test_a_dashboard_without_the_component_token_says_so_rather_than_no_work(
        make_server: MakeServer, new_page: Any) -> None:
    server = await make_server(component_token="component-secret")
    async with await RawClient.connect(str(server.make_url("/ws"))) as model:
        await model.send({"TYPE": "COMMAND/REGISTER", "NAME": "model", "TO_ROOM": "_command",
                          "TOKEN": "component-secret"})
        await model.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "feedback", "TO_ROOM": "_command"})
        await request(model, "feedback", "t0", "text", 0, priority=1)
        dashboard = await new_page(width=1000)
        await dashboard.goto(str(server.make_url("/dashboard")))  # the link without its token
        notice = dashboard.locator("[data-refused-notice]")
        await notice.wait_for()
        assert "component token" in await notice.inner_text()
        assert await dashboard.is_hidden('[data-module="rooms-panel"]')  # "no work yet" is untrue
        assert await dashboard.is_hidden('[data-module="totals"]')

        with_token = await new_page(width=1000)
        await with_token.goto(str(server.make_url("/dashboard?token=component-secret")))
        await with_token.wait_for_selector(
            'tr[data-room="feedback"] td[data-key="queued"]:text-is("1")')
        assert await with_token.locator("[data-refused-notice]").count() == 0


async def test_curve_labels_stay_readable_on_a_phone(make_server: MakeServer,
                                                     new_page: Any) -> None:
    """The curve is drawn at the width it gets: scaling a wide drawing down to a phone
    shrank its 12 px tick labels to about 5 px."""
    server = await make_server()
    dashboard = await new_page(width=PHONE, height=800)
    await dashboard.goto(str(server.make_url("/dashboard")))
    await wait_state(dashboard, "open")
    async with await RawClient.connect(str(server.make_url("/ws")), "tiny-model",
                                       rooms=("kpi",)) as model:
        for n in (1, 2):
            await model.send({"TYPE": "LOG/KPI", "TO_ROOM": "kpi", "DATA": {
                "version": n, "labels": 10 * n, "score": 0.4 + 0.1 * n}})
        plot = '[data-curve="tiny-model"] .line-plot[data-points="2"]'
        await dashboard.wait_for_selector(plot)
        tick_height = "node => node.getBoundingClientRect().height"
        for width in (PHONE, 1000):
            await dashboard.set_viewport_size({"width": width, "height": 800})
            await dashboard.wait_for_function(
                """selector => { const svg = document.querySelector(selector);
                   return svg && Math.abs(svg.viewBox.baseVal.width
                                          - svg.getBoundingClientRect().width) < 2; }""",
                arg=plot)  # drawn at its own width: one unit is one CSS pixel
            height = await dashboard.locator(f"{plot} .tick").first.evaluate(tick_height)
            assert height >= 11, (width, height)
            assert await dashboard.evaluate("document.documentElement.scrollWidth") <= width
