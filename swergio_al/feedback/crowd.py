"""The labelers of one feedback room on this node, and which of them want work next.

A labeler holds at most `prefetch` tasks. Those holding fewer are hungry; they
wait in one queue per number of tasks held, in the order they got there, so
choosing who gets the next task is O(1): the front of the emptiest queue, the
labeler who has waited longest. Nothing here walks the whole crowd.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from swergio_al.relay.connection import Connection


@dataclass(eq=False)
class Seat:
    """One labeler in one room: the tasks they hold and the claims under way for them."""

    name: str
    conn: Connection
    held: set[str] = field(default_factory=set)
    #: Tasks being claimed for them right now (they count as held meanwhile).
    reserved: int = 0
    #: Their lease ran out: no new work until they act again.
    idle: bool = False
    level: int | None = None

    @property
    def load(self) -> int:
        return len(self.held) + self.reserved


class Crowd:
    def __init__(self, prefetch: int) -> None:
        self.prefetch = prefetch
        self.seats: dict[str, Seat] = {}
        # Hungry seats by load; a dict keeps insertion order, so each is a FIFO
        # with O(1) removal from the middle.
        self._hungry: list[dict[str, Seat]] = [{} for _ in range(prefetch)]
        # Labelers in turn for the room's STATS (a few per tick, not all at once).
        self._stats_turns: deque[str] = deque()
        self._in_turns: set[str] = set()
        #: Claims under way for seats of this room (they are not hungry meanwhile).
        self.claiming = 0
        #: Tasks that became claimable while every hungry seat was mid-claim: asked
        #: for again once a claim ends (it may have run before they existed).
        self.missed = 0
        #: Seats looked at while choosing who gets work (tests check it stays flat).
        self.examined = 0

    def __len__(self) -> int:
        return len(self.seats)

    def sit(self, name: str, conn: Connection) -> Seat:
        seat = self.seats.get(name)
        if seat is None or seat.conn is not conn:
            if seat is not None:
                self.stand(name)
            seat = self.seats[name] = Seat(name, conn)
            if name not in self._in_turns:
                self._in_turns.add(name)
                self._stats_turns.append(name)
        return seat

    def stand(self, name: str) -> Seat | None:
        seat = self.seats.pop(name, None)
        if seat is not None and seat.level is not None:
            del self._hungry[seat.level][name]
            seat.level = None
        return seat

    def place(self, seat: Seat) -> None:
        """Put `seat` where its load says, at the back (call after any change to it)."""
        if seat.level is not None:
            del self._hungry[seat.level][seat.name]
            seat.level = None
        if self.seats.get(seat.name) is not seat or seat.idle or seat.load >= self.prefetch:
            return
        seat.level = seat.load
        self._hungry[seat.level][seat.name] = seat

    def hungrier_than(self, load: int, *, but: Seat) -> bool:
        """Whether anyone other than `but` waits for work holding at most `load` tasks."""
        for level in range(min(load, self.prefetch - 1) + 1):
            queue = self._hungry[level]
            if len(queue) > (1 if but.level == level else 0):
                return True
        return False

    def next_hungry(self, count: int, *, last: Seat | None = None) -> list[Seat]:
        """Up to `count` hungry seats, the least loaded and longest waiting first;
        `last` (who just gave a task back) only if nobody else wants one."""
        chosen: list[Seat] = []
        if count <= 0:
            return chosen
        for queue in self._hungry:
            for seat in queue.values():
                self.examined += 1
                if seat is not last:
                    chosen.append(seat)
                    if len(chosen) >= count:
                        return chosen
        if last is not None and last.level is not None:
            chosen.append(last)
        return chosen

    def hungry_count(self) -> int:
        return sum(len(queue) for queue in self._hungry)

    def stats_turn(self, count: int) -> Iterator[Seat]:
        """The next `count` seated labelers in turn (each gets STATS every few ticks)."""
        turns = self._stats_turns
        for _ in range(min(count, len(turns))):
            name = turns.popleft()
            seat = self.seats.get(name)
            if seat is None:  # stood up: dropped from the turns here, lazily
                self._in_turns.discard(name)
                continue
            turns.append(name)
            yield seat
