"""Whatever bytes a source file holds, loading it gives a Source or one SourceError line."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from swergio_al.sources import SourceError, load_source

NAMES = ["text", "id", "a", "b", "1", "", "te xt", "\ufefftext", "a\nb"]
CELLS = st.one_of(st.sampled_from(["1", "-2.5", "1e3", "NaN", "inf", "", "x", "a,b", 'q"q',
                                   "pic.png", "../x.png", "\x00", "é", "\r\n", "7"]),
                  st.text(max_size=8))
COLUMNS = st.sampled_from([None, None, None, "text", "id", "a", "b", "1"])
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                        st.lists(st.integers(), max_size=2))


@st.composite
def delimited(draw: st.DrawFn) -> tuple[bytes, str]:
    header = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4,
                           unique=draw(st.integers(0, 9)) > 0))
    # Mostly rows as wide as the header; now and then one field short or over.
    width = st.sampled_from([len(header)] * 8 + [max(0, len(header) - 1), len(header) + 1])
    rows = draw(st.lists(width.flatmap(lambda n: st.lists(CELLS, min_size=n, max_size=n)),
                         max_size=6))
    delimiter = draw(st.sampled_from([",", "\t"]))
    quote = draw(st.booleans())
    lines = [delimiter.join((f'"{c}"' if quote else c) for c in line)
             for line in [header, *rows]]
    suffix = {",": ".csv", "\t": ".tsv"}[delimiter]
    return "\n".join(lines).encode("utf-8", "surrogatepass"), suffix


@st.composite
def json_lines(draw: st.DrawFn) -> tuple[bytes, str]:
    rows = draw(st.lists(st.dictionaries(st.sampled_from(NAMES), JSON_VALUES, max_size=4),
                         max_size=6))
    import json

    lines = [json.dumps(row) for row in rows]
    if draw(st.integers(0, 4)) == 0:
        lines.append(draw(st.sampled_from(["", "[1]", "{", "null", '"x"'])))
    return "\n".join(draw(st.permutations(lines))).encode(), ".jsonl"


@settings(max_examples=300)
@given(file=st.one_of(delimited(), json_lines(),
                     st.tuples(st.binary(max_size=120), st.sampled_from([".csv", ".jsonl"]))),
       text=COLUMNS, id_column=COLUMNS,
       features=st.one_of(st.none(), st.none(),
                          st.lists(st.sampled_from(["a", "b", "id"]), max_size=2)))
def test_any_file_loads_or_is_one_error_line(file: tuple[bytes, str], text: str | None,
                                             id_column: str | None,
                                             features: list[str] | None) -> None:
    content, suffix = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(content)
        try:
            source = load_source(path, text=text, id_column=id_column, features=features)
        except SourceError as exc:
            assert str(exc) and "\n" not in str(exc)
            event("refused")
            return
    event("loaded")
    assert source.items
    ids = [item.sample_id for item in source.items]
    assert len(set(map(str, ids))) == len(ids)
    for item in source.items:
        source.render(item)
    matrix = source.features()
    if matrix is not None:
        assert matrix.shape == (len(source.items), len(source.feature_columns))
    assert all("\n" not in line for line in source.skipped)
