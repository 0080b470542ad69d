"""One room's answers as they arrive: the current aggregate of each sample, who is flagged,
and per-labeler figures. The FeedbackLoop teaches from it; /api/quality and the export
rebuild one from the store (answers in the order they were committed, so the same
answers always give the same aggregates and flags).

Flagging: once a labeler has `flag_after` counted answers and their estimated
accuracy falls below `flag_below`, their later answers are kept but no longer count.
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from swergio_al.feedback import quality
from swergio_al.feedback.quality import Aggregate, Answer

METHODS = ("dawid_skene", "majority", "mean")
# Per-request settings travel in the request's DATA under this key (kept with each label).
SETTINGS_KEY = "quality"


@dataclass
class RawAnswer:
    label_id: str
    sample_id: Hashable
    labeler: str
    answer: Any
    seconds: float | None
    counted: bool  # False: the labeler was flagged before this answer came


@dataclass
class Settings:
    """How a room aggregates: the method, the choices (None: numbers), the flag threshold."""

    method: str = "dawid_skene"
    choices: list[Any] | None = None
    flag_below: float | None = None
    flag_after: int = 20

    @classmethod
    def for_schema(cls, answer: Mapping[str, Any], *, method: str | None = None,
                   flag_below: float | None = None, flag_after: int = 20) -> Settings:
        if answer.get("type") == "choice":
            return cls(method or "dawid_skene", list(answer["choices"]), flag_below, flag_after)
        if answer.get("type") == "rating":
            return cls("mean", None, flag_below, flag_after)
        return cls(method or "majority", None, flag_below, flag_after)  # text: exact match

    def to_wire(self) -> dict[str, Any]:
        return {"method": self.method, "choices": self.choices, "flag_below": self.flag_below,
                "flag_after": self.flag_after}

    @classmethod
    def from_wire(cls, data: Any) -> Settings | None:
        """Settings a request carried, or None when absent or malformed."""
        if not isinstance(data, dict) or data.get("method") not in METHODS:
            return None
        choices = data.get("choices")
        flag_below, flag_after = data.get("flag_below"), data.get("flag_after", 20)
        if choices is not None and (not isinstance(choices, list) or len(choices) < 1):
            return None
        if flag_below is not None and not isinstance(flag_below, int | float):
            return None
        if not isinstance(flag_after, int) or isinstance(flag_after, bool):
            return None
        return cls(data["method"], choices, flag_below, flag_after)


@dataclass
class Consensus:
    """The answers of one room and their aggregate; recomputed on demand."""

    settings: Settings
    gold_accuracy: dict[str, float] = field(default_factory=dict)
    answers: list[RawAnswer] = field(default_factory=list)
    flagged: dict[str, int] = field(default_factory=dict)  # labeler -> answers seen at flagging
    _ids: set[str] = field(default_factory=set)
    _by_sample: dict[Hashable, list[RawAnswer]] = field(default_factory=dict)
    _result: Aggregate | None = None
    _previous: Aggregate | None = None  # the last result, to warm-start the next
    _checked_at: int = 0
    _estimated: dict[str, float] = field(default_factory=dict)
    _estimated_at: int = -1

    def add(self, label_id: str, sample_id: Hashable, labeler: str, answer: Any,
            seconds: float | None = None) -> bool:
        """Record one raw answer; False if this label was recorded already."""
        if label_id in self._ids:
            return False
        self._ids.add(label_id)
        counted = labeler not in self.flagged
        if counted and self.settings.choices is not None and not any(
                answer == c and type(answer) is type(c) for c in self.settings.choices):
            counted = False  # not one of the choices: kept, never aggregated
        raw = RawAnswer(label_id, sample_id, labeler, answer, seconds, counted)
        self.answers.append(raw)
        self._by_sample.setdefault(sample_id, []).append(raw)
        self._result = None
        self._check_flags()
        return True

    def labels_of(self, sample_id: Hashable) -> int:
        """How many answers the sample has, counted or not."""
        return len(self._by_sample.get(sample_id, ()))

    def answers_of(self, sample_id: Hashable) -> list[tuple[str, Any]]:
        """(labeler, answer) of the sample's counted answers, oldest first."""
        return [(a.labeler, a.answer) for a in self._by_sample.get(sample_id, ()) if a.counted]

    def recent_accuracy(self) -> dict[str, float]:
        """Estimated accuracies, recomputed only when the answers grew by a tenth (at least
        10): cheap enough to ask after every label."""
        if self._estimated_at < 0 or \
                len(self.answers) - self._estimated_at >= max(10, len(self.answers) // 10):
            self._estimated = self.estimated_accuracy()
            self._estimated_at = len(self.answers)
        return {**self.gold_accuracy, **self._estimated}  # DS is seeded by gold already

    def _counted(self) -> list[Answer]:
        return [(a.sample_id, a.labeler, a.answer) for a in self.answers if a.counted]

    def aggregate(self) -> Aggregate:
        if self._result is None:
            self._result = self._compute(self._counted())
            self._previous = self._result
        return self._result

    def _compute(self, answers: list[Answer]) -> Aggregate:
        s = self.settings
        if s.choices is None:
            if s.method == "mean":
                return quality.weighted_mean(answers)
            seen = list({(type(v), v): v for _, _, v in answers}.values())
            return quality.majority_vote(answers, seen)
        if s.method == "majority" or len(s.choices) < 2:
            return quality.majority_vote(answers, s.choices)
        return quality.dawid_skene(answers, s.choices, gold_accuracy=self.gold_accuracy or None,
                                   warm_start=self._previous, tol=1e-4)

    def _check_flags(self) -> None:
        """Re-estimate accuracies every so often (more rarely as the room grows)."""
        if self.settings.flag_below is None or self.settings.method == "mean":
            return
        if len(self.answers) - self._checked_at < max(10, len(self.answers) // 10):
            return
        self._checked_at = len(self.answers)
        counts: dict[str, int] = {}
        for a in self.answers:
            if a.counted:
                counts[a.labeler] = counts.get(a.labeler, 0) + 1
        estimated = self.estimated_accuracy()
        for labeler, accuracy in estimated.items():
            if labeler not in self.flagged and counts.get(labeler, 0) >= \
                    self.settings.flag_after and accuracy < self.settings.flag_below:
                self.flagged[labeler] = len(self.answers)

    def estimated_accuracy(self) -> dict[str, float]:
        result = self.aggregate()
        if result.accuracy is not None:
            return {str(k): float(v) for k, v in zip(result.labelers, result.accuracy,
                                                     strict=True)}
        return {labeler: share for labeler, share in self._agreement(result).items()
                if share is not None}

    def _agreement(self, result: Aggregate) -> dict[str, float | None]:
        """Share of each labeler's counted answers that equal the aggregate (choices/text),
        over the samples someone else answered too: a sample only they answered has
        them as its aggregate, which says nothing about them."""
        if self.settings.method == "mean":
            return {}
        answered: dict[Any, int] = {}
        for a in self.answers:
            if a.counted:
                answered[a.sample_id] = answered.get(a.sample_id, 0) + 1
        hits: dict[str, list[int]] = {}
        for a in self.answers:
            if a.counted and answered[a.sample_id] > 1:
                value, _ = result.of(a.sample_id)
                hits.setdefault(a.labeler, []).append(int(value == a.answer))
        return {k: float(np.mean(v)) for k, v in hits.items()}

    def report(self) -> dict[str, Any]:
        """The room's agreement and every labeler's figures (what /api/quality shows)."""
        result = self.aggregate()
        counted = self._counted()
        s = self.settings
        agreement: dict[str, float | None] = {}
        if s.choices is not None:
            agreement["fleiss_kappa"] = _finite(quality.fleiss_kappa(counted, s.choices))
            agreement["alpha_nominal"] = _finite(quality.krippendorff_alpha(counted, "nominal"))
            if _ordered(s.choices):
                agreement["alpha_ordinal"] = _finite(
                    quality.krippendorff_alpha(counted, "ordinal", order=s.choices))
        elif s.method == "mean":
            agreement["alpha_interval"] = _finite(quality.krippendorff_alpha(counted, "interval"))
        else:
            agreement["alpha_nominal"] = _finite(quality.krippendorff_alpha(counted, "nominal"))
        shares = self._agreement(result)
        estimated = self.estimated_accuracy() if s.method != "mean" else {}
        labelers: dict[str, dict[str, Any]] = {}
        for a in self.answers:
            row = labelers.setdefault(a.labeler, {"answers": 0, "counted": 0, "seconds": []})
            row["answers"] += 1
            row["counted"] += int(a.counted)
            if a.seconds is not None:
                row["seconds"].append(a.seconds)
        spread = dict(zip(result.labelers, result.spread, strict=True)) \
            if result.spread is not None else {}
        bias = dict(zip(result.labelers, result.bias, strict=True)) \
            if result.bias is not None else {}
        for name, row in labelers.items():
            seconds = row.pop("seconds")
            row.update({
                "agreement": _round(shares.get(name)),
                "gold_accuracy": _round(self.gold_accuracy.get(name)),
                "estimated_accuracy": _round(estimated.get(name)),
                "median_seconds": _round(statistics.median(seconds)) if seconds else None,
                "flagged": name in self.flagged})
            if name in spread:
                row["bias"], row["spread"] = _round(bias[name]), _round(spread[name])
        return {"method": s.method, "answers": len(self.answers), "samples": len(result.samples),
                "labelers": len(labelers), "flag_below": s.flag_below,
                "agreement": agreement,
                "mean_confidence": _round(float(np.mean(result.confidence)))
                if len(result.confidence) else None,
                "per_labeler": labelers}


def _ordered(choices: list[Any]) -> bool:
    return all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices)


def _finite(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
