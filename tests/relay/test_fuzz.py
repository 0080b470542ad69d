"""Hypothesis against the envelope: no value in any field breaks a connection or the server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swergio_al.protocol import MessageType
from tests.helpers import RawClient
from tests.relay.support import (
    Message,
    exchange,
    ws_url_of,
)

_ANY_JSON = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
# Values that have broken envelope handling elsewhere: wrong types, empty, unhashable.
_NASTY = st.sampled_from([None, True, False, 0, -1, 2**70, 1.5, "", " ", "\x00", [], ["r"],
                          {}, {"r": 1}, "x" * 300])
_GARBAGE = st.one_of(_NASTY, _ANY_JSON)
_TYPES = sorted(t.value for t in MessageType
                if t not in (MessageType.REGISTER, MessageType.DISCONNECT))
# A plausible message, then one envelope field replaced by any JSON value (or removed):
# every field meets every kind of value, and the rest of the message stays valid
# often enough to reach the code behind the validation.
_PLAUSIBLE = st.fixed_dictionaries({
    "ID": st.text(max_size=8),
    "TYPE": st.sampled_from(_TYPES),
    "TO_ROOM": st.sampled_from(["r", "pair", "other", "_command", "_logging", "feedback/fuzz"]),
}, optional={
    "TO": st.sampled_from(["fuzz", "p1", "ghost"]),
    "ROOM": st.sampled_from(["r", "other", "_command", "_logging", "feedback/fuzz"]),
    "ROOT_ID": st.text(max_size=8),
    "MODEL_STATUS": st.sampled_from([1, 2]),
    "DATA": _ANY_JSON,
})
_FIELDS = ["ID", "TYPE", "TO_ROOM", "TO", "ROOM", "ROOT_ID", "MODEL_STATUS", "SENT_BY", "NAME"]


def _mutate(base: Message, field: str, value: object, remove: bool) -> Message:
    message = dict(base)
    if remove:
        message.pop(field, None)
    else:
        message[field] = value
    return message


_ENVELOPES = st.builds(_mutate, _PLAUSIBLE, st.sampled_from(_FIELDS), _GARBAGE,
                       st.sampled_from([False, False, False, True]))
_FRAMES = st.one_of(*[_ENVELOPES.map(json.dumps)] * 6, st.text(max_size=40),
                    st.binary(max_size=40))


@pytest.fixture
async def fuzz_clients(server: TestServer) -> AsyncIterator[tuple[RawClient, ...]]:
    """One set of clients for all examples: state piles up as it would in a long session."""
    url = ws_url_of(server)
    clients = (await RawClient.connect(url, "fuzz", rooms=("r",)),
               await RawClient.connect(url, "p1", rooms=("pair",)),
               await RawClient.connect(url, "p2", rooms=("pair",)))
    yield clients
    for client in clients:
        await client.close()


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(_FRAMES, min_size=1, max_size=5))
async def test_no_envelope_breaks_the_connection_or_the_server(
        fuzz_clients: tuple[RawClient, ...], frames: list[str | bytes]) -> None:
    """Whatever the envelope holds, the sender's connection keeps working (it gets
    ERRORs or its message is relayed) and so does everyone else's."""
    fuzz, p1, p2 = fuzz_clients
    for frame in frames:
        if isinstance(frame, bytes):
            await fuzz.ws.send_bytes(frame)
        else:
            await fuzz.ws.send_str(frame)
    await fuzz.sync()  # still registered, still answered
    await exchange(p1, p2, "pair")
