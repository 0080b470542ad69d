"""Helpers for tests that run several `swergio-al serve` processes against one Redis."""

from __future__ import annotations

import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import ServerProcess

REDIS = "redis://127.0.0.1:6379/0"
# A connected test client must not hold up a node's stop.
NODE_ENV = {"SWERGIO_AL_SHUTDOWN_TIMEOUT_SECONDS": "0.5"}


def redis_problem() -> str | None:
    """Why Redis at 127.0.0.1:6379 cannot be used, or None."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed"
    client = redis.Redis.from_url(REDIS, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"no Redis at 127.0.0.1:6379 ({exc})"
    finally:
        client.close()
    return None


def require_redis() -> None:
    problem = redis_problem()
    if problem:
        pytest.skip(f"needs Redis: {problem}")


def new_prefix() -> str:
    """A key prefix of our own, so parallel runs never see each other's traffic."""
    return f"swergio_al_test_{uuid.uuid4().hex[:8]}"


def delete_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def broker_url(prefix: str, *, presence_ttl: float = 1.0) -> str:
    return f"{REDIS}?prefix={prefix}&presence_ttl={presence_ttl}"


def start_nodes(count: int, *args: str, logs: Path,
                env: dict[str, str] | None = None) -> list[ServerProcess]:
    """Start `count` nodes at once (each logs to logs/node<i>-<id>.log)."""
    nodes = [ServerProcess(*args, log_path=logs / f"node{i}-{uuid.uuid4().hex[:6]}.log",
                           env={**NODE_ENV, **(env or {})})
             for i in range(count)]
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(node.start) for node in nodes]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for node in nodes:
                node.kill()
            raise
    return nodes


def stop_nodes(nodes: list[ServerProcess]) -> list[int]:
    """SIGTERM every node (SIGKILL one that will not stop); their exit codes.

    Every node is stopped even when an earlier one fails, so none outlives the test.
    """
    codes = []
    for node in nodes:
        try:
            codes.append(node.terminate())
        except subprocess.TimeoutExpired:
            node.kill()
            codes.append(-9)
    return codes
