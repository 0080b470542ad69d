"""Fixtures of the relay tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.relay.support import (
    ConnectSocket,
    SocketClient,
)


@pytest.fixture
async def sockets() -> AsyncIterator[ConnectSocket]:
    """Open SocketClients to a port; all are closed when the test ends, pass or fail."""
    opened: list[SocketClient] = []

    async def connect(port: int) -> SocketClient:
        client = await SocketClient.connect(port)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        await client.aclose()

