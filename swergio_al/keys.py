"""Typed keys for the shared state of the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from swergio_al.config import Config
from swergio_al.feedback.service import FeedbackService
from swergio_al.feedback.store import Store
from swergio_al.relay.hub import Hub
from swergio_al.relay.limits import ConnectionCounter
from swergio_al.relay.tcp import SwergioListener

CONFIG = web.AppKey("config", Config)
HUB = web.AppKey("hub", Hub)
# Open /ws connections per remote address (config.max_connections_per_ip).
CONNECTIONS = web.AppKey("connections", ConnectionCounter)
# Only present when config.swergio_port is set; `.port` is the bound port once started.
SWERGIO_LISTENER = web.AppKey("swergio_listener", SwergioListener)
# The feedback store (config.store) and the service that owns the feedback rooms.
STORE = web.AppKey("store", Store)
FEEDBACK = web.AppKey("feedback", FeedbackService)
