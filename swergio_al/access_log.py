"""The HTTP access log, with every secret taken out before a line is written.

Pages take a token once in their URL (`/?token=...`, `/dashboard?token=...`)
and /api accepts `?token=`, so aiohttp's own access log would write tokens
into log files. This logger writes the same facts (client, time, request
line, status, size, referrer, user agent) with the value of every query
parameter named like a token replaced, and any configured token removed
wherever else it appears. Used by `swergio-al serve` whenever access logging
is on (see docs/security.md), with a filter that keeps aiohttp from writing a
traceback (and the raw request line) for every malformed request.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from swergio_al.config import Config

REDACTED = "[redacted]"
# Query parameters whose values are secrets, compared after percent-decoding, any case.
SECRET_PARAMETERS = frozenset({"token", "access_token", "auth", "authorization", "key",
                               "password", "secret"})


def redact_query(target: str, secrets: Iterable[str] = ()) -> str:
    """`target` (a path with a query, or a whole URL) with secret parameter values
    replaced, and any part that spells one of `secrets`, however percent-encoded."""
    secrets = [secret for secret in secrets if secret]

    def holds_secret(text: str) -> bool:
        decoded = unquote(text.replace("+", " "))
        return any(secret in decoded for secret in secrets)

    path, mark, rest = target.partition("?")
    if holds_secret(path):
        path = REDACTED
    if not mark:
        return path
    query, hash_mark, fragment = rest.partition("#")
    fields = []
    for field in query.replace(";", "&").split("&"):
        name, equals, value = field.partition("=")
        if equals and (unquote(name.replace("+", " ")).strip().lower() in SECRET_PARAMETERS
                       or holds_secret(value)):
            field = f"{name}={REDACTED}"
        elif holds_secret(field):
            field = REDACTED
        fields.append(field)
    if holds_secret(fragment):
        fragment = REDACTED
    return f"{path}?{'&'.join(fields)}{hash_mark}{fragment}"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` without any of `secrets` (as written and percent-encoded), printable in a log."""
    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                text = text.replace(form, REDACTED)
    # A request line may hold control characters or bytes that are not UTF-8
    # (surrogate escapes): escaped, they can neither forge a line nor break the log file.
    return text.encode("unicode_escape" if not text.isprintable() else "utf-8",
                       "backslashreplace").decode("utf-8", "backslashreplace")


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp's access log line (its default format) with secrets removed.

    Use `access_logger_for(config)`: the configured tokens are removed from
    anywhere in the line too (generated tokens included).
    """

    config: Config | None = None

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        config = self.config
        secrets = (config.component_token, config.labeler_token) if config else ()
        target = redact_query(request.raw_path, secrets)
        referer = redact_query(request.headers.get("Referer", "-"), secrets)
        agent = request.headers.get("User-Agent", "-")
        when = datetime.datetime.now(datetime.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        line = (f'{request.remote or "-"} [{when}] '
                f'"{request.method} {target} HTTP/{request.version.major}.'
                f'{request.version.minor}" {response.status} {response.body_length} '
                f'"{referer}" "{agent}" {time:.6f}s')
        self.logger.info("%s", scrub(line, secrets))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def access_logger_for(config: Config) -> type[RedactingAccessLogger]:
    """The access logger class to give aiohttp (`access_log_class=`) for a server of `config`."""
    return type("ConfiguredAccessLogger", (RedactingAccessLogger,), {"config": config})


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs every request it cannot parse (a bad byte in the request line, a broken
    header) as ERROR with a traceback that quotes the raw request line, token and all.
    It is a client's mistake, answered 400: one line, with the reason only."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = str(exc.message).split(":", 1)[0].splitlines()[0] if exc.message else ""
            record.msg = "refused a malformed HTTP request from %s: %s (%s)"
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "-"
            record.args = (remote, type(exc).__name__, reason[:80])
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
        return True


def access_log_options(config: Config) -> dict[str, Any]:
    """The access-log keywords for aiohttp's `web.run_app` / `web.AppRunner` serving
    `config` (serve and the label command's embedded server): the redacting logger,
    writing only when access logging is on (at INFO it would drown what the server has
    to say); malformed requests are quieted too."""
    quiet_malformed_requests()
    return {"access_log": logging.getLogger("aiohttp.access") if config.access_log else None,
            "access_log_class": access_logger_for(config)}


def quiet_malformed_requests() -> None:
    """Install MalformedRequestFilter on aiohttp's server logger (once per process)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())
