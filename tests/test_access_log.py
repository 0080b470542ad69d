"""The access log's redaction and the one-line log of malformed requests (issue 16).

tests/test_hostile_live.py checks the log file of a served process; these pin
the rules themselves, case by case.
"""

from __future__ import annotations

import logging
import sys
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.http_exceptions import InvalidURLError
from aiohttp.test_utils import make_mocked_request

from swergio_al.access_log import (
    REDACTED,
    MalformedRequestFilter,
    access_logger_for,
    redact_query,
    scrub,
)
from swergio_al.config import Config

SECRET = "s3cr3t-token_value"


@pytest.mark.parametrize(("target", "expected"), [
    ("/?token=abc", f"/?token={REDACTED}"),
    ("/dashboard?room=a&token=abc&kpi=k", f"/dashboard?room=a&token={REDACTED}&kpi=k"),
    ("/?TOKEN=abc", f"/?TOKEN={REDACTED}"),
    ("/?%74oken=abc", f"/?%74oken={REDACTED}"),  # the name as the browser decodes it
    ("/?x=1;token=abc", f"/?x=1&token={REDACTED}"),
    ("/?access_token=abc#frag", f"/?access_token={REDACTED}#frag"),
    ("/?tokens=abc&token", "/?tokens=abc&token"),  # another name; a name without value
    ("/label/feedback/a", "/label/feedback/a"),
    ("http://host:8080/?token=abc", f"http://host:8080/?token={REDACTED}"),
])
def test_secret_query_values_are_redacted(target: str, expected: str) -> None:
    assert redact_query(target) == expected


def test_configured_tokens_are_removed_anywhere_and_odd_text_is_escaped() -> None:
    encoded = SECRET.replace("-", "%2D")  # an encoding quote() would not produce
    assert redact_query(f"/x/{encoded}?a={encoded}&b=1#{SECRET}", [SECRET, ""]) == \
        f"{REDACTED}?a={REDACTED}&b=1#{REDACTED}"
    odd = "tok en/ü"
    line = f'GET /x?a=1 "{SECRET}" "{odd}" "{quote(odd, safe="")}"'
    assert scrub(line, [SECRET, odd]).count(REDACTED) == 3
    assert scrub("GET /\udcff\r\nforged line", []) == "GET /\\udcff\\r\\nforged line"


def test_the_logger_writes_no_token(caplog: pytest.LogCaptureFixture) -> None:
    config = Config(component_token=SECRET, labeler_token="lab-" + SECRET)
    request = make_mocked_request(
        "GET", f"/dashboard?token={SECRET}", headers={
            "Referer": f"http://h/?token=lab-{SECRET}", "User-Agent": f"agent {SECRET}"})
    logger = access_logger_for(config)(logging.getLogger("test.access"), "")
    with caplog.at_level(logging.INFO, "test.access"):
        logger.log(request, web.Response(text="ok"), 0.001)
    line = caplog.records[0].getMessage()
    assert SECRET not in line and f'"GET /dashboard?token={REDACTED} HTTP/1.1" 200' in line
    assert f'"http://h/?token={REDACTED}"' in line


def test_malformed_requests_are_one_line_without_the_request() -> None:
    try:
        raise InvalidURLError(f"Invalid char in url query:\n\n  b'GET /?token={SECRET}\\xff'")
    except InvalidURLError:
        record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1,
                                   "Error handling request from %s", ("127.0.0.1",),
                                   sys.exc_info())
    assert MalformedRequestFilter().filter(record)
    assert record.exc_info is None and record.levelno == logging.INFO
    message = record.getMessage()
    assert SECRET not in message and "\n" not in message
    assert message == ("refused a malformed HTTP request from 127.0.0.1: InvalidURLError "
                       "(Invalid char in url query)")
