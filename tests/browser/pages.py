"""Driving the labeling page the way a person does: with the keyboard."""

from __future__ import annotations

from typing import Any

from tests.browser.samples import sample

MEDIA = ("melody", "audio")
NEXT_TASK = """prev => {
  const task = document.querySelector('[data-task]');
  return task && !task.hidden && task.dataset.sampleId && task.dataset.sampleId !== prev
    ? {sample: task.dataset.sampleId, kind: task.dataset.kind} : null;
}"""


async def next_task(page: Any, previous: str | None = None) -> dict[str, str]:
    """Wait until a task other than `previous` is on screen; its sample id and kind."""
    handle = await page.wait_for_function(NEXT_TASK, arg=previous)
    return await handle.json_value()  # type: ignore[no-any-return]


async def answer_with_keyboard(page: Any, kind: str, i: int = 0) -> Any:
    """Answer the task on screen with keys only; returns the answer the model must get."""
    schema = sample(kind, i)["answer"]
    if schema["type"] == "choice":
        await page.keyboard.press("2")
        answer = schema["choices"][1]
    elif schema["type"] == "rating":
        await page.keyboard.press("4")
        answer = 4
    else:
        if kind in MEDIA:  # the text box waits, so that Space plays the sample; Enter opens it
            await page.keyboard.press("Enter")
        await page.keyboard.type("bright hum")
        answer = "bright hum"
    await page.keyboard.press("Enter")
    return answer


async def play_and_stop(page: Any, kind: str) -> None:
    """Space starts the sample's sound and Space stops it."""
    playing = {"melody": "document.querySelector('[data-play]').dataset.playing === 'true'",
               "audio": "!document.querySelector('[data-sample] audio').paused"}[kind]
    await page.keyboard.press(" ")
    await page.wait_for_function(playing)
    await page.keyboard.press(" ")
    await page.wait_for_function(f"!({playing})")


async def wait_state(page: Any, state: str) -> None:
    await page.wait_for_selector(f'[data-conn][data-state="{state}"]')
