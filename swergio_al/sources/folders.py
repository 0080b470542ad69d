"""Folder sources: every image (or every audio file) under a folder, at any depth.

A sample's id is its path under the folder ("cat/1.png"); its "folder" field the name
of the folder it sits in ("cat"), which is often the answer (`--simulate folder`).
Files that cannot be shown are skipped with a warning, never served: unreadable ones,
images Pillow cannot open, links pointing out of the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from swergio_al.sources.mediafiles import (
    AUDIO_TYPES,
    IMAGE_TYPES,
    printable,
    unreadable_reason,
)
from swergio_al.sources.source import Item, Source, SourceError

# Bounds the walk: a folder source is for labeling by people, not a disk scan.
MAX_FILES = 1_000_000


def load_folder(path: Path) -> Source:
    shown = printable(str(path))
    try:
        root = path.resolve(strict=True)
        os.listdir(root)  # an unreadable folder is an error, not an empty one
    except OSError as exc:
        raise SourceError(f"cannot read the folder {shown}: {exc.strerror or exc}") from None
    skipped: list[str] = []
    candidates = _media_candidates(root, skipped)
    kinds = {"image" if Path(rel).suffix.lower() in IMAGE_TYPES else "audio"
             for rel in candidates}
    if not kinds:
        raise SourceError(f"no image ({', '.join(IMAGE_TYPES)}) or audio "
                          f"({', '.join(AUDIO_TYPES)}) files in {shown}")
    if len(kinds) > 1:
        first = {kind: next(rel for rel in candidates
                            if (Path(rel).suffix.lower() in IMAGE_TYPES) == (kind == "image"))
                 for kind in kinds}
        raise SourceError(f"{shown} mixes images ({printable(first['image'])}) and audio "
                          f"({printable(first['audio'])}): label one kind per run")
    items: list[Item] = []
    for rel in candidates:
        reason = _problem(root, rel)
        if reason is not None:
            skipped.append(f"skipped {printable(rel)}: {reason}")
            continue
        items.append(Item(rel, {"path": rel, "folder": (root / rel).parent.name}))
    if not items:
        raise SourceError(f"no readable files in {shown} (every one was skipped: {skipped[0]})")
    return Source(name=root.name, kind=kinds.pop(), items=items, skipped=skipped,
                  media_root=root, feature_columns=[], columns=["path", "folder"],
                  media_column="path", media_relpaths={item.sample_id: str(item.sample_id)
                                                       for item in items})


def _media_candidates(root: Path, skipped: list[str]) -> list[str]:
    """Relative "/"-paths of the image and audio files under `root`, sorted.

    Hidden files and folders are passed over; links to folders are not followed (they
    could loop, or lead out of the folder).
    """
    found: list[str] = []

    def walk_error(exc: OSError) -> None:
        where = Path(exc.filename).relative_to(root).as_posix() if exc.filename else "?"
        skipped.append(f"skipped {printable(where)}/: cannot read it ({exc.strerror})")

    for directory, folders, files in os.walk(root, onerror=walk_error):
        here = Path(directory)
        for folder in list(folders):
            if folder.startswith(".") or (here / folder).is_symlink():
                if not folder.startswith("."):
                    rel = (here / folder).relative_to(root).as_posix()
                    skipped.append(f"skipped {printable(rel)}/: a link to a folder "
                                   "(not followed)")
                folders.remove(folder)
        folders.sort()
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in {**IMAGE_TYPES,
                                                                          **AUDIO_TYPES}:
                continue
            found.append((here / name).relative_to(root).as_posix())
            if len(found) > MAX_FILES:
                raise SourceError(f"more than {MAX_FILES} media files under "
                                  f"{printable(str(root))}: label a smaller folder")
    return sorted(found)


def _problem(root: Path, rel: str) -> str | None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8"
    path = root / rel
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):  # dangling, or a loop
            return "a broken link"
        if not target.is_relative_to(root):
            return f"a link pointing outside {printable(root.name)}"
    if not path.is_file():
        return "not a regular file"
    return unreadable_reason(path)
