"""Genome → melody. A genome is a bit string; every 4 bits are one step (a beat).

Step values below 8 are scale degrees of the key (7 is the tonic an octave up),
8 and above are rests, and a step equal to the one before extends it (as do
neighbouring rests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

BITS_PER_STEP = 4
REST_FROM = 8  # step values >= this are rests

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
}
KEYS: dict[str, int] = {
    "C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6,
    "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11,
}
MIDDLE_C = 60


@dataclass(frozen=True)
class Melody:
    """A monophonic melody as events; a rest is an event whose pitch is None."""

    steps: tuple[int, ...]  # the decoded 4-bit values, one per beat
    degrees: tuple[int | None, ...]  # per event: scale degree, None for a rest
    pitches: tuple[int | None, ...]  # per event: MIDI number, None for a rest
    starts: tuple[float, ...]  # per event, in beats
    durations: tuple[float, ...]  # per event, in beats
    velocities: tuple[int, ...]  # per event, MIDI velocity (0 for rests)
    bpm: float
    key: str = "C"
    scale: str = "major"
    beats_per_bar: int = 4

    @property
    def beats(self) -> float:
        return float(len(self.steps))

    @property
    def seconds(self) -> float:
        return self.beats * 60.0 / self.bpm

    @property
    def sounding(self) -> list[int]:
        """Indices of the events that are notes, not rests."""
        return [i for i, pitch in enumerate(self.pitches) if pitch is not None]

    def content(self) -> dict[str, Any]:
        """The `content` of a FEEDBACK/REQUEST of kind "melody" (web/melody.js): events
        in order, a rest being a null note, so durations alone place every note."""
        return {
            "notes": list(self.pitches),
            "velocities": list(self.velocities),
            "durations": list(self.durations),
            "starts": list(self.starts),
            "bpm": self.bpm,
            "beats": self.beats,
            "key": self.key,
            "scale": self.scale,
        }


def as_genome(genome: ArrayLike) -> NDArray[np.uint8]:
    """Validate a genome: a flat sequence of 0/1 whose length is a multiple of 4."""
    bits = np.asarray(genome)
    if bits.ndim != 1:
        raise ValueError(f"a genome is one-dimensional, got shape {bits.shape}")
    if bits.size == 0 or bits.size % BITS_PER_STEP:
        raise ValueError(f"a genome's length must be a positive multiple of {BITS_PER_STEP}, "
                         f"got {bits.size}")
    if not np.isin(bits, (0, 1)).all():
        raise ValueError("a genome holds only 0 and 1")
    return bits.astype(np.uint8)


def steps_of(genome: ArrayLike) -> NDArray[np.int64]:
    """The 4-bit step values of a genome, most significant bit first."""
    bits = as_genome(genome).reshape(-1, BITS_PER_STEP).astype(np.int64)
    weights = 1 << np.arange(BITS_PER_STEP - 1, -1, -1)
    return bits @ weights


def degree_to_midi(degree: int, *, key: str = "C", scale: str = "major",
                   octave_base: int = MIDDLE_C) -> int:
    intervals = _scale(scale)
    octave, index = divmod(degree, len(intervals))
    return octave_base + _key(key) + 12 * octave + intervals[index]


def decode(genome: ArrayLike, *, key: str = "C", scale: str = "major", bpm: float = 120.0,
           beats_per_bar: int = 4) -> Melody:
    """Turn a genome into a Melody (equal neighbouring steps merge into one event)."""
    _scale(scale)
    _key(key)
    if not bpm > 0:
        raise ValueError(f"bpm must be positive, got {bpm}")
    steps = [int(s) for s in steps_of(genome)]
    degrees: list[int | None] = []
    starts: list[float] = []
    durations: list[float] = []
    for beat, step in enumerate(steps):
        previous = steps[beat - 1] if beat else None
        # A repeated step holds the note; any rest after a rest is one longer silence.
        if previous is not None and (step == previous or min(step, previous) >= REST_FROM):
            durations[-1] += 1.0
            continue
        degrees.append(step if step < REST_FROM else None)
        starts.append(float(beat))
        durations.append(1.0)
    pitches = [None if d is None else degree_to_midi(d, key=key, scale=scale) for d in degrees]
    velocities = [0 if p is None else _accent(start, beats_per_bar)
                  for p, start in zip(pitches, starts, strict=True)]
    return Melody(tuple(steps), tuple(degrees), tuple(pitches), tuple(starts), tuple(durations),
                  tuple(velocities), float(bpm), key, scale, beats_per_bar)


def encode_steps(steps: Sequence[int]) -> NDArray[np.uint8]:
    """The genome whose steps are `steps` (each 0..15): handy for composing by hand."""
    values = np.asarray(steps, dtype=np.int64)
    if values.ndim != 1 or ((values < 0) | (values >= 1 << BITS_PER_STEP)).any():
        raise ValueError(f"steps are integers in 0..{(1 << BITS_PER_STEP) - 1}")
    shifts = np.arange(BITS_PER_STEP - 1, -1, -1)
    return ((values[:, None] >> shifts) & 1).astype(np.uint8).ravel()


def random_genomes(n: int, length: int = 128, *,
                   random_state: int | np.random.Generator | None = None) -> NDArray[np.uint8]:
    rng = np.random.default_rng(random_state)
    return rng.integers(0, 2, size=(n, length), dtype=np.uint8)


def _accent(start: float, beats_per_bar: int) -> int:
    beat = int(start) % beats_per_bar
    if beat == 0:
        return 100
    return 88 if beat * 2 == beats_per_bar else 76


def _scale(name: str) -> tuple[int, ...]:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}; choose one of {sorted(SCALES)}") from None


def _key(name: str) -> int:
    try:
        return KEYS[name]
    except KeyError:
        raise ValueError(f"unknown key {name!r}; choose one of {list(KEYS)}") from None
