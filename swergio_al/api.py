"""Small HTTP endpoints: label export and per-room feedback numbers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from swergio_al.feedback.export import export_labels
from swergio_al.feedback.records import StoreError
from swergio_al.feedback.room_quality import quality_report
from swergio_al.keys import CONFIG, FEEDBACK, HUB, STORE
from swergio_al.protocol import Role, text_problem
from swergio_al.relay.access import tokens_match

_CONTENT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


async def _labels(request: web.Request, fmt: str) -> web.StreamResponse:
    room = request.query.get("room") or None
    problem = text_problem(room) if room else None
    if problem is not None:
        raise web.HTTPBadRequest(text=f"room holds {problem}\n")
    response = web.StreamResponse(headers={
        "Content-Type": f"{_CONTENT_TYPES[fmt]}; charset=utf-8",
        "Content-Disposition": f'attachment; filename="labels.{fmt}"'})
    chunks = export_labels(request.app[STORE], fmt, room=room)
    try:
        first = await anext(chunks, "")
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(text=f"feedback store unavailable: {exc}") from None
    await response.prepare(request)
    await response.write(first.encode())
    async for chunk in chunks:
        await response.write(chunk.encode())
    await response.write_eof()
    return response


async def labels_csv(request: web.Request) -> web.StreamResponse:
    return await _labels(request, "csv")


async def labels_jsonl(request: web.Request) -> web.StreamResponse:
    return await _labels(request, "jsonl")


async def stats(request: web.Request) -> web.Response:
    """`{room: {queued, in_flight, labeled, labelers, labels_per_minute}}` for every
    feedback room that has requests."""
    service = request.app[FEEDBACK]
    try:
        rooms = await request.app[STORE].rooms()
        body = {room: await service.room_stats(room) for room in rooms}
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(text=f"feedback store unavailable: {exc}") from None
    return web.json_response(body)


async def online(request: web.Request) -> web.Response:
    """`{"labelers": n}`: the people labeling now in the feedback rooms /api/stats lists
    (`?room=`, repeatable: those rooms and their sub-rooms), each counted once however
    many of the rooms they are in. Other nodes report counts, not names, so their
    labelers are added room by room."""
    scope = request.query.getall("room", [])
    for room in scope:
        if problem := text_problem(room):
            raise web.HTTPBadRequest(text=f"room holds {problem}\n")
    service, hub = request.app[FEEDBACK], request.app[HUB]
    try:
        rooms = [room for room in await request.app[STORE].rooms()
                 if not scope or any(room == r or room.startswith(f"{r}/") for r in scope)]
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(text=f"feedback store unavailable: {exc}") from None
    names: set[str | None] = set()
    elsewhere = 0
    for room in rooms:
        names.update(member.name for member in hub.members(room) if member.role is Role.LABELER)
        elsewhere += max(0, service.presence.online(room) - service.presence.local(room))
    return web.json_response({"labelers": len(names) + elsewhere})


async def quality(request: web.Request) -> web.Response:
    """Per room: agreement and every labeler's figures (swergio_al/feedback/consensus.py)."""
    try:
        body = await quality_report(request.app[STORE], request.query.get("room") or None)
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(text=f"feedback store unavailable: {exc}") from None
    return web.json_response(body)


async def kpi(request: web.Request) -> web.Response:
    """`{"kpi": [report, ...]}`: every kept LOG/KPI report (of `?room=`, `?model=`),
    oldest first, each with its room, model and the time the server received it."""
    room, model = request.query.get("room") or None, request.query.get("model") or None
    try:
        points = await request.app[STORE].kpi_history(room=room, model=model)
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(text=f"feedback store unavailable: {exc}") from None
    return web.json_response({"kpi": [point.as_json() for point in points]})


async def labelers(request: web.Request) -> web.Response:
    """`{room: [{labeler, labels, median_seconds, skips}, ...]}`, busiest first."""
    wanted = request.query.get("room") or None
    try:
        rooms = [wanted] if wanted else await request.app[STORE].rooms()
        body = {room: [{"labeler": row.labeler, "labels": row.labels,
                        "median_seconds": row.median_seconds, "skips": row.skips}
                       for row in await request.app[STORE].labeler_stats(room)]
                for room in rooms}
    except StoreError as exc:
        raise web.HTTPServiceUnavailable(text=f"feedback store unavailable: {exc}") from None
    return web.json_response(body)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def components_only(handler: Handler, *, what: str = "this endpoint") -> Handler:
    """With a component token configured, the API and /metrics want it (labels are the
    users' data): `Authorization: Bearer <token>` or `?token=<token>`."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        expected = request.app[CONFIG].component_token
        if expected:
            header = request.headers.get("Authorization", "")
            given = header.removeprefix("Bearer ") if header.startswith("Bearer ") else \
                request.query.get("token", "")
            if not tokens_match(given, expected):
                raise web.HTTPUnauthorized(text=f"{what} needs the component token\n",
                                           headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return guarded


def setup_api(app: web.Application) -> None:
    app.router.add_get("/api/labels.csv", components_only(labels_csv))
    app.router.add_get("/api/labels.jsonl", components_only(labels_jsonl))
    app.router.add_get("/api/stats", components_only(stats))
    app.router.add_get("/api/online", components_only(online))
    app.router.add_get("/api/quality", components_only(quality))
    app.router.add_get("/api/kpi", components_only(kpi))
    app.router.add_get("/api/labelers", components_only(labelers))
