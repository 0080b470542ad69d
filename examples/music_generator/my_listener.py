"""A listener of your own: any function from a Melody to a rating 0..5.

    swergio-al demo music --headless --listener my_listener:likes_high_notes
    (run from this folder, or put it on PYTHONPATH)
"""

from __future__ import annotations

from swergio_al.demos.music.listener import taste
from swergio_al.demos.music.melody import Melody


def likes_high_notes(melody: Melody) -> float:
    """The simulated taste, plus a star for melodies that sit above the middle C octave."""
    notes = [pitch for pitch in melody.pitches if pitch is not None]
    high = sum(pitch >= 67 for pitch in notes) / len(notes) if notes else 0.0
    return min(5.0, taste(melody) + 1.0 * high)
