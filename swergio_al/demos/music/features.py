"""Musical features of a melody: what the evaluator sees besides the genome bits.

Every feature lies in [0, 1]. With the genome encoding every note is in key, so the
"in key" idea is sharpened to chord tones: notes of the tonic triad (degrees 0, 2, 4, 7).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from swergio_al.demos.music.melody import Melody, as_genome, decode

CHORD_DEGREES = frozenset({0, 2, 4, 7})
TONIC_DEGREES = frozenset({0, 7})

FEATURE_NAMES = (
    "rest_ratio",  # share of beats that are silent
    "note_density",  # note onsets per beat
    "mean_step",  # mean absolute interval between neighbouring notes, in octaves
    "stepwise_ratio",  # intervals of one or two semitones (a scale step)
    "repeat_ratio",  # intervals of zero: the same pitch struck again after a rest
    "leap_ratio",  # intervals wider than a fifth
    "range",  # highest minus lowest note, in octaves (capped at 1)
    "chord_tone_ratio",  # share of sounding beats on tonic-triad degrees
    "starts_on_tonic",
    "ends_on_tonic",
    "bar_repetition",  # bars that repeat an earlier bar exactly
    "contour_changes",  # direction changes per interval
    "long_note_ratio",  # share of notes lasting two beats or more
)


def melody_features(melody: Melody) -> NDArray[np.float64]:
    notes = melody.sounding
    pitches = np.array([melody.pitches[i] for i in notes], dtype=np.float64)
    durations = np.array([melody.durations[i] for i in notes], dtype=np.float64)
    degrees = [melody.degrees[i] for i in notes]
    beats = melody.beats
    intervals = np.abs(np.diff(pitches))
    moves = np.sign(np.diff(pitches))
    moves = moves[moves != 0]
    bars = [melody.steps[i:i + melody.beats_per_bar]
            for i in range(0, len(melody.steps), melody.beats_per_bar)]
    sounding_beats = durations.sum()
    values = (
        1.0 - sounding_beats / beats,
        len(notes) / beats,
        _mean(intervals) / 12.0,
        _mean((intervals >= 1) & (intervals <= 2)),
        _mean(intervals == 0),
        _mean(intervals > 7),
        min(1.0, float(np.ptp(pitches)) / 12.0) if pitches.size else 0.0,
        (sum(d for d, g in zip(durations, degrees, strict=True) if g in CHORD_DEGREES)
         / sounding_beats) if sounding_beats else 0.0,
        float(bool(degrees) and degrees[0] in TONIC_DEGREES),
        float(bool(degrees) and degrees[-1] in TONIC_DEGREES),
        _repeated(bars),
        _mean(moves[1:] != moves[:-1]) if moves.size > 1 else 0.0,
        _mean(durations >= 2),
    )
    return np.array(values, dtype=np.float64)


def genome_features(genomes: ArrayLike, *, include_bits: bool = True,
                    **decode_options: object) -> NDArray[np.float64]:
    """Rows of [genome bits..., melody features...] for a batch of genomes."""
    rows = np.atleast_2d(np.asarray(genomes))
    out = []
    for genome in rows:
        bits = as_genome(genome).astype(np.float64)
        features = melody_features(decode(bits, **decode_options))  # type: ignore[arg-type]
        out.append(np.concatenate([bits, features]) if include_bits else features)
    return np.array(out)


def _mean(values: NDArray[np.bool_] | NDArray[np.float64]) -> float:
    return float(np.mean(values)) if values.size else 0.0


def _repeated(bars: Sequence[tuple[int, ...]]) -> float:
    if len(bars) < 2:
        return 0.0
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    for bar in bars:
        repeats += bar in seen
        seen.add(bar)
    return repeats / (len(bars) - 1)
