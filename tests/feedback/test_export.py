"""Label export (CLI and /api) and /api/stats, from a store filled through a real server."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from swergio_al.keys import STORE
from tests.conftest import MakeServer
from tests.feedback.helpers import feedback, label_message, labeler, request_message, requester

ROOMS = ("feedback/a", "feedback/b")
TEXT = {"type": "text", "max_length": 100}
ANSWERS = {"feedback/a": 'say "hi", then\nleave', "feedback/b": "plain"}


async def _fill(server: TestServer) -> None:
    """One labeled sample per room (text answers that need CSV quoting), one left queued."""
    url = str(server.make_url("/ws"))
    for room in ROOMS:
        async with await requester(url, room=room) as model, \
                await labeler(url, "ann", room=room) as ann:
            await model.send(request_message("s1", room=room, answer=TEXT))
            task = await ann.next("FEEDBACK/TASK")
            await ann.send(label_message(task["DATA"]["task_id"], ANSWERS[room], room=room))
            await ann.next("FEEDBACK/ACK")
            label = await model.next("FEEDBACK/LABEL")
            await model.send(feedback("ACK", room=room, label_id=label["DATA"]["label_id"]))
            await model.send(request_message("s2", room=room, answer=TEXT))
            await model.client.sync()


async def _get(server: TestServer, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, \
            session.get(str(server.make_url(path))) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "swergio_al.cli", "export", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    return proc.returncode or 0, out.decode(), err.decode()


def _rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


async def test_api_exports_labels_as_csv_and_jsonl(make_server: MakeServer) -> None:
    server = await make_server()
    await _fill(server)
    status, kind, body = await _get(server, "/api/labels.jsonl")
    assert status == 200 and kind.startswith("application/x-ndjson")
    rows = _rows(body)
    assert [(r["room"], r["sample_id"], r["answer"], r["labeler"], r["requester"], r["acked"])
            for r in rows] == [(room, "s1", ANSWERS[room], "ann", "model", True)
                               for room in ROOMS]
    status, kind, body = await _get(server, "/api/labels.csv?room=feedback/a")
    assert status == 200 and kind.startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(body)))
    assert [(r["room"], r["answer"], r["acked"]) for r in table] == \
        [("feedback/a", ANSWERS["feedback/a"], "1")]
    status, _, body = await _get(server, "/api/labels.csv?room=feedback/none")
    assert body.splitlines() == ["label_id,room,sample_id,requester,labeler,answer,seconds,"
                                 "created,acked,counted,aggregate,aggregate_confidence"]


async def test_api_stats_per_room(make_server: MakeServer) -> None:
    server = await make_server()
    await _fill(server)
    status, kind, body = await _get(server, "/api/stats")
    assert status == 200 and kind.startswith("application/json")
    assert json.loads(body) == {room: {"queued": 1, "in_flight": 0, "labeled": 1, "labelers": 0,
                                       "labels_per_minute": 1} for room in ROOMS}


async def test_cli_export_matches_the_api(make_server: MakeServer, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"  # make_server's default location
    server = await make_server(store=store)
    await _fill(server)
    code, out, err = await _cli("--store", store, "--format", "jsonl")
    assert code == 0, err
    _, _, api = await _get(server, "/api/labels.jsonl")
    assert _rows(out) == _rows(api) and len(_rows(out)) == 2
    target = tmp_path / "b.csv"
    code, out, err = await _cli("--store", store, "--room", "feedback/b", "-o", str(target))
    assert code == 0 and out == "", err
    table = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [(r["room"], r["sample_id"], r["answer"]) for r in table] == \
        [("feedback/b", "s1", "plain")]


async def test_cli_export_refuses_a_missing_store(tmp_path: Path) -> None:
    code, out, err = await _cli("--store", f"sqlite:///{tmp_path / 'nothing.db'}")
    assert code == 1 and out == ""
    assert "no store at" in err
    assert not (tmp_path / "nothing.db").exists()


async def test_a_failed_store_means_503_and_unavailable_not_a_crash(
        make_server: MakeServer) -> None:
    server = await make_server()
    await server.app[STORE].close()  # as if the disk went away
    status, _, body = await _get(server, "/api/stats")
    assert status == 503 and "store unavailable" in body
    status, _, _ = await _get(server, "/api/labels.jsonl")
    assert status == 503
    async with await requester(str(server.make_url("/ws"))) as model:
        await model.send(request_message("s1"))
        error = await model.error("unavailable")
        assert "retry" in error["MESSAGE"]
        await model.client.sync()  # the connection is still fine


def test_a_jsonl_record_is_one_line_to_every_line_reader() -> None:
    import json

    from swergio_al.feedback.export import jsonl_record

    row = {"answer": "a\u2028b\u2029c\x85d\ne\u00e9\U0001f600", "sample_id": 10**40}
    record = jsonl_record(row)
    assert record.endswith("\n") and len(record.splitlines()) == 1
    assert json.loads(record) == row  # the values exactly; only the spelling differs
    assert "\u00e9\U0001f600" in record  # other text stays as it is (not \u-escaped)
