"""One component under the launcher: its process, output pump, readiness check and stop.

The `Launcher` (launcher.py) decides when to start, restart and stop; a
`Supervised` component does it: it starts the process in its own process group
with a fresh launch id, pumps its output to the launcher line by line, waits
until it is ready, and stops it (SIGTERM, then SIGKILL after `stop_timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from swergio_al.components_file import ComponentSpec, Ready, host_port

if TYPE_CHECKING:
    from swergio_al.launcher import Launcher

# Set in every child's environment; `/healthz` of `swergio-al serve` echoes it as "launch_id".
LAUNCH_ID_ENV = "SWERGIO_AL_LAUNCH_ID"

_POLL_SECONDS = 0.05
_LINE_LIMIT = 1024 * 1024


class State(StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    READY = "ready"
    BACKING_OFF = "backing off"
    STOPPING = "stopping"
    EXITED = "exited"
    FAILED = "failed"


class ComponentGaveUp(RuntimeError):
    """A component crashed more often than its restart limit allows, or never got ready."""


class Supervised:
    """One component's process, its output pump and its lifecycle."""

    def __init__(self, spec: ComponentSpec, launcher: Launcher, colour: int | None) -> None:
        self.spec = spec
        self.launcher = launcher
        self.colour = colour
        self.state = State.PENDING
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.returncode: int | None = None
        self._pump: asyncio.Task[None] | None = None
        self._saw_ready_line = asyncio.Event()
        self.launch_id = ""

    async def start(self) -> None:
        """Start the process and wait until it is ready (raises ComponentGaveUp)."""
        spec = self.spec
        self.state = State.STARTING
        self._saw_ready_line.clear()
        self.launch_id = secrets.token_hex(8)  # new per start: a stale instance is not us either
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env, LAUNCH_ID_ENV: self.launch_id}
        try:
            self.process = await asyncio.create_subprocess_exec(
                *spec.argv, cwd=spec.cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent, limit=_LINE_LIMIT)
        except OSError as exc:
            self.state = State.FAILED
            raise ComponentGaveUp(f"{spec.name}: cannot start {spec.argv[0]!r}: "
                                  f"{exc.strerror}") from None
        self.launcher.note(self, f"started (pid {self.process.pid})")
        self._pump = asyncio.create_task(self._pump_output(self.process))
        if spec.ready is not None:
            await self._wait_ready(spec.ready)
        self.state = State.READY

    async def _wait_ready(self, ready: Ready) -> None:
        assert self.process is not None
        exited = asyncio.ensure_future(self.process.wait())
        probe = asyncio.ensure_future(self._probe(ready))
        try:
            done, _ = await asyncio.wait({exited, probe}, timeout=ready.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (exited, probe):
                task.cancel()
            await asyncio.gather(exited, probe, return_exceptions=True)
        if probe in done and not probe.cancelled() and probe.exception() is None:
            self.launcher.note(self, f"ready ({ready.kind} {ready.target})")
            return
        if exited in done:
            raise ComponentGaveUp(f"{self.spec.name}: exited with code "
                                  f"{self.process.returncode} before it was ready")
        raise ComponentGaveUp(f"{self.spec.name}: not ready ({ready.kind} {ready.target}) "
                              f"within {ready.timeout:g} s")

    async def _probe(self, ready: Ready) -> None:
        if ready.kind == "line":
            await self._saw_ready_line.wait()
            return
        if ready.kind == "tcp":
            host, port = host_port(ready.target, self.spec.name)
            while True:
                try:
                    _, writer = await asyncio.open_connection(host, port)
                except OSError:
                    await asyncio.sleep(_POLL_SECONDS)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
        import aiohttp  # here, not above: `--call` children should not pay for it

        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    async with session.get(ready.target) as response:
                        if response.status < 400 and await self._answered_by_us(response):
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(_POLL_SECONDS)

    async def _answered_by_us(self, response: Any) -> bool:
        """False when the answer names another launch id: a different server holds the port.

        An answer without one (not JSON, or not a swergio-al server) cannot tell, so it counts.
        """
        try:
            body = await response.json(content_type=None)
        except ValueError:
            return True
        if not isinstance(body, dict) or "launch_id" not in body:
            return True
        return bool(body["launch_id"] == self.launch_id)

    async def _pump_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        ready = self.spec.ready
        while True:
            try:
                raw = await process.stdout.readline()
            except ValueError:  # longer than _LINE_LIMIT: asyncio has dropped it
                self.launcher.emit(self, f"[a line over {_LINE_LIMIT} bytes was dropped]")
                continue
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.launcher.emit(self, line)
            if ready is not None and ready.kind == "line" and ready.target in line:
                self._saw_ready_line.set()

    async def wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        if self._pump is not None:
            await self._pump
        self.returncode = code
        return code

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after stop_timeout; waits for the output to drain."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            self.state = State.STOPPING
            _signal(process, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self.spec.stop_timeout)
            except TimeoutError:
                self.launcher.note(self, f"did not stop within {self.spec.stop_timeout:g} s; "
                                         f"killing it")
                _signal(process, signal.SIGKILL)
                await process.wait()
        if self._pump is not None:
            await self._pump
        self.returncode = process.returncode
        self.state = State.EXITED
        self.launcher.note(self, f"stopped (code {process.returncode})")

    def backoff_seconds(self) -> float:
        return float(min(self.spec.backoff_max, self.spec.backoff * 2 ** (self.restarts - 1)))


def _signal(process: asyncio.subprocess.Process, signum: int) -> None:
    # The whole process group: a component's own children go too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the launcher itself dies (Linux only)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
