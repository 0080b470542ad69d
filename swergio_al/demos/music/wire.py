"""What the music components say to each other: rooms, payloads, the rating schema.

A genome travels as a hex string, one digit per 4-bit step ("0124..."), which
is also its sample id in the feedback room: the same melody is asked about once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from swergio_al.demos.music.melody import encode_steps, steps_of

EVALUATE_ROOM = "music/evaluate"  # evolution → evaluator: a generation; ← fitness
PROGRESS_ROOM = "music/progress"  # evolution publishes each generation's numbers
FEEDBACK_ROOM = "feedback/melody"
KPI_ROOM = "kpi"  # the dashboard's room for LOG/KPI
RATING = {"type": "rating", "min": 0, "max": 5, "step": 1}
QUESTION = "How much do you like this melody? (0 = not at all, 5 = a lot)"


def genome_to_hex(genome: ArrayLike) -> str:
    return "".join(f"{step:x}" for step in steps_of(genome))


def hex_to_genome(text: str) -> NDArray[np.uint8]:
    if not isinstance(text, str) or not text:
        raise ValueError("a genome is a non-empty hex string")
    try:
        return encode_steps([int(digit, 16) for digit in text])
    except ValueError:
        raise ValueError(f"a genome is a hex string, got {text[:40]!r}") from None
