"""Real Chromium through Playwright's async API (the server fixtures are async too)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM is not None:
        return
    skip = pytest.mark.skip(reason="no `chromium` on PATH (Debian: apt-get install chromium); "
                                   "the browser tests drive a real Chromium")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chromium_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Chromium for the whole session (each test gets fresh contexts in it): the
    async fixtures live in per-test event loops, so tests connect to it over CDP."""
    if CHROMIUM is None:
        pytest.skip("no `chromium` on PATH")
    port = free_port()
    process = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_ARGS, f"--remote-debugging-port={port}",
         "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={tmp_path_factory.mktemp('chromium')}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # ready once its DevTools endpoint answers
            if process.poll() is not None:
                raise RuntimeError(f"chromium exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"{endpoint}/json/version", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
async def browser(chromium_endpoint: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.connect_over_cdp(chromium_endpoint)
        try:
            yield chromium
        finally:
            await chromium.close()  # disconnects; the session's Chromium keeps running


class PageWatch:
    """What a page did that a test must never see: script errors and dialogs."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", self._on_dialog)

    async def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()


@pytest.fixture
async def watch() -> AsyncIterator[PageWatch]:
    seen = PageWatch()
    yield seen
    assert not seen.errors, f"script errors on the page: {seen.errors}"
    assert not seen.dialogs, f"the page opened dialogs: {seen.dialogs}"


@pytest.fixture
async def new_page(browser: Any, watch: PageWatch) -> Any:
    """`await new_page(width=..., name=...)`: a fresh context; `name` pre-sets the
    labeler name the page would otherwise ask for."""
    contexts: list[Any] = []

    async def make(*, width: int = 900, height: int = 760, name: str | None = None,
                   touch: bool = False) -> Any:
        context = await browser.new_context(viewport={"width": width, "height": height},
                                            has_touch=touch)
        contexts.append(context)
        if name is not None:
            await context.add_init_script(
                "if (location.protocol.startsWith('http')) "
                f"localStorage.setItem('swergio_al.labeler', {json.dumps(name)})")
        page = await context.new_page()
        page.set_default_timeout(10_000)
        watch.attach(page)
        if os.environ.get("SWERGIO_AL_UI_DEBUG"):  # print the page's console and frames
            page.on("console", lambda m: print("console:", m.type, m.text))
            page.on("websocket", lambda ws: (
                ws.on("framereceived", lambda f: print("page <-", str(f)[:200])),
                ws.on("framesent", lambda f: print("page ->", str(f)[:200]))))
        return page

    yield make
    for context in contexts:
        await context.close()


def screenshot_path(name: str) -> str:
    """Where a test saves the screenshot `name`: docs/screenshots/ when it is missing or
    SWERGIO_AL_UPDATE_SCREENSHOTS=1, else a scratch folder, so that ordinary test runs
    leave the committed images alone."""
    target = SCREENSHOTS / f"{name}.png"
    if target.exists() and not os.environ.get("SWERGIO_AL_UPDATE_SCREENSHOTS"):
        target = Path(tempfile.gettempdir()) / "swergio_al-screenshots" / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    return str(target)
