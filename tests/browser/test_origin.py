"""Cross-site WebSocket hijacking: a page from another origin cannot open /ws."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.conftest import MakeServer

pytestmark = pytest.mark.browser

# Resolves to "open" or "refused" once the socket settles.
TRY_SOCKET = """url => new Promise(resolve => {
  const ws = new WebSocket(url);
  ws.onopen = () => { ws.close(); resolve('open'); };
  ws.onerror = () => resolve('refused');
})"""


async def test_page_from_another_origin_cannot_open_ws(make_server: MakeServer,
                                                        aiohttp_server: Any,
                                                        new_page: Any) -> None:
    server = await make_server()
    ws_url = f"ws://127.0.0.1:{server.port}/ws"

    async def evil_page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>elsewhere</title>",
                            content_type="text/html")

    evil = web.Application()
    evil.router.add_get("/", evil_page)
    other = await aiohttp_server(evil, host="127.0.0.1")

    page = await new_page()
    await page.goto(f"http://127.0.0.1:{other.port}/")
    assert await page.evaluate(TRY_SOCKET, ws_url) == "refused"
    # The same script from the server's own pages connects: the check is the origin.
    await page.goto(f"http://127.0.0.1:{server.port}/dashboard")
    assert await page.evaluate(TRY_SOCKET, ws_url) == "open"
