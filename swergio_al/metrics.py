"""GET /metrics: the server's figures in the Prometheus text format.

Counters and histograms are updated where things happen (the Hub, the
endpoints, the feedback service call the small methods below); gauges -
connections, rooms, each feedback room's queue - are read when scraped. Every
app has a registry of its own, so several apps in one process (tests) never
share figures. With a component token configured, scraping needs it, as /api.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from swergio_al.api import components_only
from swergio_al.feedback.records import StoreError
from swergio_al.keys import FEEDBACK, HUB, STORE
from swergio_al.relay.hub import Hub

PREFIX = "swergio_al"
# Label latencies run from a millisecond (commit) to minutes (a model learning in batches).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 300.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
# Labels waiting for their model's ACK, remembered for the submit -> learned
# histogram; past this many the oldest are forgotten (a model that never acks).
PENDING_LEARNED = 100_000


class Metrics:
    """One app's counters and histograms, and the hooks that update them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._relayed = Counter(f"{PREFIX}_messages_relayed", "Messages from clients routed by "
                                "the relay, by TYPE", ["type"], registry=r)
        self._delivered = Counter(f"{PREFIX}_messages_delivered", "Frames written to this "
                                  "node's connections, by TYPE (remote: relayed from another "
                                  "node)", ["type"], registry=r)
        self._errors = Counter(f"{PREFIX}_error_frames", "ERROR frames sent, by CODE",
                               ["code"], registry=r)
        self._rate_limited = Counter(f"{PREFIX}_rate_limit_closes", "Connections closed for "
                                     "sending faster than the rate limit", ["transport"],
                                     registry=r)
        self._labels = Counter(f"{PREFIX}_feedback_labels", "Labels committed on this node",
                               registry=r)
        self._label_ack = Histogram(f"{PREFIX}_feedback_label_ack_seconds", "FEEDBACK/LABEL "
                                    "received -> committed and its ACK sent", registry=r,
                                    buckets=LATENCY_BUCKETS)
        self._label_learned = Histogram(f"{PREFIX}_feedback_label_learned_seconds",
                                        "FEEDBACK/LABEL received -> the requesting model's "
                                        "FEEDBACK/ACK (a FeedbackLoop acks once it has "
                                        "learned the label)", registry=r,
                                        buckets=LATENCY_BUCKETS)
        self._store = Histogram(f"{PREFIX}_store_commit_seconds", "Feedback store writes, "
                                "queueing for the group commit included, by operation",
                                ["op"], registry=r, buckets=STORE_BUCKETS)
        self._expired = Counter(f"{PREFIX}_feedback_lease_expiries", "Leases that ran out "
                                "before their labeler answered", registry=r)
        self._redelivered = Counter(f"{PREFIX}_feedback_redeliveries", "Leased tasks shown "
                                    "again (reconnect, restart) and labels replayed to their "
                                    "requester", ["what"], registry=r)
        # Children by label value: prometheus_client's labels() costs a lock and a
        # tuple per call, the relay counts every message.
        self._children: dict[tuple[int, str], Any] = {}
        self._waiting: OrderedDict[str, float] = OrderedDict()

    def _child(self, metric: Any, value: str) -> Any:
        key = (id(metric), value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(value)
        return child

    # -- hooks -------------------------------------------------------------

    def relayed(self, kind: str) -> None:
        self._child(self._relayed, kind).inc()

    def delivered(self, kind: str, count: int) -> None:
        if count:
            self._child(self._delivered, kind).inc(count)

    def error_sent(self, code: str) -> None:
        self._child(self._errors, code).inc()

    def rate_limit_closed(self, transport: str) -> None:
        self._child(self._rate_limited, transport).inc()

    def store_write(self, op: str, seconds: float) -> None:
        self._child(self._store, op).observe(seconds)

    def label_committed(self, label_id: str, received: float) -> None:
        """A label is committed and ACKed; `received` is when it came in (perf_counter)."""
        self._labels.inc()
        self._label_ack.observe(time.perf_counter() - received)
        self._waiting[label_id] = received
        if len(self._waiting) > PENDING_LEARNED:
            self._waiting.popitem(last=False)

    def label_acked(self, label_id: str) -> None:
        received = self._waiting.pop(label_id, None)
        if received is not None:
            self._label_learned.observe(time.perf_counter() - received)

    def leases_expired(self, count: int) -> None:
        self._expired.inc(count)

    def redelivered(self, what: str, count: int = 1) -> None:
        if count:
            self._child(self._redelivered, what).inc(count)


class LiveFigures(Collector):
    """Gauges read when scraped: connections, rooms, and each feedback room's queue
    (fetched from the store just before, by the handler)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.rooms: dict[str, dict[str, Any]] = {}

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(f"{PREFIX}_connections", "Open connections on this "
                                        "node, by role and transport",
                                        labels=["role", "transport"])
        counts: dict[tuple[str, str], int] = {}
        for conn in list(self.hub.connections):
            role = conn.role.value if conn.name is not None else "unregistered"
            key = (role, conn.transport)
            counts[key] = counts.get(key, 0) + 1
        for (role, transport), n in sorted(counts.items()):
            connections.add_metric([role, transport], n)
        yield connections
        yield GaugeMetricFamily(f"{PREFIX}_rooms", "Rooms with members on this node",
                                value=len(self.hub.rooms))
        families = {figure: GaugeMetricFamily(f"{PREFIX}_feedback_{figure}", text,
                                              labels=["room"])
                    for figure, text in (("queued", "Requests waiting for a labeler"),
                                         ("in_flight", "Tasks leased to labelers"),
                                         ("labeled", "Labels stored (every node)"),
                                         ("labelers", "Labelers online (every node)"))}
        for room, stats in sorted(self.rooms.items()):
            for figure, family in families.items():
                family.add_metric([room], stats.get(figure, 0))
        yield from families.values()


METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
LIVE: web.AppKey[LiveFigures] = web.AppKey("live_figures", LiveFigures)


async def metrics_endpoint(request: web.Request) -> web.Response:
    app = request.app
    live = app[LIVE]
    try:
        live.rooms = {room: await app[FEEDBACK].room_stats(room)
                      for room in await app[STORE].rooms()}
    except StoreError:
        live.rooms = {}  # the relay's figures are still worth having
    body = generate_latest(app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_metrics(app: web.Application) -> None:
    """Count what the relay and the feedback service do, and serve it at /metrics."""
    metrics = app[METRICS] = Metrics()
    app[LIVE] = LiveFigures(app[HUB])
    metrics.registry.register(app[LIVE])
    app[HUB].metrics = metrics
    app[FEEDBACK].metrics = metrics
    app.router.add_get("/metrics", components_only(metrics_endpoint, what="/metrics"))
