"""The client's addressing rules without a server: which reply settles which request(), and
where a handler's answer goes, for any message the reader may hand over."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swergio_al.client.addressing import PendingReplies, address_response

Message = dict[str, Any]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
# Besides anything, the values the rules below look for: our own IDs, our ROOT_ID, the TYPEs.
envelopes = st.fixed_dictionaries({}, optional={
    "ID": json_scalars | st.sampled_from(["f1", "f2"]),
    "ROOT_ID": json_scalars | st.just("root"),
    "TYPE": json_scalars | st.sampled_from(["DATA/FORWARD", "DATA/GRADIENT"]),
    "TO": json_scalars, "TO_ROOM": json_scalars, "SENT_BY": json_scalars,
    "MODEL_STATUS": json_scalars, "DATA": json_scalars})


@given(st.lists(envelopes, max_size=20))
def test_only_a_reply_of_the_expected_type_with_the_root_id_settles_a_request(
        incoming: list[Message]) -> None:
    async def check() -> None:
        pending = PendingReplies()
        sent = {"ID": "f1", "ROOT_ID": "root", "TYPE": "DATA/FORWARD"}
        reply = pending.open(sent, "DATA/GRADIENT")
        pending.resent({**sent, "ID": "f2"})
        for message in incoming:  # whatever arrives, nothing raises
            settles = (not reply.done() and message.get("ROOT_ID") == "root"
                       and message.get("TYPE") == "DATA/GRADIENT"
                       and message.get("ID") not in ("f1", "f2"))
            assert pending.claim(message) == settles
        gradient = {"ID": "g", "ROOT_ID": "root", "TYPE": "DATA/GRADIENT"}
        if not reply.done():
            assert pending.claim(gradient)
        assert reply.done()
        assert not pending.claim(gradient)  # settled once; later copies go to the handlers
        pending.discard(sent)
        assert not pending.refuse("f2", RuntimeError("late"))

    asyncio.run(check())


def test_an_error_about_a_resent_copy_fails_the_request() -> None:
    async def check() -> None:
        pending = PendingReplies()
        sent = {"ID": "f1", "ROOT_ID": "root"}
        reply = pending.open(sent)
        pending.resent({**sent, "ID": "f2"})
        assert not pending.refuse("other", RuntimeError("not ours"))
        assert pending.refuse("f2", RuntimeError("refused"))
        assert isinstance(reply.exception(), RuntimeError)

    asyncio.run(check())


@given(envelopes, envelopes, st.lists(st.text(min_size=1), max_size=3) | st.none())
def test_an_answer_keeps_its_own_address_else_follows_the_trigger(
        answer: Message, trigger: Message, respond_to: list[str] | None) -> None:
    rooms = frozenset({"in"})
    out = address_response(answer, trigger, own_name="me", own_rooms=rooms,
                           response_type="DATA/GRADIENT",
                           respond_to=tuple(respond_to) if respond_to is not None else None)
    for response in out:
        for key in ("ROOT_ID", "MODEL_STATUS"):  # copied from the trigger where missing
            if key in answer:
                assert response[key] == answer[key]
            elif key in trigger:
                assert response[key] == trigger[key]
        assert response["TYPE"] == answer.get("TYPE", "DATA/GRADIENT")
    if "TO" in answer or "TO_ROOM" in answer:
        assert [{k: r.get(k) for k in ("TO", "TO_ROOM")} for r in out] == [
            {"TO": answer.get("TO"), "TO_ROOM": answer.get("TO_ROOM")}]
    elif respond_to is not None:
        assert [r["TO_ROOM"] for r in out] == respond_to
    elif trigger.get("TO_ROOM") in rooms:
        assert [r["TO_ROOM"] for r in out] == ["in"]
    elif trigger.get("SENT_BY"):
        assert [r["TO"] for r in out] == [trigger["SENT_BY"]]
    else:
        assert out == []
