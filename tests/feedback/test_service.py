"""The FeedbackService through a real server and raw WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.conftest import MakeServer
from tests.feedback.helpers import (
    ROOM,
    Peer,
    feedback,
    label_message,
    labeler,
    request_message,
    requester,
)
from tests.helpers import Message

FAST = {"stats_interval_seconds": 0.02}


async def _url(make_server: MakeServer, **overrides: Any) -> str:
    server = await make_server(**{**FAST, **overrides})
    return str(server.make_url("/ws"))


async def _answer_all(peer: Peer, answer: str, acks: list[Message],
                      all_acked: asyncio.Event, total: int) -> None:
    """Label every task; record the ACKs (`all_acked` once `total` are in, all peers)."""
    while True:
        task = await peer.next("FEEDBACK/TASK", timeout=30)
        await peer.send(label_message(task["DATA"]["task_id"], answer))
        acks.append(await peer.next("FEEDBACK/ACK"))
        if len(acks) >= total:
            all_acked.set()


async def test_two_labelers_label_twenty_samples_exactly_once(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann, \
            await labeler(url, "bob") as bob:
        for i in range(20):
            await model.send(request_message(i, priority=i))
        acks: list[Message] = []
        all_acked = asyncio.Event()
        workers = [asyncio.create_task(_answer_all(ann, "cat", acks, all_acked, 20)),
                   asyncio.create_task(_answer_all(bob, "dog", acks, all_acked, 20))]
        try:
            labels = [await model.next("FEEDBACK/LABEL") for _ in range(20)]
            await asyncio.wait_for(all_acked.wait(), timeout=5)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

        assert sorted(label["DATA"]["sample_id"] for label in labels) == list(range(20))
        assert {a["DATA"]["label_id"] for a in acks} == {lb["DATA"]["label_id"] for lb in labels}
        by_labeler = {lb["DATA"]["labeler"] for lb in labels}
        assert by_labeler == {"ann", "bob"}, "both labelers should have worked"
        for label in labels:
            data = label["DATA"]
            assert data["answer"] == {"ann": "cat", "bob": "dog"}[data["labeler"]]
            assert data["replay"] is False and data["seconds"] == 1.0
            assert label["TO"] == "model"


async def test_tasks_come_in_priority_order(make_server: MakeServer) -> None:
    url = await _url(make_server, prefetch=1)
    async with await requester(url) as model:
        for sample, priority in [("low", 0.1), ("top", 0.9), ("mid", 0.5), ("mid2", 0.5)]:
            await model.send(request_message(sample, priority=priority))
        await model.client.sync()
        async with await labeler(url, "ann") as ann:
            order = []
            for _ in range(4):
                task = await ann.next("FEEDBACK/TASK")
                order.append(task["DATA"]["sample_id"])
                await ann.send(label_message(task["DATA"]["task_id"], "cat"))
    assert order == ["top", "mid", "mid2", "low"]  # equal priorities: oldest first


async def test_prefetch_caps_outstanding_tasks(make_server: MakeServer) -> None:
    url = await _url(make_server, prefetch=2)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        for i in range(5):
            await model.send(request_message(i))
        first = [await ann.next("FEEDBACK/TASK") for _ in range(2)]
        await ann.none_of("FEEDBACK/TASK", 0.2)
        await ann.send(label_message(first[0]["DATA"]["task_id"], "dog"))
        third = await ann.next("FEEDBACK/TASK")
        assert third["DATA"]["sample_id"] not in {t["DATA"]["sample_id"] for t in first}
        assert third["DATA"]["lease_expires"] > 0 and third["DATA"]["question"] == "cat or dog?"


async def test_expired_lease_goes_to_another_labeler(make_server: MakeServer) -> None:
    url = await _url(make_server, lease_seconds=0.3)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("s1"))
        held = await ann.next("FEEDBACK/TASK")
        async with await labeler(url, "bob") as bob:
            again = await bob.next("FEEDBACK/TASK", timeout=3)
            assert again["DATA"]["sample_id"] == "s1"
            assert again["DATA"]["task_id"] != held["DATA"]["task_id"]
            # Ann's late answer is refused: the lease is gone.
            await ann.send(label_message(held["DATA"]["task_id"], "cat"))
            await ann.error("unknown_task")
            await bob.send(label_message(again["DATA"]["task_id"], "dog"))
            label = await model.next("FEEDBACK/LABEL")
            assert (label["DATA"]["labeler"], label["DATA"]["answer"]) == ("bob", "dog")


async def test_disconnected_labelers_task_is_requeued(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model:
        ann = await labeler(url, "ann")
        await model.send(request_message("s1"))
        await ann.next("FEEDBACK/TASK")
        async with await labeler(url, "bob") as bob:
            await bob.none_of("FEEDBACK/TASK", 0.1)
            await ann.close()
            got = await bob.next("FEEDBACK/TASK")
            assert got["DATA"]["sample_id"] == "s1"


async def test_labeler_leaving_the_room_returns_its_tasks(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("s1"))
        await ann.next("FEEDBACK/TASK")
        async with await labeler(url, "bob") as bob:
            await ann.send({"TYPE": "COMMAND/LEAVEROOM", "ROOM": ROOM, "TO_ROOM": "_command"})
            got = await bob.next("FEEDBACK/TASK")
            assert got["DATA"]["sample_id"] == "s1"


async def test_skipped_task_goes_to_someone_else(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("s1"))
        task = await ann.next("FEEDBACK/TASK")
        async with await labeler(url, "bob") as bob:
            await bob.none_of("FEEDBACK/TASK", 0.1)  # leased to ann
            await ann.send(feedback("SKIP", task_id=task["DATA"]["task_id"]))
            got = await bob.next("FEEDBACK/TASK")
            assert got["DATA"]["sample_id"] == "s1"
            await ann.none_of("FEEDBACK/TASK", 0.2)


async def test_overlap_two_distinct_labelers_each_labeled(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann, \
            await labeler(url, "bob") as bob, await labeler(url, "cy") as cy:
        await model.send(request_message("s1", overlap=2))
        waits = {asyncio.create_task(p.next("FEEDBACK/TASK")): p.name for p in (ann, bob, cy)}
        tasks = {}
        pending = set(waits)
        while len(tasks) < 2:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            tasks.update({waits[w]: w.result() for w in done})
        (third,) = pending
        third.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await third
        idle = {"ann": ann, "bob": bob, "cy": cy}[waits[third]]
        await idle.none_of("FEEDBACK/TASK", 0.2)  # nobody gets a third copy
        assert {t["DATA"]["sample_id"] for t in tasks.values()} == {"s1"}
        peers = {p.name: p for p in (ann, bob, cy)}
        for name, task in tasks.items():
            await peers[name].send(label_message(task["DATA"]["task_id"], "cat"))
        labels = [await model.next("FEEDBACK/LABEL") for _ in range(2)]
        assert {lb["DATA"]["labeler"] for lb in labels} == set(tasks)
        assert {lb["DATA"]["sample_id"] for lb in labels} == {"s1"}
        await model.none_of("FEEDBACK/LABEL", 0.2)


async def test_invalid_labels_get_errors_and_change_nothing(make_server: MakeServer) -> None:
    url = await _url(make_server, prefetch=1)
    rating = {"type": "rating", "min": 1, "max": 5, "step": 1}
    text = {"type": "text", "max_length": 5}
    async with await requester(url) as model, await labeler(url, "ann") as ann, \
            await labeler(url, "bob") as bob:
        await model.send(request_message("r", answer=rating, priority=3))
        await model.send(request_message("t", answer=text, priority=2))
        await model.send(request_message("c", priority=1))
        tasks = {}
        for peer in (ann, bob):
            task = await peer.next("FEEDBACK/TASK")
            tasks[task["DATA"]["sample_id"]] = (peer, task["DATA"]["task_id"])
        assert set(tasks) == {"r", "t"}
        peer_r, task_r = tasks["r"]
        peer_t, task_t = tasks["t"]
        cases = [
            (peer_r, label_message(task_r, "five"), "invalid_answer"),  # wrong type
            (peer_r, label_message(task_r, 6), "invalid_answer"),  # out of range
            (peer_r, label_message(task_r, 2.5), "invalid_answer"),  # off the step
            (peer_r, label_message(task_r, True), "invalid_answer"),  # a bool is no number
            (peer_t, label_message(task_t, "too long"), "invalid_answer"),
            (peer_t, label_message(task_t, 3), "invalid_answer"),
            (peer_r, label_message("no-such-task", 3), "unknown_task"),
            (peer_r, label_message(task_t, "ok"), "not_your_task"),  # someone else's
            (peer_r, feedback("LABEL", task_id=task_r), "bad_field"),  # no answer
            (peer_r, feedback("LABEL", answer=3), "bad_field"),  # no task id
            (peer_r, label_message(task_r, 3, seconds=-1), "bad_field"),
            (peer_r, {**label_message(task_r, 3), "DATA": [1]}, "bad_field"),
            (peer_r, feedback("SKIP", task_id=task_t), "not_your_task"),
            (peer_r, feedback("TASK", task_id=task_r), "forbidden"),
        ]
        for peer, message, code in cases:
            await peer.send(message)
            error = await peer.error(code)
            assert error["MESSAGE"]
        # Nothing changed: no label reached the model, both leases still hold.
        await model.none_of("FEEDBACK/LABEL", 0.1)
        await peer_r.send(label_message(task_r, 4))
        await peer_t.send(label_message(task_t, "short"))
        labels = [await model.next("FEEDBACK/LABEL") for _ in range(2)]
        assert sorted((lb["DATA"]["sample_id"], lb["DATA"]["answer"]) for lb in labels) == \
            [("r", 4), ("t", "short")]
        # The same labeler sending a finished task's label again (its ACK died with a
        # server, say) gets the original ACK back; the model gets no second label.
        first = await peer_r.next("FEEDBACK/ACK")
        await peer_r.send(label_message(task_r, 5))
        again = await peer_r.next("FEEDBACK/ACK")
        assert again["DATA"] == first["DATA"] == {"task_id": task_r,
                                                   "label_id": first["DATA"]["label_id"]}
        await model.none_of("FEEDBACK/LABEL", 0.2)
        # Someone else's finished task is still not theirs.
        await peer_t.send(label_message(task_r, 4))
        await peer_t.error("not_your_task")


async def test_bad_requests_get_bad_field(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model:
        bad = [
            request_message(None),
            request_message(True),
            request_message("s", answer={"type": "slider"}),
            request_message("s", answer={"type": "choice", "choices": []}),
            request_message("s", answer={"type": "rating", "min": 5, "max": 1}),
            request_message("s", answer={"type": "text", "max_length": 0}),
            request_message("s", priority="high"),
            request_message("s", overlap=0),
            feedback("CANCEL", sample_ids="s"),
            feedback("CANCEL", sample_ids=["s"], keep_leased="yes"),
            feedback("CANCEL", sample_ids=["s"], keep_leased=1),
            feedback("RESCORE", priorities={"s": "x"}),
            feedback("ACK", label_id="nope"),
        ]
        for message in bad:
            await model.send(message)
            await model.error("bad_field")


async def test_pending_requests_are_capped_per_model(make_server: MakeServer) -> None:
    url = await _url(make_server, max_pending_per_model=2)
    async with await requester(url) as model:
        for i in range(2):
            await model.send(request_message(i))
        await model.send(request_message(0, priority=5))  # an update, not a new one
        await model.send(request_message(2))
        await model.error("limit_reached")


async def test_cancel_and_rescore(make_server: MakeServer) -> None:
    url = await _url(make_server, prefetch=1)
    async with await requester(url) as model:
        for sample, priority in [("a", 3), ("b", 2), ("c", 1), ("d", 0)]:
            await model.send(request_message(sample, priority=priority))
        await model.send(feedback("CANCEL", sample_ids=["b"]))
        await model.send(feedback("RESCORE", priorities={"d": 10, "a": 0.5}))
        await model.client.sync()
        async with await labeler(url, "ann") as ann:
            task = await ann.next("FEEDBACK/TASK")
            assert task["DATA"]["sample_id"] == "d"
            # Canceling a sample someone holds withdraws it from them.
            await model.send(feedback("CANCEL", sample_ids=["d"]))
            withdrawn = await ann.next("FEEDBACK/CANCEL")
            assert withdrawn["DATA"]["task_ids"] == [task["DATA"]["task_id"]]
            order = []
            for _ in range(2):
                task = await ann.next("FEEDBACK/TASK")
                order.append(task["DATA"]["sample_id"])
                await ann.send(label_message(task["DATA"]["task_id"], "cat"))
            assert order == ["c", "a"]
            await ann.none_of("FEEDBACK/TASK", 0.1)
            await ann.send(label_message(withdrawn["DATA"]["task_ids"][0], "cat"))
            await ann.error("unknown_task")


async def test_cancel_keeping_leased_leaves_the_held_task_to_its_labeler(
        make_server: MakeServer) -> None:
    url = await _url(make_server, prefetch=1)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("a", priority=2))
        held = await ann.next("FEEDBACK/TASK")
        assert held["DATA"]["sample_id"] == "a"
        await model.send(request_message("b", priority=1))  # queued: ann holds one
        await model.client.sync()
        await model.send(feedback("CANCEL", sample_ids=["a", "b"], keep_leased=True))
        kept = await model.next("FEEDBACK/CANCEL")
        assert kept["DATA"] == {"kept": ["a"]}
        await ann.none_of("FEEDBACK/CANCEL", 0.1)
        await ann.send(label_message(held["DATA"]["task_id"], "cat"))
        await ann.next("FEEDBACK/ACK")
        label = await model.next("FEEDBACK/LABEL")
        assert (label["DATA"]["sample_id"], label["DATA"]["answer"]) == ("a", "cat")
        await ann.none_of("FEEDBACK/TASK", 0.1)  # b was canceled
        # Nothing held: nothing kept, and no reply.
        await model.send(feedback("CANCEL", sample_ids=["a", "b"], keep_leased=True))
        await model.client.sync()
        await model.none_of("FEEDBACK/CANCEL", 0.1)


async def test_only_the_requester_can_cancel_its_samples(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await requester(url, "other") as other:
        await model.send(request_message("a"))
        await other.send(feedback("CANCEL", sample_ids=["a"]))
        await other.client.sync()
        async with await labeler(url, "ann") as ann:
            task = await ann.next("FEEDBACK/TASK")
            assert task["DATA"]["sample_id"] == "a"


async def test_offline_requester_gets_labels_replayed_until_acked(
        make_server: MakeServer) -> None:
    url = await _url(make_server)
    model = await requester(url)
    await model.send(request_message("a", content=[1, 2]))
    await model.send(request_message(7))
    await model.client.sync()
    await model.close()
    async with await labeler(url, "ann") as ann:
        for _ in range(2):
            task = await ann.next("FEEDBACK/TASK")
            await ann.send(label_message(task["DATA"]["task_id"], "dog"))
            await ann.next("FEEDBACK/ACK")
    model = await Peer.connect(url, "model", room=None)  # replay comes on REGISTER
    replayed = [await model.next("FEEDBACK/LABEL") for _ in range(2)]
    assert sorted(str(lb["DATA"]["sample_id"]) for lb in replayed) == ["7", "a"]
    assert {type(lb["DATA"]["sample_id"]) for lb in replayed} == {int, str}  # types kept
    assert all(lb["DATA"]["replay"] is True for lb in replayed)
    await model.join()
    await model.send(feedback("ACK", label_id=replayed[0]["DATA"]["label_id"]))
    await model.client.sync()
    await model.close()
    model = await Peer.connect(url, "model", room=None)
    again = await model.next("FEEDBACK/LABEL")
    assert again["DATA"]["label_id"] == replayed[1]["DATA"]["label_id"]
    await model.none_of("FEEDBACK/LABEL", 0.2)
    await model.close()


async def test_history_replays_every_label_then_counts(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        for i in range(3):
            await model.send(request_message(i))
        for _ in range(3):
            task = await ann.next("FEEDBACK/TASK")
            await ann.send(label_message(task["DATA"]["task_id"], "cat"))
        live = [await model.next("FEEDBACK/LABEL") for _ in range(3)]
        for label in live:  # acked labels are part of the history too
            await model.send(feedback("ACK", label_id=label["DATA"]["label_id"]))
        await model.send(feedback("HISTORY"))
        replayed = [await model.next("FEEDBACK/LABEL") for _ in range(3)]
        done = await model.next("FEEDBACK/HISTORY")
        assert done["DATA"] == {"count": 3}
        assert [lb["DATA"]["label_id"] for lb in replayed] == \
            [lb["DATA"]["label_id"] for lb in live]
        assert all(lb["DATA"]["replay"] for lb in replayed)


async def test_stats_are_broadcast_on_change(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("a"))
        await model.send(request_message("b"))
        task = await ann.next("FEEDBACK/TASK")
        await ann.send(label_message(task["DATA"]["task_id"], "cat"))
        await model.next("FEEDBACK/LABEL")
        deadline = asyncio.get_running_loop().time() + 5
        while True:  # throttled broadcasts converge on the final numbers
            stats = (await model.client.expect("FEEDBACK/STATS"))["DATA"]
            if stats["labeled"] == 1 and stats["in_flight"] == 1:
                break
            assert asyncio.get_running_loop().time() < deadline, stats
        assert stats["queued"] == 0 and stats["labelers"] == 1
        assert stats["labels_per_minute"] == 1


async def test_a_labeler_who_reconnects_gets_the_figures_without_waiting_for_a_change(
        make_server: MakeServer) -> None:
    # A page reload within one stats tick leaves the room's figures as they were: the
    # new connection must still be shown them, not only after the next change.
    url = await _url(make_server, stats_interval_seconds=30)
    async with await labeler(url, "ann") as first:
        assert (await first.next("FEEDBACK/STATS"))["DATA"]["labelers"] == 1
        async with await labeler(url, "ann") as again:  # takes the name over
            assert (await again.next("FEEDBACK/STATS", timeout=5))["DATA"]["labelers"] == 1


async def test_other_messages_in_a_feedback_room_are_relayed(make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await requester(url, "dash") as dash:
        await dash.client.sync()  # dash has joined
        await model.send({"TYPE": "LOG/KPI", "TO_ROOM": ROOM, "DATA": {"version": 3}})
        kpi = await dash.next("LOG/KPI")
        assert kpi["DATA"] == {"version": 3} and kpi["SENT_BY"] == "model"


async def test_the_requesters_own_keys_come_back_with_labels_only(
        make_server: MakeServer) -> None:
    url = await _url(make_server)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("s1", features=[0.5, 1.5], label_id="not-mine"))
        task = await ann.next("FEEDBACK/TASK")
        assert "features" not in task["DATA"]  # labelers see only what they need
        await ann.send(label_message(task["DATA"]["task_id"], "cat"))
        live = await model.next("FEEDBACK/LABEL")
        assert live["DATA"]["features"] == [0.5, 1.5]
        assert live["DATA"]["label_id"] != "not-mine"  # protocol keys win
        await model.send(feedback("HISTORY"))
        replayed = await model.next("FEEDBACK/LABEL")
        assert replayed["DATA"]["features"] == [0.5, 1.5] and replayed["DATA"]["replay"]


async def test_a_labeler_whose_lease_ran_out_gets_work_again_once_active(
        make_server: MakeServer) -> None:
    url = await _url(make_server, lease_seconds=0.3)
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("s1"))
        held = await ann.next("FEEDBACK/TASK")
        # Away from the keyboard: after the lease lapses nothing new is pushed to ann.
        await ann.none_of("FEEDBACK/TASK", 1.0)
        await ann.send(label_message(held["DATA"]["task_id"], "cat"))  # back, but too late
        await ann.error("unknown_task")
        again = await ann.next("FEEDBACK/TASK")
        assert again["DATA"]["sample_id"] == "s1"
        assert again["DATA"]["task_id"] != held["DATA"]["task_id"]
