"""What a client sends right before it closes reaches the room, all of it, in order.

Each test closes a sender straight after its last frame, several times over,
in the ways a client can: a Component's close(), a FeedbackLoop's stop(), an
aiohttp client's close handshake, a close frame followed at once by the end of
the TCP stream, the end of the stream with no close frame at all, and a
swergio 0.0.2 TCP client hanging up. Two bugs lost them: Component.close() hung
up without waiting for the server's answer to DISCONNECT, and /ws dropped
what it had read when aiohttp cancelled its handler on the end of the stream
(aiohttp's test server, like `handler_cancellation=True`, does that).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import numpy as np
from sklearn.linear_model import SGDClassifier

from swergio_al.client import Component
from swergio_al.feedback import Labeler
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.keys import SWERGIO_LISTENER
from swergio_al.learning import ActiveLearner
from swergio_al.relay.tcp import encode_frame
from tests.conftest import MakeServer
from tests.helpers import RawClient
from tests.relay.support import SocketClient, hub_of, no_trace, until

N = 40  # numbered messages per sender
ROUNDS = 8  # senders per test: the loss depended on timing, so one round proved little


def numbered(n: int) -> dict[str, Any]:
    return {"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": n}


def kpi(n: int) -> dict[str, Any]:
    """A model's report to a feedback room: the server stores it before relaying it,
    so the server is still busy with these when the sender's close follows."""
    return {"TYPE": "LOG/KPI", "TO_ROOM": "feedback/close", "DATA": {"n": n}}


async def all_arrive(receiver: RawClient, sender: str, kind: str = "DATA/TEXT") -> None:
    """`receiver` gets the N messages of `sender`, in order, each within 5 s."""
    for n in range(N):
        got = await receiver.expect(kind, timeout=5)
        data = got["DATA"]["n"] if kind == "LOG/KPI" else got["DATA"]
        assert (got["SENT_BY"], data) == (sender, n), f"expected {sender} #{n}, got {got}"


async def test_component_close_right_after_sending(make_server: MakeServer) -> None:
    server = await make_server()
    url = str(server.make_url("/ws"))
    async with await RawClient.connect(url, "receiver", rooms=("feedback/close",)) as receiver:
        for round_ in range(ROUNDS):
            name = f"component{round_}"
            async with Component(name, url) as sender:
                await sender.join("feedback/close")
                for n in range(N):
                    await sender.send(kpi(n))
            # close() returned after the server's close, which answers DISCONNECT once
            # everything before it is handled: the server has already forgotten it.
            assert no_trace(hub_of(server), name)()
            await all_arrive(receiver, name, "LOG/KPI")


async def test_aiohttp_client_close_right_after_sending(make_server: MakeServer) -> None:
    server = await make_server()
    url = str(server.make_url("/ws"))
    async with await RawClient.connect(url, "receiver", rooms=("r",)) as receiver:
        for round_ in range(ROUNDS):
            name = f"aiohttp{round_}"
            async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
                await ws.send_str(json.dumps({"TYPE": "COMMAND/REGISTER", "NAME": name,
                                              "TO_ROOM": "_command"}))
                await ws.send_str(json.dumps({"TYPE": "COMMAND/JOINROOM", "ROOM": "r",
                                              "TO_ROOM": "_command"}))
                for n in range(N):
                    await ws.send_str(json.dumps(numbered(n)))
            await all_arrive(receiver, name)


async def _socket_sender_vanishes(make_server: MakeServer, *, close_frame: bool) -> None:
    server = await make_server()
    url = str(server.make_url("/ws"))
    async with await RawClient.connect(url, "receiver", rooms=("r",)) as receiver:
        for round_ in range(ROUNDS):
            name = f"socket{round_}"
            sender = await SocketClient.connect(server.port)  # type: ignore[arg-type]
            sender.send({"TYPE": "COMMAND/REGISTER", "NAME": name, "TO_ROOM": "_command"})
            sender.send({"TYPE": "COMMAND/JOINROOM", "ROOM": "r", "TO_ROOM": "_command"})
            for n in range(N):
                sender.send(numbered(n))
            if close_frame:
                sender.send_frame((1000).to_bytes(2, "big"), opcode=0x8)
            await sender.aclose()  # FIN right behind the frames: no waiting for anything
            await all_arrive(receiver, name)
            await until(no_trace(hub_of(server), name))  # and the hub forgot it entirely


async def test_close_frame_and_end_of_stream_right_after_sending(
        make_server: MakeServer) -> None:
    await _socket_sender_vanishes(make_server, close_frame=True)


async def test_end_of_stream_without_close_frame_right_after_sending(
        make_server: MakeServer) -> None:
    await _socket_sender_vanishes(make_server, close_frame=False)


async def test_swergio_tcp_client_closing_right_after_sending(make_server: MakeServer) -> None:
    server = await make_server(swergio_port=0)
    port = server.app[SWERGIO_LISTENER].port
    url = str(server.make_url("/ws"))
    async with await RawClient.connect(url, "receiver", rooms=("r",)) as receiver:
        for round_ in range(ROUNDS):
            name = f"tcp{round_}"
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for message in ({"TYPE": "COMMAND/REGISTER", "NAME": name, "TO_ROOM": "_command"},
                            {"TYPE": "COMMAND/JOINROOM", "ROOM": "r", "TO_ROOM": "_command"},
                            *(numbered(n) for n in range(N))):
                writer.write(encode_frame(json.dumps(message)))
            writer.close()
            await writer.wait_closed()
            await all_arrive(receiver, name)


CHOICE = {"type": "choice", "choices": [0, 1]}


async def test_feedback_loop_stopped_right_after_learning_reports_its_last_kpi(
        make_server: MakeServer) -> None:
    server = await make_server()
    url = str(server.make_url("/ws"))
    rng = np.random.default_rng(0)
    async with await RawClient.connect(url, "watcher", rooms=("kpi",)) as watcher, \
            Labeler("ann", url, lambda task: 1, room="feedback/last") as ann:
        for round_ in range(ROUNDS):
            name = f"model{round_}"
            loop = FeedbackLoop(
                ActiveLearner(SGDClassifier(loss="log_loss", random_state=0), classes=[0, 1],
                              random_state=0),
                name=name, url=url, answer=CHOICE, feedback_room="feedback/last",
                kpi_room="kpi")
            await loop.start()
            await loop.ask(f"{name}-s", rng.normal(size=2))
            await loop.wait_learned(1)
            await loop.stop()
            assert no_trace(hub_of(server), name)()
            kpi = await watcher.expect("LOG/KPI")
            assert kpi["SENT_BY"] == name and kpi["DATA"]["new_labels"] == 1, kpi
        assert ann.acked == ROUNDS
