"""Redis pub/sub between server processes, plus a presence registry of names.

Envelopes travel in batches, one Redis message per batch (redis_wire.py).

One channel per namespace (not one per room): the Broker interface has no
join/leave hooks, `TO` envelopes would need per-node channels anyway, and with a
handful of nodes receiving and discarding a foreign envelope costs one small
header parse (the frame itself is never decoded here). Each node skips its own
envelopes; `seq` rises by one per envelope of a node, so a batch re-sent after
a lost connection is not delivered twice, and a gap is logged.

Presence: one expiring key per name (redis_presence.py), refreshed by this
broker's heartbeat. `prefix` (default swergio_al) separates deployments
sharing one Redis.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import math
import random
import uuid
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from swergio_al.config import redact_url
from swergio_al.relay.broker import Broker, Envelope, OnEnvelope
from swergio_al.relay.redis_wire import (
    DELIVER,
    GONE,
    SIGNAL,
    TAKEOVER,
    MalformedBatch,
    Outgoing,
    batch_origin,
    decode_batch,
    encode_batch,
)

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - a test hides the package to see this
    raise ImportError("the Redis broker needs the redis package: "
                      "pip install 'swergio-al[redis]'") from exc

# After the import above, so that without redis that one fails first, with the hint.
from swergio_al.relay.redis_presence import RedisPresence

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "swergio_al"
DEFAULT_PRESENCE_TTL = 15.0
OUR_OPTIONS = frozenset({"prefix", "presence_ttl"})
BATCH = 512  # at most this many envelopes per Redis message
BATCH_CHARS = 256 * 1024  # and at most about this much text (a larger envelope goes alone)

class BrokerState(Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class Backoff:
    """Capped exponential backoff with full jitter, reset by a success."""

    def __init__(self, *, base: float = 0.05, cap: float = 5.0) -> None:
        self.base = base
        self.cap = cap
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2 ** self.attempts)
        self.attempts += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempts = 0


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """`redis://host:port/db?prefix=ns&presence_ttl=15` → (url for redis-py, our options)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {key: value for key, value in query if key in OUR_OPTIONS}
    rest = [(key, value) for key, value in query if key not in OUR_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(rest))), ours


