"""GET /media/{path}: the media folder's images and audio, and nothing outside it.

Against a served process (`swergio-al serve --media-dir`), over raw HTTP so every
path reaches the server exactly as written, encodings included.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swergio_al.cli import main
from swergio_al.config import Config
from swergio_al.media import resolve_media, serve_only
from swergio_al.server import create_app
from tests.conftest import MakeServer
from tests.helpers import ServerProcess
from tests.sources.files import png_bytes, wav_bytes

SECRET = b"SECRET-OUTSIDE-THE-MEDIA-FOLDER"


class Media:
    def __init__(self, root: Path, server: ServerProcess) -> None:
        self.root = root
        self.server = server
        self.files = {path.read_bytes() for path in root.rglob("*") if path.is_file()}

    def get(self, target: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTP/1.1 request for `target`, sent byte for byte."""
        request = "\r\n".join([f"GET {target} HTTP/1.1", "Host: 127.0.0.1", *headers,
                               "Connection: close", "", ""]).encode("utf-8", "surrogateescape")
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines if ": " in line)
        return int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, body


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Media]:
    base = tmp_path_factory.mktemp("media")
    root = base / "served"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "1.png").write_bytes(png_bytes())
    (root / "cat" / "two words.png").write_bytes(png_bytes((0, 0, 255)))
    (root / "song.wav").write_bytes(wav_bytes())
    (root / "notes.txt").write_text("not media")
    (root / ".hidden.png").write_bytes(png_bytes())
    # Outside the folder: what no request may ever read.
    for name in ("secret.png", "secret.txt", "servedsecret.png"):
        (base / name).write_bytes(SECRET)
    (root / "link-out.png").symlink_to(base / "secret.png")
    (root / "dir-out").symlink_to(base)
    (root / "link-in.png").symlink_to(root / "cat" / "1.png")
    (root / "txt-as.png").symlink_to(root / "notes.txt")
    with ServerProcess("--media-dir", str(root), "--store",
                       f"sqlite:///{base / 'store.db'}") as server:
        yield Media(root, server)


def test_serves_media_with_its_type_and_nosniff(media: Media) -> None:
    status, headers, body = media.get("/media/cat/1.png")
    assert (status, headers["content-type"], body) == (200, "image/png", png_bytes())
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cross-origin-resource-policy"] == "same-origin"
    assert media.get("/media/cat/two%20words.png")[2] == png_bytes((0, 0, 255))
    assert media.get("/media/link-in.png")[:1] == (200,)  # a link within the folder is fine
    status, headers, body = media.get("/media/song.wav", "Range: bytes=0-11")
    assert (status, headers["content-type"], body) == (206, "audio/wav", wav_bytes()[:12])


@pytest.mark.parametrize("target", [
    "/media/../secret.png", "/media/cat/../../secret.png", "/media/%2e%2e/secret.png",
    "/media/%2E%2E%2Fsecret.png", "/media/..%2fsecret.png", "/media/..%5csecret.png",
    "/media/..\\secret.png", "/media//etc/passwd", "/media/%2Fetc%2Fpasswd",
    "/media/link-out.png", "/media/dir-out/secret.png", "/media/txt-as.png",
    "/media/notes.txt", "/media/.hidden.png", "/media/cat/1.png%00.png",
    "/media/cat/1.png%00", "/media/cat/./1.png", "/media/cat//1.png",
    "/media/" + "a" * 300 + ".png", "/media/" + "a/" * 600 + "1.png",
    "/media/%c0%ae%c0%ae/secret.png", "/media/cat/1.png/", "/media/../served/cat/1.png",
    "/media/%252e%252e/secret.png", "http://127.0.0.1/media/../secret.png",
])
def test_refuses_each_way_out(media: Media, target: str) -> None:
    status, _, body = media.get(target)
    assert status in (400, 404), (target, status)
    assert SECRET not in body


# Paths are segments joined by a separator (plain, doubled, encoded, backslash); a
# segment is one or two pieces: dots and their encodings, names inside and outside the
# folder, links out, and the odd bytes that confuse parsers.
NAMES = ["..", "link-out.png", "dir-out", "secret.png", "cat", "1.png", "served", ".", "",
         "%2e%2e", "%2E", "%2e", "song.wav", "link-in.png", "txt-as.png", "notes.txt",
         ".hidden.png", "secret.txt", "%00", "%25", "%252e", "%c0%ae", "%", "%zz", "%ff", "~",
         ";", ":", "C:", "etc", "passwd", "%20", "é", "\u202e", "a" * 120, "?x=1", "#f"]
