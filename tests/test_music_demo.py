"""The music demo's components over a real server, and `swergio-al demo music --headless`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from swergio_al.demos.music.evaluator import MelodyEvaluator
from swergio_al.demos.music.labeler import rating_answer
from swergio_al.demos.music.listener import SimulatedListener
from swergio_al.demos.music.melody import Melody, decode, random_genomes
from swergio_al.demos.music.wire import (
    EVALUATE_ROOM,
    FEEDBACK_ROOM,
    genome_to_hex,
    hex_to_genome,
)
from swergio_al.feedback import SKIP, Labeler
from tests.conftest import MakeServer
from tests.helpers import RawClient, free_port


def test_genome_hex_round_trip() -> None:
    genome = random_genomes(1, random_state=0)[0]
    text = genome_to_hex(genome)
    assert len(text) == 32
    assert (hex_to_genome(text) == genome).all()


def test_rating_answer_uses_the_listener_and_skips_what_it_cannot_rate() -> None:
    genome = genome_to_hex(random_genomes(1, random_state=1)[0])
    heard: list[Melody] = []

    def fussy(melody: Melody) -> float:
        heard.append(melody)
        return 4.4

    answer = rating_answer(fussy)
    assert answer({"task_id": "t", "content": {"genome": genome}}) == 4
    assert heard[0].steps == decode(hex_to_genome(genome)).steps
    assert answer({"task_id": "t", "content": {"notes": [60]}}) is SKIP  # no genome
    assert answer({"task_id": "t", "content": {"genome": "xyz"}}) is SKIP
    assert rating_answer(lambda m: 9)({"task_id": "t", "content": {"genome": genome}}) is SKIP


async def test_evaluator_asks_the_feedback_room_and_learns(make_server: MakeServer) -> None:
    server: TestServer = await make_server()
    url = str(server.make_url("/ws"))
    labeler = Labeler("ears", url, rating_answer(SimulatedListener(random_state=0)),
                      room=FEEDBACK_ROOM)
    genomes = [genome_to_hex(g) for g in random_genomes(12, random_state=2)]
    async with MelodyEvaluator(url, budget=3, rating_wait=10.0, random_state=0) as evaluator, \
            labeler:
        ga = await RawClient.connect(url, "ga", rooms=(EVALUATE_ROOM,))
        try:
            await ga.send({"TYPE": "DATA/FORWARD", "TO_ROOM": EVALUATE_ROOM,
                           "DATA": {"generation": "bad", "genomes": ["not hex"]}})
            verdicts = []
            for generation in range(2):
                await ga.send({"TYPE": "DATA/FORWARD", "TO_ROOM": EVALUATE_ROOM,
                               "DATA": {"generation": generation, "genomes": genomes}})
                verdicts.append((await ga.expect("DATA/FORWARD", timeout=15))["DATA"])
        finally:
            await ga.ws.close()
            await ga.session.close()
        assert [v["generation"] for v in verdicts] == [0, 1]  # the bad one got no answer
        assert [v["asked"] for v in verdicts] == [3, 3]
        assert verdicts[1]["labels"] == 6 and labeler.acked == 6
        assert evaluator.version >= 2
        assert len(evaluator.asked) == 6  # nothing asked twice
        fitness = np.array(verdicts[1]["fitness"])
        assert fitness.shape == (12,) and np.isfinite(fitness).all()
        kinds = {kpi["model"] for kpi in evaluator.loop.kpis}
        assert kinds == {"evaluator"}


@pytest.mark.timeout(300)
def test_headless_demo_improves_melodies_through_the_feedback_room(tmp_path: Path) -> None:
    store = tmp_path / "music.db"
    command = [sys.executable, "-m", "swergio_al.cli", "demo", "music", "--headless",
               "--port", str(free_port()), "--store", f"sqlite:///{store}",
               "--population", "20", "--generations", "5", "--budget", "3", "--seed", "0",
               "--wav", str(tmp_path / "best.wav")]
    # Output goes to a file so that a run that overstays shows how far it got.
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        try:
            returncode = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                        timeout=240, env={**os.environ,
                                                          "PYTHONUNBUFFERED": "1"}).returncode
        except subprocess.TimeoutExpired:
            raise AssertionError("the demo overstayed 240 s:\n" + log.read_text()[-4000:]) \
                from None
    result = subprocess.CompletedProcess(command, returncode, log.read_text(), "")
    assert result.returncode == 0, result.stdout[-4000:]
    line = next(line for line in result.stdout.splitlines() if "summary {" in line)
    summary: dict[str, Any] = json.loads(line.split("summary ", 1)[1])
    assert summary["generations"] == 5
    assert summary["ratings"] >= 15  # 3 per generation, 6 generations measured
    assert summary["evaluator_version"] > 1
    assert summary["true_score_last"] > summary["true_score_first"]
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT requester, labeler, room FROM labels").fetchall()
    assert len(rows) == summary["ratings"]  # every rating went through the feedback room
    assert set(rows) == {("evaluator", "simulated-listener", FEEDBACK_ROOM)}
    assert (tmp_path / "best.wav").stat().st_size > 44
    assert "launcher  | server: stopped (code 0)" in result.stdout  # stopped cleanly, last
    assert result.stdout.rstrip().endswith("server: stopped (code 0)")


def test_example_listener_is_pluggable() -> None:
    from swergio_al.demos.music.listener import checked_rating, load_listener

    example = Path(__file__).parent.parent / "examples" / "music_generator"
    sys.path.insert(0, str(example))
    try:
        listener = load_listener("my_listener:likes_high_notes")
    finally:
        sys.path.remove(str(example))
    melody = decode(random_genomes(1, random_state=3)[0])
    assert 0 <= checked_rating(listener, melody) <= 5


def test_demo_refuses_bad_options(capsys: Any) -> None:
    from swergio_al.cli import main

    assert main(["demo", "music", "--headless", "--population", "1"]) == 2
    assert "--population >= 2" in capsys.readouterr().err
    assert main(["demo", "music", "--diversity", "1.5"]) == 2


def test_demo_components_follow_the_options() -> None:
    import argparse

    from swergio_al.demos.music.demo import add_arguments, components

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    people = components(parser.parse_args(["--port", "9001"]))
    assert [spec.name for spec in people] == ["server", "evaluator", "evolution"]
    assert not people[-1].main  # with people rating, the server outlives the generations
    headless = components(parser.parse_args(["--headless", "--budget", "7"]))
    assert [spec.name for spec in headless] == ["server", "listener", "evaluator", "evolution"]
    assert headless[-1].main
    evaluator = headless[2].argv
    assert evaluator[evaluator.index("--budget") + 1] == "7"
    assert evaluator[evaluator.index("--rating-wait") + 1] == "30.0"


async def test_evolution_asks_again_when_the_evaluator_is_silent(server: TestServer) -> None:
    import asyncio

    from swergio_al.demos.music.evolution import Evolution

    url = str(server.make_url("/ws"))
    evaluator = await RawClient.connect(url, "evaluator", rooms=(EVALUATE_ROOM,))
    evolution = Evolution(url, population_size=6, generations=1, evaluate_timeout=0.5,
                          random_state=0)
    running = asyncio.create_task(evolution.run())
    try:
        ignored = await evaluator.expect("DATA/FORWARD")  # as if it were restarting
        answered: list[int] = []
        while len(answered) < 2:
            request = await evaluator.expect("DATA/FORWARD")
            answered.append(request["DATA"]["generation"])
            await evaluator.send({"TYPE": "DATA/FORWARD", "TO_ROOM": EVALUATE_ROOM,
                                  "ROOT_ID": request["ROOT_ID"],
                                  "DATA": {"fitness": [1.0] * 6, "version": 1, "labels": 0}})
        summary = await asyncio.wait_for(running, 10)
    finally:
        running.cancel()
        await evaluator.ws.close()
        await evaluator.session.close()
    assert ignored["DATA"]["generation"] == 0
    assert answered == [0, 1]  # generation 0 asked again, then the GA went on
    assert summary["generations"] == 1 and len(evolution.history) == 2


async def test_restarted_evaluator_does_not_ask_again_what_was_rated(
        make_server: MakeServer) -> None:
    import time

    server: TestServer = await make_server()
    url = str(server.make_url("/ws"))
    genomes = [genome_to_hex(g) for g in random_genomes(8, random_state=4)]
    generation = {"TYPE": "DATA/FORWARD", "TO_ROOM": EVALUATE_ROOM,
                  "DATA": {"generation": 0, "genomes": genomes}}
    labeler = Labeler("ears", url, rating_answer(SimulatedListener(random_state=0)),
                      room=FEEDBACK_ROOM)
    ga = await RawClient.connect(url, "ga", rooms=(EVALUATE_ROOM,))
    try:
        async with labeler:
            async with MelodyEvaluator(url, budget=3, rating_wait=10.0) as first:
                await ga.send(generation)
                await ga.expect("DATA/FORWARD", timeout=15)
            rated = set(first.asked)
            async with MelodyEvaluator(url, budget=3, rating_wait=10.0) as second:
                assert second.asked == rated  # learned from the replayed history
                assert second.version >= 1
                started = time.monotonic()
                await ga.send(generation)
                verdict = (await ga.expect("DATA/FORWARD", timeout=15))["DATA"]
                assert time.monotonic() - started < 5  # no wait for labels that never come
    finally:
        await ga.ws.close()
        await ga.session.close()
    assert len(rated) == 3 and verdict["asked"] == 3
    assert len(second.asked) == 6 and labeler.acked == 6


async def test_restarted_evaluator_says_it_caught_up_and_tells_each_version_once(
        make_server: MakeServer, capsys: Any) -> None:
    """The demo's evaluator (`serve`) restarted on the same store, server too: its ready
    line says what it caught up on and that this run counts versions from 1 again; then
    one terminal line per LOG/KPI report, each with that report's own figures (a line
    used to read the loop's state after the fact: 'v1: learned from 2 ratings', or two
    versions told in one line)."""
    import asyncio
    import re

    from swergio_al.demos.music.evaluator import serve
    from swergio_al.demos.music.wire import KPI_ROOM

    server: TestServer = await make_server()
    url = str(server.make_url("/ws"))
    genomes = [genome_to_hex(g) for g in random_genomes(12, random_state=5)]
    generation = {"TYPE": "DATA/FORWARD", "TO_ROOM": EVALUATE_ROOM,
                  "DATA": {"generation": 0, "genomes": genomes}}
    async with Labeler("ears", url, rating_answer(SimulatedListener(random_state=0)),
                       room=FEEDBACK_ROOM), MelodyEvaluator(url, budget=3, rating_wait=10.0):
        async with await RawClient.connect(url, "ga", rooms=(EVALUATE_ROOM,)) as ga:
            await ga.send(generation)
            await ga.expect("DATA/FORWARD", timeout=15)
    await server.close()

    server = await make_server()  # the same SQLite store
    url = str(server.make_url("/ws"))
    printed = ""

    def told() -> list[str]:  # the evaluator's own lines (not a rating's)
        return [line for line in printed.splitlines() if line.startswith("evaluator ")]

    async def printed_lines(count: int) -> list[str]:
        nonlocal printed
        async with asyncio.timeout(10):
            while len(told()) < count:
                printed += capsys.readouterr().out
                await asyncio.sleep(0.02)
        return told()

    capsys.readouterr()
    async with Labeler("ears", url, rating_answer(SimulatedListener(random_state=0)),
                       room=FEEDBACK_ROOM), \
            await RawClient.connect(url, "watcher", rooms=(KPI_ROOM,)) as watcher:
        evaluator = asyncio.create_task(serve(url, budget=4, rating_wait=10.0, diversity=0.5,
                                              seed=None, token=None))
        try:
            ready = (await printed_lines(1))[0]
            assert re.fullmatch(r"evaluator ready \(budget 4 ratings per generation; caught "
                                r"up on 3 earlier ratings from the store, as v\d+ of this "
                                r"run\)", ready), ready
            async with await RawClient.connect(url, "ga", rooms=(EVALUATE_ROOM,)) as ga:
                await ga.send(generation)
                await ga.expect("DATA/FORWARD", timeout=15)
            reports: list[dict[str, Any]] = []
            while not reports or reports[-1]["labels"] < 7:
                reports.append((await watcher.expect("LOG/KPI", timeout=10))["DATA"])
            new = [k for k in reports if k["labels"] > 3]  # the catch-up's are in `ready`
            lines = (await printed_lines(1 + len(new)))[1:]
        finally:
            evaluator.cancel()
            await asyncio.gather(evaluator, return_exceptions=True)
    printed += capsys.readouterr().out
    assert len(told()) == 1 + len(new)  # nothing told twice
    caught_up = int(ready.rsplit(" v", 1)[1].split()[0])
    versions = [re.match(r"evaluator v(\d+): learned from (\d+) ratings", line)
                for line in lines]
    assert [(int(m[1]), int(m[2])) for m in versions if m] == \
        [(k["version"], k["labels"]) for k in new]
    assert [k["version"] for k in new] == list(range(caught_up + 1, caught_up + 1 + len(new)))
    assert lines[-1].endswith("stars off on average (last 4 ratings)")  # the new ones only
