"""`swergio-al label --gold FILE` (gold questions from a file), and the embedded server's
tokens on a network address (generated, as `serve` does, and carried by the links)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swergio_al.cli import main
from swergio_al.client.state import RefusedError
from swergio_al.feedback import Labeler
from swergio_al.label_options import Plan, add_arguments, prepare
from swergio_al.label_session import Session, noisy, server_config
from tests.conftest import MakeServer
from tests.feedback.helpers import get_api
from tests.helpers import free_port

REVIEWS = Path(__file__).parent.parent / "examples" / "reviews" / "reviews.csv"
CHOICE = "choice:positive,negative"
ROOM = "feedback/reviews"


def truth() -> dict[str, str]:
    with REVIEWS.open(newline="") as handle:
        return {row["id"]: row["sentiment"] for row in csv.DictReader(handle)}


def write_gold(path: Path, rows: list[tuple[str, str]], header: str = "sample_id,answer") -> Path:
    path.write_text(header + "\n" + "".join(f"{sid},{answer}\n" for sid, answer in rows))
    return path


def plan_of(*argv: str) -> Plan:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return prepare(parser.parse_args([str(REVIEWS), "--text", "text", "--id", "id",
                                      "--answer", CHOICE, *argv]))


@pytest.mark.parametrize(("rows", "header", "says"), [
    ([("r001", "positive"), ("r002", "meh")], "sample_id,answer",
     "gold.csv row 2 (sample_id 'r002'): 'meh' is not one of the choices"),
    ([("r001", "positive"), ("nope", "negative")], "sample_id,answer",
     "gold.csv row 2 (sample_id 'nope'): no such sample in the source"),
    ([("r001", "positive")], "id,answer", "no column 'sample_id' in gold.csv"),
    ([("r001", "")], "sample_id,answer", "gold.csv line 2: no text in 'answer'"),
])
def test_a_bad_gold_file_is_one_line_naming_the_row(
        tmp_path: Path, rows: list[tuple[str, str]], header: str, says: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    gold = write_gold(tmp_path / "gold.csv", rows, header)
    code = main(["label", str(REVIEWS), "--text", "text", "--id", "id", "--answer", CHOICE,
                 "--gold", str(gold), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("swergio-al label: --gold: ") and says in err.replace('"', "'"), err


async def test_gold_questions_measure_the_simulated_labeler_and_are_never_labels(
        tmp_path: Path, make_server: MakeServer) -> None:
    answers = truth()
    gold_ids = ["r001", "r002", "r003", "r004", "r005", "r006"]
    gold = write_gold(tmp_path / "gold.csv", [(sid, answers[sid]) for sid in gold_ids])
    out = tmp_path / "out"
    noise, seed = 0.4, 1
    command = [sys.executable, "-m", "swergio_al.cli", "label", str(REVIEWS), "--text", "text",
               "--id", "id", "--answer", CHOICE, "--simulate", "sentiment", "--simulate-noise",
               str(noise), "--seed", str(seed), "--budget", "10", "--gold", str(gold),
               "--out", str(out), "--port", str(free_port())]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120,
        env={**os.environ, "SWERGIO_AL_GOLD_RATE": "0.5"})  # every other task is gold
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("done: 10 labels (10 this run)") and "learned 10;" in summary
    with (out / "labels.csv").open(newline="") as handle:
        labeled = [row["sample_id"] for row in csv.DictReader(handle)]
    assert len(labeled) == 10 and not set(labeled) & set(gold_ids)  # asked as gold only
    # What /api/quality serves from this store: the labeler's gold accuracy, as the
    # simulation's noise made its answers (never learned: "learned 10" above).
    server = await make_server(store=f"sqlite:///{out / 'store.db'}")
    schema = {"type": "choice", "choices": ["positive", "negative"]}
    given = [noisy(schema, answers[s], s, noise, seed) == answers[s] for s in gold_ids]
    assert 0 < sum(given) < len(given)  # the check below can tell right from wrong
    per = (await get_api(server, "/api/quality"))[ROOM]["per_labeler"]
    accuracy = per["simulated-labeler"]["gold_accuracy"]
    assert accuracy == pytest.approx(sum(given) / len(given), abs=1e-4)
    assert per["simulated-labeler"]["answers"] == 10  # gold answers are not room answers


def test_the_embedded_server_generates_tokens_on_a_network_address_only() -> None:
    config, generated = server_config(plan_of("--host", "0.0.0.0"))
    assert generated and config.component_token and config.labeler_token
    assert config.component_token != config.labeler_token
    for argv in (["--host", "127.0.0.1"], ["--host", "localhost"],
                 ["--host", "0.0.0.0", "--labeler-token", "mine"]):
        config, generated = server_config(plan_of(*argv))
        assert not generated and config.component_token == "", argv


async def test_generated_tokens_refuse_an_anonymous_labeler_and_the_links_carry_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # 127.0.0.1 taken for a network address: the only address tests may bind.
    monkeypatch.setattr("swergio_al.cli._is_loopback", lambda host: False)
    port = free_port()
    session = Session(plan_of("--port", str(port), "--out", str(tmp_path)))
    runner, url, base = await session._serve()
    try:
        assert "generated them; anonymous clients are refused" in capsys.readouterr().out
        assert session.labeler_token and session.component_token
        links = session._links(base)
        assert f"/label/{ROOM}?token={session.labeler_token}" in links
        assert f"/dashboard?token={session.component_token}" in links
        anonymous = Labeler("anon", url, lambda task: "positive", room=ROOM)
        with pytest.raises(RefusedError, match="unauthorized"):
            await anonymous.start()
        await anonymous.close()
        known = Labeler("known", url, lambda task: "positive", room=ROOM,
                        token=session.labeler_token)
        await known.start()
        await known.close()
    finally:
        await runner.cleanup()
