"""Feedback requests of every kind the labeling page renders, as a model sends them."""

from __future__ import annotations

import base64
import io
import math
import struct
import wave
from typing import Any

import numpy as np

from swergio_al.demos.music.melody import decode
from tests.helpers import RawClient

KINDS = ("text", "image", "table", "melody", "audio")
CHOICE = {"type": "choice", "choices": ["positive", "negative", "neutral"]}
RATING = {"type": "rating", "min": 0, "max": 5, "step": 1}
TEXT = {"type": "text", "max_length": 200}
PREDICTIONS = {"text": "positive", "image": "yes", "table": "setosa", "melody": 3, "audio": "hum"}


def _svg_image(hue: int) -> str:
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="160" height="100">'
           f'<rect width="160" height="100" fill="hsl({hue},70%,60%)"/>'
           f'<circle cx="80" cy="50" r="30" fill="white"/></svg>')
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _wav(seconds: float = 0.3, freq: float = 440.0, rate: int = 8000) -> str:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = (int(8000 * math.sin(2 * math.pi * freq * i / rate))
                  for i in range(int(seconds * rate)))
        out.writeframes(b"".join(struct.pack("<h", v) for v in frames))
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def sample(kind: str, i: int) -> dict[str, Any]:
    """content, question and answer schema of sample `i` of `kind`."""
    if kind == "text":
        return {"content": f"Review {i}: the battery lasts, the screen scratches easily.",
                "question": "What is the sentiment of this review?", "answer": CHOICE}
    if kind == "image":
        return {"content": {"src": _svg_image(40 * i), "alt": f"shape {i}"},
                "question": "Is this a circle on a warm background?",
                "answer": {"type": "choice", "choices": ["yes", "no"]}}
    if kind == "table":
        return {"content": {"sepal_length": 5.1 + i / 10, "sepal_width": 3.5,
                            "petal_length": 1.4 + i / 5, "petal_width": 0.2},
                "question": "Which iris is this?",
                "answer": {"type": "choice", "choices": ["setosa", "versicolor", "virginica"]}}
    if kind == "melody":  # what the music demo sends: its decoded genomes
        genome = np.random.default_rng(i).integers(0, 2, 128)
        return {"content": decode(genome).content(),
                "question": "How much do you like this melody?", "answer": RATING}
    if kind == "audio":
        return {"content": {"src": _wav(freq=220.0 * (1 + i / 4))},
                "question": "Describe the sound in a word.", "answer": TEXT}
    raise ValueError(kind)


async def request(model: RawClient, room: str, sample_id: str, kind: str, i: int, *,
                  priority: float, **overrides: Any) -> None:
    data = {"sample_id": sample_id, "kind": kind, "prediction": PREDICTIONS.get(kind),
            "confidence": 0.55,
            "priority": priority, **(sample(kind, i) if kind in KINDS else {})}
    data.update(overrides)
    await model.send({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": room, "DATA": data})


async def take_labels(model: RawClient, count: int, *, timeout: float = 15.0,
                      ack: bool = True) -> dict[str, dict[str, Any]]:
    """Receive `count` distinct labels (by sample_id), acknowledging each."""
    labels: dict[str, dict[str, Any]] = {}
    while len(labels) < count:
        message = await model.expect("FEEDBACK/LABEL", timeout=timeout)
        data = message["DATA"]
        labels[str(data["sample_id"])] = data
        if ack:
            await model.send({"TYPE": "FEEDBACK/ACK", "TO_ROOM": message["TO_ROOM"],
                              "DATA": {"label_id": data["label_id"]}})
    return labels


async def no_label_within(model: RawClient, seconds: float) -> None:
    """Assert no FEEDBACK/LABEL reaches the model within `seconds` (STATS and the like pass)."""
    try:
        extra = await model.expect("FEEDBACK/LABEL", timeout=seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected label: {extra['DATA']}")


async def connect_model(url: str, name: str = "model", room: str = "feedback") -> RawClient:
    """A model component that keeps every frame (RawClient.connect's sync would swallow the
    labels the server replays on REGISTER)."""
    model = await RawClient.connect(url)
    await model.send({"TYPE": "COMMAND/REGISTER", "NAME": name, "TO_ROOM": "_command"})
    await model.send({"TYPE": "COMMAND/JOINROOM", "ROOM": room, "TO_ROOM": "_command"})
    model.name = name
    return model
