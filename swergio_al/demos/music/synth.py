"""Melody → audio with numpy: a few harmonics per note under an ADSR envelope; WAV via `wave`."""

from __future__ import annotations

import io
import os
import wave
from dataclasses import dataclass
from os import PathLike
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from swergio_al.demos.music.melody import Melody

# Relative amplitudes of harmonics 1, 2, 3, 4: a soft, organ-like tone.
HARMONICS = (1.0, 0.45, 0.22, 0.1)


@dataclass(frozen=True)
class Envelope:
    attack: float = 0.01  # seconds
    decay: float = 0.08  # seconds
    sustain: float = 0.7  # level, 0..1
    release: float = 0.05  # seconds, taken from the end of the note

    def shape(self, n: int, sample_rate: int) -> NDArray[np.float64]:
        """Gain for a note of `n` samples; short notes squeeze the phases proportionally."""
        phases = np.array([self.attack, self.decay, self.release]) * sample_rate
        if phases.sum() > n:
            phases *= n / phases.sum()
        attack, decay, release = (int(p) for p in phases)
        hold = n - attack - decay - release
        return np.concatenate([
            np.linspace(0.0, 1.0, attack, endpoint=False),
            np.linspace(1.0, self.sustain, decay, endpoint=False),
            np.full(hold, self.sustain),
            np.linspace(self.sustain, 0.0, release),
        ])


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def render(melody: Melody, *, sample_rate: int = 22050,
           envelope: Envelope | None = None) -> NDArray[np.float32]:
    """Mono samples in [-1, 1], silent during rests."""
    if sample_rate < 1000:
        raise ValueError(f"sample_rate must be at least 1000 Hz, got {sample_rate}")
    envelope = envelope or Envelope()
    seconds_per_beat = 60.0 / melody.bpm
    out = np.zeros(round(melody.seconds * sample_rate), dtype=np.float64)
    for i in melody.sounding:
        pitch = melody.pitches[i]
        assert pitch is not None
        begin = round(melody.starts[i] * seconds_per_beat * sample_rate)
        end = min(out.size, round((melody.starts[i] + melody.durations[i])
                                  * seconds_per_beat * sample_rate))
        t = np.arange(end - begin) / sample_rate
        f0 = midi_to_hz(pitch)
        tone = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t)
                   for h, a in enumerate(HARMONICS) if f0 * (h + 1) < sample_rate / 2)
        out[begin:end] += (melody.velocities[i] / 127) * envelope.shape(end - begin,
                                                                       sample_rate) * tone
    peak = float(np.abs(out).max(initial=0.0))
    if peak > 0:
        out *= 0.8 / peak
    return out.astype(np.float32)


def write_wav(melody: Melody, target: str | PathLike[str] | BinaryIO, *,
              sample_rate: int = 22050) -> None:
    """16-bit mono PCM."""
    pcm = (render(melody, sample_rate=sample_rate) * 32767).astype("<i2")
    if isinstance(target, str | PathLike):
        target = os.fspath(target)
    with wave.open(target, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.tobytes())


def wav_bytes(melody: Melody, *, sample_rate: int = 22050) -> bytes:
    buffer = io.BytesIO()
    write_wav(melody, buffer, sample_rate=sample_rate)
    return buffer.getvalue()
