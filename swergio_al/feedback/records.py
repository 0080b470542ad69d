"""What the feedback store keeps: requests, tasks (leases) and labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SampleId = str | int
DOUBT_FIELDS = ("top", "uncertainty")


class RequestStatus(StrEnum):
    OPEN = "open"  # still needs labels (some may be in flight)
    DONE = "done"  # has `overlap` labels
    CANCELED = "canceled"


class TaskStatus(StrEnum):
    LEASED = "leased"
    DONE = "done"
    SKIPPED = "skipped"  # the labeler passed; never offered to them again
    RETURNED = "returned"  # the labeler left or disconnected
    EXPIRED = "expired"
    CANCELED = "canceled"  # the requester canceled the sample


@dataclass(slots=True)
class FeedbackRequest:
    """One sample a model wants a person to look at (the DATA of FEEDBACK/REQUEST)."""

    room: str
    sample_id: SampleId
    requester: str
    answer: dict[str, Any]
    kind: str = "text"
    content: Any = None
    question: str = ""
    prediction: Any = None
    confidence: float | None = None
    priority: float = 0.0
    overlap: int = 1
    # The requester's other DATA keys: stored, never shown to labelers, returned with labels.
    extra: dict[str, Any] = field(default_factory=dict)

    def task_fields(self) -> dict[str, Any]:
        return {"sample_id": self.sample_id, "kind": self.kind, "content": self.content,
                "question": self.question, "answer": self.answer,
                "prediction": self.prediction, "confidence": self.confidence,
                "priority": self.priority,
                # what the label page says about the model's doubt (FeedbackLoop sends them)
                **{key: self.extra[key] for key in DOUBT_FIELDS if key in self.extra}}


class Submitted(StrEnum):
    """What became of a FEEDBACK/REQUEST."""

    CREATED = "created"
    UPDATED = "updated"  # pending already: priority (and fields) refreshed
    REOPENED = "reopened"  # had been canceled
    ALREADY_LABELED = "already_labeled"


@dataclass(slots=True)
class Task:
    """A request leased to one labeler."""

    task_id: str
    request: FeedbackRequest
    labeler: str
    lease_expires: float
    status: TaskStatus = TaskStatus.LEASED

    def message_data(self) -> dict[str, Any]:
        return {**self.request.task_fields(), "task_id": self.task_id,
                "lease_expires": self.lease_expires}


@dataclass(slots=True)
class Label:
    label_id: str
    task_id: str
    room: str
    sample_id: SampleId
    requester: str
    labeler: str
    answer: Any
    seconds: float | None
    created: float
    acked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # the request's, for the requester

    def message_data(self, *, replay: bool) -> dict[str, Any]:
        return {**self.extra, "label_id": self.label_id, "sample_id": self.sample_id,
                "answer": self.answer, "labeler": self.labeler, "seconds": self.seconds,
                "created": self.created, "replay": replay}

    def export_row(self) -> dict[str, Any]:
        return {"label_id": self.label_id, "room": self.room, "sample_id": self.sample_id,
                "requester": self.requester, "labeler": self.labeler, "answer": self.answer,
                "seconds": self.seconds, "created": self.created, "acked": self.acked}


@dataclass(slots=True)
class RoomStats:
    queued: int = 0
    in_flight: int = 0
    labeled: int = 0
    labels_per_minute: int = 0


@dataclass(slots=True)
class KpiPoint:
    """One LOG/KPI report a model sent to a feedback room, as the server keeps it."""

    room: str
    model: str
    created: float
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {**self.data, "room": self.room, "model": self.model, "received": self.created}


@dataclass(slots=True)
class LabelerStats:
    """One labeler's work in a room: labels given, median seconds per label, skips."""

    labeler: str
    labels: int
    median_seconds: float | None
    skips: int


class StoreError(Exception):
    """Base of the store's refusals; the service turns them into ERROR frames."""


class UnknownTask(StoreError):
    pass


class NotYourTask(StoreError):
    pass


class LimitReached(StoreError):
    pass


class StoreUnavailable(StoreError):
    """Closed, or the backend failed (disk full, database gone): try again later."""
