"""Media files a source may hold: which names count, whether a file is really one, its URL.

Shared by the source readers (what to keep) and the `/media` route (what to serve).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

MEDIA_PREFIX = "/media/"

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp"}
AUDIO_TYPES = {".wav": "audio/wav", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}
MEDIA_TYPES = {**IMAGE_TYPES, **AUDIO_TYPES}


def media_url(relpath: str) -> str:
    """`cat/1 a.png` → `/media/cat/1%20a.png`: each segment quoted, "/" kept between them."""
    return MEDIA_PREFIX + "/".join(quote(part, safe="") for part in relpath.split("/"))


def printable(text: str) -> str:
    """A name fit for a one-line message: control characters (a newline in a file
    name) and undecodable bytes shown escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def unreadable_reason(path: Path) -> str | None:
    """Why the media file at `path` cannot be shown, or None when it can.

    Images must open and verify in Pillow; audio files must start as their format does.
    """
    suffix = path.suffix.lower()
    try:
        with path.open("rb") as stream:
            head = stream.read(16)
            if suffix in IMAGE_TYPES:
                return _image_problem(stream)
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc.__class__.__name__})"
    if suffix in AUDIO_TYPES and not _looks_like_audio(suffix, head):
        return f"not a {suffix[1:].upper()} file"
    return None


def _image_problem(stream: BinaryIO) -> str | None:
    from PIL import Image

    stream.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its pixel limit; a page should not decode those either.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "image too large to decode safely"
    except (OSError, SyntaxError, ValueError, EOFError, IndexError):
        # Pillow reports a broken or unknown image through any of these (its message
        # names the open file object, not the file).
        return "not an image Pillow can read"
    return None


def _looks_like_audio(suffix: str, head: bytes) -> bool:
    if suffix == ".wav":
        return head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    if suffix == ".ogg":
        return head[:4] == b"OggS"
    # MP3: an ID3 tag, or straight into an MPEG audio frame (11 sync bits).
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
