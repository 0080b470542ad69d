"""Folder sources: images or audio at any depth; what cannot be shown is skipped, named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swergio_al.sources import Item, SourceError, load_source
from tests.sources.files import write_png, write_wav


def test_images_at_any_depth_with_their_folder(tmp_path: Path) -> None:
    root = tmp_path / "animals"
    write_png(root / "cat" / "1.png")
    write_png(root / "cat" / "two words.JPG").rename(root / "cat" / "two words.JPG")
    write_png(root / "dog" / "small" / "3.webp")
    write_png(root / "top.gif")
    (root / "notes.txt").write_text("not a sample")
    write_png(root / ".hidden" / "x.png")
    write_png(root / "cat" / ".x.png")
    source = load_source(root)
    assert (source.name, source.kind, source.media_root) == ("animals", "image", root.resolve())
    assert source.items == [
        Item("cat/1.png", {"path": "cat/1.png", "folder": "cat"}),
        Item("cat/two words.JPG", {"path": "cat/two words.JPG", "folder": "cat"}),
        Item("dog/small/3.webp", {"path": "dog/small/3.webp", "folder": "small"}),
        Item("top.gif", {"path": "top.gif", "folder": "animals"})]
    assert source.skipped == []
    assert source.column("folder") == ["cat", "cat", "small", "animals"]
    assert source.media_paths() == [root.resolve() / item.fields["path"] for item in source.items]
    assert source.render(source.items[1]) == {"kind": "image", "content": {
        "src": "/media/cat/two%20words.JPG", "alt": "cat/two words.JPG"}}
    assert source.features() is None and source.texts() is None


def test_what_cannot_be_shown_is_skipped_with_a_warning_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    write_png(root / "good.png")
    write_png(root / "inside" / "target.png")
    write_png(tmp_path / "secret.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.gif").write_text("GIF? no, a note")
    (root / "out.png").symlink_to(tmp_path / "secret.png")
    (root / "chain.png").symlink_to(root / "out.png")  # inside, but ends outside
    (root / "ok-link.png").symlink_to(root / "inside" / "target.png")
    (root / "dangling.png").symlink_to(root / "gone.png")
    (root / "outfolder").symlink_to(tmp_path)
    os.mkfifo(root / "pipe.png")
    source = load_source(root)
    assert [item.sample_id for item in source.items] == [
        "good.png", "inside/target.png", "ok-link.png"]
    assert source.skipped == [
        "skipped outfolder/: a link to a folder (not followed)",
        "skipped chain.png: a link pointing outside pics",
        "skipped corrupt.png: not an image Pillow can read",
        "skipped dangling.png: a broken link",
        "skipped empty.jpg: not an image Pillow can read",
        "skipped out.png: a link pointing outside pics",
        "skipped pipe.png: not a regular file",
        "skipped text.gif: not an image Pillow can read",
    ]


def test_audio_folder_checks_each_format(tmp_path: Path) -> None:
    root = tmp_path / "calls"
    write_wav(root / "a" / "1.wav")
    (root / "a" / "2.ogg").write_bytes(b"OggS" + b"\x00" * 60)
    (root / "b").mkdir()
    (root / "b" / "3.mp3").write_bytes(b"ID3" + b"\x00" * 60)
    (root / "b" / "4.mp3").write_bytes(b"\xff\xfb\x90\x00" + b"\x00" * 60)
    (root / "b" / "bad.wav").write_bytes(b"RIFF0000AVI LIST")
    (root / "b" / "bad.mp3").write_text("hello")
    source = load_source(root)
    assert source.kind == "audio"
    assert [item.sample_id for item in source.items] == ["a/1.wav", "a/2.ogg", "b/3.mp3",
                                                         "b/4.mp3"]
    assert source.skipped == ["skipped b/bad.mp3: not a MP3 file",
                              "skipped b/bad.wav: not a WAV file"]
    assert source.render(source.items[0]) == {"kind": "audio", "content": {"src": "/media/a/1.wav"}}


def test_a_newline_in_a_file_name_stays_on_one_warning_line(tmp_path: Path) -> None:
    root = tmp_path / "p"
    write_png(root / "ok.png")
    (root / "evil\nname.png").write_bytes(b"nope")
    source = load_source(root)
    assert source.skipped == [source.skipped[0]] and "\n" not in source.skipped[0]
    assert source.skipped[0].startswith("skipped evil\\nname.png: ")


FOLDER_ERRORS = [
    ("empty folder", lambda root: None, {}, "no image"),
    ("only notes", lambda root: (root / "a.txt").write_text("x"), {}, "no image"),
    ("mixed", lambda root: (write_png(root / "a.png"), write_wav(root / "b" / "c.wav")), {},
     "mixes images (a.png) and audio (b/c.wav)"),
    ("all broken", lambda root: (root / "a.png").write_text("x"), {},
     "no readable files in"),
    ("a column option", lambda root: write_png(root / "a.png"), {"text": "text"},
     "--text names a column of a CSV/TSV/JSONL file"),
]


@pytest.mark.parametrize(("case", "build", "options", "words"), FOLDER_ERRORS,
                         ids=[case for case, *_ in FOLDER_ERRORS])
def test_each_bad_folder_is_one_line_naming_the_problem(
        tmp_path: Path, case: str, build, options: dict, words: str) -> None:
    root = tmp_path / "folder"
    root.mkdir()
    build(root)
    with pytest.raises(SourceError) as caught:
        load_source(root, **options)
    assert "\n" not in str(caught.value) and words in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_skipped(tmp_path: Path) -> None:
    write_png(tmp_path / "ok.png")
    locked = write_png(tmp_path / "locked.png")
    locked.chmod(0)
    source = load_source(tmp_path)
    assert [item.sample_id for item in source.items] == ["ok.png"]
    assert source.skipped == ["skipped locked.png: cannot read it (Permission denied)"]
