"""Wrong command lines a newcomer types: each ends in one line on stderr and a non-zero
exit, never a traceback or argparse's usage block."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from swergio_al.cli import main
from tests.helpers import free_port


@pytest.mark.parametrize(("argv", "says"), [
    (["serve", "--port", "70000"], "--port must be within 1..65535, got 70000"),
    (["serve", "--port", "-5"], "--port must be within 1..65535, got -5"),
    (["serve", "--swergio-port", "-1"], "--swergio-port must be within 0..65535"),
    (["serve", "--lease-seconds", "-1"], "--lease-seconds must be more than 0"),
    (["serve", "--port", "abc"], "invalid int value: 'abc'"),
    (["demo", "music", "--port", "abc"], "invalid int value: 'abc'"),
    (["demo", "nothing"], "invalid choice: 'nothing'"),
    (["run"], "required: components"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["demo", "music", "--bogus"], "swergio-al demo music: unrecognized arguments: --bogus"),
    (["serve", "--bogus", "x"], "swergio-al serve: unrecognized arguments: --bogus x"),
])
def test_a_bad_option_is_one_line(argv: list[str], says: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        raise SystemExit(main(argv))  # main returns the code, or argparse exits
    assert ended.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("swergio-al") and says in err and "Traceback" not in err


def test_export_from_an_unknown_kind_of_store_is_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--store", "bogus://x"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "unknown store 'bogus://x'" in err


def test_serve_on_an_unknown_kind_of_store_is_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    # found at start-up, inside aiohttp's run_app: it used to end in a ValueError traceback
    assert main(["serve", "--port", str(free_port()), "--store", "bogus://x"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == ("swergio-al serve: unknown store 'bogus://x': use "
                                    "sqlite:///path/to/file.db or postgresql://user@host/db")


ROOT = Path(__file__).resolve().parent.parent
REVIEWS = "examples/reviews/reviews.csv"


@pytest.mark.parametrize(("extra", "says"), [
    (["--store", "bogus://x"], "swergio-al label: unknown store 'bogus://x'"),
    (["--broker", "bogus://x"], "swergio-al label: unknown broker 'bogus://x'"),
    (["--url", "ws://127.0.0.1:{port}/ws"], "swergio-al label: cannot reach the server"),
])
def test_label_without_a_server_is_one_line_and_no_link(
        extra: list[str], says: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    code = main(["label", str(ROOT / REVIEWS), "--text", "text", "--answer",
                 "choice:positive,negative", "--out", str(tmp_path / "out"),
                 "--port", str(port), *[e.format(port=port) for e in extra]])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""  # no "Label at" link to a server that is not there
    assert len(err.splitlines()) == 1 and err.startswith(says), err


@pytest.mark.parametrize(("argv", "says"), [
    (["serve"], "swergio-al serve: SWERGIO_AL_PORT='abc': expected a number"),
    (["export"], "swergio-al export: SWERGIO_AL_PORT='abc': expected a number"),
    (["label", str(ROOT / REVIEWS), "--text", "text", "--answer", "choice:a,b"],
     "swergio-al label: SWERGIO_AL_PORT='abc': expected a number"),
])
def test_a_variable_that_does_not_parse_is_one_line(
        argv: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWERGIO_AL_PORT", "abc")
    monkeypatch.chdir(tmp_path)  # label's --out and export's default store land here
    assert main(argv) != 0
    assert capsys.readouterr().err == says + "\n"


@pytest.mark.parametrize("command", [["serve"], ["label", str(ROOT / REVIEWS), "--text", "text",
                                                 "--answer", "choice:a,b"]])
def test_an_unknown_log_level_is_one_line(command: list[str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--port", str(free_port()), "--log-level", "LOUD"]) != 0
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--log-level must be DEBUG, INFO" in err, err


def test_serve_on_a_database_it_cannot_use_is_one_line(tmp_path: Path) -> None:
    # Start-up fails after the first parts of the app started: those must stop
    # quietly (a timer's cleanup once ended in "generator didn't stop after athrow()").
    done = subprocess.run(
        [sys.executable, "-m", "swergio_al.cli", "serve", "--port", str(free_port()),
         "--store", "postgresql://swergio_no_such_role@127.0.0.1:5432/test"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Error" not in done.stderr.replace(
        "[Errno", ""), done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith("swergio-al serve: cannot reach PostgreSQL at ")


@pytest.mark.parametrize(("argv", "says"), [
    (["serve"], "swergio-al serve: stopped (Ctrl-C)"),
    (["label", "x.csv", "--answer", "text"], "swergio-al label: stopped (Ctrl-C)"),
])
def test_ctrl_c_while_starting_is_one_line(argv: list[str], says: str) -> None:
    # The signal arrives while the command is still setting up (here: deterministically,
    # the moment it reads its options), before its own handling of Ctrl-C is in place.
    code = ("import os, signal, sys\n"
            "from swergio_al import cli, label_command\n"
            "stop = lambda *a, **k: os.kill(os.getpid(), signal.SIGINT)\n"
            "cli.build_parser = stop\n"
            "label_command.prepare = stop\n"
            f"sys.exit(cli.main({argv!r}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == says and "Traceback" not in done.stderr
