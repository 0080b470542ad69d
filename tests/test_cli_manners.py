"""The command line as a new user meets it: a busy port, what the demo prints, --help,
access logs, and the music benchmark with a listener of one's own."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from swergio_al.cli import build_parser
from swergio_al.components_file import ComponentSpec, Ready
from swergio_al.config import Config
from swergio_al.demos.music.melody import Melody
from swergio_al.keys import HUB
from swergio_al.launcher import Launcher
from swergio_al.server import create_app
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
SWERGIO_AL = [sys.executable, "-m", "swergio_al.cli"]


def four_stars(melody: Melody) -> float:
    """A listener for the benchmark test: every melody is worth exactly four stars."""
    return 4.0


@pytest.fixture
async def squatter(aiohttp_server: Any, tmp_path: Path) -> tuple[TestServer, list[str]]:
    """A real swergio-al server holding a port, recording every request it is sent."""
    seen: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Callable[[web.Request],
                                                              Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        seen.append(request.path)
        return await handler(request)

    app = create_app(Config(store=f"sqlite:///{tmp_path / 'squatter.db'}"))
    app.middlewares.append(record)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    return server, seen


async def test_demo_on_a_taken_port_ends_at_once_with_one_line(
        squatter: tuple[TestServer, list[str]], tmp_path: Path) -> None:
    server, seen = squatter
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *SWERGIO_AL, "demo", "music", "--port", str(server.port),
        "--store", f"sqlite:///{tmp_path / 'demo.db'}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(5):
        out, err = await process.communicate()
    assert time.monotonic() - started < 5
    assert process.returncode != 0
    lines = err.decode().splitlines()
    assert len(lines) == 1, err.decode()
    assert f"port {server.port}" in lines[0] and "--port" in lines[0]
    assert b"Traceback" not in out + err
    assert seen == []  # no readiness probe, no component: nothing reached the other server
    assert not server.app[HUB].names and not server.app[HUB].connections
    assert not (tmp_path / "demo.db").exists()


@pytest.mark.parametrize("command", [
    ["serve"],
    ["label", str(Path(__file__).parent.parent / "examples" / "reviews" / "reviews.csv"),
     "--text", "text", "--answer", "choice:positive,negative"],
])
async def test_serve_and_label_on_a_taken_port_say_so_in_one_line(
        command: list[str], tmp_path: Path) -> None:
    with socket.socket() as holder:  # a port another program listens on
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            *SWERGIO_AL, *command, "--port", str(port),
            "--store", f"sqlite:///{tmp_path / 'taken.db'}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path)
        async with asyncio.timeout(30):
            _, err = await process.communicate()
    assert process.returncode == 1
    assert err.decode().splitlines() == [
        f"swergio-al {command[0]}: port {port} on 127.0.0.1 is already in use (another "
        f"server?); pick a free one with --port, e.g. --port {port + 1}"]  # no errno


async def test_launcher_ready_check_ignores_another_server_on_the_port(
        squatter: tuple[TestServer, list[str]], tmp_path: Path) -> None:
    server, seen = squatter
    # The child cannot bind (the squatter has the port) and exits; the squatter's /healthz
    # answers meanwhile, but with no launch id of ours, so it must not count as ready.
    spec = ComponentSpec("server", (*SWERGIO_AL, "serve", "--port", str(server.port),
                                    "--store", f"sqlite:///{tmp_path / 'child.db'}"),
                         ready=Ready("http", f"http://127.0.0.1:{server.port}/healthz", 20.0),
                         max_restarts=0)
    out = io.StringIO()
    async with asyncio.timeout(30):
        code = await Launcher([spec], out=out, colour=False).run(handle_signals=False)
    assert code == 1
    assert "server: ready" not in out.getvalue()
    assert "exited with code 1 before it was ready" in out.getvalue()
    assert "/healthz" in seen  # it was asked, and was not believed


async def test_healthz_names_the_launch_it_belongs_to(aiohttp_server: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWERGIO_AL_LAUNCH_ID", "abc123")
    server = await aiohttp_server(create_app(Config(store=f"sqlite:///{tmp_path / 's.db'}")),
                                  host="127.0.0.1")
    async with aiohttp.ClientSession() as session, \
            session.get(server.make_url("/healthz")) as response:
        assert await response.json() == {"status": "ok", "launch_id": "abc123"}


def _subcommand_parsers(parser: argparse.ArgumentParser, path: str = "swergio-al"
                        ) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _subcommand_parsers(sub, f"{path} {name}")
    return found


def test_every_option_has_help_with_its_default() -> None:
    parsers = _subcommand_parsers(build_parser())
    names = [path for path, _ in parsers]
    assert "swergio-al demo music" in names and "swergio-al serve" in names
    for path, parser in parsers:
        for action in parser._actions:
            if (not action.option_strings or action.required
                    or isinstance(action, argparse._HelpAction)):
                continue  # positionals and required options have no default to state
            where = f"{path} {'/'.join(action.option_strings)}"
            assert action.help, f"{where} has no help text"
            assert "default" in action.help, f"{where}: help does not say its default"
    top = build_parser().format_help()
    assert "bench" not in top  # no command that does not exist


async def _serve_and_get(store: Path, *extra: str) -> str:
    """Start `swergio-al serve` at the default log level, GET /healthz, stop it; its log."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *SWERGIO_AL, "serve", "--port", str(port), "--store", f"sqlite:///{store}",
        *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "SWERGIO_AL_LOG_LEVEL"})
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = await process.stdout.readline()
            assert line.startswith(b"swergio-al serving on"), line  # it listens
            async with aiohttp.ClientSession() as session, \
                    session.get(f"http://127.0.0.1:{port}/healthz?probe=1") as response:
                assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, err = await process.communicate()
    return err.decode()