SEPARATORS = ["/", "%2f", "\\", "%5c", "//", "%2F", "%5C", "/./", "%252f"]
segments = st.lists(st.sampled_from(NAMES), min_size=1, max_size=2).map("".join)


@st.composite
def media_paths(draw: st.DrawFn) -> str:
    separator = draw(st.sampled_from(SEPARATORS))
    return separator.join(draw(st.lists(segments, min_size=1, max_size=6)))


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=media_paths(), prefix=st.sampled_from(["/media/", "/media", "/media//",
                                                   "/media/%2f", "/media/cat/"]))
def test_nothing_outside_is_ever_served_nor_a_500(media: Media, prefix: str, path: str) -> None:
    target = (prefix + path).replace(" ", "%20")
    status, _, body = media.get(target)
    assert status < 500, (target, status)
    assert SECRET not in body, target
    if status == 200:
        assert body in media.files, target


@given(path=st.text(max_size=40))
def test_resolve_media_stays_inside_for_any_text(tmp_path_factory: pytest.TempPathFactory,
                                                 path: str) -> None:
    root = Path(__file__).resolve().parent  # any real folder: the tests' own
    try:
        found = resolve_media(root, path)
    except UnicodeDecodeError:
        return
    assert found is None or found.is_relative_to(root)


async def test_without_a_media_dir_the_route_answers_404(make_server: MakeServer) -> None:
    server = await make_server()
    async with aiohttp.ClientSession() as session:
        async with session.get(server.make_url("/media/cat/1.png")) as response:
            assert response.status == 404


async def test_serve_only_narrows_the_route_to_the_listed_files(
        aiohttp_server: Any, tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    for name in ("1.png", "2.png"):
        (tmp_path / "cat" / name).write_bytes(png_bytes())
    app = create_app(Config(media_dir=str(tmp_path), store=f"sqlite:///{tmp_path / 's.db'}"))
    serve_only(app, ["cat/1.png"])
    server = await aiohttp_server(app, host="127.0.0.1")
    async with aiohttp.ClientSession() as session:
        for path, status in (("cat/1.png", 200), ("cat/2.png", 404), ("cat/%31.png", 200)):
            async with session.get(server.make_url(f"/media/{path}")) as response:
                assert response.status == status, path


def test_serve_refuses_a_media_dir_that_is_no_folder(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--media-dir", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"swergio-al serve: --media-dir {tmp_path / 'nowhere'}: not a folder"]


async def test_with_tokens_media_need_a_labeler_token_which_the_label_page_hands_on(
        make_server: MakeServer, tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "1.png").write_bytes(png_bytes())
    server = await make_server(media_dir=str(tmp_path / "media"), labeler_token="lab-secret",
                               component_token="comp-secret")
    url = server.make_url("/media/1.png")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        for headers, query, status in [
                ({}, {}, 401),
                ({}, {"token": "wrong"}, 401),
                ({"Authorization": "Bearer wrong"}, {}, 401),
                ({}, {"token": "lab-secret"}, 200),
                ({"Authorization": "Bearer lab-secret"}, {}, 200),
                ({"Authorization": "Bearer comp-secret"}, {}, 200)]:
            async with session.get(url, headers=headers, params=query) as response:
                assert response.status == status, (headers, query)
                if status == 401:  # says nothing about the file
                    assert "png" not in await response.text()
        # A label page opened without the right token sets nothing.
        async with session.get(server.make_url("/label/feedback"),
                               params={"token": "wrong"}) as page:
            assert "swergio_al_media" not in page.cookies
        async with session.get(url) as response:
            assert response.status == 401
        # Opened with it: a cookie for /media only, out of the page's scripts' reach.
        async with session.get(server.make_url("/label/feedback"),
                               params={"token": "lab-secret"}) as page:
            cookie = page.cookies["swergio_al_media"]
            assert cookie["path"] == "/media/" and cookie["httponly"]
            assert cookie["samesite"] == "Strict"
        async with session.get(url) as response:
            assert response.status == 200 and await response.read() == png_bytes()


async def test_an_open_server_serves_media_to_anyone(make_server: MakeServer,
                                                     tmp_path: Path) -> None:
    (tmp_path / "1.png").write_bytes(png_bytes())
    server = await make_server(media_dir=str(tmp_path))
    async with aiohttp.ClientSession() as session, \
            session.get(server.make_url("/media/1.png")) as response:
        assert response.status == 200
