"""Handlers and triggers: which registered handler a message fires, and where its answers go."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from swergio_al.client.addressing import address_response
from swergio_al.client.connection import Connection
from swergio_al.client.state import ComponentState, NotConnectedError, as_rooms
from swergio_al.protocol import ID, TO, TO_ROOM, TYPE, Message, MessageType

log = logging.getLogger(__name__)

Handler = Callable[[Message], Any]


@dataclass(eq=False)
class _Subscription:
    """One `on(...)` registration: what triggers it and where its answers go."""

    handler: Handler
    type_: str
    rooms: tuple[str, ...] | None
    respond_to: tuple[str, ...] | None
    response_type: str | None
    direct: bool
    concurrent: bool

    def matches_type(self, kind: str) -> bool:
        if self.type_ in ("*", kind):
            return True
        return self.type_.endswith("/*") and kind.startswith(self.type_[:-1])



class Handlers(Connection):
    """`on(...)` registrations and the dispatch of incoming messages to them."""

    @cached_property
    def _subscriptions(self) -> list[_Subscription]:  # created on first use: no __init__ here
        return []

    def on(self, type_: str, room: str | list[str] | None = None, *,
           respond_to: str | list[str] | None = None, response_type: str | None = None,
           direct: bool = True, concurrent: bool = False) -> Callable[[Handler], Handler]:
        """Register `handler(message)` for messages of TYPE `type_` (decorator).

        It fires for messages to one of `room` (any room when None) and, with
        `direct`, for messages addressed TO this component. `type_` may end in
        "/*" ("FEEDBACK/*") or be "*". What it returns (a dict, a list of dicts,
        or None) is sent: TYPE defaults to `response_type`, else the trigger's;
        an answer without its own TO_ROOM/TO goes to every `respond_to` room,
        else to the room the trigger came through, else TO the trigger's sender;
        ROOT_ID and MODEL_STATUS are copied from the trigger where missing.

        By default an async handler holds up the messages behind it until it
        returns; with `concurrent=True` each call runs in its own task (owned,
        cancelled on close) and the dispatcher moves on at once.
        """
        if not isinstance(type_, str) or not type_:
            raise ValueError(f"type_ must be a message TYPE such as 'DATA/TEXT', got {type_!r}")
        rooms = as_rooms(room)
        answers = as_rooms(respond_to)

        def register(handler: Handler) -> Handler:
            if not callable(handler):
                raise TypeError(f"handler must be callable, got {handler!r}")
            self._subscriptions.append(_Subscription(handler, type_, rooms, answers,
                                                     response_type, direct, concurrent))
            new_rooms = {r for r in (*(rooms or ()), *(answers or ())) if r not in self._rooms}
            self._rooms.update(new_rooms)
            if new_rooms and self._state not in (ComponentState.NEW, ComponentState.CLOSED):
                self._joins.add(self._spawn(self._join_rooms(sorted(new_rooms)), "join"))
            return handler

        return register

    async def _dispatch(self, message: Message) -> None:
        kind = message.get(TYPE)
        if not isinstance(kind, str):
            log.warning("%s: message without TYPE from server ignored", self.name)
            return
        handled = False
        for sub in list(self._subscriptions):
            if self._state is ComponentState.CLOSED:
                return
            if not self._triggers(sub, kind, message):
                continue
            handled = True
            if sub.concurrent:
                self._spawn(self._run_handler(sub, message), "handler")
            else:
                await self._run_handler(sub, message)
        if not handled and kind == MessageType.ERROR.value:
            log.warning("%s: server error %s: %s (ref %s)", self.name, message.get("CODE"),
                        message.get("MESSAGE"), message.get("REF"))

    async def _run_handler(self, sub: _Subscription, message: Message) -> None:
        try:
            result = sub.handler(message)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("%s: handler %s failed on %s %s", self.name,
                          getattr(sub.handler, "__qualname__", sub.handler), message.get(TYPE),
                          message.get(ID))
            return
        await self._send_responses(sub, message, result)

    def _triggers(self, sub: _Subscription, kind: str, message: Message) -> bool:
        if not sub.matches_type(kind):
            return False
        if kind == MessageType.ERROR.value:
            return True
        room = message.get(TO_ROOM)
        if room is not None and (sub.rooms is None or room in sub.rooms):
            return True
        # Direct: addressed to us and not reaching us through one of our rooms.
        return (sub.direct and message.get(TO) == self.name
                and (room is None or room not in self._rooms))

    async def _send_responses(self, sub: _Subscription, trigger: Message, result: Any) -> None:
        if result is None:
            return
        answers = [result] if isinstance(result, dict) else result
        if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
            log.error("%s: handler %s returned %s; expected a dict, a list of dicts or None",
                      self.name, getattr(sub.handler, "__qualname__", sub.handler),
                      type(result).__name__)
            return
        for answer in answers:
            for response in address_response(answer, trigger, own_name=self.name,
                                              own_rooms=self._rooms,
                                              response_type=sub.response_type,
                                              respond_to=sub.respond_to):
                try:
                    await self.send(response)
                except (ValueError, TypeError, NotConnectedError) as exc:
                    log.error("%s: response to %s not sent: %s", self.name, trigger.get(ID), exc)

