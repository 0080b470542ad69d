"""What the hostile-input tests (issue 16) share: a client whose every received frame
must be strict JSON, the test's own idea of unsafe strings and overflowing numbers,
and the hypothesis strategies that generate them."""

from __future__ import annotations

import itertools
import json
from typing import Any

import aiohttp
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.helpers import RawClient

Message = dict[str, Any]
HOLE = "\x01HOLE\x01"  # where a generated value goes in a message template
NEVER = {"bad_string", "bad_number", "internal_error"}  # codes clean input must never get
serial = itertools.count()

# No shrinking: the servers are live state, so a replayed example meets another
# server than the first time; a failing example is reported as generated.
LIVE = settings(deadline=None, database=None, phases=[Phase.generate],
                suppress_health_check=list(HealthCheck), report_multiple_bugs=False)


# -- what clients may receive: strict JSON only ------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} in a frame from the server")


def strict_loads(text: str) -> Any:
    """json.loads that refuses NaN/Infinity, and strings a UTF-8 encoder cannot take."""
    value = json.loads(text, parse_constant=_refuse_constant)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # a lone surrogate raises
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            assert item - item == 0.0, f"non-finite number in {text[:200]!r}"
    return value


def unsafe(value: Any) -> bool:
    """Whether a decoded value holds U+0000 or a lone surrogate anywhere (the test's own walk)."""
    if isinstance(value, str):
        return any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(unsafe(k) or unsafe(v) for k, v in value.items())
    if isinstance(value, list):
        return any(unsafe(v) for v in value)
    return False


class Client(RawClient):
    """A RawClient whose every received frame must be strict JSON."""

    frames = 0

    async def recv(self, timeout: float = 10.0) -> Message:
        frame = await self.ws.receive(timeout=timeout)
        if frame.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"{self.name}: {frame.type.name} {frame.data!r}")
        Client.frames += 1
        message: Message = strict_loads(frame.data)
        return message

    async def settle(self, timeout: float = 15.0) -> list[Message]:
        """Round trip; the frames that came before it (a registered client messages
        itself, an unregistered one gets not_registered naming the marker)."""
        marker = f"settle-{next(serial)}"
        if self.name is not None:
            await self.send({"ID": marker, "TYPE": "DATA/CUSTOM", "TO": self.name})
        else:
            await self.send({"ID": marker, "TYPE": "DATA/CUSTOM", "TO_ROOM": "nowhere"})
        got: list[Message] = []
        while True:
            message = await self.recv(timeout)
            if marker in (message.get("ID"), message.get("REF")):
                return got
            got.append(message)

    async def settle_or_close(self) -> tuple[list[Message], int | None]:
        """Like `settle` for a client that may have been closed: (frames, close code or None).
        The marker asks for an ERROR naming it, whatever the client's role or name."""
        marker = f"settle-{next(serial)}"
        await self.send({"ID": marker, "TYPE": "DATA/CUSTOM", "TO_ROOM": "nowhere"})
        got: list[Message] = []
        while True:
            frame = await self.ws.receive(timeout=15)
            if frame.type is not aiohttp.WSMsgType.TEXT:
                return got, (int(frame.data) if frame.type is aiohttp.WSMsgType.CLOSE
                             else self.ws.close_code)
            message = strict_loads(frame.data)
            if message.get("REF") == marker:
                return got, None
            got.append(message)

    async def closed_with(self, timeout: float = 10.0) -> int | None:
        """Read until the server closes us; its close code (frames before must be strict)."""
        while True:
            frame = await self.ws.receive(timeout=timeout)
            if frame.type is aiohttp.WSMsgType.TEXT:
                strict_loads(frame.data)
                continue
            return self.ws.close_code if frame.type is not aiohttp.WSMsgType.CLOSE \
                else int(frame.data)


async def connect(url: str, name: str | None = None, *, role: str = "component",
                  token: str | None = None, rooms: tuple[str, ...] = ()) -> Client:
    session = aiohttp.ClientSession()
    client = Client(await session.ws_connect(url), session)
    if name is not None:
        register: Message = {"TYPE": "COMMAND/REGISTER", "NAME": name, "ROLE": role}
        if token is not None:
            register["TOKEN"] = token
        await client.send(register)
        client.name = name
    for room in rooms:
        await client.send({"TYPE": "COMMAND/JOINROOM", "ROOM": room})
    return client


def errors(frames: list[Message]) -> list[tuple[str, Any]]:
    return [(f["CODE"], f["REF"]) for f in frames if f.get("TYPE") == "ERROR"]


def fill(template: Any, value: Any) -> Any:
    """`template` with HOLE (as a value or a key) replaced by `value`."""
    if template == HOLE:
        return value
    if isinstance(template, dict):
        return {(value if k == HOLE else k): fill(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, value) for v in template]
    return template


# -- generated values ---------------------------------------------------------

# Characters that break things: U+0000, lone surrogates, non-BMP, line breaks, quotes,
# CSV delimiters and the starts of spreadsheet formulas.
_specials = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\U0001f600",
                             "\U0010ffff", "\ufffe", "é", "\r", "\n", "\r\n", '"', "\\", ",",
                             "=", "+", "-", "@", "\t", "'"])
hostile_text = st.lists(_specials | st.characters(), max_size=8).map("".join)
clean_text = hostile_text.filter(lambda s: not unsafe(s))

number_literals = st.one_of(
    st.integers().map(str),
    st.integers(2**1023, 10**400).flatmap(lambda n: st.sampled_from([str(n), f"-{n}"])),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.builds("{}e{}".format, st.integers(-9, 9), st.integers(300, 99_999)),
    st.builds("-{}E+{}".format, st.integers(1, 9), st.integers(305, 400)),
    st.integers(300, 320).map(lambda k: "1" + "0" * k + ".5"),
    st.sampled_from(["1.7976931348623157e308", "1.7976931348623159e308", "2e308", "-1e309",
                     "1e-400", "-0.0", "0e99999", "4.9e-324"]),
)


def overflows(literal: str) -> bool:
    """The test's own rule: a float literal (., e or E) that no double can hold."""
    return any(c in literal for c in ".eE") and abs(float(literal)) == float("inf")
