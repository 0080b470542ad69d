"""CSV, TSV and JSONL sources: columns, ids, features, rendering, media cells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from swergio_al.sources import Item, SourceError, load_source
from tests.sources.files import write_png, write_wav


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding, newline="")
    return path


def test_csv_texts_with_a_byte_order_mark(tmp_path: Path) -> None:
    # Spreadsheets save UTF-8 with a BOM; it must not end up in the first column's name.
    csv = write(tmp_path / "reviews.csv", "\ufeffid,text,sentiment\r\n"
                "r1,\"Great, really\",positive\r\n\r\nr2,Broke at once,negative\r\n")
    source = load_source(csv, text="text", id_column="id")
    assert (source.name, source.kind, source.skipped) == ("reviews", "text", [])
    assert source.items == [
        Item("r1", {"id": "r1", "text": "Great, really", "sentiment": "positive"}),
        Item("r2", {"id": "r2", "text": "Broke at once", "sentiment": "negative"})]
    assert source.texts() == ["Great, really", "Broke at once"]
    assert source.column("sentiment") == ["positive", "negative"]
    assert source.render(source.items[0]) == {"kind": "text", "content": "Great, really"}
    assert source.features() is None and source.media_paths() is None


def test_default_ids_are_row_numbers(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "t.csv", "text\na\nb\nc\n"), text="text")
    assert [item.sample_id for item in source.items] == [0, 1, 2]


def test_tsv_table_takes_every_numeric_column_but_id_and_excluded(tmp_path: Path) -> None:
    tsv = write(tmp_path / "flowers.tsv", "key\tlength\twidth\tname\tlabel\n"
                "1\t5.1\t3.5\tsetosa\t0\n2\t-7\t1e1\tvirginica\t2\n")
    source = load_source(tsv, id_column="key", exclude=["label"])
    assert source.kind == "table"
    assert source.feature_columns == ["length", "width"]
    np.testing.assert_array_equal(source.features(), [[5.1, 3.5], [-7.0, 10.0]])
    assert source.render(source.items[1]) == {"kind": "table",
                                              "content": {"length": "-7", "width": "1e1"}}
    chosen = load_source(tsv, features=["width"], text="name")
    assert (chosen.kind, chosen.feature_columns) == ("text", ["width"])
    np.testing.assert_array_equal(chosen.features(), [[3.5], [10.0]])


def test_jsonl_keeps_types_and_takes_integer_ids(tmp_path: Path) -> None:
    rows = [{"n": 7, "text": "first", "score": 0.5, "flag": True},
            {"n": 9, "text": "second", "score": 2, "flag": False, "extra": [1]}]
    jsonl = write(tmp_path / "notes.jsonl",
                  "\n".join(json.dumps(row) for row in rows) + "\n\n")
    source = load_source(jsonl, id_column="n")
    assert [item.sample_id for item in source.items] == [7, 9]
    assert source.items[1].fields == rows[1]
    assert source.feature_columns == ["score"]  # booleans and lists are not numbers
    assert source.column("extra") == [None, [1]]
    assert load_source(jsonl, text="text").texts() == ["first", "second"]


def test_rows_without_text_or_with_too_much_are_skipped_with_a_warning(tmp_path: Path) -> None:
    huge = json.dumps({"text": "x" * 100_001})
    jsonl = write(tmp_path / "n.jsonl",
                  f'{{"text": "kept"}}\n{{"other": 1}}\n{{"text": "  "}}\n{huge}\n')
    source = load_source(jsonl, text="text")
    assert [item.sample_id for item in source.items] == [0]
    assert source.skipped == ["skipped n.jsonl line 2: no text in 'text'",
                              "skipped n.jsonl line 3: no text in 'text'",
                              "skipped n.jsonl line 4: its text is over 100000 characters"]


def test_image_cells_resolve_inside_the_tables_folder(tmp_path: Path) -> None:
    here = tmp_path / "set"
    write_png(here / "pics" / "a.png")
    write_png(here / "pics" / "deep" / "b b.png")
    (here / "pics" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    write_png(tmp_path / "secret.png")
    table = write(here / "images.csv", "img,label\npics/a.png,x\npics\\deep\\b b.png,y\n"
                  "pics/missing.png,z\npics/broken.png,z\n../secret.png,z\n/etc/passwd,z\n")
    source = load_source(table, image="img")
    assert [item.sample_id for item in source.items] == [0, 1]
    assert source.media_root == (here / "pics").resolve()  # the narrowest folder
    assert source.media_paths() == [source.media_root / "a.png",
                                    source.media_root / "deep" / "b b.png"]
    assert source.render(source.items[1]) == {
        "kind": "image", "content": {"src": "/media/deep/b%20b.png", "alt": "deep/b b.png"}}
    assert len(source.skipped) == 4
    assert "line 4: pics/missing.png not found" in source.skipped[0]
    assert "line 5: pics/broken.png: not an image Pillow can read" in source.skipped[1]
    assert "line 6: ../secret.png is outside the folder of images.csv" in source.skipped[2]
    assert "line 7: /etc/passwd is not an image or audio file" in source.skipped[3]
    data = tmp_path / "data"
    data.mkdir()
    (data / "pics").symlink_to(here / "pics")  # a link out of the table's folder
    linked = write(data / "linked.csv", "img\npics/a.png\n")
    with pytest.raises(SourceError, match=r"outside the folder of linked\.csv"):
        load_source(linked, image="img")


ERRORS = [
    # (file name, content, load_source options, words the one-line error must contain)
    ("missing.csv", None, {}, "not found"),
    ("notes.txt", "text\nhi\n", {}, "expected a .csv, .tsv or .jsonl"),
    ("empty.csv", "", {}, "empty"),
    ("empty.jsonl", "\n\n", {}, "empty"),
    ("header.csv", "text,label\n", {"text": "text"}, "no rows"),
    ("t.csv", "text,label\nhi,x\n", {"text": "body"}, "no column 'body'"),
    ("t.csv", "text,label\nhi,x\n", {"features": ["size"]}, "no column 'size'"),
    ("t.csv", "id,text\n1,a\n2,b\n1,c\n", {"id_column": "id", "text": "text"},
     "duplicate id '1'"),
    ("t.jsonl", '{"id": 1}\n{"id": "1"}\n', {"id_column": "id"}, "duplicate id"),
    ("t.jsonl", '{"id": 1.5, "x": 1}\n', {"id_column": "id"}, "must be a non-empty string"),
    ("t.csv", "a,b\n1,2\n3\n", {}, "line 3: 1 field, the header has 2"),
    ("t.csv", "a,a\n1,2\n", {}, "column 'a' appears twice"),
    ("t.csv", 'a\n"unclosed\n', {}, "line"),
    ("t.jsonl", '{"a": 1}\n{"a": \n', {}, "line 2: not JSON"),
    ("t.jsonl", "[1, 2]\n", {}, "line 1: a row must be a JSON object"),
    ("t.csv", "text,size\nhi,big\n", {"text": "text", "features": ["size"]},
     "'size' is 'big', not a finite number"),
    ("t.csv", "text,label\nhi,x\n", {}, "no numeric column"),
    ("t.csv", "text,img\nhi,x.png\n", {"text": "text", "image": "img"},
     "choose one of --text and --image"),
    ("t.csv", "text\n \n", {"text": "text"}, "no usable rows"),
]


@pytest.mark.parametrize(("name", "content", "options", "words"), ERRORS,
                         ids=[words for *_, words in ERRORS])
def test_each_bad_source_is_one_line_naming_the_problem(
        tmp_path: Path, name: str, content: str | None, options: dict, words: str) -> None:
    if content is not None:
        write(tmp_path / name, content)
    with pytest.raises(SourceError) as caught:
        load_source(tmp_path / name, **options)
    message = str(caught.value)
    assert "\n" not in message and words in message


def test_text_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    latin = write(tmp_path / "latin.csv", "text\ncaf\xe9\n", encoding="latin-1")
    with pytest.raises(SourceError, match=r"latin.csv is not UTF-8 text"):
        load_source(latin, text="text")


def test_a_source_that_is_no_file_is_an_error(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.csv")  # opening it would block forever
    with pytest.raises(SourceError, match="not a file or folder"):
        load_source(tmp_path / "pipe.csv")


def test_a_missing_column_asked_of_a_source_is_an_error(tmp_path: Path) -> None:
    source = load_source(write(tmp_path / "t.csv", "text\nhi\n"), text="text")
    with pytest.raises(SourceError, match="no column 'folder' in t: it has text"):
        source.column("folder")


def test_audio_cells_render_as_audio(tmp_path: Path) -> None:
    write_wav(tmp_path / "calls" / "a.wav")
    (tmp_path / "calls" / "fake.mp3").write_text("not audio")
    table = write(tmp_path / "calls.jsonl",
                  '{"clip": "calls/a.wav", "who": "owl"}\n{"clip": "calls/fake.mp3"}\n')
    source = load_source(table, audio="clip")
    assert (source.kind, [item.sample_id for item in source.items]) == ("audio", [0])
    assert source.render(source.items[0]) == {"kind": "audio", "content": {"src": "/media/a.wav"}}
    assert source.skipped == ["skipped calls.jsonl line 2: calls/fake.mp3: not a MP3 file"]
