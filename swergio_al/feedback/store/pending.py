"""How many open requests a requester has, without counting them on every request.

`max_pending` must never refuse a request wrongly, and a count of a model's
open requests per new request costs time in proportion to its queue (a
6,000-request queue: a third of a millisecond per request). So each store keeps
an estimate per requester that only ever errs high: it is counted exactly once,
then grows by one with each request added, and is never lowered by labels or
cancels (those may happen on other nodes). Only when the estimate reaches the
limit is it counted again - so a refusal always rests on an exact count, and a
model far below its limit is counted once every (limit - pending) requests.
"""

from __future__ import annotations

# Requesters remembered; past this the estimates start over (each is recounted).
MAX_REQUESTERS = 10_000


class PendingEstimate:
    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def room_for_one(self, requester: str, limit: int) -> bool:
        """True when one more request surely stays within `limit` (no count needed)."""
        estimate = self._open.get(requester)
        return estimate is not None and estimate < limit

    def counted(self, requester: str, exact: int) -> None:
        if len(self._open) >= MAX_REQUESTERS and requester not in self._open:
            self._open.clear()
        self._open[requester] = exact

    def added(self, requester: str) -> None:
        if requester in self._open:
            self._open[requester] += 1
