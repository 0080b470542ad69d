"""Typed keys for the shared state of the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from swergio_al.config import Config
from swergio_al.relay.hub import Hub

CONFIG = web.AppKey("config", Config)
HUB = web.AppKey("hub", Hub)
