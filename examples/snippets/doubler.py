"""A component: docs/client.md. Doubles what arrives in "inputs", answers in "outputs"."""

import asyncio
import os

from swergio_al.client import Component

URL = os.environ.get("SWERGIO_AL_URL", "ws://127.0.0.1:8080/ws")

model = Component("model", URL)


@model.on("DATA/FORWARD", room="inputs", respond_to="outputs", response_type="DATA/GRADIENT")
async def backward(message):                            # sync functions work too
    return {"DATA": [2 * x for x in message["DATA"]]}   # to "outputs", ROOT_ID copied


async def main() -> None:
    async with model:                                   # registered and joined when this returns
        await model.send({"TYPE": "LOG/KPI", "TO_ROOM": "outputs", "DATA": {"ready": True}})
        await model.wait_closed()                       # serve until close()


if __name__ == "__main__":
    asyncio.run(main())  # or just model.run_forever(), which also stops cleanly on Ctrl-C/SIGTERM
