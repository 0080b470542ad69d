"""A labeler in Python: docs/feedback.md. Answers the pets model's questions."""

import asyncio
import os

from swergio_al.feedback import SKIP, Labeler

URL = os.environ.get("SWERGIO_AL_URL", "ws://127.0.0.1:8080/ws")


def answer(task):                # task = the DATA of a FEEDBACK/TASK
    if task["kind"] != "table":
        return SKIP              # someone else's job
    animal = task["content"]
    return "cat" if animal["whiskers"] > animal["barks"] else "dog"


async def main() -> None:
    async with Labeler("robot-1", URL, answer, room="feedback/pets") as bot:
        await bot.wait_acked(10)  # bot.acked / bot.skipped / bot.refused count as it goes


if __name__ == "__main__":
    asyncio.run(main())
