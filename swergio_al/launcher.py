"""`swergio-al run components.toml`: start a set of components, keep them up, stop them in order.

Each component starts once the one before it is ready (a TCP port accepts, an
HTTP URL answers below 400, or a line appears in its output). Each start gets a
fresh launch id in `SWERGIO_AL_LAUNCH_ID`; an HTTP answer that names another
launch id (swergio-al's `/healthz` does) came from some other server on the
port, not from this child, and does not count as ready. A component that
exits unexpectedly is restarted after a backoff that doubles each time, up to
its limit; past the limit the launcher stops everything and exits non-zero.
Output is prefixed with the component's name, line by line. Ctrl-C or SIGTERM
stops the components in reverse order (SIGTERM, then SIGKILL after
`stop_timeout`); so does the exit of a `main` component. The file format is in
`swergio_al.components_file`; one component's process is run by
`swergio_al.supervised`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import io
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from swergio_al.components_file import (
    ComponentSpec,
    LauncherConfigError,
    Ready,
    load_components,
    parse_components,
)
from swergio_al.supervised import LAUNCH_ID_ENV, ComponentGaveUp, State, Supervised
from swergio_al.terminal import count

__all__ = ["LAUNCH_ID_ENV", "ComponentSpec", "Launcher", "LauncherConfigError", "Ready",
           "load_components", "parse_components", "run_file"]

_COLOURS = (36, 33, 35, 32, 34, 31)


class Launcher:
    """Runs components: start in order, supervise, stop in reverse order.

    >>> launcher = Launcher(load_components("components.toml"))  # doctest: +SKIP
    >>> exit_code = asyncio.run(launcher.run())                   # doctest: +SKIP
    """

    def __init__(self, specs: Sequence[ComponentSpec], *, out: TextIO | None = None,
                 colour: bool | None = None) -> None:
        self.specs = list(specs)
        self.out = out
        self.colour = colour
        self._stop_requested: asyncio.Event | None = None

    def stop(self) -> None:
        """Ask `run` to stop everything (safe from a signal handler on the loop)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def run(self, *, handle_signals: bool = True,
                  on_started: Callable[[], None] | None = None) -> int:
        """Run until done; `on_started` is called once every component is up and ready."""
        out = self.out or sys.stdout
        colour = out.isatty() if self.colour is None else self.colour
        self._out = out
        self._width = max(len("launcher"), *(len(spec.name) for spec in self.specs))
        self._stop_requested = asyncio.Event()
        self.components = [Supervised(spec, self, _COLOURS[i % len(_COLOURS)] if colour else None)
                           for i, spec in enumerate(self.specs)]
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, self.stop)
                    installed.append(signum)
        started: list[Supervised] = []
        watchers: dict[asyncio.Task[int], Supervised] = {}
        exit_code = 0
        try:
            for component in self.components:
                if self._stop_requested.is_set():
                    break
                if not await self._start_with_retries(component):
                    exit_code = 0 if self._stop_requested.is_set() else 1
                    break
                started.append(component)
                watchers[asyncio.create_task(component.wait())] = component
            else:
                if on_started is not None:
                    on_started()
                exit_code = await self._supervise(watchers)
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            for component in reversed(self.components):
                await component.stop()
            for signum in installed:
                loop.remove_signal_handler(signum)
        return exit_code

    async def _start_with_retries(self, component: Supervised) -> bool:
        """Start (and wait for ready) until it works; False past the limit or when stopping."""
        assert self._stop_requested is not None
        while True:
            starting = asyncio.ensure_future(component.start())
            stop = asyncio.ensure_future(self._stop_requested.wait())
            try:
                await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                await asyncio.gather(stop, return_exceptions=True)
            if not starting.done():  # Ctrl-C while it was getting ready
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                return False
            try:
                starting.result()
                return True
            except ComponentGaveUp as exc:
                self.note(component, str(exc).removeprefix(f"{component.spec.name}: "))
                await component.stop()
                if not await self._may_restart(component):
                    return False

    async def _may_restart(self, component: Supervised) -> bool:
        """Count a restart and sleep the backoff; False past the limit or when stopping."""
        assert self._stop_requested is not None
        if component.restarts >= component.spec.max_restarts:
            component.state = State.FAILED
            self.note(component, f"gave up after {count(component.restarts, 'restart')}")
            return False
        component.restarts += 1
        delay = component.backoff_seconds()
        component.state = State.BACKING_OFF
        self.note(component, f"restarting in {delay:.2g} s "
                             f"({component.restarts}/{component.spec.max_restarts})")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), delay)
        return not self._stop_requested.is_set()

    async def _supervise(self, watchers: dict[asyncio.Task[int], Supervised]) -> int:
        assert self._stop_requested is not None
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            while watchers:
                done, _ = await asyncio.wait({stop, *watchers},
                                             return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    self.note(None, "stopping")
                    return 0
                for task in done:
                    component = watchers.pop(task)
                    code = task.result()
                    self.note(component, f"exited with code {code}")
                    if component.spec.main:
                        return code
                    wanted = component.spec.restart == "always" or (
                        component.spec.restart == "on-failure" and code != 0)
                    if not wanted:
                        component.state = State.EXITED
                        continue
                    if not (await self._may_restart(component)
                            and await self._start_with_retries(component)):
                        return 0 if self._stop_requested.is_set() else 1
                    watchers[asyncio.create_task(component.wait())] = component
            return 0
        finally:
            stop.cancel()
            await asyncio.gather(stop, return_exceptions=True)

    # -- output ----------------------------------------------------------------------------

    def emit(self, component: Supervised, line: str) -> None:
        name = component.spec.name.ljust(self._width)
        prefix = (f"\x1b[{component.colour}m{name} |\x1b[0m" if component.colour is not None
                  else f"{name} |")
        self._write(f"{prefix} {line}\n")

    def note(self, component: Supervised | None, text: str) -> None:
        """The launcher's own lines, under the component they concern."""
        about = "" if component is None else f"{component.spec.name}: "
        self._write(f"{'launcher'.ljust(self._width)} | {about}{text}\n")

    def _write(self, text: str) -> None:
        try:
            self._out.write(text)
            self._out.flush()
        except (BrokenPipeError, ValueError):  # whoever read our output has gone; carry on
            self._out = io.StringIO()


def run_file(path: str | Path) -> int:
    """The `swergio-al run` command."""
    return asyncio.run(Launcher(load_components(path)).run())


# -- `python -m swergio_al.launcher --call module:callable args...` ---------------------------


def call_entry_point(target: str, args: Sequence[str]) -> int:
    """Run `module:callable` as a program: sys.argv holds the args; a coroutine is awaited."""
    module_name, _, attribute = target.partition(":")
    function: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        function = getattr(function, part)
    sys.argv = [target, *args]
    result = function()
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--call":
        sys.exit("usage: python -m swergio_al.launcher --call module:callable [args...]")
    sys.exit(call_entry_point(sys.argv[2], sys.argv[3:]))
