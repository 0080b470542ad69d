"""A labeler written in Python: the same path through the server as a person in a browser.

    def answer(task):
        return "cat" if "whiskers" in task["content"] else "dog"

    labeler = Labeler("robot-1", "ws://127.0.0.1:8080/ws", answer, room="feedback/pets")
    async with labeler:
        await labeler.wait_acked(100)

`answer(task)` gets the DATA of a FEEDBACK/TASK (sample_id, kind, content,
question, answer schema, prediction, confidence, priority, task_id,
lease_expires) and returns the value, sync or async; returning `SKIP` passes
the task on to someone else.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any, Final

from swergio_al.client import Component
from swergio_al.protocol import DATA, ID, TO_ROOM, TYPE, Message, MessageType, Role, new_id


class _Skip:
    def __repr__(self) -> str:
        return "SKIP"


#: Return this from `answer` to skip a task (it goes to another labeler).
SKIP: Final = _Skip()

AnswerFunction = Callable[[dict[str, Any]], Any]


class Labeler:
    """Joins feedback rooms as a labeler and answers every task it is given.

    Counters: `acked` (labels the server committed), `skipped`, `refused`
    (labels the server answered with ERROR, e.g. after a lease ran out).

    A label stays unconfirmed until its ACK arrives; after a reconnect every
    unconfirmed label is sent again (the server answers a repeat with the
    original ACK), so an ACK lost with a crashed server is recovered.
    """

    def __init__(self, name: str, url: str, answer: AnswerFunction, *,
                 room: str | list[str] = "feedback", token: str | None = None,
                 **component_options: Any) -> None:
        self.name = name
        self.url = url
        self.answer = answer
        self.room = room
        self.token = token
        self.component_options = component_options
        self.acked = 0
        self.skipped = 0
        self.refused = 0
        self.component: Component | None = None
        self._changed: asyncio.Condition | None = None
        self._unconfirmed: dict[str, Message] = {}  # task_id -> the label sent for it

    async def start(self) -> None:
        """Connect, register as labeler and join the room(s); tasks start arriving."""
        if self.component is not None:
            raise RuntimeError(f"labeler {self.name} is already started")
        self._changed = asyncio.Condition()
        component = Component(self.name, self.url, role=Role.LABELER.value, token=self.token,
                              **self.component_options)
        component.on(MessageType.FEEDBACK_TASK.value, room=self.room)(self._on_task)
        component.on(MessageType.FEEDBACK_ACK.value, room=self.room)(self._on_ack)
        component.on(MessageType.ERROR.value)(self._on_error)
        component.on_connect(self._resend)
        self.component = component
        await component.connect()

    async def close(self) -> None:
        if self.component is not None:
            await self.component.close()

    async def __aenter__(self) -> Labeler:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_acked(self, count: int, timeout: float = 30.0) -> None:
        """Wait until `count` labels have been acknowledged in total."""
        if self._changed is None:
            raise RuntimeError(f"labeler {self.name} is not started")
        changed = self._changed
        async with asyncio.timeout(timeout), changed:
            await changed.wait_for(lambda: self.acked >= count)

    async def wait_confirmed(self, timeout: float = 30.0) -> None:
        """Wait until every label sent has been acknowledged (or refused for good)."""
        if self._changed is None:
            raise RuntimeError(f"labeler {self.name} is not started")
        changed = self._changed
        async with asyncio.timeout(timeout), changed:
            await changed.wait_for(lambda: not self._unconfirmed)

    async def _on_task(self, message: Message) -> Message | None:
        task = message.get(DATA) or {}
        began = time.monotonic()
        value = self.answer(task)
        if inspect.isawaitable(value):
            value = await value
        if value is SKIP:
            self.skipped += 1
            return {TYPE: MessageType.FEEDBACK_SKIP.value, DATA: {"task_id": task["task_id"]}}
        label = {ID: new_id(), TYPE: MessageType.FEEDBACK_LABEL.value,
                 TO_ROOM: message[TO_ROOM],
                 DATA: {"task_id": task["task_id"], "answer": value,
                        "seconds": round(time.monotonic() - began, 6)}}
        self._unconfirmed[task["task_id"]] = label
        assert self.component is not None
        await self.component.send(label)
        return None

    async def _on_ack(self, message: Message) -> None:
        task_id = (message.get(DATA) or {}).get("task_id")
        if isinstance(task_id, str) and self._unconfirmed.pop(task_id, None) is not None:
            self.acked += 1  # a repeated ACK (for a label sent again) counts once
            await self._notify()

    async def _on_error(self, message: Message) -> None:
        ref = message.get("REF")
        for task_id, label in list(self._unconfirmed.items()):
            if label[ID] == ref:  # refused for good (e.g. the lease ran out meanwhile)
                del self._unconfirmed[task_id]
        self.refused += 1
        await self._notify()

    async def _resend(self) -> None:
        assert self.component is not None
        for label in list(self._unconfirmed.values()):
            await self.component.send(label)

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()
