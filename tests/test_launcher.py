"""`swergio-al run`: start order, readiness, restarts, log prefixes, stopping in reverse."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from swergio_al.cli import main
from swergio_al.launcher import (
    Launcher,
    LauncherConfigError,
    load_components,
    parse_components,
)
from tests.helpers import free_port

SWERGIO_AL = [sys.executable, "-m", "swergio_al.cli"]


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("import os, sys, time, signal, pathlib\n" + textwrap.dedent(body))
    return name


def components(tmp_path: Path, toml: str) -> Path:
    path = tmp_path / "components.toml"
    path.write_text(textwrap.dedent(toml))
    return path


async def launch(path: Path, timeout: float = 20.0) -> tuple[int, str]:
    out = io.StringIO()
    launcher = Launcher(load_components(path), out=out, colour=False)
    async with asyncio.timeout(timeout):
        code = await launcher.run(handle_signals=False)
    return code, out.getvalue()


# Writes its name to `stops` on SIGTERM, after announcing itself: a long-running component.
SERVICE = """
    name = sys.argv[1]
    def bye(*_):
        with open("stops", "a") as f:
            f.write(name + "\\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    print(f"{name} up", flush=True)
    while True:
        time.sleep(0.05)
"""


async def test_start_order_readiness_prefixes_and_main_exit(tmp_path: Path) -> None:
    script(tmp_path, "service.py", SERVICE)
    script(tmp_path, "client.py", """
        print("hello from the client", flush=True)
        print("second line", flush=True)
        sys.exit(3)
    """)
    path = components(tmp_path, """
        [[component]]
        name = "db"
        script = "service.py"
        args = ["db"]
        cwd = "."
        ready = { line = "db up" }

        [[component]]
        name = "client"
        script = "client.py"
        main = true
    """)
    code, out = await launch(path)
    assert code == 3  # the main component's exit code
    lines = out.splitlines()
    assert "db       | db up" in lines
    assert "client   | hello from the client" in lines
    ready_at = next(i for i, line in enumerate(lines) if "db: ready" in line)
    client_at = next(i for i, line in enumerate(lines) if "client: started" in line)
    assert ready_at < client_at  # the client waited for the db to be ready
    assert (tmp_path / "stops").read_text() == "db\n"  # stopped after main exited


def test_ctrl_c_stops_in_reverse_order(tmp_path: Path) -> None:
    script(tmp_path, "service.py", SERVICE)
    path = components(tmp_path, "".join(f"""
        [[component]]
        name = "{name}"
        script = "service.py"
        args = ["{name}"]
        cwd = "."
        ready = {{ line = "{name} up" }}
    """ for name in ("first", "second", "third")))
    process = subprocess.Popen([*SWERGIO_AL, "run", str(path)], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # blocks until each line arrives; ends at EOF
        seen.append(line)
        if "third: ready" in line:
            process.send_signal(signal.SIGINT)
            break
    rest = process.communicate(timeout=20)[0]
    assert process.returncode == 0, "".join(seen) + rest
    assert (tmp_path / "stops").read_text().split() == ["third", "second", "first"]
    assert "launcher | first: stopped (code 0)" in rest


async def test_crashing_component_restarts_with_backoff_until_its_limit(tmp_path: Path) -> None:
    script(tmp_path, "crash.py", """
        with open("starts", "a") as f:
            f.write("x")
        print("about to fail", flush=True)
        sys.exit(1)
    """)
    path = components(tmp_path, """
        [settings]
        backoff = 0.05
        max_restarts = 2

        [[component]]
        name = "crashy"
        script = "crash.py"
        cwd = "."
    """)
    code, out = await launch(path)
    assert code == 1
    assert (tmp_path / "starts").read_text() == "xxx"  # first start and two restarts
    assert "crashy: restarting in 0.05 s (1/2)" in out
    assert "crashy: restarting in 0.1 s (2/2)" in out  # the backoff doubles
    assert "crashy: gave up after 2 restarts" in out


async def test_component_recovers_after_a_crash(tmp_path: Path) -> None:
    script(tmp_path, "flaky.py", """
        starts = pathlib.Path("starts")
        starts.write_text(starts.read_text() + "x" if starts.exists() else "x")
        if len(starts.read_text()) < 2:
            sys.exit(7)
        print("steady now", flush=True)
        while True:
            time.sleep(0.05)
    """)
    # The watcher (main) ends once the flaky component has come back and said so.
    script(tmp_path, "watcher.py", """
        starts = pathlib.Path("starts")
        while not (starts.exists() and len(starts.read_text()) >= 2):
            time.sleep(0.02)
        print("saw the restart", flush=True)
    """)
    path = components(tmp_path, """
        [[component]]
        name = "flaky"
        script = "flaky.py"
        cwd = "."
        backoff = 0.05

        [[component]]
        name = "watcher"
        script = "watcher.py"
        cwd = "."
        main = true
    """)
    code, out = await launch(path)
    assert code == 0, out
    assert "flaky: exited with code 7" in out
    assert "flaky: restarting in 0.05 s (1/3)" in out
    assert "watcher  | saw the restart" in out


async def test_tcp_and_http_readiness(tmp_path: Path) -> None:
    tcp_port, http_port = free_port(), free_port()
    script(tmp_path, "tcp.py", f"""
        import socket
        time.sleep(0.3)  # not listening at once: the launcher must wait
        server = socket.create_server(("127.0.0.1", {tcp_port}))
        while True:
            server.accept()[0].close()
    """)
    script(tmp_path, "check.py", f"""
        import socket, urllib.request
        socket.create_connection(("127.0.0.1", {tcp_port}), timeout=2).close()
        with urllib.request.urlopen("http://127.0.0.1:{http_port}/", timeout=2) as r:
            print("both up", r.status, flush=True)
    """)
    path = components(tmp_path, f"""
        [[component]]
        name = "tcp"
        script = "tcp.py"
        ready = {{ tcp = "127.0.0.1:{tcp_port}" }}

        [[component]]
        name = "web"
        command = ["{sys.executable}", "-m", "http.server", "{http_port}", "--bind", "127.0.0.1"]
        ready = {{ http = "http://127.0.0.1:{http_port}/", timeout = 10 }}

        [[component]]
        name = "check"
        script = "check.py"
        main = true
    """)
    code, out = await launch(path)
    assert code == 0, out
    assert "check    | both up 200" in out


async def test_never_ready_gives_up(tmp_path: Path) -> None:
    script(tmp_path, "mute.py", "time.sleep(30)\n")
    path = components(tmp_path, """
        [[component]]
        name = "mute"
        script = "mute.py"
        ready = { line = "never printed", timeout = 0.3 }
        max_restarts = 0
    """)
    code, out = await launch(path)
    assert code == 1
    assert "mute: not ready (line never printed) within 0.3 s" in out
    assert "mute: gave up after 0 restarts" in out


async def test_module_callable_gets_args_and_env(tmp_path: Path) -> None:
    (tmp_path / "greeter.py").write_text(textwrap.dedent("""
        import asyncio, os, sys

        def main():
            print("args", sys.argv[1:], os.environ["GREETING"], flush=True)
            return 4

        async def amain():
            await asyncio.sleep(0)
            print("async too", flush=True)
    """))
    path = components(tmp_path, f"""
        [[component]]
        name = "sync"
        module = "greeter:main"
        args = ["--times", 2]
        env = {{ GREETING = "hi", PYTHONPATH = "{tmp_path}" }}
        restart = "never"

        [[component]]
        name = "async"
        module = "greeter:amain"
        env = {{ PYTHONPATH = "{tmp_path}" }}
        restart = "never"
    """)
    code, out = await launch(path)
    assert code == 0, out
    assert "sync     | args ['--times', '2'] hi" in out
    assert "sync: exited with code 4" in out
    assert "async    | async too" in out


@pytest.mark.parametrize(("document", "message"), [
    ({}, "no \\[\\[component\\]\\] entries"),
    ({"component": [{"name": "a"}]}, "exactly one of 'module'"),
    ({"component": [{"name": "a", "module": "x:y", "script": "z.py"}]}, "exactly one of"),
    ({"component": [{"name": "a", "script": "missing.py"}]}, "does not exist"),
    ({"component": [{"name": "a", "module": "not a module"}]}, "package.module:callable"),
    ({"component": [{"name": "a", "command": []}]}, "must not be empty"),
    ({"component": [{"name": "a b", "command": ["x"]}]}, "'name' must be"),
    ({"component": [{"name": "a", "command": ["x"]}, {"name": "a", "command": ["y"]}]},
     "unique"),
    ({"component": [{"name": "a", "command": ["x"], "restart": "sometimes"}]},
     "'restart' must be one of"),
    ({"component": [{"name": "a", "command": ["x"], "ready": {"tcp": "nohost"}}]},
     "host:port"),
    ({"component": [{"name": "a", "command": ["x"], "ready": {"url": "x"}}]},
     "exactly one of \\['tcp', 'http', 'line'\\]"),
    ({"component": [{"name": "a", "command": ["x"], "max_restarts": -1}]}, "whole number"),
    ({"component": [{"name": "a", "command": ["x"], "colour": "red"}]}, "unknown keys"),
    ({"settings": {"restarts": 1}, "component": [{"name": "a", "command": ["x"]}]},
     "unknown \\[settings\\] keys"),
    ({"component": [{"name": "a", "command": ["x"]}], "extra": 1}, "unknown top-level"),
])
def test_bad_components_files_say_what_is_wrong(document: dict[str, Any], message: str,
                                                tmp_path: Path) -> None:
    with pytest.raises(LauncherConfigError, match=message):
        parse_components(document, base=tmp_path)


def test_cli_reports_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[component]\n")
    assert main(["run", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "none.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_variables_fill_from_the_environment(tmp_path: Path) -> None:
    document = {"component": [{"name": "a", "command": ["echo", "${PORT:-8080}", "${HOST}"]}]}
    (spec,) = parse_components(document, environ={"HOST": "h"})
    assert spec.argv == ("echo", "8080", "h")
    (spec,) = parse_components(document, environ={"HOST": "h", "PORT": "9"})
    assert spec.argv == ("echo", "9", "h")
    with pytest.raises(LauncherConfigError, match=r"HOST.* is not set"):
        parse_components(document, environ={})


def test_hello_world_runs_from_its_components_file(tmp_path: Path) -> None:
    path = Path(__file__).parent.parent / "examples" / "hello_world" / "components.toml"
    env = {**os.environ, "PORT": str(free_port()), "EXCHANGES": "3",
           "STORE": f"sqlite:///{tmp_path / 'hello.db'}"}
    result = subprocess.run([*SWERGIO_AL, "run", str(path)], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "launcher | server: ready" in result.stdout
    assert result.stdout.count("universe | universe -> hello") == 3
    assert "launcher | world: exited with code 0" in result.stdout
    assert "launcher | server: stopped" in result.stdout


def test_music_generator_components_file_is_valid() -> None:
    path = Path(__file__).parent.parent / "examples" / "music_generator" / "components.toml"
    specs = load_components(path)
    assert [spec.name for spec in specs] == ["server", "evaluator", "evolution"]
    assert specs[1].ready is not None and specs[1].ready.kind == "line"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_components_stop_when_the_launcher_is_killed(tmp_path: Path) -> None:
    script(tmp_path, "service.py", SERVICE)
    path = components(tmp_path, """
        [[component]]
        name = "orphan"
        script = "service.py"
        args = ["orphan"]
        cwd = "."
        ready = { line = "orphan up" }
    """)
    process = subprocess.Popen([*SWERGIO_AL, "run", str(path)], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if "orphan: ready" in line:
            break
    process.kill()  # SIGKILL: the launcher gets no chance to stop anything
    process.communicate(timeout=10)
    stops = tmp_path / "stops"
    # The component's own SIGTERM handler writes the file; wait for that, bounded.
    deadline = time.monotonic() + 10
    while not stops.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stops.read_text() == "orphan\n"


def test_ctrl_c_while_a_component_gets_ready_stops_at_once(tmp_path: Path) -> None:
    script(tmp_path, "slow.py", SERVICE)
    path = components(tmp_path, """
        [[component]]
        name = "slow"
        script = "slow.py"
        args = ["slow"]
        cwd = "."
        ready = { line = "a line it never prints", timeout = 60 }
    """)
    process = subprocess.Popen([*SWERGIO_AL, "run", str(path)], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.endswith("| slow up\n"):  # started, not ready, and never will be
            process.send_signal(signal.SIGINT)
            break
    rest = process.communicate(timeout=10)[0]  # not the 60 s readiness timeout
    assert process.returncode == 0, rest
    assert (tmp_path / "stops").read_text() == "slow\n"


async def test_restart_always_restarts_even_a_clean_exit(tmp_path: Path) -> None:
    script(tmp_path, "once.py", """
        with open("starts", "a") as f:
            f.write("x")
        print("done", flush=True)
    """)
    path = components(tmp_path, """
        [[component]]
        name = "cron"
        script = "once.py"
        cwd = "."
        restart = "always"
        max_restarts = 1
        backoff = 0.01
    """)
    out = io.StringIO()
    launcher = Launcher(load_components(path), out=out, colour=True)
    async with asyncio.timeout(20):
        code = await launcher.run(handle_signals=False)
    assert code == 1  # past its limit
    assert (tmp_path / "starts").read_text() == "xx"
    assert "\x1b[36mcron     |\x1b[0m done" in out.getvalue()  # coloured prefix on a tty
