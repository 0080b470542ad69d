"""create_app(config): the one aiohttp application — relay, feedback service, pages."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web

from swergio_al.api import setup_api
from swergio_al.collector import PacedCollections
from swergio_al.config import Config
from swergio_al.feedback.service import FeedbackService
from swergio_al.feedback.store import create_store
from swergio_al.keys import CONFIG, CONNECTIONS, FEEDBACK, HUB, STORE, SWERGIO_LISTENER
from swergio_al.launcher import LAUNCH_ID_ENV
from swergio_al.media import setup_media
from swergio_al.metrics import setup_metrics
from swergio_al.relay.broker import create_broker
from swergio_al.relay.hub import Hub
from swergio_al.relay.limits import ConnectionCounter
from swergio_al.relay.tcp import SwergioListener
from swergio_al.relay.ws import websocket_handler
from swergio_al.ui import setup_ui

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    # launch_id: the launcher that started this process checks it is its own child answering.
    return web.json_response({"status": "ok", "launch_id": os.environ.get(LAUNCH_ID_ENV)})


def create_app(config: Config | None = None) -> web.Application:
    config = config or Config()
    app = web.Application(client_max_size=config.max_frame_size)
    app[CONFIG] = config
    app[HUB] = Hub(broker=create_broker(config.broker), max_rooms=config.max_rooms_per_connection)
    # Feedback rooms are whatever the Hub's services own; the tokens come from config.
    app[HUB].access.component_token = config.component_token
    app[HUB].access.labeler_token = config.labeler_token
    app[CONNECTIONS] = ConnectionCounter(config.max_connections_per_ip)
    app.cleanup_ctx.append(_collector_lifetime)
    app.cleanup_ctx.append(_hub_lifetime)
    app.on_shutdown.append(_close_connections)
    app[STORE] = create_store(config.store)
    app[FEEDBACK] = FeedbackService(
        app[HUB], app[STORE], prefix=config.feedback_prefix, lease_seconds=config.lease_seconds,
        prefetch=config.prefetch, stats_interval=config.stats_interval_seconds,
        max_pending=config.max_pending_per_model, gold_rate=config.gold_rate)
    app[HUB].services.append(app[FEEDBACK])
    app.cleanup_ctx.append(_feedback_lifetime)
    if config.swergio_port is not None:
        app[SWERGIO_LISTENER] = SwergioListener(
            app[HUB], host=config.host, port=config.swergio_port,
            max_frame_size=config.max_frame_size, outbox_limit=config.outbound_queue_size,
            frame_timeout=config.heartbeat_seconds or None,
            close_timeout=config.close_timeout_seconds, counter=app[CONNECTIONS],
            rate_per_second=config.rate_per_second, rate_burst=config.rate_burst,
            component_rate_per_second=config.component_rate_per_second)
        app.cleanup_ctx.append(_swergio_listener_lifetime)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", healthz)
    setup_ui(app)
    setup_api(app)
    setup_metrics(app)
    setup_media(app)
    return app


async def _collector_lifetime(app: web.Application) -> AsyncIterator[None]:
    pacing = PacedCollections(app[CONFIG].full_gc_seconds)
    pacing.start()
    try:
        yield
    finally:  # also when a later part failed to start and the loop closes this
        pacing.stop()


async def _hub_lifetime(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    await hub.start()
    yield
    await hub.stop()


async def _close_connections(app: web.Application) -> None:
    # Before aiohttp waits for the handlers: each client gets a close frame (1001)
    # instead of waiting out the shutdown timeout and then losing its socket.
    app[HUB].close_all()


async def _feedback_lifetime(app: web.Application) -> AsyncIterator[None]:
    store, service = app[STORE], app[FEEDBACK]
    await store.open()
    await service.start()
    yield
    await service.stop()
    await store.close()


async def _swergio_listener_lifetime(app: web.Application) -> AsyncIterator[None]:
    listener = app[SWERGIO_LISTENER]
    await listener.start()
    yield
    await listener.stop()