async def test_access_log_is_off_by_default_and_on_when_asked(tmp_path: Path) -> None:
    quiet, chatty = await asyncio.gather(_serve_and_get(tmp_path / "q.db"),
                                         _serve_and_get(tmp_path / "c.db", "--access-log"))
    # Same default log level (INFO) in both: only the flag differs.
    assert "GET /healthz?probe=1" in chatty
    assert "/healthz?probe=1" not in quiet


def test_music_benchmark_runs_its_arms_with_any_listener() -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "benchmarks/music.py", "--listener", "tests.test_cli_manners:four_stars",
         "--seeds", "1", "--generations", "2", "--population", "6", "--budget", "2",
         "--svg", "", "--jobs", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "listener tests.test_cli_manners:four_stars" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("(")][:3]
    assert len(rows) == 3  # all three arms ran
    for row in rows:  # every arm was rated, and scored, by four_stars: 4.00 exactly
        assert "4.00 ± 0.00" in row, row
    bad = subprocess.run([sys.executable, "benchmarks/music.py", "--listener", "nowhere:x"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "cannot import listener module" in bad.stderr


async def test_demo_says_what_to_do_then_a_line_per_rating_and_version(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *SWERGIO_AL, "demo", "music", "--port", str(port), "--listener", "simulated",
        "--population", "6", "--generations", "50", "--budget", "2",
        "--store", f"sqlite:///{tmp_path / 'demo.db'}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    seen: list[str] = []
    wanted = {"instructions": False, "rating": False, "version": False, "error": False}
    try:
        async with asyncio.timeout(60):
            while not all(wanted.values()):
                raw = await process.stdout.readline()
                assert raw, "the demo ended early:\n" + "".join(seen)
                line = raw.decode()
                seen.append(line)
                if f"Open http://127.0.0.1:{port}/label/feedback/melody" in line:
                    wanted["instructions"] = True
                    # what to do follows the link, printed once everything is up
                    assert any("server: ready" in s for s in seen)
                if line.startswith("evaluator") and "| rating " in line:
                    assert "from simulated-listener" in line
                    wanted["rating"] = True
                if line.startswith("evaluator") and "| evaluator v" in line:
                    wanted["version"] = True
                if "stars off on average" in line:  # the prequential error, once it has one
                    wanted["error"] = True
        text = "".join(seen)
        assert "Space plays" in text and "0-5 rates" in text and "Enter sends" in text
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await process.communicate()
    assert process.returncode == 0
