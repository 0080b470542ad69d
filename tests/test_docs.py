"""Code shown in the documentation is code that runs.

Every ```python block in README.md and docs/ is either a `--8<--` include of a file
(mkdocs' snippets extension pulls it in) or a verbatim copy of one, marked
`<!-- file: path -->` on the line before (README.md: GitHub shows it as is). Either
way the file must be one a test runs: the snippets in examples/snippets/ are run
here, against a real server where they need one; any other file must be named in
some test under tests/.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from swergio_al.feedback import Labeler
from swergio_al.keys import HUB, SWERGIO_LISTENER
from tests.conftest import MakeServer
from tests.helpers import RawClient

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = ROOT / "examples" / "snippets"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
INCLUDE = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$')
COPY_OF = re.compile(r"<!--\s*file:\s*(\S+?)(?::([\w-]+))?\s*-->\s*$")


def section(path: Path, name: str | None) -> str:
    """The file's text, or one `# --8<-- [start:name]` ... `[end:name]` part of it."""
    text = path.read_text()
    if name is None:
        lines = text.splitlines()
    else:
        match = re.search(rf"^[ \t]*# --8<-- \[start:{re.escape(name)}\]\n(.*?)"
                          rf"^[ \t]*# --8<-- \[end:{re.escape(name)}\]", text, re.M | re.S)
        assert match, f"{path} has no section {name!r}"
        lines = match.group(1).splitlines()
        indent = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
        lines = [ln[indent:] for ln in lines]
    return "\n".join(ln for ln in lines if not re.match(r"\s*# --8<-- \[", ln)).strip()


