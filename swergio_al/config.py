"""Server configuration: one dataclass, filled from CLI flags and SWERGIO_AL_* variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

ENV_PREFIX = "SWERGIO_AL_"


@dataclass
class Config:
    """Everything `create_app` needs. Defaults are the embedded, single-process setup."""

    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    access_log: bool = False  # one INFO line per HTTP request (aiohttp's access log)

    # Relay
    max_frame_size: int = 1024 * 1024
    # Frames waiting for one slow receiver; past this the receiver is disconnected (1013).
    outbound_queue_size: int = 1024
    heartbeat_seconds: float = 30.0
    # A close handshake the peer does not finish in time (it stopped reading) is aborted.
    close_timeout_seconds: float = 5.0
    swergio_port: int | None = None  # TCP listener for swergio 0.0.2 clients

    # Backends
    broker: str = "memory://"
    store: str = "sqlite:///swergio_al.db"

    # Feedback
    feedback_prefix: str = "feedback"
    lease_seconds: float = 120.0
    prefetch: int = 2
    stats_interval_seconds: float = 0.5
    max_pending_per_model: int = 100_000
    # Share of each labeler's tasks that are gold questions, while any is left for them.
    gold_rate: float = 0.1
    # Folder whose images/audio GET /media/... serves read-only (None: the route answers 404).
    media_dir: str | None = None

    # Access control (empty = open; see docs/security.md)
    component_token: str = ""
    labeler_token: str = ""
    allowed_origins: list[str] = field(default_factory=list)

    # Abuse limits
    # Token bucket per connection: labelers and not-yet-registered clients get
    # `rate_per_second` (burst `rate_burst`); registered components get
    # `component_rate_per_second` (0 = unlimited: models stream fast, and on an
    # exposed server they hold the component token).
    rate_per_second: float = 50.0
    rate_burst: int = 200
    component_rate_per_second: float = 0.0
    max_rooms_per_connection: int = 256
    max_connections_per_ip: int = 4096

    shutdown_timeout_seconds: float = 5.0
    # Full garbage collections on a timer, not whenever Python decides (0: Python's
    # own pacing); see swergio_al/collector.py.
    full_gc_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Config:
        """Defaults, then `SWERGIO_AL_<FIELD>` variables, then explicit overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def redact_url(url: str) -> str:
    """`scheme://user:secret@host/...` → `scheme://user:***@host/...`, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***" if parts.username else ":***"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def _parse(f: dataclasses.Field[object], raw: str) -> object:
    kind = str(f.type)
    if kind == "bool":
        if raw.strip().lower() not in _BOOLEANS:
            raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected 1/0, true/false, "
                             f"yes/no or on/off")
        return _BOOLEANS[raw.strip().lower()]
    if kind.startswith("list"):
        return [part.strip() for part in raw.split(",") if part.strip()]
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:  # int('abc'): a message naming neither the variable nor the fix
        raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected a number") from None
    return raw


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False, "": False}
