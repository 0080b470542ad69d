"""`swergio-al label --gold FILE`: samples of the source whose answer is known.

The gold file is a CSV, TSV or JSONL file with two columns: `sample_id`, a
sample of the source by the source's own id (the `--id` value, else the
0-based row number, for a folder the file's path relative to it, `cat/1.png`),
and `answer`, its known answer as `--answer` takes it. The label command asks
these samples as gold questions only (swergio_al/feedback/gold.py): the model
never asks them as labels and never learns their answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

GOLD_ID, GOLD_ANSWER = "sample_id", "answer"


def load_gold(path: str | Path, ids: Sequence[str | int],
              convert: Callable[[Any], Any]) -> dict[str | int, Any]:
    """Source sample id -> known answer. `ids` are the source's sample ids; `convert`
    turns a cell into an answer of the schema (ValueError/TypeError if it cannot).
    Raises ValueError, one line naming the file and the row, for anything wrong."""
    from swergio_al.sources import SourceError, load_source
    from swergio_al.sources.mediafiles import printable

    gold = Path(path)
    name = printable(gold.name)
    if gold.is_dir():
        raise ValueError(f"{name} is a folder; expected a CSV, TSV or JSONL file with the "
                         f"columns {GOLD_ID},{GOLD_ANSWER}")
    try:  # the source reader: its checks (columns, duplicate ids, UTF-8) and messages
        table = load_source(gold, text=GOLD_ANSWER, id_column=GOLD_ID)
    except SourceError as exc:
        raise ValueError(str(exc)) from None
    if table.skipped:  # a row without an answer: a mistake in the file, not a warning
        raise ValueError(table.skipped[0].removeprefix("skipped "))
    known = {str(sample_id): sample_id for sample_id in ids}
    answers: dict[str | int, Any] = {}
    unknown: list[str] = []
    for row, item in enumerate(table.items, start=1):
        key = str(item.sample_id)
        where = f"{name} row {row} ({GOLD_ID} {printable(key)[:40]!r})"
        if key not in known:
            unknown.append(where)
            continue
        try:
            answers[known[key]] = convert(item.fields[GOLD_ANSWER])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ValueError(f"{unknown[0]}: no such sample in the source{more}")
    if len(answers) == len(known):
        raise ValueError(f"{name} names every sample of the source: none is left to label")
    return answers
