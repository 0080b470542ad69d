"""feedback/coalesce.py: calls arriving while a round trip is under way go in the next."""

from __future__ import annotations

import asyncio

from swergio_al.feedback.coalesce import Coalescer
from tests.feedback.helpers import until as wait_until


async def until(condition: object) -> None:
    await wait_until(condition, "the coalescer got there", timeout=5.0)


async def test_calls_meanwhile_go_together_in_order_each_with_its_own_outcome() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def run(calls: list[int]) -> list[int | BaseException]:
        batches.append(calls)
        await gate.wait()
        return [ValueError(n) if n == 3 else n * 10 for n in calls]

    coalescer: Coalescer[int, int] = Coalescer(run)
    calls = [asyncio.ensure_future(coalescer.call(0))]
    await until(lambda: batches)  # the first goes alone; the rest arrive while it is under way
    calls += [asyncio.ensure_future(coalescer.call(n)) for n in range(1, 5)]
    await asyncio.sleep(0)
    gate.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert batches == [[0], [1, 2, 3, 4]]
    assert outcomes[:3] == [0, 10, 20] and isinstance(outcomes[3], ValueError)
    assert outcomes[4] == 40


async def test_a_call_right_after_a_batch_ended_is_sent() -> None:
    async def run(calls: list[int]) -> list[int | BaseException]:
        return list(calls)

    coalescer: Coalescer[int, int] = Coalescer(run)
    assert await coalescer.call(1) == 1
    # Resumed before the finished sender's done-callback ran: once, this waited forever.
    async with asyncio.timeout(5):  # (wait_for would start the call in a task of its own)
        assert await coalescer.call(2) == 2


async def test_lanes_send_several_batches_at_once() -> None:
    running = 0
    most = 0
    gate = asyncio.Event()

    async def run(calls: list[int]) -> list[int | BaseException]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1
        return list(calls)

    coalescer: Coalescer[int, int] = Coalescer(run, lanes=3)
    calls = []
    for n in range(5):  # each while the ones before are under way
        calls.append(asyncio.ensure_future(coalescer.call(n)))
        await until(lambda n=n: running == min(n + 1, 3) and len(calls) == n + 1)
    gate.set()
    assert await asyncio.gather(*calls) == list(range(5))
    assert most == 3  # the 4th and 5th waited for a free lane
    await coalescer.close()
