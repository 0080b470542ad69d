"""Labelers online over several nodes: what one node makes of the others' reports."""

from __future__ import annotations

from swergio_al.feedback.presence import Presence
from swergio_al.relay.hub import Hub

ROOM = "feedback/x"


def presence(clock: list[float]) -> Presence:
    return Presence(Hub(), lambda room: room.startswith("feedback"), heartbeat=10.0,
                    clock=lambda: clock[0])


def test_other_nodes_counts_add_up_until_they_fall_silent_or_leave() -> None:
    now = [100.0]
    here = presence(now)
    assert here.heard({"node": "a", "rooms": {ROOM: 2}}) == {ROOM}
    assert here.heard({"node": "b", "rooms": {ROOM: 1, "other": 5}}) == {ROOM}  # not ours
    assert here.online(ROOM) == 3
    assert here.heard({"node": "a", "rooms": {ROOM: 2}}) == set()  # a heartbeat: no change
    now[0] += 25.0
    here.heard({"node": "b", "rooms": {ROOM: 1}})
    now[0] += 10.0  # node a missed three beats: it died
    assert here.online(ROOM) == 1
    assert here.heard({"node": "b", "rooms": {}, "gone": True}) == {ROOM}
    assert here.online(ROOM) == 0


def test_its_own_echo_and_malformed_reports_change_nothing() -> None:
    here = presence([0.0])
    assert here.heard({"node": here.node, "rooms": {ROOM: 9}}) == set()
    for bad in ({}, {"node": 1, "rooms": {}}, {"node": "a", "rooms": [ROOM]},
                {"node": "a", "rooms": {ROOM: "2"}}, {"node": "a", "rooms": {ROOM: True}}):
        here.heard(bad)
    assert here.online(ROOM) == 0
