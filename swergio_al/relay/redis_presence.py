"""The Redis broker's presence registry: which node each name is connected to.

One key per name, `<ns>:name:<name>` = "<node id> <holder>", with a TTL that a
heartbeat refreshes. A node killed with SIGKILL stops refreshing, so its names
expire after `presence_ttl` seconds (a URL option, default 15); a node that
stops cleanly deletes them. Names seen online on other nodes are remembered
for a while, sparing `TO` traffic a Redis round trip per message.

The broker (redis_broker.py) owns the connection, the lifecycle and the
envelopes that tell other nodes (GONE, TAKEOVER); this keeps the keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

# The broker's logger: one name for operators to tune.
log = logging.getLogger("swergio_al.relay.redis_broker")

REMOTE_CACHE = 100_000  # names remembered as online elsewhere (expired ones dropped past it)

# A name's key holds "<node id> <holder>": the node it is connected to and the
# role:credential it registered with (the takeover rule, relay/access.py).
# Refresh this node's names; re-claim any that vanished (Redis restarted, or
# they expired while Redis was unreachable); report those another node now owns.
_REFRESH = """
local mine = ARGV[1] .. ' '
local lost = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner and string.sub(owner, 1, #mine) == mine then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not owner then
    redis.call('SET', key, ARGV[2 + i], 'PX', ARGV[2])
  else
    table.insert(lost, key)
  end
end
return lost
"""

# Delete a name only while this node still owns it (not after a takeover).
_RELEASE = """
local owner = redis.call('GET', KEYS[1])
if owner and string.sub(owner, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisPresence:
    """This node's names as expiring keys, and a cache of names online elsewhere.

    `local` maps each name connected here to its key's value. Redis failures are
    logged, never raised, except by `refresh` (the heartbeat retries it).
    """

    def __init__(self, namespace: str, node_id: str, ttl_seconds: float) -> None:
        self.namespace = namespace
        self.node_id = node_id
        self.ttl_seconds = ttl_seconds
        self.local: dict[str, str] = {}  # name -> its key's value
        # Names seen online on other nodes, until (monotonic time): spares `TO`
        # traffic a Redis round trip per message. A node that releases a name
        # says so (GONE); a killed node's names age out of here as from Redis.
        self._remote: dict[str, float] = {}
        self._redis: aioredis.Redis | None = None

    def connect(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._refresh = redis.register_script(_REFRESH)
        self._release = redis.register_script(_RELEASE)

    def _name_key(self, name: str) -> str:
        return f"{self.namespace}:name:{name}"

    def _ours(self, owner: object) -> bool:
        return isinstance(owner, str) and owner.startswith(f"{self.node_id} ")

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl_seconds * 1000))

    def hold(self, name: str, holder: str) -> str:
        """Note `name` as connected here (the heartbeat keeps its key); its key's value."""
        value = self.local[name] = f"{self.node_id} {holder}"
        return value

    async def claim(self, name: str, value: str) -> bool:
        """Write `name`'s key now; True when another node held it (a takeover)."""
        assert self._redis is not None
        try:
            previous = await self._redis.set(self._name_key(name), value,
                                             px=self._ttl_ms, get=True)
        except (RedisError, OSError) as exc:
            # The heartbeat claims it once Redis is back; the client stays connected.
            log.warning("redis broker: could not record %s as online (%s); retrying", name, exc)
            return False
        return previous is not None and not self._ours(previous)

    async def holder_elsewhere(self, name: str) -> str | None:
        assert self._redis is not None
        try:
            owner = await self._redis.get(self._name_key(name))
        except (RedisError, OSError) as exc:
            log.warning("redis broker: presence lookup of %s failed: %s", name, exc)
            return None
        if not isinstance(owner, str) or self._ours(owner):
            return None
        return owner.partition(" ")[2]

    async def release(self, name: str) -> None:
        """Delete `name`'s key while it is still this node's (`local` forgot it already)."""
        try:
            await self._release(keys=[self._name_key(name)], args=[self.node_id])
        except (RedisError, OSError) as exc:
            log.info("redis broker: could not remove %s (%s); it expires in %.0fs", name, exc,
                     self.ttl_seconds)

    async def release_all(self) -> None:
        """On stop: delete every key of this node (what fails expires) and forget them."""
        assert self._redis is not None
        try:
            pipe = self._redis.pipeline(transaction=False)
            for name in self.local:
                await self._release(keys=[self._name_key(name)], args=[self.node_id],
                                    client=pipe)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("redis broker: could not remove names on stop (%s); "
                        "they expire in %.0fs", exc, self.ttl_seconds)
        self.local.clear()

    async def is_online(self, name: str) -> bool:
        now = time.monotonic()
        if self._remote.get(name, 0.0) > now:
            return True
        assert self._redis is not None
        try:
            owner = await self._redis.get(self._name_key(name))
        except (RedisError, OSError) as exc:
            log.warning("redis broker: presence lookup of %s failed: %s", name, exc)
            return False
        online = owner is not None and not self._ours(owner)
        if online:
            if len(self._remote) >= REMOTE_CACHE:
                self._remote = {n: t for n, t in self._remote.items() if t > now}
            self._remote[name] = now + self.ttl_seconds / 2
        return online

    def gone_elsewhere(self, name: str) -> None:
        """Another node released `name` (its GONE envelope)."""
        self._remote.pop(name, None)

    async def refresh(self, taken: Callable[[str], None]) -> None:
        """One heartbeat: refresh this node's keys and re-claim vanished ones; `taken`
        hears each name another node now owns. Raises what Redis raises."""
        assert self._redis is not None
        prefix = len(self._name_key(""))
        names = list(self.local.items())
        keys = [self._name_key(name) for name, _ in names]
        values = [value for _, value in names]
        for start in range(0, len(keys), 1000):
            lost = await self._refresh(keys=keys[start:start + 1000],
                                       args=[self.node_id, self._ttl_ms,
                                             *values[start:start + 1000]])
            for key in lost:
                taken(key[prefix:])
