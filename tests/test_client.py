"""The asyncio Component against a real server (in-process, or a subprocess for restarts)."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

import swergio_al.client
from swergio_al.client import (
    Component,
    ComponentState,
    NotConnectedError,
    RefusedError,
    backoff_delays,
)
from tests.helpers import RawClient, ServerProcess

Message = dict[str, Any]
HELLO_WORLD = Path(__file__).resolve().parent.parent / "examples" / "hello_world"


CLIENT_PACKAGE = Path(swergio_al.client.__file__).parent


def _component_tasks() -> list[asyncio.Task[Any]]:
    """Live tasks running Component code (how a leaked reader or dispatcher would show)."""
    return [t for t in asyncio.all_tasks() if not t.done()
            and _runs_client_code(t.get_coro())]


def _runs_client_code(coro: object) -> bool:
    code = getattr(coro, "cr_code", None)
    return code is not None and Path(code.co_filename).parent == CLIENT_PACKAGE


async def test_handler_answers_into_respond_to_room_copying_root_id_and_model_status(
        ws_url: str) -> None:
    model = Component("model", ws_url)

    @model.on("DATA/FORWARD", room="inputs", respond_to="outputs",
              response_type="DATA/GRADIENT")
    async def backward(message: Message) -> Message:
        return {"DATA": message["DATA"] * 2}

    async with model, await RawClient.connect(ws_url, "peer", rooms=("inputs", "outputs")) as peer:
        assert model.rooms == {"inputs", "outputs"}
        await peer.send({"TYPE": "DATA/FORWARD", "TO_ROOM": "inputs", "DATA": 21,
                         "ROOT_ID": "chain-1", "MODEL_STATUS": 2})
        answer = await peer.expect("DATA/GRADIENT")
    assert answer["TO_ROOM"] == "outputs"
    assert answer["DATA"] == 42
    assert answer["ROOT_ID"] == "chain-1"
    assert answer["MODEL_STATUS"] == 2
    assert answer["SENT_BY"] == "model"


async def test_response_goes_back_to_trigger_room_and_to_every_respond_to_room(
        ws_url: str) -> None:
    echo = Component("echo", ws_url)

    @echo.on("DATA/TEXT", room=["a", "b"])
    def same_room(message: Message) -> Message:
        return {"DATA": message["DATA"].upper()}

    @echo.on("DATA/REWARD", room="a", respond_to=["b", "c"])
    def fan_out(message: Message) -> list[Message]:
        return [{"DATA": 1}, {"DATA": 2}]

    @echo.on("DATA/GRADIENT", room="a", respond_to="b")
    def own_address(message: Message) -> Message:
        return {"TYPE": "LOG/KPI", "TO": message["SENT_BY"], "DATA": 3}

    async with echo, await RawClient.connect(ws_url, "peer", rooms=("a", "b", "c")) as peer:
        await peer.send({"TYPE": "DATA/TEXT", "TO_ROOM": "b", "DATA": "hi"})
        back = await peer.expect("DATA/TEXT")
        assert (back["TO_ROOM"], back["DATA"]) == ("b", "HI")
        await peer.send({"TYPE": "DATA/REWARD", "TO_ROOM": "a"})
        got = {(m["TO_ROOM"], m["DATA"]) for m in [await peer.expect("DATA/REWARD")
                                                     for _ in range(4)]}
        await peer.send({"TYPE": "DATA/GRADIENT", "TO_ROOM": "a"})
        direct = await peer.expect("LOG/KPI")
    assert got == {("b", 1), ("b", 2), ("c", 1), ("c", 2)}
    assert (direct["TO"], direct["DATA"]) == ("peer", 3) and "TO_ROOM" not in direct


async def test_direct_message_reaches_sync_handler_and_answer_goes_to_sender(
        ws_url: str) -> None:
    oracle = Component("oracle", ws_url)
    seen: list[Message] = []

    @oracle.on("DATA/CUSTOM")
    def answer(message: Message) -> Message:
        seen.append(message)
        return {"DATA": "forty-two"}

    @oracle.on("DATA/CUSTOM", room="elsewhere", direct=False)
    def room_only(message: Message) -> None:
        raise AssertionError("direct=False handler fired for a direct message")

    async with oracle, await RawClient.connect(ws_url, "asker") as asker:
        await asker.send({"TYPE": "DATA/CUSTOM", "TO": "oracle", "DATA": "?", "ROOT_ID": "q"})
        reply = await asker.expect("DATA/CUSTOM")
    assert reply["TO"] == "asker"
    assert "TO_ROOM" not in reply
    assert (reply["DATA"], reply["ROOT_ID"], reply["SENT_BY"]) == ("forty-two", "q", "oracle")
    assert [m["SENT_BY"] for m in seen] == ["asker"]


async def test_raising_handler_is_logged_and_the_component_keeps_going(
        ws_url: str, caplog: pytest.LogCaptureFixture) -> None:
    flaky = Component("flaky", ws_url)
    handled: asyncio.Queue[int] = asyncio.Queue()

    @flaky.on("DATA/TEXT", room="r")
    async def sometimes(message: Message) -> None:
        if message["DATA"] == 0:
            raise ZeroDivisionError("boom")
        handled.put_nowait(message["DATA"])

    with caplog.at_level(logging.ERROR, logger="swergio_al.client"):
        async with flaky, await RawClient.connect(ws_url, "peer", rooms=("r",)) as peer:
            for value in (0, 1):
                await peer.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": value})
            assert await asyncio.wait_for(handled.get(), 5) == 1
            assert flaky.connected
    failure = next(r for r in caplog.records if "handler" in r.getMessage())
    assert failure.exc_info is not None and failure.exc_info[0] is ZeroDivisionError


async def test_handlers_run_one_message_at_a_time_in_arrival_order(ws_url: str) -> None:
    worker = Component("worker", ws_url)
    order: list[tuple[str, int]] = []
    done = asyncio.Event()

    @worker.on("DATA/TEXT", room="r")
    async def slow(message: Message) -> None:
        order.append(("start", message["DATA"]))
        await asyncio.sleep(0)  # give a concurrent dispatch every chance to interleave
        await asyncio.sleep(0)
        order.append(("end", message["DATA"]))
        if message["DATA"] == 9:
            done.set()

    async with worker, await RawClient.connect(ws_url, "peer", rooms=("r",)) as peer:
        for value in range(10):
            await peer.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": value})
        await asyncio.wait_for(done.wait(), 5)
    assert order == [(step, v) for v in range(10) for step in ("start", "end")]


async def test_request_returns_the_reply_with_the_same_root_id(ws_url: str) -> None:
    responder = Component("responder", ws_url)

    @responder.on("DATA/CUSTOM")
    async def double(message: Message) -> Message:
        return {"DATA": message["DATA"] * 2}

    async with responder, Component("requester", ws_url) as requester:
        sent_id = "req-1"
        reply = await requester.request({"ID": sent_id, "TYPE": "DATA/CUSTOM",
                                         "TO": "responder", "DATA": 4}, timeout=5)
        assert reply["DATA"] == 8
        assert reply["ROOT_ID"] == sent_id
        assert reply["SENT_BY"] == "responder"
        # A handler may itself await request() without blocking its own dispatch.
        chained = Component("chained", ws_url)

        @chained.on("DATA/TEXT", room="chain")
        async def ask(message: Message) -> Message:
            inner = await chained.request({"TYPE": "DATA/CUSTOM", "TO": "responder", "DATA": 5})
            return {"DATA": inner["DATA"]}

        async with chained, await RawClient.connect(ws_url, "peer", rooms=("chain",)) as peer:
            await peer.send({"TYPE": "DATA/TEXT", "TO_ROOM": "chain"})
            assert (await peer.expect("DATA/TEXT"))["DATA"] == 10


async def test_request_times_out_when_nobody_answers(ws_url: str) -> None:
    async with Component("asker", ws_url) as asker, \
            await RawClient.connect(ws_url, "silent") as silent:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await asker.request({"TYPE": "DATA/CUSTOM", "TO": "silent"}, timeout=0.3)
        assert 0.3 <= loop.time() - started < 2
        assert (await silent.expect("DATA/CUSTOM"))["SENT_BY"] == "asker"


async def test_request_pairs_a_forward_with_its_gradient_and_resends_to_a_late_peer(
        ws_url: str) -> None:
    """expect= skips other replies on the ROOT_ID (they reach handlers); resend_after= sends the
    forward pass again, same ROOT_ID and a new ID, until an answer comes: a peer that missed
    the first one (it restarted, say) still answers."""
    asker = Component("asker", ws_url)
    others: asyncio.Queue[Message] = asyncio.Queue()
    asker.on("DATA/CUSTOM", room="model")(others.put_nowait)
    async with asker, await RawClient.connect(ws_url, "peer", rooms=("model",)) as peer:
        pending = asyncio.ensure_future(asker.request(
            {"TYPE": "DATA/FORWARD", "TO_ROOM": "model", "DATA": [1.0]},
            timeout=10, expect="DATA/GRADIENT", resend_after=0.2))
        first = await peer.expect("DATA/FORWARD")  # the peer "misses" this one
        again = await peer.expect("DATA/FORWARD")
        assert again["ROOT_ID"] == first["ROOT_ID"] == first["ID"] != again["ID"]
        assert again["DATA"] == [1.0]
        root = again["ROOT_ID"]
        await peer.send({"TYPE": "DATA/CUSTOM", "TO_ROOM": "model", "ROOT_ID": root, "DATA": 0})
        await peer.send({"TYPE": "DATA/GRADIENT", "TO_ROOM": "model", "ROOT_ID": root,
                         "DATA": [2.0]})
        reply = await pending
        assert (reply["TYPE"], reply["DATA"]) == ("DATA/GRADIENT", [2.0])
        assert (await asyncio.wait_for(others.get(), 5))["ROOT_ID"] == root
    with pytest.raises(ValueError, match="resend_after"):
        await asker.request({"TYPE": "DATA/TEXT", "TO": "x"}, resend_after=0)


async def test_request_the_server_refuses_raises_at_once(ws_url: str) -> None:
    async with Component("asker", ws_url) as asker:
        with pytest.raises(RefusedError) as refused:
            await asker.request({"TYPE": "DATA/TEXT", "TO_ROOM": "not-joined"}, timeout=5)
    assert refused.value.code == "not_in_room"


async def test_server_errors_go_to_error_handlers(ws_url: str) -> None:
    watcher = Component("watcher", ws_url)
    errors: asyncio.Queue[Message] = asyncio.Queue()
    watcher.on("ERROR")(errors.put_nowait)
    async with watcher:
        sent = await watcher.send({"TYPE": "DATA/TEXT", "TO": "nobody"})
        error = await asyncio.wait_for(errors.get(), 5)
    assert (error["CODE"], error["REF"]) == ("unknown_recipient", sent["ID"])


async def test_join_and_leave_take_effect_on_the_server(ws_url: str) -> None:
    async with Component("mover", ws_url) as mover, \
            await RawClient.connect(ws_url, "peer", rooms=("lobby",)) as peer:
        await mover.join("lobby")
        await mover.send({"TYPE": "DATA/TEXT", "TO_ROOM": "lobby", "DATA": "in"})
        assert (await peer.expect("DATA/TEXT"))["DATA"] == "in"
        await mover.leave("lobby")
        assert "lobby" not in mover.rooms
        with pytest.raises(RefusedError, match="not_in_room"):
            await mover.request({"TYPE": "DATA/TEXT", "TO_ROOM": "lobby"}, timeout=5)


async def test_join_the_server_refuses_raises(make_server: Any) -> None:
    server = await make_server(max_rooms_per_connection=1)
    async with Component("greedy", str(server.make_url("/ws"))) as greedy:
        await greedy.join("one")
        with pytest.raises(RefusedError, match="too_many_rooms"):
            await greedy.join("two")
        assert greedy.rooms == {"one"}


async def test_handler_added_while_connected_joins_its_room_before_later_sends(
        ws_url: str) -> None:
    async with Component("late", ws_url) as late, \
            await RawClient.connect(ws_url, "peer", rooms=("news",)) as peer:
        heard: asyncio.Queue[Message] = asyncio.Queue()
        late.on("DATA/TEXT", room="news")(heard.put_nowait)
        await late.send({"TYPE": "DATA/TEXT", "TO_ROOM": "news", "DATA": "joined"})
        assert (await peer.expect("DATA/TEXT"))["DATA"] == "joined"
        await peer.send({"TYPE": "DATA/TEXT", "TO_ROOM": "news", "DATA": "welcome"})
        assert (await asyncio.wait_for(heard.get(), 5))["DATA"] == "welcome"


async def test_without_reconnect_a_lost_connection_closes_the_component(
        make_server: Any) -> None:
    server = await make_server(max_frame_size=1000)
    component = Component("once", str(server.make_url("/ws")), reconnect=False)
    await component.connect()
    # An oversized frame makes the server close the connection (1009).
    await component.send({"TYPE": "DATA/TEXT", "TO": "once", "DATA": "x" * 2000})
    await asyncio.wait_for(component.wait_closed(), 5)
    assert component.state is ComponentState.CLOSED
    assert _component_tasks() == []


async def test_sends_while_the_server_is_down_time_out_or_end_with_close(
        tmp_path: Path) -> None:
    with ServerProcess("--store", f"sqlite:///{tmp_path / 'store.db'}") as server:
        component = Component("waiting", server.ws_url, backoff_initial=0.01,
                              backoff_max=0.05, send_timeout=0.2)
        await component.connect()
        server.kill()  # and it stays down: every reconnect attempt fails
        await asyncio.wait_for(component.wait_state(ComponentState.RECONNECTING), 5)
        with pytest.raises(NotConnectedError, match=r"within 0\.2s"):
            await component.send({"TYPE": "DATA/TEXT", "TO": "x"})
        component.send_timeout = 30
        sending = asyncio.create_task(component.send({"TYPE": "DATA/TEXT", "TO": "x"}))
        await asyncio.sleep(0)
        assert not sending.done()
        waiting = asyncio.create_task(component.wait_state(ComponentState.CONNECTED))
        await asyncio.sleep(0)
        await component.close()
        with pytest.raises(NotConnectedError, match="closed"):
            await asyncio.wait_for(sending, 1)
        with pytest.raises(NotConnectedError, match="closed before it was connected"):
            await asyncio.wait_for(waiting, 1)
        assert _component_tasks() == []


async def test_bad_input_gets_clear_errors(ws_url: str) -> None:
    component = Component("careful", ws_url)
    with pytest.raises(ValueError, match="type_"):
        component.on("")
    with pytest.raises(ValueError, match="room"):
        component.on("DATA/TEXT", room=[""])
    with pytest.raises(NotConnectedError, match="connect"):
        await component.send({"TYPE": "DATA/TEXT", "TO": "x"})
    with pytest.raises(ValueError, match="url"):
        await Component("x", "tcp://127.0.0.1:1/ws").connect()
    async with component:
        with pytest.raises(ValueError, match="TO_ROOM or TO"):
            await component.send({"TYPE": "DATA/TEXT"})
        with pytest.raises(ValueError, match="unknown TYPE"):
            await component.send({"TYPE": "NOPE", "TO": "x"})
        with pytest.raises(TypeError):
            await component.send({"TYPE": "DATA/TEXT", "TO": "x", "DATA": object()})
        with pytest.raises(RuntimeError, match="expects state new"):
            await component.connect()
        assert component.connected
    with pytest.raises(NotConnectedError, match="closed"):
        await component.send({"TYPE": "DATA/TEXT", "TO": "x"})


async def test_connect_to_a_dead_port_raises(unused_tcp_port: int) -> None:
    component = Component("lonely", f"ws://127.0.0.1:{unused_tcp_port}/ws")
    with pytest.raises(OSError):
        await component.connect()
    assert component.state is ComponentState.CLOSED
    assert _component_tasks() == []


async def test_close_leaves_no_tasks_even_from_inside_a_handler(ws_url: str) -> None:
    quitter = Component("quitter", ws_url)

    @quitter.on("DATA/TEXT", room="r")
    async def stop(message: Message) -> None:
        await quitter.close()

    await quitter.connect()
    assert _component_tasks() != []
    async with await RawClient.connect(ws_url, "peer", rooms=("r",)) as peer:
        await peer.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r"})
        await asyncio.wait_for(quitter.wait_closed(), 5)
    assert quitter.state is ComponentState.CLOSED and not quitter.connected
    assert _component_tasks() == []

    plain = Component("plain", ws_url)
    plain.on("DATA/TEXT", room="r")(lambda m: None)
    await plain.connect()
    await plain.close()
    await plain.close()  # idempotent
    assert _component_tasks() == []


async def test_name_taken_over_stops_reconnecting(ws_url: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    first = Component("twin", ws_url, backoff_initial=0.01)
    with caplog.at_level(logging.WARNING, logger="swergio_al.client"):
        async with first, Component("twin", ws_url):
            await asyncio.wait_for(first.wait_closed(), 5)
            assert first.state is ComponentState.CLOSED
            assert first.stop_reason is not None and "taken over" in first.stop_reason
    assert any("taken over" in r.getMessage() for r in caplog.records)
    assert _component_tasks() == []


async def test_reconnects_and_rejoins_after_the_server_is_killed_and_restarted(
        tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    with ServerProcess("--store", store, log_path=tmp_path / "server.log") as server:
        survivor = Component("survivor", server.ws_url, backoff_initial=0.05, backoff_max=0.3,
                             random_state=0)
        received: asyncio.Queue[Message] = asyncio.Queue()
        survivor.on("DATA/TEXT", room="old-room")(received.put_nowait)
        async with survivor:
            await survivor.join("joined-by-hand")
            server.kill()
            await asyncio.wait_for(survivor.wait_state(ComponentState.RECONNECTING), 5)
            # Sent while the server is down: waits for the reconnect instead of dropping.
            pending = asyncio.create_task(survivor.send(
                {"TYPE": "DATA/TEXT", "TO": "survivor", "DATA": "I'm back"}))
            await asyncio.sleep(0)
            assert not pending.done()
            await asyncio.to_thread(server.start)
            await asyncio.wait_for(pending, 10)
            assert (await asyncio.wait_for(received.get(), 5))["DATA"] == "I'm back"
            # send() resumed only after re-registering and re-joining: the old room works.
            async with await RawClient.connect(server.ws_url, "peer",
                                               rooms=("old-room", "joined-by-hand")) as peer:
                await peer.send({"TYPE": "DATA/TEXT", "TO_ROOM": "old-room", "DATA": "hi"})
                assert (await asyncio.wait_for(received.get(), 5))["DATA"] == "hi"
                await survivor.send({"TYPE": "DATA/TEXT", "TO_ROOM": "old-room", "DATA": "yo"})
                assert (await peer.expect("DATA/TEXT"))["DATA"] == "yo"
                await survivor.send({"TYPE": "DATA/TEXT", "TO_ROOM": "joined-by-hand"})
                assert (await peer.expect("DATA/TEXT"))["TO_ROOM"] == "joined-by-hand"
            assert survivor.connected
        assert _component_tasks() == []


async def test_hello_world_example_runs_n_exchanges_and_exits_0(tmp_path: Path) -> None:
    with ServerProcess("--store", f"sqlite:///{tmp_path / 'store.db'}") as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HELLO_WORLD / "run.py"), "--url", server.ws_url, "--exchanges", "7",
            "--timeout", "20", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    lines = out.decode().splitlines()
    assert proc.returncode == 0, err.decode()
    assert lines[-1] == "exchanges: 7"
    assert sum(line.startswith("world    <-") for line in lines) == 7
    assert sum(line.startswith("universe ->") for line in lines) == 7


async def test_feedback_round_trip_between_a_model_and_a_labeler_component(
        ws_url: str) -> None:
    """The client against the FeedbackService: ROLE reaches the server, TASK/LABEL/ACK flow."""
    room = "feedback/client-test"
    model = Component("model", ws_url)
    labeler = Component("alice", ws_url, role="labeler")
    labels: asyncio.Queue[Message] = asyncio.Queue()

    @labeler.on("FEEDBACK/TASK", room=room, response_type="FEEDBACK/LABEL")
    def label(message: Message) -> Message:
        task = message["DATA"]
        return {"DATA": {"task_id": task["task_id"], "answer": "cat", "seconds": 1.5}}

    @model.on("FEEDBACK/LABEL", room=room, response_type="FEEDBACK/ACK")
    def learn(message: Message) -> Message:
        labels.put_nowait(message)
        return {"DATA": {"label_id": message["DATA"]["label_id"]}}

    async with model, labeler:
        await model.send({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": room, "DATA": {
            "sample_id": "s1", "kind": "text", "content": "meow", "question": "which animal?",
            "answer": {"type": "choice", "choices": ["cat", "dog"]}, "prediction": "dog",
            "confidence": 0.5, "priority": 0.5}})
        got = await asyncio.wait_for(labels.get(), 5)
    assert got["DATA"]["sample_id"] == "s1"
    assert got["DATA"]["answer"] == "cat"
    assert got["DATA"]["labeler"] == "alice"


async def test_concurrent_handler_lets_later_messages_through_while_it_waits(
        ws_url: str) -> None:
    patient = Component("patient", ws_url)
    second_arrived = asyncio.Event()
    finished: asyncio.Queue[int] = asyncio.Queue()

    @patient.on("DATA/TEXT", room="r", concurrent=True)
    async def wait_for_the_next(message: Message) -> Message | None:
        if message["DATA"] == 1:
            await second_arrived.wait()  # with sequential dispatch this would never end
        else:
            second_arrived.set()
        finished.put_nowait(message["DATA"])
        return {"DATA": message["DATA"] * 10}

    async with patient, await RawClient.connect(ws_url, "peer", rooms=("r",)) as peer:
        for value in (1, 2):
            await peer.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": value})
        done = [await asyncio.wait_for(finished.get(), 5) for _ in range(2)]
        answers = {(await peer.expect("DATA/TEXT"))["DATA"] for _ in range(2)}
    assert done == [2, 1]
    assert answers == {10, 20}
    assert _component_tasks() == []


def test_backoff_is_capped_exponential_full_jitter_and_seeded() -> None:
    def first(seed: int, n: int = 12) -> list[float]:
        delays = backoff_delays(0.1, 2.0, random.Random(seed))
        return [next(delays) for _ in range(n)]

    assert first(7) == first(7)
    assert first(7) != first(8)
    ceilings = [min(2.0, 0.1 * 2 ** n) for n in range(12)]
    assert all(0 <= d <= c for d, c in zip(first(7), ceilings, strict=True))
    # Jitter is full: over many draws at the cap, both halves of [0, cap] occur.
    capped = [d for seed in range(50) for d in first(seed)[6:]]
    assert min(capped) < 0.5 and max(capped) > 1.5


async def test_message_to_itself_with_a_sync_key_still_reaches_handlers(ws_url: str) -> None:
    """Regression: the round-trip marker check swallowed any self-sent message with SYNC."""
    self_talker = Component("narcissus", ws_url)
    got: asyncio.Queue[Message] = asyncio.Queue()
    self_talker.on("DATA/CUSTOM")(got.put_nowait)
    async with self_talker:
        await self_talker.send({"TYPE": "DATA/CUSTOM", "TO": "narcissus", "SYNC": "mine"})
        assert (await asyncio.wait_for(got.get(), 5))["SYNC"] == "mine"


async def test_heartbeat_notices_a_frozen_server_and_the_new_connection_takes_over(
        tmp_path: Path) -> None:
    """A stalled server (SIGSTOP) sends no close: only the heartbeat can tell the link is dead.
    After SIGCONT the server still holds the old connection; registering again takes it over."""
    with ServerProcess("--store", f"sqlite:///{tmp_path / 'store.db'}") as server:
        assert server.proc is not None
        component = Component("patient", server.ws_url, heartbeat=0.3, send_timeout=2,
                              backoff_initial=0.05, backoff_max=0.2)
        heard: asyncio.Queue[Message] = asyncio.Queue()
        component.on("DATA/TEXT", room="r")(heard.put_nowait)
        async with component:
            server.proc.send_signal(signal.SIGSTOP)
            try:
                await asyncio.wait_for(component.wait_state(ComponentState.RECONNECTING), 5)
            finally:
                server.proc.send_signal(signal.SIGCONT)
            await asyncio.wait_for(component.wait_state(ComponentState.CONNECTED), 10)
            async with await RawClient.connect(server.ws_url, "peer", rooms=("r",)) as peer:
                await peer.send({"TYPE": "DATA/TEXT", "TO_ROOM": "r", "DATA": "still there?"})
                assert (await asyncio.wait_for(heard.get(), 5))["DATA"] == "still there?"
            assert component.connected  # not stopped by the takeover of its own old socket


async def test_universe_process_talks_to_an_in_process_world_and_stops_on_sigterm(
        ws_url: str) -> None:
    """universe.py runs via run_forever(); SIGTERM must close it properly and exit 0."""
    sys.path.insert(0, str(HELLO_WORLD))
    try:
        from world import talk  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(HELLO_WORLD))
    universe = await asyncio.create_subprocess_exec(
        sys.executable, str(HELLO_WORLD / "universe.py"), "--url", ws_url, "--exchanges", "99",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert await asyncio.wait_for(talk(ws_url, 3), 20) == 3  # waits for the universe
        universe.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(universe.communicate(), 10)
        async with Component("prober", ws_url) as prober:
            with pytest.raises(RefusedError, match="unknown_recipient"):
                await prober.request({"TYPE": "DATA/CUSTOM", "TO": "universe"}, timeout=5)
    finally:
        if universe.returncode is None:
            universe.kill()
            await universe.wait()
    assert universe.returncode == 0, err.decode()
    assert out.decode().count("universe ->") == 3


async def test_token_is_sent_and_a_wrong_one_is_refused_without_retrying(
        make_server: Any) -> None:
    server = await make_server(component_token="s3cret")
    url = str(server.make_url("/ws"))
    async with Component("trusted", url, token="s3cret") as trusted:
        assert trusted.connected
    intruder = Component("intruder", url, token="guess", send_timeout=3)
    with pytest.raises(RefusedError) as refused:
        await intruder.connect()
    assert refused.value.code == "unauthorized"
    assert intruder.state is ComponentState.CLOSED
    assert _component_tasks() == []


async def test_labeler_role_connects_and_joins_although_it_may_not_message_itself(
        ws_url: str) -> None:
    """Labelers may not send DATA/CUSTOM or use TO; the refused round-trip marker still
    proves the server handled the REGISTER and JOINs (before: connect() timed out)."""
    labeler = Component("bob", ws_url, role="labeler", send_timeout=2)
    labeler.on("FEEDBACK/TASK", room="feedback/pets")(lambda message: None)
    async with labeler:
        assert labeler.connected
        await labeler.join("feedback/more-pets")
        with pytest.raises(RefusedError, match="forbidden"):
            await labeler.join("ordinary-room")
    assert labeler.rooms == {"feedback/pets", "feedback/more-pets"}
