"""The dashboard's data: KPI history kept by the server (/api/kpi) and per-labeler
figures (/api/labelers), from a real model loop and labeler on a served app."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import SGDClassifier

from swergio_al.feedback import Labeler
from swergio_al.feedback.kpi import MAX_FIELDS, MAX_TEXT, kpi_record
from swergio_al.feedback.loop import FeedbackLoop
from swergio_al.learning import ActiveLearner
from tests.conftest import MakeServer
from tests.helpers import RawClient

ROOM = "feedback/curve"
TOKEN = "component-secret"


async def get_json(server: Any, path: str, **params: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(
            server.make_url(path).with_query(params),
            headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_a_models_curve_is_kept_by_the_server_and_served_later(
        make_server: MakeServer) -> None:
    server = await make_server(stats_interval_seconds=0.02)
    url = str(server.make_url("/ws"))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 2))
    loop = FeedbackLoop(ActiveLearner(SGDClassifier(loss="log_loss", random_state=0),
                                      classes=[0, 1], random_state=0),
                        name="model", url=url, feedback_room=ROOM,
                        answer={"type": "choice", "choices": [0, 1]})
    oracle = lambda task: int(task["content"]["x0"] > 0)  # noqa: E731
    async with await RawClient.connect(url, "watcher", rooms=(ROOM,)) as watcher, \
            loop, Labeler("ann", url, oracle, room=ROOM) as ann:
        for i, x in enumerate(X):
            await loop.ask(i, x)
        await ann.wait_acked(len(X), timeout=10)
        await loop.wait_learned(len(X))
        # The server may still be reading the loop's last frames, and closing now would
        # drop them (frames of a closed connection do not act): wait until all are relayed
        # (the server keeps each report before relaying it).
        for _ in loop.kpis:
            await watcher.expect("LOG/KPI")
    # The loop is gone; what it reported is still there, in order.
    points = (await get_json(server, "/api/kpi", room=ROOM))["kpi"]
    assert [p["version"] for p in points] == [k["version"] for k in loop.kpis]
    assert all(p["model"] == "model" and p["room"] == ROOM for p in points)
    assert points[-1]["prequential_metric"] == "accuracy"
    assert points[-1]["prequential"] == loop.kpis[-1]["prequential"]
    assert (await get_json(server, "/api/kpi", model="nobody"))["kpi"] == []

    rows = (await get_json(server, "/api/labelers", room=ROOM))[ROOM]
    assert [(r["labeler"], r["labels"], r["skips"]) for r in rows] == [("ann", len(X), 0)]


async def test_the_dashboard_api_wants_the_component_token(make_server: MakeServer) -> None:
    server = await make_server(component_token=TOKEN)
    async with aiohttp.ClientSession() as session:
        for path in ("/api/kpi", "/api/labelers"):
            async with session.get(server.make_url(path)) as response:
                assert response.status == 401
            async with session.get(server.make_url(path).with_query(token=TOKEN)) as response:
                assert response.status == 200


async def test_kpi_reports_that_are_not_objects_are_relayed_but_not_kept(
        make_server: MakeServer) -> None:
    server = await make_server()
    url = str(server.make_url("/ws"))
    async with await RawClient.connect(url, "model", rooms=(ROOM,)) as model, \
            await RawClient.connect(url, "watcher", rooms=(ROOM,)) as watcher:
        await model.send({"TYPE": "LOG/KPI", "TO_ROOM": ROOM, "DATA": [1, 2]})
        await model.send({"TYPE": "LOG/KPI", "TO_ROOM": ROOM, "DATA": {"version": 7}})
        assert (await watcher.expect("LOG/KPI"))["DATA"] == [1, 2]
        assert (await watcher.expect("LOG/KPI"))["DATA"] == {"version": 7}
    points = (await get_json(server, "/api/kpi"))["kpi"]
    assert [p["version"] for p in points] == [7]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=60))
def test_kept_kpi_records_are_small_plain_json(data: Any) -> None:
    record = kpi_record(data)
    if record is None:
        return
    assert len(record) <= MAX_FIELDS
    text = json.dumps(record, allow_nan=False)  # strict JSON: no NaN or Infinity
    assert len(text) < MAX_FIELDS * (2 * MAX_TEXT + 40)
    assert all(not isinstance(v, list | dict) for v in record.values())
