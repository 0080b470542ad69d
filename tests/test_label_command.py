"""`swergio-al label`: bad input is one line, a simulated run leaves its outputs, and a
run killed with SIGKILL resumes from its --out without asking or learning anything twice."""

from __future__ import annotations

import csv
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from swergio_al.cli import main
from swergio_al.label_outputs import prequential_summary
from tests.helpers import free_port

REVIEWS = Path(__file__).parent.parent / "examples" / "reviews" / "reviews.csv"
CHOICE = "choice:positive,negative"
LOAD_SNIPPET = Path(__file__).parent.parent / "examples/reviews/load_model.py"  # in the docs


def truth() -> dict[str, str]:
    with REVIEWS.open(newline="") as handle:
        return {row["id"]: row["sentiment"] for row in csv.DictReader(handle)}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def label_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "swergio_al.cli", "label", str(REVIEWS), "--text", "text",
            "--id", "id", "--answer", CHOICE, "--simulate", "sentiment", "--out", str(out),
            "--port", str(free_port()), *extra]


@pytest.mark.parametrize(("args", "says"), [
    (["nowhere.csv", "--answer", CHOICE], "not found"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "body"], "no column 'body'"),
    ([str(REVIEWS), "--answer", "choice:yes"], "two or more distinct choices"),
    ([str(REVIEWS), "--answer", "stars"], "expected choice:"),
    ([str(REVIEWS), "--answer", "rating:5-1", "--text", "text"], "LOW < HIGH"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "text", "--budget", "0"], "--budget"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "text", "--budget", "x"], "invalid int"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "text", "--diversity", "2"], "--diversity"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "text", "--simulate", "mood"],
     "no column 'mood'"),
    ([str(REVIEWS), "--answer", "choice:good,bad", "--text", "text", "--simulate",
      "sentiment"], "not one of the choices"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "text", "--model", "tree"], "--model"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "text", "--model", "no_such_mod:make"],
     "cannot load it"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "text", "--model", "image"],
     "needs a image source"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "text", "--strategy", "best"],
     "--strategy must be one of"),
    ([str(REVIEWS), "--answer", CHOICE, "--bogus"], "unrecognized arguments"),
    ([str(REVIEWS), "--answer", "choice:positive,,negative", "--text", "text"],
     "a choice is empty"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "text", "--model", "collections:OrderedDict"],
     "returned OrderedDict, not a scikit-learn estimator (no fit() or predict())"),
    ([str(REVIEWS), "--text", "text"], "--answer"),
    ([str(REVIEWS), "--answer", CHOICE, "--text", "text", "--url", "http://x"], "--url"),
])
def test_a_bad_option_or_source_is_one_line_and_exit_2(
        args: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["label", *args])
    except SystemExit as exit_:
        code = exit_.code  # argparse's own errors
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("swergio-al label: ") and says in err, err