class RedisBroker(Broker):
    """Fan-out between server processes over Redis pub/sub; presence as expiring keys."""

    distributed = True

    def __init__(self, url: str, *, outbox_limit: int = 100_000) -> None:
        self.url = url
        self.outbox_limit = outbox_limit
        self._redis_url, options = split_url(url)
        try:
            self.presence_ttl_seconds = float(options.get("presence_ttl", DEFAULT_PRESENCE_TTL))
        except ValueError:
            self.presence_ttl_seconds = 0.0
        if not (0 < self.presence_ttl_seconds < math.inf):
            raise ValueError(f"presence_ttl in {redact_url(url)!r} must be a number of "
                             "seconds > 0")
        # The database number is part of the namespace: pub/sub channels are
        # shared by all databases of a Redis server.
        db = urlsplit(self._redis_url).path.strip("/") or "0"
        self.namespace = f"{options.get('prefix') or DEFAULT_NAMESPACE}:{db}"
        self.node_id = uuid.uuid4().hex[:12]
        self.state = BrokerState.NEW
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.channel = f"{self.namespace}:relay"
        self.presence = RedisPresence(self.namespace, self.node_id, self.presence_ttl_seconds)
        self._redis: aioredis.Redis | None = None
        self._on_envelope: OnEnvelope | None = None
        self._seq = 0
        self._last_seen: dict[str, int] = {}
        self._outbox: collections.deque[Outgoing] = collections.deque()
        self._outbox_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._sender: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------

    async def start(self, on_envelope: OnEnvelope) -> None:
        if self.state is not BrokerState.NEW:
            raise RuntimeError(f"expected broker state {BrokerState.NEW.value}, "
                               f"got {self.state.value}")
        self._on_envelope = on_envelope
        # redis-py's own retries would stall the event loop's callers; our loops retry.
        self._redis = aioredis.from_url(
            self._redis_url, decode_responses=True, retry=Retry(NoBackoff(), 0),
            socket_timeout=3.0, socket_connect_timeout=3.0, socket_keepalive=True,
            client_name=f"{self.namespace}:{self.node_id}".replace(" ", "_"))
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            raise ConnectionError(f"cannot reach Redis at {redact_url(self._redis_url)}: "
                              f"{exc}") from exc
        self.presence.connect(self._redis)
        self.state = BrokerState.RUNNING
        loop = asyncio.get_running_loop()
        self._sender = loop.create_task(self._send(), name="redis-broker-send")
        self._tasks = [self._sender,
                       loop.create_task(self._listen(), name="redis-broker-listen"),
                       loop.create_task(self._heartbeat(), name="redis-broker-heartbeat")]
        # Envelopes other nodes publish from now on must reach us: wait for SUBSCRIBE.
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=10)
        except TimeoutError:
            await self.stop()
            raise ConnectionError(f"could not subscribe to {self.channel} on "
                              f"{redact_url(self._redis_url)}") from None
        log.info("redis broker: node %s on channel %s", self.node_id, self.channel)

    async def stop(self) -> None:
        if self.state is not BrokerState.RUNNING:
            self.state = BrokerState.STOPPED
            return
        for name in self.presence.local:  # the other nodes forget them at once
            self._enqueue(GONE, Envelope(text="", room=None, to=name, exclude=None))
        self.state = BrokerState.STOPPED
        await self._flush(timeout=2.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        assert self._redis is not None
        await self.presence.release_all()
        await self._redis.aclose()

    async def _flush(self, *, timeout: float) -> None:
        """Give envelopes published just before shutdown a chance to leave."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            log.warning("redis broker: stopping with %d envelopes unsent", len(self._outbox))

    # -- fan-out -----------------------------------------------------------

    async def publish(self, envelope: Envelope) -> None:
        self.publish_nowait(envelope)

    def publish_nowait(self, envelope: Envelope) -> None:
        if envelope.room is None and envelope.to in self.presence.local:
            return  # addressed to a name on this node only: already delivered
        self._enqueue(DELIVER, envelope)

    def signal(self, topic: str, data: dict[str, Any]) -> None:
        self._enqueue(SIGNAL, Envelope(text=json.dumps(data), room=None, to=topic,
                                       exclude=None))

    def _enqueue(self, kind: str, envelope: Envelope) -> None:
        if self.state is not BrokerState.RUNNING:
            return
        if len(self._outbox) >= self.outbox_limit:
            # Redis has been unreachable for a while; the sender owns the head of
            # the outbox, so the newest envelope is the one to give up.
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("redis broker: outbox full (%d), dropped %d envelopes so far",
                            self.outbox_limit, self.dropped)
            return
        self._seq += 1
        self._outbox.append(Outgoing(self._seq, kind, envelope.room, envelope.to,
                                     envelope.exclude, envelope.text))
        self._outbox_ready.set()
        self._drained.clear()

    async def _send(self) -> None:
        """Publish the outbox in order; on failure retry the same batch.

        Whatever piled up during one round trip leaves as one Redis message, so
        under load the per-command cost of Redis and redis-py is shared by many
        envelopes, while a lone envelope still leaves at once.
        """
        assert self._redis is not None
        backoff = Backoff()
        while not self._stopping():
            if not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            batch: list[Outgoing] = []
            chars = 0
            for outgoing in itertools.islice(self._outbox, BATCH):
                if batch and chars + len(outgoing.text) > BATCH_CHARS:
                    break
                batch.append(outgoing)
                chars += len(outgoing.text)
            try:
                await self._redis.publish(self.channel, encode_batch(self.node_id, batch))
            except (RedisError, OSError) as exc:
                await self._lost("publishing", exc, backoff)
                continue
            if backoff.attempts:
                log.info("redis broker: publishing again after %d failed attempts",
                         backoff.attempts)
                backoff.reset()
            for _ in batch:  # the outbox only grows at the right meanwhile
                self._outbox.popleft()
            self.sent += len(batch)
            if not self._outbox:
                self._drained.set()

    async def _listen(self) -> None:
        assert self._redis is not None
        backoff = Backoff()
        while not self._stopping():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if backoff.attempts:
                    log.info("redis broker: subscribed again after %d failed attempts "
                             "(envelopes sent meanwhile are lost)", backoff.attempts)
                    backoff.reset()
                self._subscribed.set()
                while not self._stopping():
                    # A bounded wait, so the loop looks at _stopping() now and then.
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._receive(message["data"])
            except (RedisError, OSError) as exc:
                await self._lost("subscription", exc, backoff)
            finally:
                await _quietly(pubsub.aclose)

    def _receive(self, raw: str) -> None:
        try:
            if batch_origin(raw) == self.node_id:
                return  # our own
            origin, envelopes = decode_batch(raw)
        except MalformedBatch as exc:
            log.warning("redis broker: ignoring a malformed envelope on %s: %s", self.channel,
                        exc)
            return
        for envelope in envelopes:
            try:
                self._dispatch(origin, *envelope)
            except Exception:  # a bug in one delivery must not cost the others
                log.exception("redis broker: handling an envelope from %s failed", origin)

    def _dispatch(self, origin: str, seq: int, kind: str, room: str | None, to: str | None,
                  exclude: str | None, text: str) -> None:
        if origin == self.node_id:
            return
        last = self._last_seen.get(origin)
        if last is not None:
            if seq <= last:
                return  # re-sent after a lost connection; delivered already
            if seq > last + 1:
                log.warning("redis broker: lost %d envelopes from node %s", seq - last - 1,
                            origin)
        self._last_seen[origin] = seq
        self.received += 1
        if kind == DELIVER:
            assert self._on_envelope is not None
            self._on_envelope(Envelope(text=text, room=room, to=to, exclude=exclude))
        elif kind == GONE and to is not None:
            self.presence.gone_elsewhere(to)
        elif kind == TAKEOVER and to is not None and to in self.presence.local:
            self._taken(to)
        elif kind == SIGNAL and to is not None and self.on_signal is not None:
            try:
                data = json.loads(text)
            except ValueError:
                log.warning("redis broker: ignoring a signal with bad data from %s", origin)
                return
            self.on_signal(to, data)

    # -- presence ----------------------------------------------------------

    async def claim(self, name: str, holder: str = "") -> None:
        value = self.presence.hold(name, holder)
        if self.state is not BrokerState.RUNNING:
            return
        if await self.presence.claim(name, value):
            self._enqueue(TAKEOVER, Envelope(text="", room=None, to=name, exclude=None))

    async def holder_elsewhere(self, name: str) -> str | None:
        if self.state is not BrokerState.RUNNING:
            return None
        return await self.presence.holder_elsewhere(name)

    async def release(self, name: str) -> None:
        self.presence.local.pop(name, None)
        if self.state is not BrokerState.RUNNING:
            return
        self._enqueue(GONE, Envelope(text="", room=None, to=name, exclude=None))
        await self.presence.release(name)

    async def is_online(self, name: str) -> bool:
        if self.state is not BrokerState.RUNNING:
            return False
        return await self.presence.is_online(name)

    def _taken(self, name: str) -> None:
        self.presence.local.pop(name, None)
        if self.on_taken_over is not None:
            try:
                self.on_taken_over(name)
            except Exception:  # the heartbeat and the subscription must go on
                log.exception("redis broker: closing the older connection of %s failed", name)

    async def _heartbeat(self) -> None:
        """Refresh this node's names well before they expire."""
        assert self._redis is not None
        backoff = Backoff()
        while not self._stopping():
            await asyncio.sleep(self.presence_ttl_seconds / 3)
            try:
                await self.presence.refresh(self._taken)
            except (RedisError, OSError) as exc:
                await self._lost("presence heartbeat", exc, backoff)
            else:
                backoff.reset()

    def _stopping(self) -> bool:
        """Whether a background loop should end. Not only cancellation: redis-py can
        turn a cancel that lands on one of its read deadlines into an error or
        swallow it, so the loops also look at the state stop() sets first."""
        task = asyncio.current_task()
        return self.state is not BrokerState.RUNNING or (task is not None
                                                         and task.cancelling() > 0)

    async def _lost(self, what: str, exc: BaseException, backoff: Backoff) -> None:
        if self._stopping():
            raise asyncio.CancelledError
        delay = backoff.next_delay()
        log.warning("redis broker: %s failed (%s: %s); retrying in %.2fs", what,
                    type(exc).__name__, exc, delay)
        await asyncio.sleep(delay)


async def _quietly(close: Callable[[], Awaitable[Any]]) -> None:
    try:
        await close()
    except (RedisError, OSError) as exc:
        log.debug("redis broker: close failed: %s", exc)
