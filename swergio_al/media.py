"""`GET /media/{path}`: the images and audio of the source being labeled, read-only.

Files come from `Config.media_dir` only. The path is checked on its raw, still-encoded
form (encoded separators and NUL never become path syntax), then segment by segment
(no "..", no hidden names, no empty segments), then resolved with every link followed
and served only if the result is a media file inside the resolved folder. Anything
else is a 404 (400 for undecodable text): a refusal says nothing about what exists.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from swergio_al.keys import CONFIG, HUB
from swergio_al.sources.mediafiles import MEDIA_PREFIX, MEDIA_TYPES, media_url

__all__ = ["MEDIA_COOKIE", "MEDIA_FILES", "media_url", "resolve_media", "serve_only", "setup_media"]

# When set, the only files /media serves ("/"-separated under media_dir): a source's items,
# so a file it skipped, or any other file that happens to sit in the folder, is not served.
MEDIA_FILES = web.AppKey("media_files", frozenset)
#: The cookie a label page opened with a labeler token sets for /media (an <img> or
#: <audio> cannot send a token of its own).
MEDIA_COOKIE = "swergio_al_media"

MAX_PATH_CHARS = 1024  # the raw, encoded path after /media/
MAX_SEGMENT_BYTES = 255  # a file name on common file systems
# Encoded "/", "\" and NUL would turn into path syntax after the router has split the path.
_ENCODED_SYNTAX = re.compile(r"%(2f|5c|00)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

MEDIA_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Only our own pages may embed the user's data; it never runs as a document.
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=3600",
}


def resolve_media(root: Path, raw: str, allowed: frozenset[str] | None = None) -> Path | None:
    """The file under `root` that the still-encoded path `raw` names, or None if it
    names nothing servable (or nothing in `allowed`, when given). Raises
    UnicodeDecodeError for undecodable escapes."""
    if not raw or len(raw) > MAX_PATH_CHARS or "\\" in raw or _ENCODED_SYNTAX.search(raw):
        return None
    relative = unquote(raw, errors="strict")
    if _CONTROL.search(relative) or relative.startswith("/"):
        return None
    segments = relative.split("/")
    if any(not part or part.startswith(".") or len(part.encode()) > MAX_SEGMENT_BYTES
           for part in segments):
        return None  # "", ".", "..", hidden names, overlong names
    if Path(segments[-1]).suffix.lower() not in MEDIA_TYPES:
        return None
    if allowed is not None and relative not in allowed:
        return None
    try:
        base = root.resolve(strict=True)
        target = base.joinpath(*segments).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, unreadable, a link loop
        return None
    # A link may point anywhere: only its final target counts, and it must be ours.
    if not target.is_relative_to(base) or target.suffix.lower() not in MEDIA_TYPES:
        return None
    return target if target.is_file() else None


def _credential(request: web.Request) -> str:
    """The token a request for media shows: a header, the query, or the label page's cookie."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ")
    return request.query.get("token") or request.cookies.get(MEDIA_COOKIE, "")


async def media_file(request: web.Request) -> web.StreamResponse:
    # The media are the users' data: on a server with tokens, for those who may label.
    if not request.app[HUB].access.may_label(_credential(request)):
        raise web.HTTPUnauthorized(text="media need a labeler token\n",
                                   headers={**MEDIA_HEADERS, "WWW-Authenticate": "Bearer"})
    media_dir = request.app[CONFIG].media_dir
    # The raw target, before the router's percent-decoding (which turns %2F into "/").
    raw = request.raw_path.split("?", 1)[0].split("#", 1)[0]
    if media_dir is None or not raw.startswith(MEDIA_PREFIX):
        raise web.HTTPNotFound(text="no such media file", headers=MEDIA_HEADERS)
    try:
        # Resolving stats the disk: off the event loop, so a slow disk stalls no relay.
        target = await asyncio.to_thread(resolve_media, Path(media_dir),
                                         raw[len(MEDIA_PREFIX):], request.app.get(MEDIA_FILES))
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="media path is not UTF-8", headers=MEDIA_HEADERS) from None
    if target is None:
        raise web.HTTPNotFound(text="no such media file", headers=MEDIA_HEADERS)
    headers = {**MEDIA_HEADERS, "Content-Type": MEDIA_TYPES[target.suffix.lower()]}
    return web.FileResponse(target, headers=headers)


def serve_only(app: web.Application, relpaths: Iterable[str]) -> None:
    """Narrow `/media` to these files (relative to media_dir, "/"-separated), before the
    app starts: `swergio-al label` passes its source's items."""
    app[MEDIA_FILES] = frozenset(relpaths)


def setup_media(app: web.Application) -> None:
    """Register `GET /media/{path}` (404 for everything while `media_dir` is None)."""
    app.router.add_get(MEDIA_PREFIX + "{path:.+}", media_file, name="media")
