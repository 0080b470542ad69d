"""The music demo's dashboard (the link `swergio-al demo music` prints: /dashboard)
in real Chromium: live figures and the evaluator's curve while ratings come in, and
the same curve in a dashboard opened after the ratings. The demo's components run
in-process, as tests/test_music_demo.py runs them."""

from __future__ import annotations

from typing import Any

import pytest

from swergio_al.demos.music.evaluator import MelodyEvaluator
from swergio_al.demos.music.labeler import rating_answer
from swergio_al.demos.music.listener import SimulatedListener
from swergio_al.demos.music.melody import random_genomes
from swergio_al.demos.music.wire import EVALUATE_ROOM, FEEDBACK_ROOM, genome_to_hex
from swergio_al.feedback import Labeler
from tests.browser.conftest import screenshot_path
from tests.browser.pages import next_task, wait_state
from tests.conftest import MakeServer
from tests.helpers import RawClient

pytestmark = pytest.mark.browser

GENERATIONS = 3
BUDGET = 4
CURVE = '[data-curve="evaluator"] .line-plot'


async def tile(page: Any, key: str) -> float:
    return float(await page.inner_text(f'[data-module="totals"] [data-stat="{key}"]'))


async def test_music_dashboard_shows_live_figures_and_the_same_curve_later(
        make_server: MakeServer, new_page: Any) -> None:
    server = await make_server(stats_interval_seconds=0.05)
    url = str(server.make_url("/ws"))
    dashboard = await new_page(width=1000, height=900)
    await dashboard.goto(str(server.make_url("/dashboard")))  # the link the demo prints
    await wait_state(dashboard, "open")

    ears = Labeler("ears", url, rating_answer(SimulatedListener(random_state=0)),
                   room=FEEDBACK_ROOM)
    async with MelodyEvaluator(url, budget=BUDGET, rating_wait=10.0, random_state=0) as ev, \
            ears, await RawClient.connect(url, "evolution", rooms=(EVALUATE_ROOM,)) as ga:
        for generation in range(GENERATIONS):
            genomes = random_genomes(20, random_state=generation)
            await ga.send({"TYPE": "DATA/FORWARD", "TO_ROOM": EVALUATE_ROOM, "DATA": {
                "generation": generation, "genomes": [genome_to_hex(g) for g in genomes]}})
            await ga.expect("DATA/FORWARD", timeout=20)
        rated = ears.acked
        assert rated == GENERATIONS * BUDGET
        # Live, while the listener is still there: the room, its figures, the curve.
        await dashboard.wait_for_selector(f'tr[data-room="{FEEDBACK_ROOM}"]')
        await dashboard.wait_for_selector(
            f'[data-module="totals"] [data-stat="labeled"]:text-is("{rated}")')
        assert await tile(dashboard, "labelers") == 1
        assert await tile(dashboard, "labels_per_minute") > 0
        await ev.loop.wait_learned(rated)
        scored = [k for k in ev.loop.kpis if k["prequential"] is not None]
        assert len(scored) >= GENERATIONS  # reports coalesce labels that come together
        await dashboard.wait_for_selector(f'{CURVE}[data-points="{len(scored)}"]')
        row = (await dashboard.inner_text('tr[data-model="evaluator"]')).split("\t")
        assert row[0] == "evaluator" and int(row[1]) == ev.version and row[2] == str(rated)
        assert row[3].endswith("mean abs. error")  # the prequential score of a rating model
        await dashboard.wait_for_selector(
            f'[data-labeler-rows] tr[data-labeler="ears"] td:nth-child(3):text-is("{rated}")')
        await dashboard.screenshot(path=screenshot_path("dashboard"), full_page=True)

        # A person takes over from the simulated listener: the evaluator's own request,
        # its guess in stars with its uncertainty, rated with a key.
        await ears.close()
        person = await new_page(width=900, height=760, name="mia")
        await person.goto(str(server.make_url(f"/label/{FEEDBACK_ROOM}?undo=0")))
        await ga.send({"TYPE": "DATA/FORWARD", "TO_ROOM": EVALUATE_ROOM, "DATA": {
            "generation": GENERATIONS, "genomes": [genome_to_hex(g) for g in
                                                   random_genomes(20, random_state=99)]}})
        assert (await next_task(person))["kind"] == "melody"
        guess = await person.inner_text("[data-prediction]")
        assert " ± " in guess and len(guess.split(" ± ")[0]) <= 4, guess  # 2.37 ± 0.41
        await person.screenshot(path=screenshot_path("music-task"))
        await person.keyboard.press("4")
        await person.keyboard.press("Enter")
        await ev.loop.wait_learned(rated + 1)
        rated += 1
        await dashboard.wait_for_selector(
            f'[data-module="totals"] [data-stat="labeled"]:text-is("{rated}")')
        points = str(sum(k["prequential"] is not None for k in ev.loop.kpis))
        await dashboard.wait_for_selector(f'{CURVE}[data-points="{points}"]')

    # Opened after the ratings, with every component gone: the whole curve is there.
    late = await new_page(width=1000, height=900)
    await late.goto(str(server.make_url("/dashboard")))
    await late.wait_for_selector(f'{CURVE}[data-points="{points}"]')
    assert await late.inner_text('tr[data-model="evaluator"] td:nth-child(3)') == str(rated)
    await late.wait_for_selector(
        f'[data-module="totals"] [data-stat="labeled"]:text-is("{rated}")')
