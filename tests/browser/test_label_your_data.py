"""`swergio-al label` end to end: a person labels a CSV of texts and a folder of images in
real Chromium with the keyboard only; the outputs hold exactly the answers given, the
saved model loads in a fresh process and predicts, and predictions cover the whole pool."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser.pages import next_task
from tests.helpers import free_port
from tests.sources.files import write_png

pytestmark = pytest.mark.browser

POSITIVE = ["Works great, love it", "Sturdy and quick", "Best purchase this year",
            "Exactly as described", "My kids adore it", "Five stars, would buy again"]
NEGATIVE = ["Broke on day one", "Arrived scratched", "Stopped charging after a week",
            "Cheap plastic, avoid", "Smells awful", "Refund requested"]


class LabelCommand:
    """`swergio-al label SOURCE ...` in a child process on a free port, stopped with Ctrl-C."""

    def __init__(self, source: Path, out: Path, *options: str) -> None:
        self.port = free_port()
        self.out = out
        self.log = out.parent / f"{out.name}.log"
        self.args = [sys.executable, "-m", "swergio_al.cli", "label", str(source),
                     "--port", str(self.port), "--out", str(out), *options]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LabelCommand:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:  # ready once the embedded server answers
            if self.proc.poll() is not None:
                raise AssertionError(f"label exited with {self.proc.returncode}: {self.output}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a person ends a labeling session; its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def row_count(path: Path) -> int:
    return len(read_csv(path)) if path.exists() else 0


async def wait_for_rows(path: Path, count: int, timeout: float = 30) -> None:
    """labels.csv is written as labels arrive: wait until it holds `count` rows."""
    import asyncio

    deadline = time.monotonic() + timeout
    while row_count(path) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} has not {count} rows after {timeout}s")
        await asyncio.sleep(0.1)


async def press_answer(page: Any, answer: str) -> None:
    """Pick `answer` by the key its button shows, then send it with Enter."""
    key = await page.get_attribute(f'[data-value="{answer}"]', "data-key")
    assert key, f"no key shown for {answer!r}"
    await page.keyboard.press(key)
    await page.keyboard.press("Enter")


async def label_with_keyboard(page: Any, url: str, count: int, answer_of: Any,
                              on_task: Any = None) -> dict[str, str]:
    """Answer `count` tasks with their keys + Enter; {sample id: answer given}."""
    await page.goto(url)
    await page.wait_for_selector('[data-conn][data-state="open"]')
    given: dict[str, str] = {}
    previous = None
    for _ in range(count):
        task = await next_task(page, previous)
        assert task["sample"] not in given, "a labeled sample was asked again"
        if on_task is not None:
            await on_task(task)
        given[task["sample"]] = answer_of(task)
        await press_answer(page, given[task["sample"]])
        previous = task["sample"]
    return given


def check_outputs(out: Path, given: dict[str, str], labeler: str, pool: set[str]) -> None:
    for rows in (read_csv(out / "labels.csv"),
                 [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()
                  if line.strip()]):
        assert {str(row["sample_id"]): row["answer"] for row in rows} == given
        assert len(rows) == len(given)
        assert {row["labeler"] for row in rows} == {labeler}
    predictions = read_csv(out / "predictions.csv")
    assert sorted(row["sample_id"] for row in predictions) == sorted(pool)
    assert all(0.0 <= float(row["confidence"]) <= 1.0 for row in predictions)


def predict_in_fresh_process(model: Path, inputs_code: str) -> list[str]:
    """Load model.skops as the docs say, in a new interpreter, and predict."""
    script = (
        "import json, sys, numpy as np\n"
        "import skops.io as sio\n"
        "path = sys.argv[1]\n"
        "model = sio.load(path, trusted=sio.get_untrusted_types(file=path))\n"
        f"inputs = {inputs_code}\n"
        "print(json.dumps([str(p) for p in model.predict(inputs)]))\n")
    done = subprocess.run([sys.executable, "-c", script, str(model)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def test_a_csv_of_texts_is_labeled_with_the_keyboard(tmp_path: Path, new_page: Any) -> None:
    texts = [*POSITIVE, *NEGATIVE]
    source = tmp_path / "reviews.csv"
    with source.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["text", "sentiment"])
        writer.writerows([text, "positive" if text in POSITIVE else "negative"]
                         for text in texts)
    truth = {str(i): "positive" if text in POSITIVE else "negative"
             for i, text in enumerate(texts)}
    budget = 8
    with LabelCommand(source, tmp_path / "out", "--text", "text", "--answer",
                      "choice:positive,negative", "--budget", str(budget),
                      "--seed", "1") as command:
        page = await new_page(name="ada")

        given = await label_with_keyboard(
            page, f"{command.url}/label/feedback/reviews?undo=0", budget,
            lambda task: truth[task["sample"]])
        await wait_for_rows(command.out / "labels.csv", budget)
        assert command.interrupt() == 0, command.output
    assert "Traceback" not in command.output
    check_outputs(command.out, given, "ada", set(truth))
    predicted = predict_in_fresh_process(
        command.out / "model.skops", json.dumps(["Works great", "Broke at once"]))
    assert len(predicted) == 2 and set(predicted) <= {"positive", "negative"}


async def test_a_folder_of_images_is_labeled_with_the_keyboard(tmp_path: Path,
                                                                new_page: Any) -> None:
    root = tmp_path / "swatches"
    colors = {"red": (220, 30, 30), "blue": (30, 30, 220)}
    for name, rgb in colors.items():
        for i in range(5):
            write_png(root / name / f"{i}.png", tuple(max(0, c - 12 * i) for c in rgb))
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    pool = {f"{name}/{i}.png" for name in colors for i in range(5)}
    budget = 6
    with LabelCommand(root, tmp_path / "out", "--answer", "choice:red,blue", "--budget",
                      str(budget), "--seed", "1") as command:
        page = await new_page(name="grace")
        shown: list[int] = []

        async def image_loaded(task: dict[str, str]) -> None:
            assert task["kind"] == "image" and task["sample"] in pool
            # The image really loads, through /media and under the page's CSP.
            width = await page.wait_for_function(
                "id => { const img = document.querySelector('[data-sample] img');"
                " return img && img.alt === id && img.complete && img.naturalWidth; }",
                arg=task["sample"])
            shown.append(await width.json_value())

        given = await label_with_keyboard(
            page, f"{command.url}/label/feedback/swatches?undo=0", budget,
            lambda task: task["sample"].split("/")[0], image_loaded)
        await wait_for_rows(command.out / "labels.csv", budget)
        # The route serves the source's items only: not the skipped file beside them.
        assert http_status(f"{command.url}/media/red/0.png") == 200
        assert http_status(f"{command.url}/media/red/broken.png") == 404
        assert command.interrupt() == 0, command.output
    assert shown == [8] * budget
    # The skipped file is named, once, on one line ...
    assert "swergio-al label: skipped red/broken.png: not an image Pillow can read\n" in (
        command.output)
    check_outputs(command.out, given, "grace", pool)  # ... and never in the outputs
    predicted = predict_in_fresh_process(
        command.out / "model.skops", "np.random.default_rng(0).random((2, 32 * 32 * 3))")
    assert len(predicted) == 2
