"""The components file that `swergio-al run` reads: parsing and validation, no processes.

Components are listed in start order::

    [settings]                # defaults for every component
    stop_timeout = 5          # seconds between SIGTERM and SIGKILL
    backoff = 0.5             # seconds before the first restart, doubling up to backoff_max

    [[component]]
    name = "server"
    module = "swergio_al.cli:main"        # or script = "world.py", or command = [...]
    args = ["serve", "--port", "8080"]
    env = { SWERGIO_AL_LOG_LEVEL = "WARNING" }
    ready = { http = "http://127.0.0.1:8080/healthz" }   # or tcp = "host:port", line = "text"

    [[component]]
    name = "world"
    script = "world.py"
    restart = "on-failure"     # "never" | "on-failure" (default) | "always"
    max_restarts = 3
    main = true                # when it exits, stop everything and exit with its code

Strings may use `${VAR}` or `${VAR:-default}`, filled from the launcher's
environment (e.g. `"--port", "${PORT:-8080}"`).
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESTART_POLICIES = ("never", "on-failure", "always")
READY_KINDS = ("tcp", "http", "line")


class LauncherConfigError(ValueError):
    """A components file that cannot be run; the message says where and why."""


@dataclass(frozen=True)
class Ready:
    kind: str  # one of READY_KINDS
    target: str
    timeout: float = 30.0


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    ready: Ready | None = None
    restart: str = "on-failure"
    max_restarts: int = 3
    backoff: float = 0.5
    backoff_max: float = 10.0
    stop_timeout: float = 5.0
    main: bool = False


def load_components(path: str | Path) -> list[ComponentSpec]:
    """Read and validate a components file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise LauncherConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LauncherConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_components(document, base=path.parent, source=str(path))


def parse_components(document: Mapping[str, Any], *, base: Path = Path("."),
                     source: str = "components",
                     environ: Mapping[str, str] | None = None) -> list[ComponentSpec]:
    document = _expand(document, os.environ if environ is None else environ, source)
    unknown = set(document) - {"settings", "component"}
    if unknown:
        raise LauncherConfigError(f"{source}: unknown top-level keys {sorted(unknown)}; "
                                  f"expected [settings] and [[component]]")
    settings = document.get("settings", {})
    if not isinstance(settings, dict):
        raise LauncherConfigError(f"{source}: [settings] must be a table")
    entries = document.get("component")
    if not isinstance(entries, list) or not entries:
        raise LauncherConfigError(f"{source}: no [[component]] entries")
    specs = [_parse_one(entry, i, settings, base, source) for i, entry in enumerate(entries)]
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LauncherConfigError(f"{source}: component names must be unique: {duplicates}")
    return specs


_COMPONENT_KEYS = {"name", "module", "script", "command", "args", "env", "cwd", "ready",
                   "restart", "max_restarts", "backoff", "backoff_max", "stop_timeout", "main"}
_DEFAULTED_KEYS = {"restart", "max_restarts", "backoff", "backoff_max", "stop_timeout"}


def _parse_one(entry: Any, index: int, settings: Mapping[str, Any], base: Path,
               source: str) -> ComponentSpec:
    where = f"{source}: component #{index + 1}"
    if not isinstance(entry, dict):
        raise LauncherConfigError(f"{where} must be a table")
    unknown = set(entry) - _COMPONENT_KEYS
    if unknown:
        raise LauncherConfigError(f"{where}: unknown keys {sorted(unknown)}; "
                                  f"valid keys are {sorted(_COMPONENT_KEYS)}")
    unknown = set(settings) - _DEFAULTED_KEYS
    if unknown:
        raise LauncherConfigError(f"{source}: unknown [settings] keys {sorted(unknown)}; "
                                  f"valid keys are {sorted(_DEFAULTED_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[\w.-]+", name):
        raise LauncherConfigError(f"{where}: 'name' must be letters, digits, '_', '.', '-'")
    where = f"{source}: component {name!r}"
    values = {**settings, **entry}
    args = _strings(entry.get("args", []), f"{where}: 'args'")
    argv = _argv(entry, args, base, where)
    env = entry.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str | int | float) for v in env.values()):
        raise LauncherConfigError(f"{where}: 'env' must be a table of strings")
    cwd = entry.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise LauncherConfigError(f"{where}: 'cwd' must be a string")
    restart = values.get("restart", "on-failure")
    if restart not in RESTART_POLICIES:
        raise LauncherConfigError(f"{where}: 'restart' must be one of {list(RESTART_POLICIES)}, "
                                  f"got {restart!r}")
    return ComponentSpec(
        name=name, argv=argv, env={str(k): str(v) for k, v in env.items()},
        cwd=str(base / cwd) if cwd is not None else None,
        ready=_ready(entry.get("ready"), where), restart=restart,
        max_restarts=_number(values, "max_restarts", 3, where, integer=True),
        backoff=_number(values, "backoff", 0.5, where),
        backoff_max=_number(values, "backoff_max", 10.0, where),
        stop_timeout=_number(values, "stop_timeout", 5.0, where),
        main=_flag(entry, "main", where))


