"""A room's label quality rebuilt from the store: what /api/quality and the export show.

Answers are read in the order they were committed, so the same store always gives
the same aggregates and flags (a restarted server shows what the old one did).
The room's settings (method, choices, flag threshold) come with the requests
(`FeedbackLoop` sends them); a room without them is aggregated by majority vote
over the answers seen.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Any

from swergio_al.feedback.consensus import SETTINGS_KEY, Consensus, Settings
from swergio_al.feedback.records import Label
from swergio_al.feedback.store import Store

GOLD_KEY = "gold"  # a request's known answer (swergio_al/feedback/gold.py)
GOLD_SUFFIX = "/.gold"


def gold_room(room: str) -> str:
    """Where a room's gold questions are stored (no client can use it)."""
    return room + GOLD_SUFFIX


def is_gold_room(room: str) -> bool:
    return room.endswith(GOLD_SUFFIX)


def base_room(room: str) -> str:
    return room.removesuffix(GOLD_SUFFIX)


async def room_labels(store: Store, room: str) -> list[Label]:
    """Every label of the room, oldest first, each with its request's extra keys."""
    requesters: list[str] = []
    async for label in store.labels(room=room):
        if label.requester not in requesters:
            requesters.append(label.requester)
    labels: list[Label] = []
    for requester in requesters:
        labels.extend(await store.history(room, requester))
    if len(requesters) > 1:
        labels.sort(key=lambda label: label.created)
    return labels


def gold_scores(labels: list[Label]) -> dict[str, float]:
    """Each labeler's share of right answers to gold questions."""
    right: dict[str, list[bool]] = {}
    for label in labels:
        if GOLD_KEY in label.extra:
            right.setdefault(label.labeler, []).append(label.answer == label.extra[GOLD_KEY])
    return {name: sum(hits) / len(hits) for name, hits in right.items()}


async def gold_accuracy(store: Store, room: str) -> dict[str, float]:
    return gold_scores(await room_labels(store, gold_room(room)))


def consensus_of(labels: list[Label], gold: dict[str, float] | None = None) -> Consensus:
    settings = next((s for s in (Settings.from_wire(label.extra.get(SETTINGS_KEY))
                                 for label in labels) if s is not None), None)
    if settings is None:
        seen = list({(type(label.answer), _hashable(label.answer)): label.answer
                     for label in labels}.values())
        settings = Settings("majority", seen)
    consensus = Consensus(settings, gold_accuracy=dict(gold or {}))
    for label in labels:
        consensus.add(label.label_id, label.sample_id, label.labeler, _hashable(label.answer),
                      label.seconds)
    return consensus


async def room_consensus(store: Store, room: str) -> Consensus:
    labels, gold = await room_labels(store, room), await gold_accuracy(store, room)
    # Dawid–Skene over a large room takes a while: never on the event loop.
    return await asyncio.to_thread(consensus_of, labels, gold)


# A report reads every label of its room, on the store's one thread, which a
# crowd's commits also need: with tens of thousands of labels it took seconds,
# and every open dashboard asks every 3 s. So a room's report is rebuilt when its
# labels changed and it is older than REFRESH_SECONDS, or ten times what the
# last one took, whichever is longer; dashboards asking meanwhile get the last
# one, and ask together for one rebuild, not one each.
REFRESH_SECONDS = 5.0


class _Report:
    __slots__ = ("body", "counts", "made", "took")

    def __init__(self, counts: tuple[int, int], body: Any, made: float, took: float) -> None:
        self.counts, self.body, self.made, self.took = counts, body, made, took

    def fresh_enough(self, counts: tuple[int, int], now: float) -> bool:
        return counts == self.counts or now - self.made < max(REFRESH_SECONDS, 10 * self.took)


# Per store: each room's last report, and the rebuilds under way.
_REPORTS: weakref.WeakKeyDictionary[Store, dict[str, _Report]] = weakref.WeakKeyDictionary()
_BUILDING: weakref.WeakKeyDictionary[Store, dict[str, asyncio.Future[_Report]]] = \
    weakref.WeakKeyDictionary()


async def quality_report(store: Store, room: str | None = None, *,
                         clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """`{room: report}` for one room or every room that has requests."""
    rooms = [room] if room is not None else \
        [name for name in await store.rooms() if not is_gold_room(name)]
    body: dict[str, Any] = {}
    for name in rooms:
        report = await _report_of(store, name, clock)
        if report.body is not None:
            body[name] = report.body
    return body


async def _report_of(store: Store, room: str, clock: Callable[[], float]) -> _Report:
    cache = _REPORTS.setdefault(store, {})
    now = time.time()
    counts = ((await store.stats(room, now=now)).labeled,
              (await store.stats(gold_room(room), now=now)).labeled)
    cached = cache.get(room)
    if cached is not None and cached.fresh_enough(counts, clock()):
        return cached
    building = _BUILDING.setdefault(store, {})
    rebuild = building.get(room)
    if rebuild is None:
        # A task of its own, shared by everyone asking meanwhile: an asker who goes
        # away (a dashboard closed mid-request) cancels only their own wait.
        rebuild = building[room] = asyncio.ensure_future(
            _rebuild(store, room, counts, clock, cache))
        rebuild.add_done_callback(lambda done: _built(building, room, done))
    return await asyncio.shield(rebuild)


async def _rebuild(store: Store, room: str, counts: tuple[int, int],
                   clock: Callable[[], float], cache: dict[str, _Report]) -> _Report:
    started = clock()
    consensus = await room_consensus(store, room)
    body = await asyncio.to_thread(consensus.report) if consensus.answers else None
    report = _Report(counts, body, clock(), clock() - started)
    if body is not None:  # ?room= is any text: only rooms with labels are kept
        cache[room] = report
    return report


def _built(building: dict[str, asyncio.Future[_Report]], room: str,
           done: asyncio.Future[_Report]) -> None:
    if building.get(room) is done:
        del building[room]
    if not done.cancelled():
        done.exception()  # read: with every asker gone, a failure is not "never retrieved"

def _hashable(answer: Any) -> Any:
    # Answers are JSON: a list or object answer (never a valid choice) is compared as text.
    return repr(answer) if isinstance(answer, list | dict) else answer
