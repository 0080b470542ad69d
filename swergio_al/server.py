"""create_app(config): the one aiohttp application — relay, feedback service, pages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from swergio_al.config import Config
from swergio_al.keys import CONFIG, HUB, SWERGIO_LISTENER
from swergio_al.relay.broker import create_broker
from swergio_al.relay.hub import Hub
from swergio_al.relay.tcp import SwergioListener
from swergio_al.relay.ws import websocket_handler

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(config: Config | None = None) -> web.Application:
    config = config or Config()
    app = web.Application(client_max_size=config.max_frame_size)
    app[CONFIG] = config
    app[HUB] = Hub(broker=create_broker(config.broker), max_rooms=config.max_rooms_per_connection)
    app.cleanup_ctx.append(_hub_lifetime)
    if config.swergio_port is not None:
        app[SWERGIO_LISTENER] = SwergioListener(
            app[HUB], host=config.host, port=config.swergio_port,
            max_frame_size=config.max_frame_size, outbox_limit=config.outbound_queue_size)
        app.cleanup_ctx.append(_swergio_listener_lifetime)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", healthz)
    return app


async def _hub_lifetime(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    await hub.start()
    yield
    await hub.stop()


async def _swergio_listener_lifetime(app: web.Application) -> AsyncIterator[None]:
    listener = app[SWERGIO_LISTENER]
    await listener.start()
    yield
    await listener.stop()
