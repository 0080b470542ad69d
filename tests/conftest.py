"""Fixtures every test folder shares: a real server on a free port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import settings

from swergio_al.config import Config
from swergio_al.server import create_app

MakeServer = Callable[..., Awaitable[TestServer]]

# A shared 2-core machine can stall any single example; time limits belong to the
# tests' own event waits, not to hypothesis' per-example deadline.
settings.register_profile("swergio_al", deadline=None)
settings.load_profile("swergio_al")


@pytest.fixture
async def make_server(aiohttp_server: Any, tmp_path: Any) -> MakeServer:
    """Start `create_app(Config(**overrides))` on a free 127.0.0.1 port; the SQLite
    store lives in this test's tmp_path unless `store` is given."""

    async def start(**overrides: Any) -> TestServer:
        overrides.setdefault("store", f"sqlite:///{tmp_path / 'store.db'}")
        config = Config(**overrides)
        return await aiohttp_server(create_app(config), host="127.0.0.1")  # type: ignore[no-any-return]

    return start


@pytest.fixture
async def server(make_server: MakeServer) -> TestServer:
    return await make_server()


@pytest.fixture
def ws_url(server: TestServer) -> str:
    return str(server.make_url("/ws"))
