"""Shared test helpers: a raw WebSocket client and a server in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

Message = dict[str, Any]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RawClient:
    """A bare WebSocket client speaking the protocol by hand: what tests assert against."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession):
        self.ws = ws
        self.session = session
        self.name: str | None = None

    @classmethod
    async def connect(cls, url: str, name: str | None = None, *, role: str | None = None,
                      rooms: tuple[str, ...] = (), **ws_kwargs: Any) -> RawClient:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, **ws_kwargs)
        except BaseException:
            await session.close()
            raise
        client = cls(ws, session)
        if name is not None:
            register: Message = {"TYPE": "COMMAND/REGISTER", "NAME": name, "TO_ROOM": "_command"}
            if role is not None:
                register["ROLE"] = role
            await client.send(register)
            client.name = name
        for room in rooms:
            await client.send({"TYPE": "COMMAND/JOINROOM", "ROOM": room, "TO_ROOM": "_command"})
        if name is not None:
            await client.sync()
        return client

    async def send(self, message: Message) -> None:
        await self.ws.send_str(json.dumps(message))

    async def recv(self, timeout: float = 5.0) -> Message:
        frame = await self.ws.receive(timeout=timeout)
        if frame.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {frame.type!r} {frame.data!r}")
        return json.loads(frame.data)  # type: ignore[no-any-return]

    async def expect(self, type_: str, timeout: float = 5.0) -> Message:
        """Receive until a message of `type_` arrives (others are discarded)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no {type_} within {timeout}s")
            message = await self.recv(left)
            if message.get("TYPE") == type_:
                return message

    async def sync(self, timeout: float = 5.0) -> None:
        """Round trip to ourselves: every frame sent before this has been handled."""
        marker = os.urandom(8).hex()
        await self.send({"TYPE": "DATA/CUSTOM", "TO": self.name, "SYNC": marker})
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("sync round trip timed out")
            message = await self.recv(left)
            if message.get("SYNC") == marker:
                return

    async def nothing_within(self, seconds: float) -> None:
        """Assert no frame arrives within `seconds` (only for proving absence)."""
        try:
            frame = await self.ws.receive(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame {frame.type!r}: {frame.data!r}")

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ServerProcess:
    """`swergio-al serve` in a child process, for kill -9 and restart tests."""

    def __init__(self, *args: str, port: int | None = None, env: dict[str, str] | None = None,
                 log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "swergio_al.cli", "serve", "--port", str(self.port),
                 *self.args],
                env=self.env, stdout=out, stderr=subprocess.STDOUT)
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own copy of the descriptor
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"server on port {self.port} did not start in {timeout}s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class LoopThread:
    """An event loop in a background thread: hypothesis drives it from a plain test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
