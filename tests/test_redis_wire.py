"""The Redis broker's batch format, without Redis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swergio_al.relay.redis_wire import (
    DELIVER,
    GONE,
    SIGNAL,
    TAKEOVER,
    MalformedBatch,
    Outgoing,
    batch_origin,
    decode_batch,
    encode_batch,
)

names = st.none() | st.text(max_size=20)
envelopes = st.builds(Outgoing, seq=st.integers(min_value=1, max_value=2**53),
                      kind=st.sampled_from([DELIVER, TAKEOVER, SIGNAL, GONE]), room=names,
                      to=names, exclude=names, text=st.text(max_size=200))


@given(st.lists(envelopes, max_size=20))
def test_a_batch_decodes_to_exactly_what_was_encoded(batch: list[Outgoing]) -> None:
    raw = encode_batch("0123456789ab", batch)
    assert decode_batch(raw) == ("0123456789ab", batch)
    assert batch_origin(raw) == "0123456789ab"


@pytest.mark.parametrize("raw", [
    "", "no header", "[1, 2]\n{}", '["x", [[1, "d", null, null, null, 2]]]',  # no newline
    '["x", [["seq", "d", null, null, null, 2]]]\n{}',
    '["x", [[1, "d", "r", null, null, 99]]]\n{}',  # longer than the body
    '["x", [[1, "d", "r", null, null, 1]]]\n{}',  # text left over
    '["x", [[1, "d", 5, null, null, 2]]]\n{}',  # a room that is not a string
    '["x", [[1, "d", null, null]]]\n{}', '["x", {"not": "a list"}]\n',
])
def test_anything_else_is_malformed(raw: str) -> None:
    with pytest.raises(MalformedBatch):
        decode_batch(raw)


def test_origin_of_garbage_is_malformed() -> None:
    with pytest.raises(MalformedBatch):
        batch_origin("garbage")
