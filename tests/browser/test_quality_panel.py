"""The dashboard's label-quality panel while simulated labelers work, in real Chromium."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier

from swergio_al.feedback import Labeler
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.learning import ActiveLearner
from tests.browser.conftest import screenshot_path
from tests.browser.pages import wait_state
from tests.conftest import MakeServer

pytestmark = pytest.mark.browser

ROOM = "feedback/quality"
CHOICE = {"type": "choice", "choices": ["a", "b", "c"]}
SAMPLES = 60


def truth(task: dict[str, Any]) -> str:
    content = task["content"]
    return "abc"[int(np.argmax([content["x0"], content["x1"], content["x2"]]))]


async def test_agreement_and_labelers_show_and_the_random_clicker_is_flagged(
        make_server: MakeServer, new_page: Any) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    url = str(server.make_url("/ws"))
    dashboard = await new_page(width=1000, height=900)
    await dashboard.goto(str(server.make_url(f"/dashboard?room={ROOM}")))
    await wait_state(dashboard, "open")
    clicks = random.Random(3)

    async def click(task: dict[str, Any]) -> str:
        await asyncio.sleep(0.01)  # people take a moment; keeps the room busy for a while
        return clicks.choice("abc")

    learner = ActiveLearner(SGDClassifier(loss="log_loss", random_state=0),
                            classes=["a", "b", "c"], random_state=0)
    loop = FeedbackLoop(learner, name="model", url=url, answer=CHOICE, feedback_room=ROOM,
                        overlap=3, flag_below=0.6)
    people = [Labeler(name, url, truth, room=ROOM) for name in ("ann", "bob", "cid")]
    people.append(Labeler("rnd", url, click, room=ROOM))
    rng = np.random.default_rng(0)
    async with loop:
        for person in people:
            await person.start()
        try:
            for i in range(SAMPLES):
                await loop.ask(i, rng.normal(size=3))
            flagged = dashboard.locator('tr[data-quality-labeler="rnd"].flagged')
            await flagged.wait_for(timeout=20_000)
            assert (await flagged.locator(".flag").inner_text()) == "flagged"
            for name in ("ann", "bob", "cid"):
                row = dashboard.locator(f'tr[data-quality-labeler="{name}"]')
                assert await row.count() == 1
                assert "flagged" not in (await row.get_attribute("class") or "")
            kappa = await dashboard.inner_text('[data-agreement-kind="fleiss_kappa"]')
            assert kappa.startswith("Fleiss' κ ") and 0 < float(kappa.split()[-1]) < 1
            width = "node => node.getBoundingClientRect().width"
            bar = await dashboard.locator(
                'tr[data-quality-labeler="ann"] .quality-fill').evaluate(width)
            rnd_bar = await dashboard.locator(
                'tr[data-quality-labeler="rnd"] .quality-fill').evaluate(width)
            assert bar > rnd_bar > 0  # bars are estimated accuracies: rnd is below 0.6
            await dashboard.locator('[data-module="quality-panel"]').screenshot(
                path=screenshot_path("dashboard-quality"))
            await loop.wait_learned(3 * SAMPLES, timeout=30)
        finally:
            for person in people:
                await person.close()


async def test_one_answer_per_sample_shows_no_agreement_rather_than_a_perfect_one(
        make_server: MakeServer, new_page: Any) -> None:
    """A room's default: each sample answered once. Each answer is then its own
    aggregate, and the server's 1.000 agreement would read as flawless labels."""
    server = await make_server(stats_interval_seconds=0.05)
    url = str(server.make_url("/ws"))
    dashboard = await new_page(width=1000, height=900)
    await dashboard.goto(str(server.make_url(f"/dashboard?room={ROOM}")))
    await wait_state(dashboard, "open")
    loop = FeedbackLoop(ActiveLearner(SGDClassifier(loss="log_loss", random_state=0),
                                      classes=["a", "b", "c"], random_state=0),
                        name="model", url=url, answer=CHOICE, feedback_room=ROOM)
    rng = np.random.default_rng(1)
    async with loop, Labeler("ann", url, truth, room=ROOM):
        for i in range(4):
            await loop.ask(i, rng.normal(size=3))
        await loop.wait_learned(4, timeout=20)
        row = 'tr[data-quality-labeler="ann"]'
        await dashboard.wait_for_selector(f'{row} td:nth-child(2):text-is("4")')
        cells = (await dashboard.inner_text(row)).split("\t")
        assert cells[3] == "–" and cells[5] == "–", cells  # agreement, estimated accuracy
        assert await dashboard.is_visible('[data-no-overlap]')
        assert await dashboard.locator('[data-agreement-kind]').count() == 0
        width = "node => node.getBoundingClientRect().width"
        assert await dashboard.locator(f'{row} .quality-fill').evaluate(width) == 0