_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _expand(value: Any, environ: Mapping[str, str], source: str) -> Any:
    """`${VAR}` / `${VAR:-default}` in every string of the document."""
    if isinstance(value, str):
        def fill(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is None:
                raise LauncherConfigError(f"{source}: ${{{name}}} is not set "
                                          f"(give a default: ${{{name}:-value}})")
            return default
        return _VARIABLE.sub(fill, value)
    if isinstance(value, dict):
        return {key: _expand(item, environ, source) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, environ, source) for item in value]
    return value


def _argv(entry: Mapping[str, Any], args: list[str], base: Path, where: str) -> tuple[str, ...]:
    given = [key for key in ("module", "script", "command") if key in entry]
    if len(given) != 1:
        raise LauncherConfigError(f"{where}: give exactly one of 'module' (package.module:callable"
                                  f" or package.module), 'script' (a .py path) or 'command' "
                                  f"(a list); got {given or 'none'}")
    kind = given[0]
    if kind == "command":
        command = _strings(entry["command"], f"{where}: 'command'")
        if not command:
            raise LauncherConfigError(f"{where}: 'command' must not be empty")
        return (*command, *args)
    value = entry[kind]
    if not isinstance(value, str) or not value:
        raise LauncherConfigError(f"{where}: '{kind}' must be a non-empty string")
    if kind == "script":
        script = base / value
        if not script.is_file():
            raise LauncherConfigError(f"{where}: script {str(script)!r} does not exist")
        return (sys.executable, str(script), *args)
    if not re.fullmatch(r"[\w.]+(:[\w.]+)?", value):
        raise LauncherConfigError(f"{where}: 'module' must look like package.module:callable "
                                  f"or package.module, got {value!r}")
    if ":" not in value:
        return (sys.executable, "-m", value, *args)
    return (sys.executable, "-m", "swergio_al.launcher", "--call", value, *args)


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise LauncherConfigError(f"{what} must be a list of strings")
    return [str(v) for v in value]


def _number(values: Mapping[str, Any], key: str, default: float, where: str, *,
            integer: bool = False) -> Any:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (
            integer and not isinstance(value, int)):
        kind = "a whole number" if integer else "a number"
        raise LauncherConfigError(f"{where}: '{key}' must be {kind} >= 0, got {value!r}")
    return value


def _flag(entry: Mapping[str, Any], key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise LauncherConfigError(f"{where}: '{key}' must be true or false")
    return value


def _ready(value: Any, where: str) -> Ready | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise LauncherConfigError(f"{where}: 'ready' must be a table, e.g. "
                                  f"{{ tcp = \"host:port\" }}")
    kinds = [k for k in READY_KINDS if k in value]
    unknown = set(value) - {*READY_KINDS, "timeout"}
    if len(kinds) != 1 or unknown:
        raise LauncherConfigError(f"{where}: 'ready' needs exactly one of {list(READY_KINDS)} "
                                  f"(and optionally 'timeout')")
    kind = kinds[0]
    target = value[kind]
    if not isinstance(target, str) or not target:
        raise LauncherConfigError(f"{where}: ready.{kind} must be a non-empty string")
    if kind == "tcp":
        host_port(target, where)
    if kind == "http" and not target.startswith(("http://", "https://")):
        raise LauncherConfigError(f"{where}: ready.http must be an http(s) URL, got {target!r}")
    return Ready(kind, target, _number(value, "timeout", 30.0, where))


def host_port(target: str, where: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise LauncherConfigError(f"{where}: ready.tcp must be host:port, got {target!r}")
    return host, int(port)
