"""Addressing: where a handler's answer goes, and which reply belongs to which request()."""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass

from swergio_al.protocol import ID, MODEL_STATUS, ROOT_ID, SENT_BY, TO, TO_ROOM, TYPE, Message

log = logging.getLogger(__name__)


def address_response(answer: Message, trigger: Message, *, own_name: str,
                     own_rooms: set[str] | frozenset[str], response_type: str | None,
                     respond_to: tuple[str, ...] | None) -> list[Message]:
    """The messages that carry a handler's `answer` to `trigger` (see `Component.on`)."""
    response = dict(answer)
    response.setdefault(TYPE, response_type or trigger.get(TYPE))
    for key in (ROOT_ID, MODEL_STATUS):
        if key in trigger and key not in response:
            response[key] = trigger[key]
    if TO_ROOM in response or TO in response:
        return [response]
    if respond_to is not None:
        return [{**copy.deepcopy(response), TO_ROOM: room} for room in respond_to]
    if trigger.get(TO_ROOM) in own_rooms:
        return [{**response, TO_ROOM: trigger[TO_ROOM]}]
    if trigger.get(SENT_BY):
        return [{**response, TO: trigger[SENT_BY]}]
    log.warning("%s: no destination for the response to %s; dropped", own_name, trigger.get(ID))
    return []


class PendingReplies:
    """Requests waiting for their reply, by ROOT_ID; the reader settles them before dispatch."""

    def __init__(self) -> None:
        self._waiting: dict[str, _Pending] = {}

    def open(self, outgoing: Message, expect: str | None = None) -> asyncio.Future[Message]:
        """Expect a reply to `outgoing` (which has its ID and ROOT_ID set), of TYPE `expect`
        when given."""
        root = str(outgoing[ROOT_ID])
        if root in self._waiting:
            raise ValueError(f"a request with ROOT_ID {root!r} is already waiting")
        pending = _Pending({str(outgoing[ID])}, expect,
                           asyncio.get_running_loop().create_future())
        self._waiting[root] = pending
        return pending.reply

    def resent(self, outgoing: Message) -> None:
        """`outgoing` went out again under a new ID; errors about that ID fail the request."""
        self._waiting[str(outgoing[ROOT_ID])].sent_ids.add(str(outgoing[ID]))

    def discard(self, outgoing: Message) -> None:
        self._waiting.pop(str(outgoing[ROOT_ID]), None)

    def claim(self, message: Message) -> bool:
        """Hand `message` to the request it answers; False if it answers none."""
        pending = self._waiting.get(str(message.get(ROOT_ID)))
        if (pending is None or pending.reply.done() or message.get(ID) in pending.sent_ids
                or (pending.expect is not None and message.get(TYPE) != pending.expect)):
            return False
        pending.reply.set_result(message)
        return True

    def refuse(self, request_id: object, error: BaseException) -> bool:
        """Fail the request whose message has ID `request_id`; False if none waits on it."""
        for pending in self._waiting.values():
            if request_id in pending.sent_ids and not pending.reply.done():
                pending.reply.set_exception(error)
                return True
        return False

    def fail_all(self, error: BaseException) -> None:
        for pending in self._waiting.values():
            if not pending.reply.done():
                pending.reply.set_exception(error)


@dataclass(eq=False)
class _Pending:
    sent_ids: set[str]
    expect: str | None  # only a reply of this TYPE settles the request
    reply: asyncio.Future[Message]