def test_an_unreadable_source_through_the_real_command(tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"id,text\n1,\xff\xfe not utf-8\n")
    done = subprocess.run([sys.executable, "-m", "swergio_al.cli", "label", str(broken),
                           "--text", "text", "--answer", CHOICE], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_simulated_run_leaves_the_labels_the_model_and_predictions(tmp_path: Path) -> None:
    out = tmp_path / "reviews-labels"
    # A person takes a moment per answer, and the model learns meanwhile: an instant
    # labeler answers the whole budget from the cold start's picks before the first fit.
    done = subprocess.run(label_command(out, "--budget", "12", "--seed", "3",
                                        "--simulate-delay", "0.1"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Label at http://127.0.0.1:" in done.stdout
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("done: 12 labels (12 this run) of 200 samples"), summary
    assert "learned 12;" in summary
    # the dashboard's figure (rolling, test-then-train), saying which labels it covers
    assert re.search(r"; prequential accuracy [01]\.\d{3} over the last \d+ labels?;", summary)
    labels = rows(out / "labels.csv")
    answers = truth()
    assert len(labels) == 12 and len({r["sample_id"] for r in labels}) == 12
    assert all(r["answer"] == answers[r["sample_id"]] for r in labels)  # exactly as given
    assert all(r["labeler"] == "simulated-labeler" and r["time"] for r in labels)
    told = [r for r in labels if r["prediction"]]  # not the cold start's (timing decides how many)
    assert told and all(0.5 <= float(r["confidence"]) <= 1 for r in told)
    assert (out / "labels.jsonl").read_text().count("\n") == 12
    predictions = rows(out / "predictions.csv")
    assert [r["sample_id"] for r in predictions] == list(answers)  # the whole pool, in order
    assert {r["prediction"] for r in predictions} <= {"positive", "negative"}
    # the documented one-liner, in a fresh process, where the quick start's folder is
    fresh = subprocess.run([sys.executable, str(LOAD_SNIPPET)], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "trusting: []" in fresh.stdout
    assert re.search(r"\['(positive|negative)' '(positive|negative)'\]", fresh.stdout)


def test_a_killed_run_resumes_without_asking_or_learning_twice(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = subprocess.Popen(label_command(out, "--budget", "30", "--simulate-delay", "0.05"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(rows(out / "labels.csv")) < 8 if (out / "labels.csv").exists() else True:
            assert first.poll() is None and time.monotonic() < deadline, "no labels in time"
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
    killed_at = time.time()
    db = out / "store.db"
    with sqlite3.connect(db) as conn:
        before = {r[0] for r in conn.execute("SELECT sample_id FROM labels")}
    assert 8 <= len(before) < 30
    second = subprocess.run(label_command(out, "--budget", "30", "--simulate-delay", "0.01"),
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    summary = second.stdout.strip().splitlines()[-1]
    match = re.match(r"done: 30 labels \((\d+) this run\)", summary)
    assert match and int(match.group(1)) == 30 - len(before), summary
    assert "learned 30;" in summary  # the history once, the new labels once
    with sqlite3.connect(db) as conn:
        labeled = [r[0] for r in conn.execute("SELECT sample_id FROM labels")]
        marks = ",".join("?" * len(before))
        asked_again = conn.execute(
            "SELECT COUNT(*) FROM tasks t JOIN requests r ON t.request_id = r.id "
            f"WHERE t.created > ? AND r.sample_id IN ({marks})",
            (killed_at, *before)).fetchone()[0]
    assert len(labeled) == 30 and len(set(labeled)) == 30
    assert asked_again == 0
    assert sorted(r["sample_id"] for r in rows(out / "labels.csv")) == sorted(labeled)


@pytest.mark.parametrize("colours", [[(200, 10, 10)], [(9, 9, 9)] * 3, [(1, 2, 3), (250, 2, 3)]])
def test_the_image_recipe_fits_a_pool_of_one_or_of_alike_images_quietly(
        tmp_path: Path, colours: list[tuple[int, int, int]]) -> None:
    import warnings

    from PIL import Image

    from swergio_al.recipes import image_pixels, make_recipe
    from swergio_al.sources import load_source

    for i, rgb in enumerate(colours):
        Image.new("RGB", (4, 4), rgb).save(tmp_path / f"{i}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's PCA warned on one image
        recipe = make_recipe("image", load_source(tmp_path), seed=0)
        features = recipe.features
        assert features is not None and np.isfinite(features).all()
        assert len(features) == len(colours) and len(recipe.inputs) == len(colours)
        fitted = recipe.estimator.fit(recipe.inputs[:2], ["a", "b"][:len(colours[:2])]) \
            if len(colours) == 2 else None
    if fitted is not None:  # the exported model takes the images' pixels
        pixels = image_pixels([tmp_path / "0.png", tmp_path / "1.png"])
        assert list(recipe.export(fitted).predict(pixels)) == ["a", "b"]


def test_a_folder_of_images_with_the_image_recipe(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for colour, rgb in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (folder / colour).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(np.asarray(rgb) + rng.normal(0, 20, size=(10, 10, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8), "RGB").save(folder / colour / f"{i}.png")
    (folder / "red" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "swergio_al.cli", "label", str(folder), "--answer",
         "choice:red,blue", "--simulate", "folder", "--budget", "6", "--out", str(out),
         "--port", str(free_port())], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "red/broken.png" in done.stderr  # skipped with a warning naming it
    labels = rows(out / "labels.csv")
    assert len(labels) == 6
    assert all(r["answer"] == r["sample_id"].split("/")[0] for r in labels)
    predictions = rows(out / "predictions.csv")
    assert len(predictions) == 24 and "red/broken.png" not in {r["sample_id"] for r in predictions}
    check = ("import sys, skops.io as sio; from swergio_al.recipes import image_pixels; "
             "m = sio.load(sys.argv[1], trusted=sio.get_untrusted_types(file=sys.argv[1])); "
             "print(*m.predict(image_pixels(sys.argv[2:])))")
    fresh = subprocess.run([sys.executable, "-c", check, str(out / "model.skops"),
                            str(folder / "red" / "0.png"), str(folder / "blue" / "0.png")],
                           capture_output=True, text=True, timeout=60)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.split() == ["red", "blue"]


def test_a_labeler_answering_every_50_ms_never_finds_the_queue_empty(tmp_path: Path) -> None:
    # The image recipe on 400 of scikit-learn's digits: its plans once clustered on both
    # cores of a busy box per label, and each re-plan canceled most of the queue, each
    # cancel holding back a unit of the budget for 3 s: the queue was seen empty 2 to 7
    # times in 100 labels (checked against the code before, at a load average of 3-5).
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = tmp_path / "digits"
    for i in range(400):
        (folder / str(digits.target[i])).mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / str(digits.target[i]) / f"{i}.png")
    done = subprocess.run(
        [sys.executable, "-m", "swergio_al.cli", "label", str(folder), "--answer",
         "choice:" + ",".join(map(str, range(10))), "--simulate", "folder",
         "--simulate-delay", "0.05", "--budget", "100", "--out", str(tmp_path / "out"),
         "--port", str(free_port())], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("done: 100 labels (100 this run)"), summary
    # sampled every 0.1 s from the first label to the budget, the cold start included
    assert "queue ran dry 0 times" in summary, summary


def test_the_summary_gives_the_dashboards_prequential_figure() -> None:
    kpi = {"prequential": 1 / 3, "prequential_metric": "accuracy", "prequential_labels": 3}
    assert prequential_summary(kpi) == "prequential accuracy 0.333 over the last 3 labels"
    kpi = {"prequential": 0.4567, "prequential_metric": "mae", "prequential_labels": 45}
    assert prequential_summary(kpi) == \
        "prequential mean absolute error 0.457 over the last 20 labels"  # its window
    assert prequential_summary({}) == "no prequential score yet"
    kpi = {"prequential": 1.0, "prequential_metric": "accuracy", "prequential_labels": 1}
    assert prequential_summary(kpi) == "prequential accuracy 1.000 over the last 1 label"
