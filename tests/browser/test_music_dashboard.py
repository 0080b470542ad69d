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


async def test_a_restarted_evaluator_is_a_new_run_on_the_dashboard(
        make_server: MakeServer, new_page: Any) -> None:
    """`swergio-al demo music` stopped and started again on the same store: the evaluator
    catches up as version 1 of a new run. The Models row shows that run's figures only
    (it showed version 1 beside the old run's prequential error) and says it restarted;
    the new run's curve is drawn beside the old one, not joined to it."""
    async def rate_generations(ev: MelodyEvaluator, url: str, seeds: range,
                               learned: int) -> None:
        ears = Labeler("ears", url, rating_answer(SimulatedListener(random_state=0)),
                       room=FEEDBACK_ROOM)
        async with ears, await RawClient.connect(url, "evolution", rooms=(EVALUATE_ROOM,)) as ga:
            for seed in seeds:
                await ga.send({"TYPE": "DATA/FORWARD", "TO_ROOM": EVALUATE_ROOM, "DATA": {
                    "generation": seed, "genomes": [genome_to_hex(g) for g in
                                                    random_genomes(20, random_state=seed)]}})
                await ga.expect("DATA/FORWARD", timeout=20)
            await ev.loop.wait_learned(learned)  # and the LOG/KPI of the last is sent

    server = await make_server(stats_interval_seconds=0.05)
    async with MelodyEvaluator(str(server.make_url("/ws")), budget=BUDGET, rating_wait=10.0,
                               random_state=0) as first:
        await rate_generations(first, str(server.make_url("/ws")), range(2), 2 * BUDGET)
    before = first.loop.kpis[-1]
    assert before["prequential"] is not None and before["labels"] == 2 * BUDGET
    await server.close()

    server = await make_server(stats_interval_seconds=0.05)  # the same SQLite store
    url = str(server.make_url("/ws"))
    async with MelodyEvaluator(url, budget=BUDGET, rating_wait=10.0, random_state=0) as second:
        dashboard = await new_page(width=1000, height=900)
        await dashboard.goto(str(server.make_url("/dashboard")))
        row = 'tr[data-model="evaluator"]'
        assert second.version < before["version"]  # a new run counts from 1 again
        await dashboard.wait_for_selector(f'{row} td:nth-child(2):text-is("{second.version}")')
        cells = (await dashboard.inner_text(row)).split("\t")
        assert cells[1:4] == [str(second.version), str(2 * BUDGET), "–"]  # not the old error
        assert cells[0].startswith("evaluator · restarted ")
        assert await dashboard.get_attribute(row, "data-run") == str(second.loop.run)
        old_points = sum(k["prequential"] is not None for k in first.loop.kpis)
        await dashboard.wait_for_selector(f'{CURVE}[data-points="{old_points}"]')

        await rate_generations(second, url, range(2, 3), 3 * BUDGET)
        last = second.loop.kpis[-1]
        assert last["labels"] == 3 * BUDGET and last["run"] == second.loop.run
        await dashboard.wait_for_selector(f'{row} td:nth-child(3):text-is("{3 * BUDGET}")')
        cells = (await dashboard.inner_text(row)).split("\t")
        assert cells[1:4] == [str(last["version"]), str(3 * BUDGET),
                              f"{last['prequential']:.3f} mean abs. error"]
        new_points = sum(k["prequential"] is not None for k in second.loop.kpis)
        await dashboard.wait_for_selector(f'{CURVE}[data-points="{old_points + new_points}"]')
        series = await dashboard.eval_on_selector_all(
            f"{CURVE} polyline", "lines => lines.map((l) => l.dataset.series)")
        assert series[0] == "prequential mean abs. error"
        assert len(series) == 2 and series[1].startswith("prequential mean abs. error, restarted ")
        await dashboard.wait_for_selector(  # (the picture's labelers panel up to date too)
            f'[data-labeler-rows] tr[data-labeler="ears"] td:nth-child(3):text-is("{3 * BUDGET}")')
        await dashboard.screenshot(path=screenshot_path("dashboard-restarted"), full_page=True)
