"""Browser pages: the labeling page, the dashboard, and the files they load.

Pages are jinja2 templates; page settings travel as data- attributes (no inline
scripts, so a strict CSP can forbid them). The browser code itself is plain ES
modules served from `web/`, styles and icons from `static/`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web

import swergio_al
from swergio_al.feedback.records import StoreError
from swergio_al.keys import CONFIG, FEEDBACK, HUB, STORE
from swergio_al.media import MEDIA_COOKIE
from swergio_al.sources.mediafiles import MEDIA_PREFIX

ASSET_DIRS = ("web", "static", "templates")
KPI_ROOM = "kpi"  # where model loops publish LOG/KPI for the dashboard
UNDO_SECONDS = 4.0  # how long an answer stays undoable before it is sent
LANDING_ROOMS = 500  # rooms looked at for the landing page: its cost stays bounded

# Pages run no inline script and load code only from here; samples may show
# images and sounds from anywhere (models send URLs), never run their code.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
    "img-src 'self' data: blob: http: https:", "media-src 'self' data: blob: http: https:",
    "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"])
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a labeler token may sit in the first URL
}


def assets_root() -> Path:
    """Where web/, static/ and templates/ live.

    A wheel carries them inside the package (`swergio_al/_assets`); an editable
    install serves them straight from the repository root.
    """
    package = Path(swergio_al.__file__).resolve().parent
    for root in (package / "_assets", package.parent):
        if all((root / name).is_dir() for name in ASSET_DIRS):
            return root
    raise FileNotFoundError(
        f"browser assets (web/, static/, templates/) not found under {package / '_assets'} "
        f"or {package.parent}; reinstall swergio-al")


def _not_feedback(room: str, prefix: str) -> str:
    return f"{room[:80]!r} is not a feedback room: their names start with {prefix!r}"


def _room_of(request: web.Request) -> str:
    """The feedback room a labeling page joins; anything else is a clear 404."""
    prefix = request.app[CONFIG].feedback_prefix
    room = request.match_info.get("room", prefix).strip("/")
    if not room.startswith(prefix):  # the FeedbackService's own test
        raise web.HTTPNotFound(text=_not_feedback(room, prefix))
    return room


async def label_page(request: web.Request) -> web.Response:
    undo = request.query.get("undo", "")
    try:
        undo_seconds = float(undo) if undo else UNDO_SECONDS
    except ValueError:
        undo_seconds = math.nan
    if not 0.0 <= undo_seconds <= 60.0:
        raise web.HTTPBadRequest(text=f"undo must be 0 to 60 seconds, got {undo[:40]!r}")
    context = {"room": _room_of(request), "undo_seconds": undo_seconds}
    response = _page("label.html", request, context)
    token, access = request.query.get("token", ""), request.app[HUB].access
    if token and not access.open and access.may_label(token):
        # The page's images and sounds cannot show a token; the browser sends this
        # cookie with them instead, to /media only, never to another site.
        response.set_cookie(MEDIA_COOKIE, token, path=MEDIA_PREFIX, httponly=True,
                            samesite="Strict", secure=request.secure)
    return response


async def rooms_redirect(request: web.Request) -> web.Response:
    """`/label` names no room: the landing page lists them (its token goes along)."""
    raise web.HTTPFound("/" + (f"?{request.query_string}" if request.query_string else ""))


async def landing_page(request: web.Request) -> web.Response:
    """The rooms with work waiting (queue, labelers, question), each linking to its
    label page; a clear empty state saying how to send work here."""
    store, service = request.app[STORE], request.app[FEEDBACK]
    # `serve` prints `/?token=...` for labelers: the room links carry it on.
    token = request.query.get("token", "")
    prefix = request.app[CONFIG].feedback_prefix
    if not request.app[HUB].access.may_label(token):
        # Room names, figures and questions are for those who may label them.
        return _page("landing.html", request, {"rooms": [], "prefix": prefix, "locked": True})
    suffix = "?" + urlencode({"token": token}) if token else ""
    rooms: list[dict[str, object]] = []
    try:
        for room in (await store.rooms())[:LANDING_ROOMS]:
            stats = await service.room_stats(room)
            if stats["queued"] or stats["in_flight"]:
                rooms.append({"name": room, "href": "/label/" + quote(room) + suffix, **stats,
                              "question": await store.open_question(room) or ""})
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(text=f"feedback store unavailable: {exc}") from None
    rooms.sort(key=lambda r: (-int(str(r["queued"])), str(r["name"])))
    return _page("landing.html", request, {"rooms": rooms, "prefix": prefix})


async def dashboard_page(request: web.Request) -> web.Response:
    prefix = request.app[CONFIG].feedback_prefix
    # No room (or "all"): every feedback room, as they appear.
    rooms = [room for room in request.query.getall("room", []) if room]
    for room in rooms:
        if not room.startswith(prefix):
            raise web.HTTPBadRequest(text=_not_feedback(room, prefix))
    kpi_room = request.query.get("kpi", KPI_ROOM)
    if not kpi_room or kpi_room.startswith("_"):
        raise web.HTTPBadRequest(text=f"kpi must name an ordinary room, got {kpi_room[:80]!r}")
    return _page("dashboard.html", request, {"rooms": rooms, "kpi_room": kpi_room})


def _page(template: str, request: web.Request, context: Mapping[str, object]) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context)
    response.headers.update(PAGE_HEADERS)
    return response


def setup_ui(app: web.Application) -> None:
    """Register `/` (the rooms with work), `/label/{room}`, `/dashboard`, `/web/...` and
    `/static/...`."""
    root = assets_root()
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(root / "templates"),
                         autoescape=jinja2.select_autoescape(default=True))
    app.router.add_get("/", landing_page, name="landing")
    # Room names may contain "/" (feedback/melody), so the pattern takes the rest of the path.
    app.router.add_get("/label/{room:.+}", label_page, name="label_room")
    for bare in ("/label", "/label/"):
        app.router.add_get(bare, rooms_redirect)
    app.router.add_get("/dashboard", dashboard_page, name="dashboard")
    app.router.add_static("/web", root / "web", name="web")
    app.router.add_static("/static", root / "static", name="static")
