"""The `Source` a pool is drawn from, its `Item`s, and `load_source` choosing the reader."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swergio_al.sources.mediafiles import media_url, printable

KINDS = ("text", "table", "image", "audio")
FILE_FORMATS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".jsonl": None, ".ndjson": None}


class SourceError(Exception):
    """A source that cannot be used; `str(error)` is one line naming the problem."""


@dataclass(frozen=True)
class Item:
    """One sample: its id and its fields (the parsed row, or a folder file's path and folder)."""

    sample_id: str | int
    fields: dict[str, Any]


@dataclass
class Source:
    """Every usable sample of one file or folder, in order, and how to show each."""

    name: str
    kind: str
    items: list[Item]
    skipped: list[str]
    media_root: Path | None
    feature_columns: list[str]
    columns: list[str] = field(default_factory=list)  # every column an item may have
    text_column: str | None = None
    media_column: str | None = None  # file sources; folder sources use "path"
    matrix: np.ndarray | None = field(default=None, repr=False)  # parsed feature columns
    # Each item's media file, "/"-separated under media_root, by sample id.
    media_relpaths: dict[str | int, str] = field(default_factory=dict, repr=False)

    def features(self) -> np.ndarray | None:
        """The feature columns as floats, one row per item; None without feature columns."""
        return None if self.matrix is None else self.matrix.copy()

    def texts(self) -> list[str] | None:
        if self.text_column is None:
            return None
        return [str(item.fields[self.text_column]) for item in self.items]

    def media_paths(self) -> list[Path] | None:
        """The absolute path of each item's image or audio file."""
        if self.media_root is None:
            return None
        return [self.media_root / self._relpath(item) for item in self.items]

    def column(self, name: str) -> list[Any]:
        if name not in self.columns:
            raise SourceError(f"no column {printable(name)!r} in {self.name}: "
                              f"it has {column_listing(self.columns)}")
        return [item.fields.get(name) for item in self.items]

    def render(self, item: Item) -> dict[str, Any]:
        """The `{"kind", "content"}` the labeling page shows for `item` (web/renderers.js)."""
        if self.kind == "text":
            return {"kind": "text", "content": str(item.fields[self.text_column or ""])}
        if self.kind == "table":
            return {"kind": "table",
                    "content": {column: item.fields.get(column) for column in self.feature_columns}}
        relpath = self._relpath(item)
        if self.kind == "image":
            return {"kind": "image", "content": {"src": media_url(relpath), "alt": relpath}}
        return {"kind": "audio", "content": {"src": media_url(relpath)}}

    def _relpath(self, item: Item) -> str:
        try:
            return self.media_relpaths[item.sample_id]
        except KeyError:
            raise SourceError(f"sample {item.sample_id!r} is not in {self.name}") from None


def load_source(path: str | Path, *, text: str | None = None, image: str | None = None,
                audio: str | None = None, features: Sequence[str] | None = None,
                id_column: str | None = None, exclude: Sequence[str] = ()) -> Source:
    """Read a CSV/TSV/JSONL file or an image/audio folder into a `Source`.

    `text`/`image`/`audio` name the column holding what to label (at most one; none
    makes a table of the feature columns). `features` defaults to every numeric column
    except the id and `exclude` (e.g. the column of known answers a simulation reads).
    Raises `SourceError` (one line) for a missing, unreadable or empty source, a missing
    column, a duplicate id or a folder mixing images and audio.
    """
    source = Path(path)
    chosen = [flag for flag, value in (("--text", text), ("--image", image),
                                       ("--audio", audio)) if value is not None]
    if len(chosen) > 1:
        raise SourceError(f"choose one of {' and '.join(chosen)}: a sample shows one thing")
    try:
        is_dir, is_file = source.is_dir(), source.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise SourceError(f"cannot read {printable(str(source))}: {exc.strerror}") from None
    if is_dir:
        given = [flag for flag, value in (("--text", text), ("--image", image),
                                          ("--audio", audio), ("--features", features),
                                          ("--id", id_column)) if value is not None]
        if given:
            raise SourceError(f"{given[0]} names a column of a CSV/TSV/JSONL file; "
                              f"{printable(str(source))} is a folder")
        from swergio_al.sources.folders import load_folder

        return load_folder(source)
    if not is_file:
        what = "not found" if not source.exists() else "not a file or folder"
        raise SourceError(f"source {printable(str(source))}: {what}")
    suffix = source.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise SourceError(f"cannot read {printable(source.name)}: expected a .csv, .tsv or "
                          ".jsonl file, or a folder of images or audio")
    from swergio_al.sources.tables import load_table

    return load_table(source, delimiter=FILE_FORMATS[suffix], text=text,
                      media=image if image is not None else audio,
                      kind="image" if image is not None else "audio" if audio is not None
                      else "text" if text is not None else "table",
                      features=features, id_column=id_column, exclude=exclude)


def column_listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(printable(name) for name in names[:limit])
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return (shown + more) if names else "no columns"
