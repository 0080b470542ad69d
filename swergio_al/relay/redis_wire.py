"""The Redis broker's wire format: one node's envelopes, batched into one pub/sub message.

A JSON header line, a newline, then the envelopes' texts back to back (each
frame exactly as local members received it, never parsed here):

    ["<origin node>", [[<seq>, "<kind>", room, to, exclude, <length>], ...]]\\n{...}{...}

Lengths count characters, so texts may contain anything, newlines included.
One header per batch, not per envelope: under load a node publishes hundreds
of envelopes per Redis message and decodes one JSON line for all of them.
No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

# Envelope kinds.
DELIVER = "d"  # a frame for local members (room and/or `to`)
TAKEOVER = "t"  # a newer connection on the origin node registered `to`
SIGNAL = "s"  # for services: topic in `to`, JSON data as the text
GONE = "g"  # `to` disconnected from the origin node

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Outgoing(NamedTuple):
    """One envelope as it travels: its place in the origin's sequence, kind and addressing."""

    seq: int
    kind: str
    room: str | None
    to: str | None
    exclude: str | None
    text: str


class MalformedBatch(ValueError):
    """A pub/sub message that is not a batch of envelopes (not ours, or damaged)."""


def encode_batch(origin: str, batch: Sequence[Outgoing]) -> str:
    header = _encode([origin, [[e.seq, e.kind, e.room, e.to, e.exclude, len(e.text)]
                               for e in batch]])
    return "\n".join((header, "".join(e.text for e in batch)))


def batch_origin(raw: str) -> str:
    """The sending node of a batch, read without decoding the rest (to skip one's own)."""
    # The header starts `["<origin>",`; node ids are hex, so no escapes in them.
    if raw.startswith('["'):
        end = raw.find('"', 2)
        if end > 2:
            return raw[2:end]
    raise MalformedBatch(f"no origin in {raw[:80]!r}")


def decode_batch(raw: str) -> tuple[str, list[Outgoing]]:
    """(origin, envelopes) of one message; MalformedBatch names what is wrong."""
    head, newline, body = raw.partition("\n")
    try:
        origin, rows = json.loads(head)
    except (ValueError, TypeError) as exc:
        raise MalformedBatch(f"bad header {head[:80]!r}") from exc
    if not (newline and isinstance(origin, str) and isinstance(rows, list)):
        raise MalformedBatch(f"bad header {head[:80]!r}")
    envelopes = []
    at = 0
    for row in rows:
        if not (isinstance(row, list) and len(row) == 6):
            raise MalformedBatch(f"bad envelope {row!r:.80}")
        seq, kind, room, to, exclude, length = row
        if not (isinstance(seq, int) and isinstance(kind, str) and isinstance(length, int)
                and all(v is None or isinstance(v, str) for v in (room, to, exclude))
                and 0 <= length <= len(body) - at):
            raise MalformedBatch(f"bad envelope {row!r:.80}")
        envelopes.append(Outgoing(seq, kind, room, to, exclude, body[at:at + length]))
        at += length
    if at != len(body):
        raise MalformedBatch(f"{len(body) - at} characters after the last envelope")
    return origin, envelopes
