"""An example run through `swergio-al run` in its own process, read line by line as it goes."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import free_port

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def example_function(example: str, module: str, name: str) -> Callable[..., Any]:
    """`name` from an example's own module (its folder on sys.path only while importing,
    as the example's processes run it), for baselines computed in the test."""
    folder = str(EXAMPLES / example)
    sys.path.insert(0, folder)
    try:
        function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    finally:
        sys.path.remove(folder)
    return function


class LaunchedExample:
    """The launcher with an example's components.toml on a free port; its output kept."""

    def __init__(self, name: str, tmp_path: Path, **variables: str) -> None:
        self.path = EXAMPLES / name / "components.toml"
        self.port = free_port()
        self.env = {**os.environ, "PORT": str(self.port),
                    "STORE": f"sqlite:///{tmp_path / (name + '.db')}", **variables}
        self.lines: list[str] = []
        self._seen = 0  # lines already looked at by wait_for
        self._process: asyncio.subprocess.Process | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def __aenter__(self) -> LaunchedExample:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "swergio_al.cli", "run", str(self.path), env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True, limit=1 << 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self._process
        assert process is not None
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)  # the launcher stops its components
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()

    async def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line from here on matching `pattern` (a regex searched in each line)."""
        assert self._process is not None and self._process.stdout is not None
        regex = re.compile(pattern)
        async with asyncio.timeout(timeout):
            while True:
                while self._seen < len(self.lines):
                    line = self.lines[self._seen]
                    self._seen += 1
                    found = regex.search(line)
                    if found:
                        return found
                raw = await self._process.stdout.readline()
                if not raw:
                    raise AssertionError(f"the launcher ended before {pattern!r}:\n{self.output}")
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    async def summary(self, component: str, timeout: float) -> dict[str, Any]:
        """The JSON line the example's main component prints at the end."""
        try:
            found = await self.wait_for(rf"^{component} +\| (\{{.*\}})$", timeout)
        except TimeoutError:
            raise AssertionError(f"no summary within {timeout}s:\n{self.output}") from None
        result: dict[str, Any] = json.loads(found.group(1))
        return result

    async def exit_code(self, timeout: float) -> int:
        assert self._process is not None and self._process.stdout is not None
        async with asyncio.timeout(timeout):
            self.lines.extend(line.decode(errors="replace").rstrip("\n")
                              for line in (await self._process.stdout.read()).splitlines())
            return await self._process.wait()

    def stopped_cleanly(self) -> bool:
        """Every component the launcher stopped ended by itself on SIGTERM, exit code 0."""
        stops = [line for line in self.lines if re.search(r"launcher +\| .*: stopped", line)]
        return bool(stops) and all(line.endswith("(code 0)") for line in stops)

    @property
    def output(self) -> str:
        return "\n".join(self.lines[-60:])
