"""What `swergio-al label` leaves in `--out`.

- labels.csv, labels.jsonl: one row per label as it arrives (sample_id, answer, labeler,
  time, prediction, confidence: the model's when it asked). Rewritten from the room's
  history at start, so after a restart they hold every label of the source.
- predictions.csv: the final model's prediction and confidence for every pool sample.
- model.skops: the final model (its input: see swergio_al.recipes); load it with
  ``skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))`` after
  checking that list. A model skops cannot carry goes to model.joblib instead (pickle:
  load only your own).
- A one-line summary, printed at stop.
"""

from __future__ import annotations

import csv
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from swergio_al.feedback.export import csv_cell, jsonl_record
from swergio_al.terminal import count

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("sample_id", "answer", "labeler", "time", "prediction", "confidence")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class Outputs:
    def __init__(self, out: Path, pool: Any, answer: dict[str, Any]) -> None:
        self.out = out
        self.pool = pool
        self.answer = answer
        self.labels = 0
        with (out / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(LABEL_COLUMNS)
        (out / "labels.jsonl").write_text("", encoding="utf-8")

    def add_label(self, sample_id: Any, data: dict[str, Any]) -> None:
        created = data.get("created")
        when = (datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
                if isinstance(created, int | float) else None)
        row = {"sample_id": sample_id, "answer": data.get("answer"),
               "labeler": data.get("labeler"), "time": when,
               "prediction": data.get("asked_prediction"),
               "confidence": data.get("asked_confidence")}
        self.labels += 1
        with (self.out / "labels.csv").open("a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow([csv_cell(row[c]) for c in LABEL_COLUMNS])
        with (self.out / "labels.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(jsonl_record(row))

    def finish(self, loop: Any, learner: Any, recipe: Any, *, before: int,
               seconds: float) -> str:
        """Writes predictions.csv and the model; returns the summary line."""
        notes = []
        model = getattr(learner, "estimator_", None) if learner is not None else None
        if model is not None:
            self._predictions(learner)
            notes.append(self._save(recipe.export(model)))
        elif learner is not None:
            notes.append("no model yet (it needs an answer of every class)")
        new = loop.n_labels - before
        rate = new / seconds if seconds > 0 else math.nan
        score = prequential_summary(loop.kpis[-1] if loop.kpis else {})
        learned = learner.n_labels_ if learner is not None else 0
        return (f"done: {count(loop.n_labels, 'label')} ({new} this run) of "
                f"{count(len(self.pool), 'sample')} in {seconds:.1f} s ({rate:.2f} labels/s); "
                f"{score}; learned {learned}; queue ran dry {count(loop.dry, 'time')}; "
                f"{'; '.join([*notes, f'outputs in {self.out}'])}")

    def _predictions(self, learner: Any) -> None:
        X = self.pool.rows(np.arange(len(self.pool)))
        predictions = learner.predict(X)
        try:
            confidence: list[Any] = list(np.asarray(learner.predict_proba(X)).max(axis=1))
        except (AttributeError, ValueError, TypeError):
            confidence = [None] * len(self.pool)
        with (self.out / "predictions.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(("sample_id", "prediction", "confidence"))
            for sid, p, c in zip(self.pool.ids, predictions, confidence, strict=True):
                writer.writerow([csv_cell(sid), csv_cell(_plain(p)),
                                 None if c is None else round(float(c), 4)])

    def _save(self, model: Any) -> str:
        import skops.io as sio

        path = self.out / "model.skops"
        try:
            sio.dump(model, path)
            return f"model in {path}"
        except Exception as exc:  # skops refuses some custom objects
            import joblib

            log.debug("skops could not save %r: %s", model, exc)
            path.unlink(missing_ok=True)
            joblib_path = self.out / "model.joblib"
            joblib.dump(model, joblib_path)
            return (f"model in {joblib_path} (skops could not carry it; a joblib file runs "
                    "code when loaded: load only one you made)")


def prequential_summary(kpi: dict[str, Any]) -> str:
    """The model's last prequential score as the dashboard shows it (the same figure:
    each label scored on the prediction made just before it was learned, rolling over
    the last WINDOW scored labels), saying which labels it covers."""
    from swergio_al.feedback.prequential import MAE, WINDOW

    value, scored = kpi.get("prequential"), int(kpi.get("prequential_labels") or 0)
    if value is None or not scored:
        return "no prequential score yet"
    metric = ("mean absolute error" if kpi.get("prequential_metric") == MAE
              else "accuracy")
    window = min(WINDOW, scored)
    return f"prequential {metric} {value:.3f} over the last {count(window, 'label')}"
