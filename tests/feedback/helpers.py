"""Message builders for feedback tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from swergio_al.feedback.records import FeedbackRequest
from tests.helpers import Message, RawClient

ROOM = "feedback/test"
CHOICE = {"type": "choice", "choices": ["cat", "dog"]}


def request_message(sample_id: Any, *, priority: float = 0.0, room: str = ROOM,
                    answer: dict[str, Any] | None = None, **data: Any) -> Message:
    return {"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": room,
            "DATA": {"sample_id": sample_id, "kind": "text", "content": f"sample {sample_id}",
                     "question": "cat or dog?", "answer": answer or CHOICE,
                     "priority": priority, **data}}


def label_message(task_id: str, answer: Any, *, room: str = ROOM, seconds: float = 1.0) -> Message:
    return {"TYPE": "FEEDBACK/LABEL", "TO_ROOM": room,
            "DATA": {"task_id": task_id, "answer": answer, "seconds": seconds}}


def feedback(kind: str, room: str = ROOM, **data: Any) -> Message:
    return {"TYPE": f"FEEDBACK/{kind}", "TO_ROOM": room, "DATA": data}


def make_request(sample_id: Any, *, room: str = ROOM, requester: str = "model",
                 priority: float = 0.0, overlap: int = 1,
                 answer: dict[str, Any] | None = None) -> FeedbackRequest:
    return FeedbackRequest(room=room, sample_id=sample_id, requester=requester,
                           answer=answer or CHOICE, content={"text": f"s{sample_id}"},
                           priority=priority, overlap=overlap)


class Peer:
    """A RawClient that keeps the frames a test is not waiting for yet.

    `RawClient.expect` drops what does not match; a feedback test often waits
    for an ERROR while a TASK is on its way, and must not lose the TASK.
    """

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.name = client.name
        self.kept: list[Message] = []

    @classmethod
    async def connect(cls, url: str, name: str, *, role: str | None = None,
                      room: str | None = ROOM) -> Peer:
        # Registered by hand: RawClient's sync round trip would swallow replayed labels.
        peer = cls(await RawClient.connect(url))
        peer.name = peer.client.name = name
        register: Message = {"TYPE": "COMMAND/REGISTER", "NAME": name, "TO_ROOM": "_command"}
        if role is not None:
            register["ROLE"] = role
        await peer.send(register)
        if room is not None:
            await peer.join(room)
        return peer

    async def join(self, room: str = ROOM) -> None:
        # No sync round trip here: it would swallow the tasks that follow a join.
        await self.send({"TYPE": "COMMAND/JOINROOM", "ROOM": room, "TO_ROOM": "_command"})

    async def send(self, message: Message) -> None:
        await self.client.send(message)

    async def next(self, type_: str, timeout: float = 10.0) -> Message:
        for i, message in enumerate(self.kept):
            if message.get("TYPE") == type_:
                return self.kept.pop(i)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {type_} within {timeout}s; "
                                   f"kept {[m.get('TYPE') for m in self.kept]}")
            message = await self.client.recv(left)
            if message.get("TYPE") == type_:
                return message
            if message.get("TYPE") != "FEEDBACK/STATS":
                self.kept.append(message)

    async def error(self, code: str) -> Message:
        error = await self.next("ERROR")
        assert error["CODE"] == code, error
        return error

    async def none_of(self, type_: str, seconds: float) -> None:
        """Assert no `type_` frame arrives within `seconds` (only for proving absence)."""
        with contextlib.suppress(TimeoutError):
            message = await self.next(type_, timeout=seconds)
            raise AssertionError(f"{self.name}: unexpected {message}")

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def labeler(url: str, name: str, room: str = ROOM) -> Peer:
    return await Peer.connect(url, name, role="labeler", room=room)


async def requester(url: str, name: str = "model", room: str = ROOM) -> Peer:
    return await Peer.connect(url, name, room=room)


async def get_api(server: TestServer, path: str) -> Any:
    """GET an /api path of a served app (200 expected): /api/quality as JSON, the
    JSONL export as a list of rows."""
    async with aiohttp.ClientSession() as session, \
            session.get(str(server.make_url(path))) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return json.loads(text) if path.startswith("/api/quality") else \
        [json.loads(line) for line in text.splitlines()]


async def until(condition: Any, what: str, timeout: float = 10.0) -> None:
    """Wait for a condition on the server's state (same process), with a deadline."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {timeout} s: {what}")
