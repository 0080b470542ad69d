"""Labeling past nine choices, keyboard only, in real Chromium: every key does what its
button says, and the shortcut help shows only what applies to the task on screen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.pages import next_task
from tests.browser.samples import connect_model, take_labels
from tests.conftest import MakeServer

pytestmark = pytest.mark.browser

CHOICES = [f"class {c}" for c in "ABCDEFGHIJKL"]  # 12 choices


async def test_twelve_choices_are_labeled_keyboard_only(make_server: MakeServer,
                                                        new_page: Any) -> None:
    server = await make_server()
    async with await connect_model(str(server.make_url("/ws"))) as model:
        for i in range(len(CHOICES)):
            await model.send({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": "feedback", "DATA": {
                "sample_id": f"s{i}", "kind": "text", "content": f"sample {i}",
                "answer": {"type": "choice", "choices": CHOICES}, "priority": -i,
                "prediction": "class A", "confidence": 0.4,
                "top": [["class A", 0.4], ["class B", 0.35]]}})
        page = await new_page(name="kim")
        await page.goto(str(server.make_url("/label/feedback?undo=0")))
        previous = None
        expected = {}
        for i in range(len(CHOICES)):
            previous = (await next_task(page, previous))["sample"]
            buttons = await page.eval_on_selector_all(
                "[data-answer] button", "bs => bs.map((b) => [b.dataset.key, b.innerText])")
            keys = [key for key, _ in buttons]
            assert len(set(keys)) == len(CHOICES) and all(keys)  # every choice has a key
            key, text = buttons[i]
            assert text.split() == [key, *CHOICES[i].split()]  # the key shown once
            await page.keyboard.press(key)
            assert await page.get_attribute(f'[data-answer] button[data-key="{key}"]',
                                            "aria-checked") == "true"
            await page.keyboard.press("Enter")
            expected[previous] = CHOICES[i]
        labels = await take_labels(model, len(CHOICES))
        assert {sid: label["answer"] for sid, label in labels.items()} == expected
        help_text = await page.inner_text("[data-shortcuts]")
        assert "play" not in help_text and "box" not in help_text  # no media, no text box
        assert "torn between class A and class B" in await page.inner_text("[data-why]")


async def test_a_regressors_guess_is_rounded_with_its_uncertainty(make_server: MakeServer,
                                                                 new_page: Any) -> None:
    server = await make_server()
    async with await connect_model(str(server.make_url("/ws"))) as model:
        await model.send({"TYPE": "FEEDBACK/REQUEST", "TO_ROOM": "feedback", "DATA": {
            "sample_id": "r", "kind": "text", "content": "a tune",
            "answer": {"type": "rating", "min": 0, "max": 5, "step": 1},
            "prediction": 3.14159265358979, "confidence": None, "uncertainty": 0.8123}})
        page = await new_page(name="rex")
        await page.goto(str(server.make_url("/label/feedback")))
        await next_task(page)
        assert await page.inner_text("[data-prediction]") == "3.14 ± 0.81"
        assert await page.is_hidden(".confidence")  # no probability to show
        labels = await page.eval_on_selector_all(
            "[data-answer] button", "bs => bs.map((b) => b.innerText)")
        assert labels == ["0", "1", "2", "3", "4", "5"]  # each key once, no "0 0"
        help_text = await page.inner_text("[data-shortcuts]")
        assert help_text.startswith("0 … 5 pick an answer"), help_text
