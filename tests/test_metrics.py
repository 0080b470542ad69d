"""GET /metrics (issue 17): scraped after real runs, its figures match what happened."""

from __future__ import annotations

from collections import Counter

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from swergio_al.feedback import Labeler
from swergio_al.keys import STORE
from tests.conftest import MakeServer
from tests.feedback.helpers import (
    ROOM,
    feedback,
    label_message,
    labeler,
    request_message,
    requester,
)
from tests.helpers import RawClient

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: TestServer, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, \
            session.get(str(server.make_url("/metrics")), headers=headers) as response:
        return response.status, await response.text()


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_after_a_labeling_run_match_the_run(make_server: MakeServer) -> None:
    server = await make_server(prefetch=2)
    url = str(server.make_url("/ws"))
    n = 12
    errors: Counter[str] = Counter()
    async with await requester(url) as model, await labeler(url, "eve") as eve:
        # Refusals of three kinds, each answered with an ERROR frame.
        await model.send(feedback("REQUEST", sample_id=""))
        errors[(await model.error("bad_field"))["CODE"]] += 1
        await eve.send(label_message("no-such-task", "cat"))
        errors[(await eve.error("unknown_task"))["CODE"]] += 1
        await eve.send({"TYPE": "DATA/TEXT", "TO_ROOM": ROOM, "DATA": {}})
        errors[(await eve.error("forbidden"))["CODE"]] += 1
        await eve.close()
        async with Labeler("ann", url, lambda task: "dog", room=ROOM) as ann, \
                Labeler("bob", url, lambda task: "cat", room=ROOM) as bob:
            for i in range(n):
                await model.send(request_message(i))
            for _ in range(n):
                label = await model.next("FEEDBACK/LABEL")
                await model.send(feedback("ACK", label_id=label["DATA"]["label_id"]))
            await model.client.sync()  # every ACK handled
            assert ann.acked + bob.acked == n
            status, text = await scrape(server)
    assert status == 200
    samples = parse(text)
    stored = [label async for label in server.app[STORE].labels()]
    assert value(samples, "swergio_al_feedback_labels_total") == len(stored) == n
    assert value(samples, "swergio_al_feedback_labeled", room=ROOM) == n
    assert value(samples, "swergio_al_feedback_queued", room=ROOM) == 0
    assert value(samples, "swergio_al_feedback_in_flight", room=ROOM) == 0
    assert value(samples, "swergio_al_feedback_labelers", room=ROOM) == 2
    assert value(samples, "swergio_al_feedback_label_ack_seconds_count") == n
    assert value(samples, "swergio_al_feedback_label_learned_seconds_count") == n
    assert value(samples, "swergio_al_store_commit_seconds_count", op="label") == n
    sent = {labels[0][1]: v for (name, labels), v in samples.items()
            if name == "swergio_al_error_frames_total"}
    assert sent == dict(errors) == {"bad_field": 1, "unknown_task": 1, "forbidden": 1}
    assert value(samples, "swergio_al_messages_relayed_total", type="FEEDBACK/REQUEST") == n + 1
    assert value(samples, "swergio_al_messages_relayed_total", type="FEEDBACK/ACK") == n
    assert value(samples, "swergio_al_messages_delivered_total", type="FEEDBACK/TASK") == n
    assert value(samples, "swergio_al_messages_delivered_total", type="FEEDBACK/LABEL") == n
    assert value(samples, "swergio_al_connections", role="labeler", transport="ws") == 2
    assert value(samples, "swergio_al_connections", role="component", transport="ws") == 1
    assert value(samples, "swergio_al_rooms") == 1


async def test_rate_limit_closes_and_lease_expiries_are_counted(
        make_server: MakeServer) -> None:
    server = await make_server(rate_per_second=1, rate_burst=3, lease_seconds=0.2)
    url = str(server.make_url("/ws"))
    async with await requester(url) as model, await labeler(url, "ann") as ann:
        await model.send(request_message("s1"))
        await ann.next("FEEDBACK/TASK")
        await ann.none_of("FEEDBACK/TASK", 0.6)  # its lease runs out meanwhile
        async with await RawClient.connect(url) as flooder:
            for _ in range(5):  # unregistered: the labelers' rate applies
                await flooder.send({"TYPE": "DATA/TEXT", "TO_ROOM": "chat", "DATA": {}})
            frame = await flooder.ws.receive(timeout=5)
            while frame.type is aiohttp.WSMsgType.TEXT:
                frame = await flooder.ws.receive(timeout=5)
            assert flooder.ws.close_code == 1008
        samples = parse((await scrape(server))[1])
    assert value(samples, "swergio_al_rate_limit_closes_total", transport="ws") == 1
    assert value(samples, "swergio_al_error_frames_total", code="rate_limited") == 1
    assert value(samples, "swergio_al_error_frames_total", code="not_registered") == 3
    assert value(samples, "swergio_al_feedback_lease_expiries_total") >= 1


async def test_metrics_want_the_component_token_when_one_is_set(
        make_server: MakeServer) -> None:
    server = await make_server(component_token="s3cret")
    assert (await scrape(server))[0] == 401
    assert (await scrape(server, Authorization="Bearer wrong"))[0] == 401
    status, text = await scrape(server, Authorization="Bearer s3cret")
    assert status == 200 and "swergio_al_connections" in text
    async with aiohttp.ClientSession() as session, \
            session.get(str(server.make_url("/metrics?token=s3cret"))) as response:
        assert response.status == 200
