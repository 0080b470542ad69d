"""The page routes, and the assets travelling inside a built wheel."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import MakeServer
from tests.helpers import RawClient, free_port

REPO = Path(__file__).resolve().parents[1]


async def get(server: TestServer, path: str) -> tuple[int, str, str]:
    status, headers, body = await get_with_headers(server, path)
    return status, headers.get("Content-Type", ""), body


async def get_with_headers(server: TestServer, path: str) -> tuple[int, Mapping[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(server.make_url(path)) as resp:
        return resp.status, resp.headers, await resp.text()


async def test_pages_carry_a_policy_without_inline_scripts(server: TestServer) -> None:
    for path in ("/", "/label/feedback/melody", "/dashboard"):
        status, headers, _ = await get_with_headers(server, path)
        assert status == 200
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"


async def test_labeling_page_joins_its_feedback_room(server: TestServer) -> None:
    status, kind, body = await get(server, "/label/feedback")
    assert (status, kind.split(";")[0]) == (200, "text/html")
    assert 'data-room="feedback"' in body
    assert '<script type="module" src="/web/label.js">' in body
    assert "<script>" not in body  # no inline scripts: a strict CSP must be possible


async def test_room_names_may_contain_slashes_and_are_escaped(server: TestServer) -> None:
    status, _, body = await get(server, "/label/feedback/melody")
    assert status == 200 and 'data-room="feedback/melody"' in body
    status, _, body = await get(server, "/label/feedback/%22%3E%3Cscript%3E")
    assert status == 200
    assert 'data-room="feedback/&#34;&gt;&lt;script&gt;"' in body


async def test_a_room_outside_the_feedback_prefix_is_a_clear_404(server: TestServer) -> None:
    status, _, body = await get(server, "/label/models")
    assert status == 404 and "not a feedback room" in body


async def test_undo_window_must_be_a_sane_number(server: TestServer) -> None:
    assert (await get(server, "/label/feedback?undo=1.5"))[0] == 200
    for bad in ("abc", "nan", "-1", "1e9"):
        status, _, body = await get(server, f"/label/feedback?undo={bad}")
        assert status == 400 and "undo must be" in body


async def test_dashboard_and_assets_are_served(server: TestServer) -> None:
    status, _, body = await get(server, "/dashboard?room=feedback/melody&room=feedback/a%27b")
    assert status == 200
    assert """data-rooms='["feedback/melody", "feedback/a\\u0027b"]'""" in body
    for query in ("room=models", "kpi=_logging", "kpi="):
        status, _, body = await get(server, f"/dashboard?{query}")
        assert status == 400 and ("not a feedback room" in body or "ordinary room" in body)
    for path, mime in [("/web/label.js", "javascript"), ("/web/dashboard.js", "javascript"),
                       ("/static/app.css", "text/css"), ("/static/icon.svg", "image/svg")]:
        status, kind, _ = await get(server, path)
        assert status == 200 and mime in kind, path
    assert (await get(server, "/web/../swergio_al/ui.py"))[0] == 404


def test_a_built_wheel_carries_and_serves_the_browser_assets(tmp_path: Path) -> None:
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q",
                            "-w", str(tmp_path / "dist")], capture_output=True, text=True,
                           timeout=120)
    if build.returncode != 0:
        pytest.skip(f"could not build a wheel here (pip needs hatchling): {build.stderr[-300:]}")
    (wheel,) = (tmp_path / "dist").glob("swergio_al-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for asset in ("web/label.js", "web/relay.js", "static/app.css", "templates/label.html"):
            assert f"swergio_al/_assets/{asset}" in names
        archive.extractall(tmp_path / "site")

    # Serve from the unpacked wheel alone (cwd elsewhere, so the repo is not importable).
    port = free_port()
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "swergio_al.cli", "serve", "--port", str(port),
                             "--store", f"sqlite:///{tmp_path / 'store.db'}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        page = _get_when_up(f"http://127.0.0.1:{port}/label/feedback", proc)
        assert 'data-module="label-app"' in page
        script = _get_when_up(f"http://127.0.0.1:{port}/web/label.js", proc)
        assert "class LabelApp" in script
        check = subprocess.run([sys.executable, "-c", "import swergio_al.ui as u; "
                                "print(u.assets_root())"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, check=True)
        assert check.stdout.strip() == str(tmp_path / "site" / "swergio_al" / "_assets")
    finally:
        proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def _get_when_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            assert proc.stdout is not None
            raise AssertionError(f"server exited: {proc.stdout.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()  # type: ignore[no-any-return]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def test_landing_page_lists_rooms_with_work_or_says_how_to_send_some(
        server: TestServer) -> None:
    status, _, body = await get(server, "/")
    assert status == 200 and "No room has work waiting" in body and "FEEDBACK/REQUEST" in body
    url = str(server.make_url("/ws"))
    async with await RawClient.connect(url, "model", rooms=("feedback/a b",)) as model:
        await model.send({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": "feedback/a b", "DATA": {
            "sample_id": 1, "kind": "text", "content": "hi", "question": "<b>Is it?</b>",
            "answer": {"type": "choice", "choices": ["yes", "no"]}}})
        while (await model.expect("FEEDBACK/STATS"))["DATA"]["queued"] != 1:
            pass  # stored once the room's figures say so
        status, _, body = await get(server, "/")
    assert status == 200 and "No room has work waiting" not in body
    assert '<a class="room-link" href="/label/feedback/a%20b">feedback/a b</a>' in body
    assert "&lt;b&gt;Is it?&lt;/b&gt;" in body  # the question is text, never markup
    assert '<b data-key="queued">1</b> waiting' in body
    _, _, body = await get(server, "/?token=a%26b")  # the link `serve` prints for labelers
    assert 'href="/label/feedback/a%20b?token=a%26b"' in body


async def test_landing_page_shows_rooms_only_to_whoever_may_label_them(
        make_server: MakeServer) -> None:
    """With tokens set, `/` listed every room, its figures and its question to anyone."""
    server = await make_server(component_token="c-secret", labeler_token="l-secret")
    url = str(server.make_url("/ws"))
    async with await RawClient.connect(url) as model:
        await model.send({"TYPE": "COMMAND/REGISTER", "NAME": "model", "TO_ROOM": "_command",
                          "TOKEN": "c-secret"})
        await model.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "feedback/private",
                          "TO_ROOM": "_command"})
        await model.send({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": "feedback/private", "DATA": {
            "sample_id": 1, "kind": "text", "content": "hi", "question": "Salary band?",
            "answer": {"type": "choice", "choices": ["a", "b"]}}})
        while (await model.expect("FEEDBACK/STATS"))["DATA"]["queued"] != 1:
            pass
        for path in ("/", "/?token=wrong", "/?token=l-secre"):
            status, _, body = await get(server, path)
            assert status == 200 and "data-locked" in body, path
            assert "feedback/private" not in body and "Salary band?" not in body, path
        for token in ("l-secret", "c-secret"):
            status, _, body = await get(server, f"/?token={token}")
            assert status == 200 and "data-locked" not in body
            assert "feedback/private" in body and "Salary band?" in body
