"""Issue 16: labels whose every text field is generated travel request -> task ->
label -> model exactly, and both exports read back to exactly the stored labels,
on SQLite and on PostgreSQL.

The CSV is read twice, by Python's csv module and by the strict RFC 4180 reader
below (written here, sharing nothing with the csv module), one record per label;
text cells never start like a spreadsheet formula, and dropping one leading '
gives the stored value back (docs/security.md). JSON lines are the stored values
byte for byte.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.feedback.postgres import drop_schema, fresh_schema_url, require_postgres
from tests.helpers import LoopThread, ServerProcess
from tests.hostile import LIVE, Client, Message, clean_text, connect, errors, serial

TOKEN = "ctok-" + os.urandom(12).hex()
TEXT_COLUMNS = ("label_id", "room", "sample_id", "requester", "labeler", "answer")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
sample_ids = clean_text.filter(bool) | st.integers(-(10**400), 10**400)


def read_rfc4180(text: str) -> list[list[str]]:
    """Records of a CSV text as RFC 4180 defines it: CRLF between records, fields
    separated by commas, a field holding a comma, quote, CR or LF quoted, with
    quotes doubled. Anything else (a bare CR or LF outside quotes, a quote inside
    an unquoted field, text after a closing quote) is an error."""
    records: list[list[str]] = []
    record: list[str] = []
    i, end = 0, len(text)
    while i < end:
        if text.startswith('"', i):  # quoted field
            i += 1
            parts = []
            while True:
                close = text.index('"', i)  # ValueError: unterminated
                parts.append(text[i:close])
                if text.startswith('"', close + 1):
                    parts.append('"')
                    i = close + 2
                else:
                    i = close + 1
                    break
            field = "".join(parts)
        else:
            stop = i
            while stop < end and text[stop] not in ',\r\n"':
                stop += 1
            assert stop == end or text[stop] != '"', f"quote inside a bare field at {stop}"
            field, i = text[i:stop], stop
        record.append(field)
        if text.startswith(",", i):
            i += 1
        elif text.startswith("\r\n", i):
            records.append(record)
            record, i = [], i + 2
        else:
            raise AssertionError(f"expected , or CRLF at {i}: {text[i:i + 20]!r}")
    assert record == [], "the last record lacks its CRLF"
    return records


def unprotect(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoopThread, str]]:
    """A served process on either store (PostgreSQL text refuses what SQLite keeps)."""
    tmp: Path = tmp_path_factory.mktemp("export")
    if request.param == "postgresql":
        require_postgres()
        store = fresh_schema_url()
    else:
        store = f"sqlite:///{tmp / 'store.db'}"
    server = ServerProcess("--store", store, "--component-token", TOKEN, "--access-log",
                           "--log-level", "INFO",
                           env={"SWERGIO_AL_RATE_PER_SECOND": "5000",
                                "SWERGIO_AL_RATE_BURST": "5000"}, log_path=tmp / "server.log")
    server.start()
    runner = LoopThread()
    try:
        yield runner, server.url
        log = (tmp / "server.log").read_text("utf-8", errors="backslashreplace")
        assert "Traceback" not in log and TOKEN not in log
    finally:
        runner.close()
        server.__exit__()
        if request.param == "postgresql":
            asyncio.run(drop_schema(store))


@pytest.mark.timeout(120)
def test_generated_labels_read_back_exactly_from_jsonl_and_csv(served: Any) -> None:
    runner, url = served
    sent: list[dict[str, Any]] = []

    @settings(LIVE, max_examples=150)
    @given(room=clean_text, model=clean_text, labeler=clean_text, sample=sample_ids,
           question=clean_text, content=st.lists(clean_text, max_size=3), answer=clean_text)
    def trip(room: str, model: str, labeler: str, sample: Any, question: str,
             content: list[str], answer: str) -> None:
        n = next(serial)  # names and rooms unique per example, generated text around it
        names = {"room": f"feedback{room}{n}", "requester": f"{model}-m{n}",
                 "labeler": f"{labeler}-l{n}"}
        label = runner.run(_trip(url.replace("http", "ws", 1) + "/ws", names, sample,
                                 question, content, answer))
        sent.append({**names, "label_id": label, "sample_id": sample, "answer": answer})

    trip()
    by_id = {label["label_id"]: label for label in sent}
    jsonl = runner.run(_export(url, "jsonl")).decode("utf-8")
    # One record a line for every line reader: U+0085, U+2028 and U+2029, which JSON
    # strings may hold as they are and str.splitlines() cuts at, are written escaped.
    assert jsonl.endswith("\n")
    assert jsonl.splitlines() == jsonl[:-1].split("\n")
    rows = [json.loads(line) for line in jsonl.splitlines()]
    assert len(rows) == len(sent)
    for row in rows:
        assert {key: row[key] for key in TEXT_COLUMNS} == by_id[row["label_id"]]

    text = runner.run(_export(url, "csv")).decode("utf-8")
    by_csv_module = list(csv.reader(io.StringIO(text, newline="")))
    by_hand = read_rfc4180(text)
    assert by_csv_module == by_hand
    header, *records = by_hand
    assert len(records) == len(sent)  # one record per label, whatever the text held
    for record in records:
        cells = dict(zip(header, record, strict=True))
        label = by_id[cells["label_id"]]
        for column in TEXT_COLUMNS:
            stored = label[column]
            if isinstance(stored, int):  # integer sample ids are numbers, written as such
                assert cells[column] == str(stored)
                continue
            assert not cells[column].startswith(FORMULA_STARTS), cells[column]
            assert unprotect(cells[column]) == stored, (column, cells[column], stored)


async def _trip(url: str, names: dict[str, str], sample: Any, question: str,
                content: list[str], answer: str) -> str:
    room = names["room"]
    model = await connect(url, names["requester"], token=TOKEN, rooms=(room,))
    labeler = await connect(url, names["labeler"], role="labeler", token=TOKEN, rooms=(room,))
    try:
        assert errors(await model.settle()) == []
        await model.send({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": room, "DATA": {
            "sample_id": sample, "question": question, "content": {"parts": content},
            "answer": {"type": "text"}, "features": content}})
        task = (await _next(labeler, "FEEDBACK/TASK"))["DATA"]
        assert (task["sample_id"], task["question"], task["content"]) == \
            (sample, question, {"parts": content})
        await labeler.send({"TYPE": "FEEDBACK/LABEL", "TO_ROOM": room,
                            "DATA": {"task_id": task["task_id"], "answer": answer}})
        await _next(labeler, "FEEDBACK/ACK")
        label = (await _next(model, "FEEDBACK/LABEL"))["DATA"]
        assert (label["sample_id"], label["answer"], label["features"], label["labeler"]) == \
            (sample, answer, content, names["labeler"])
        await model.send({"TYPE": "FEEDBACK/ACK", "TO_ROOM": room,
                          "DATA": {"label_id": label["label_id"]}})
        assert errors(await model.settle()) == []
        return str(label["label_id"])
    finally:
        await model.close()
        await labeler.close()


async def _next(client: Client, kind: str) -> Message:
    while True:
        message = await client.recv()
        assert message.get("TYPE") != "ERROR", message
        if message.get("TYPE") == kind:
            return message


async def _export(url: str, fmt: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(
            f"{url}/api/labels.{fmt}", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
        return await response.read()