def python_blocks() -> list[tuple[str, str, str]]:
    """(where, the line before the block, the block's text) for each python block."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) not in ("python", "py"):
                continue
            line = text.count("\n", 0, match.start()) + 1
            before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            found.append((f"{page.relative_to(ROOT)}:{line}", before, match.group(2)))
    return found


def named_in_a_test(relative: str) -> bool:
    tests = (ROOT / "tests").rglob("*.py")
    return any(relative in path.read_text() for path in tests if path.name != "test_docs.py")


def test_every_python_block_in_the_docs_is_code_a_test_runs() -> None:
    blocks = python_blocks()
    assert blocks  # the pages do show code
    for where, before, body in blocks:
        include = INCLUDE.match(body.strip())
        copy = COPY_OF.search(before)
        assert include or copy, (
            f"{where}: a python block no test runs; put the code in a file a test runs "
            f"(examples/snippets/, see tests/test_docs.py) and include it with "
            f'--8<-- "path" (docs/) or copy it under <!-- file: path --> (README.md)')
        relative, name = (include or copy).groups()  # type: ignore[union-attr]
        path = ROOT / relative
        assert path.is_file(), f"{where}: {relative} does not exist"
        if copy:
            assert body.strip() == section(path, name), (
                f"{where}: the block differs from {relative}; copy the file again")
        elif name:
            section(path, name)  # the section exists
        assert path.parent == SNIPPETS or named_in_a_test(relative), (
            f"{where}: no test runs {relative}")


# -- the snippets, run ----------------------------------------------------------------------

SNIPPETS_RUN_HERE = ("learning_tour.py", "pets_model.py", "robot_labeler.py", "doubler.py",
                     "legacy_model.py", "label_reviews.py")


async def start(snippet: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(SNIPPETS / snippet), cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def finish(process: asyncio.subprocess.Process, *, stop: bool) -> tuple[int, str]:
    """Wait for the snippet to end (SIGTERM it first when it serves forever)."""
    if stop and process.returncode is None:
        process.terminate()
    async with asyncio.timeout(30):
        out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


def test_snippets_run_here_are_all_the_snippets() -> None:
    assert {p.name for p in SNIPPETS.glob("*.py")} == set(SNIPPETS_RUN_HERE)


async def test_learning_tour_runs() -> None:
    code, out = await finish(await start("learning_tour.py"), stop=False)
    assert code == 0 and "learning tour: ok" in out, out


async def test_pets_model_learns_from_the_robot_labeler(server: TestServer) -> None:
    url = str(server.make_url("/ws"))
    async with await RawClient.connect(url, "kpi-watch", rooms=("kpi",)) as watch:
        model = await start("pets_model.py", SWERGIO_AL_URL=url)
        robot = await start("robot_labeler.py", SWERGIO_AL_URL=url)
        try:
            code, out = await finish(robot, stop=False)  # it stops after 10 acked labels
            assert code == 0, out
            labels = 0
            while labels < 10:  # every label the robot gave, learned by the model
                kpi = (await watch.expect("LOG/KPI", timeout=20))["DATA"]
                assert kpi["model"] == "pets-model"
                labels = kpi["labels"]
        finally:
            _, out = await finish(model, stop=True)
    assert "Traceback" not in out, out


async def test_doubler_answers_in_outputs(server: TestServer) -> None:
    url = str(server.make_url("/ws"))
    async with await RawClient.connect(url, "tester", rooms=("inputs", "outputs")) as tester:
        doubler = await start("doubler.py", SWERGIO_AL_URL=url)
        try:
            ready = await tester.expect("LOG/KPI", timeout=20)
            assert ready["SENT_BY"] == "model" and ready["DATA"] == {"ready": True}
            await tester.send({"TYPE": "DATA/FORWARD", "TO_ROOM": "inputs", "DATA": [1, 2, 3],
                               "ROOT_ID": "r1"})
            answer = await tester.expect("DATA/GRADIENT", timeout=10)
            assert answer["DATA"] == [2, 4, 6] and answer["ROOT_ID"] == "r1"
        finally:
            _, out = await finish(doubler, stop=True)
    assert "Traceback" not in out, out


async def _in_room(server: TestServer, room: str, name: str, timeout: float = 20.0) -> None:
    # The Hub announces no joins; its state is read in-process, under a deadline.
    async with asyncio.timeout(timeout):
        while not any(getattr(conn, "name", None) == name  # noqa: ASYNC110
                      for conn in server.app[HUB].rooms.get(room, ())):
            await asyncio.sleep(0.02)


async def test_legacy_swergio_component_doubles(make_server: MakeServer) -> None:
    pytest.importorskip("swergio")
    server = await make_server(swergio_port=0)
    url = str(server.make_url("/ws"))
    port = server.app[SWERGIO_LISTENER].port
    async with await RawClient.connect(url, "trainer", rooms=("training",)) as trainer:
        legacy = await start("legacy_model.py", SWERGIO_PORT=str(port))
        try:
            await _in_room(server, "training", "legacy_model")
            await trainer.send({"TYPE": "DATA/FORWARD", "TO_ROOM": "training", "DATA": 21})
            answer: dict[str, Any] = await trainer.expect("DATA/GRADIENT", timeout=10)
            assert answer["DATA"] == 42 and answer["SENT_BY"] == "legacy_model"
        finally:
            await finish(legacy, stop=True)


async def test_label_reviews_asks_until_its_budget(server: TestServer) -> None:
    import csv

    with (ROOT / "examples" / "reviews" / "reviews.csv").open(newline="") as rows:
        truth = {row["id"]: row["sentiment"] for row in csv.DictReader(rows)}
    url = str(server.make_url("/ws"))
    answered: list[str] = []

    def answer(task: dict[str, Any]) -> str:
        answered.append(task["sample_id"])
        return truth[task["sample_id"]]

    model = await start("label_reviews.py", SWERGIO_AL_URL=url)
    try:
        async with Labeler("reader", url, answer, room="feedback/reviews") as reader:
            code, out = await finish(model, stop=False)  # it ends by itself at 40 labels
            assert code == 0, out
            assert reader.acked == 40 and len(set(answered)) == 40
    finally:
        await finish(model, stop=True)
    assert "Traceback" not in out, out


def test_every_relative_link_in_the_readme_resolves() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#", 1)[0] for t in targets if not re.match(r"[a-z]+:", t)]
    assert len(local) > 10  # the README links into the docs
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
