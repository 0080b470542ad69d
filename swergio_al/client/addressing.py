"""Addressing: where a handler's answer goes, and which reply belongs to which request()."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterator

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
        self._waiting: dict[str, tuple[str, asyncio.Future[Message]]] = {}

    def open(self, outgoing: Message) -> asyncio.Future[Message]:
        """Expect a reply to `outgoing` (which has its ID and ROOT_ID set)."""
        root = str(outgoing[ROOT_ID])
        if root in self._waiting:
            raise ValueError(f"a request with ROOT_ID {root!r} is already waiting")
        reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[root] = (str(outgoing[ID]), reply)
        return reply

    def discard(self, outgoing: Message) -> None:
        self._waiting.pop(str(outgoing[ROOT_ID]), None)

    def claim(self, message: Message) -> bool:
        """Hand `message` to the request it answers; False if it answers none."""
        pending = self._waiting.get(str(message.get(ROOT_ID)))
        if pending is None or message.get(ID) == pending[0] or pending[1].done():
            return False
        pending[1].set_result(message)
        return True

    def refuse(self, request_id: object, error: BaseException) -> bool:
        """Fail the request whose message has ID `request_id`; False if none waits on it."""
        for sent_id, reply in self._waiting.values():
            if sent_id == request_id and not reply.done():
                reply.set_exception(error)
                return True
        return False

    def fail_all(self, error: BaseException) -> None:
        for reply in self._futures():
            if not reply.done():
                reply.set_exception(error)

    def _futures(self) -> Iterator[asyncio.Future[Message]]:
        return (reply for _, reply in self._waiting.values())
