"""Full garbage collections on a timer while a server runs (swergio_al/collector.py)."""

from __future__ import annotations

import asyncio
import gc
import os
import weakref
from typing import Any

from swergio_al.config import Config
from swergio_al.protocol import new_id
from swergio_al.server import create_app


class Node:
    other: Any = None


async def test_a_cycle_in_the_oldest_generation_is_freed_by_the_timer_and_python_paces_again_after(
        aiohttp_server: Any, tmp_path: Any) -> None:
    before = gc.get_threshold()
    server = await aiohttp_server(create_app(Config(store=f"sqlite:///{tmp_path / 's.db'}",
                                                    full_gc_seconds=0.05)))
    assert gc.get_threshold()[:2] == before[:2]
    assert gc.get_threshold()[2] > 10**9, "Python still runs full collections on its own"
    node = Node()
    node.other = node
    freed = weakref.ref(node)
    gc.collect(1)  # survives the young collections: now in the oldest generation
    del node  # garbage only a full collection finds
    for _ in range(500):
        if freed() is None:
            break
        await asyncio.sleep(0.01)
    assert freed() is None, "no full collection within 5 s"
    await server.close()
    assert gc.get_threshold() == before


async def test_zero_leaves_pythons_own_pacing(aiohttp_server: Any, tmp_path: Any) -> None:
    before = gc.get_threshold()
    await aiohttp_server(create_app(Config(store=f"sqlite:///{tmp_path / 's.db'}",
                                           full_gc_seconds=0)))
    assert gc.get_threshold() == before


def test_ids_are_unique_in_a_forked_child_too() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids go to the parent
        os.close(read)
        os.write(write, " ".join(new_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    mine = {new_id() for _ in range(100)}
    with os.fdopen(read) as pipe:
        theirs = set(pipe.read().split())
    os.waitpid(pid, 0)
    assert len(mine) == len(theirs) == 100 and not mine & theirs
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in mine | theirs)
