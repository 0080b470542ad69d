"""On a server with tokens, a label page opened with the labeler token shows the
sample's image: /media takes the cookie the page set (an <img> sends no token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MakeServer
from tests.feedback.helpers import Peer
from tests.helpers import RawClient
from tests.sources.files import png_bytes

pytestmark = pytest.mark.browser

ROOM = "feedback/photos"
SHOWN = ("() => { const img = document.querySelector('img[alt=\"cat\"]');"
         " return img && img.complete ? img.naturalWidth : 0; }")


async def test_the_label_page_shows_media_on_a_server_with_tokens(
        make_server: MakeServer, new_page: Any, tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(png_bytes())
    server = await make_server(media_dir=str(tmp_path), labeler_token="lab-secret",
                               component_token="comp-secret")
    model = Peer(await RawClient.connect(str(server.make_url("/ws"))))
    await model.send({"TYPE": "COMMAND/REGISTER", "NAME": "model", "TOKEN": "comp-secret",
                      "TO_ROOM": "_command"})
    await model.join(ROOM)
    try:
        await model.send({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": ROOM, "DATA": {
            "sample_id": 1, "kind": "image", "content": {"src": "/media/cat.png", "alt": "cat"},
            "question": "Which animal?", "answer": {"type": "choice",
                                                    "choices": ["cat", "dog"]}}})
        page = await new_page(name="ann")
        await page.goto(f"http://127.0.0.1:{server.port}/label/{ROOM}?token=lab-secret")
        await page.wait_for_function(SHOWN, timeout=15_000)
        assert await page.evaluate(SHOWN) > 0
        # Without the page's cookie the same file is refused.
        fresh = await new_page()
        answer = await fresh.goto(f"http://127.0.0.1:{server.port}/media/cat.png")
        assert answer is not None and answer.status == 401
    finally:
        await model.close()


async def test_a_tiny_image_is_shown_scaled_up_not_as_a_dot(make_server: MakeServer,
                                                            new_page: Any,
                                                            tmp_path: Path) -> None:
    (tmp_path / "digit.png").write_bytes(png_bytes())  # a few pixels, like an 8x8 digit
    server = await make_server(media_dir=str(tmp_path))
    model = await Peer.connect(str(server.make_url("/ws")), "model", room=ROOM)
    try:
        await model.send({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": ROOM, "DATA": {
            "sample_id": 1, "kind": "image", "content": {"src": "/media/digit.png",
                                                         "alt": "cat"},
            "answer": {"type": "choice", "choices": ["0", "1"]}}})
        page = await new_page(name="ann")
        await page.goto(f"http://127.0.0.1:{server.port}/label/{ROOM}")
        await page.wait_for_function(SHOWN)
        natural, shown = await page.evaluate(
            "() => { const img = document.querySelector('img[alt=\"cat\"]');"
            " return [img.naturalWidth, img.getBoundingClientRect().width]; }")
        assert natural < 128 and shown >= 128, (natural, shown)
    finally:
        await model.close()
