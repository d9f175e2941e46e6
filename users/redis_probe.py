"""RedisProbeUser: times Redis the way the backend uses it, in the same run and stats as the chat users.

Samples (request_type ``REDIS``): ``connect`` (a fresh connection: TCP + handshake, timed apart from commands),
``pool acquire`` (wait for a connection of the shared bounded pool), ``GET`` / ``SET`` on the backend's session-cache
key shape, ``MGET`` (multi-key read), ``SET large`` (large values, write performance under memory pressure) and
``INFO``. Gauges: ``redis:used_memory_mb``, ``redis:maxmemory_mb``, ``redis:evicted_keys``,
``redis:connected_clients``, ``redis_probe:pool_in_use``, ``redis_probe:pool_size``.

``--probe-read-only``: ``connect``, ``pool acquire``, ``GET`` / ``MGET`` (of the probe's own key names, which then do
not exist: the same round trip, nil replies) and ``INFO`` only; no ``SET``, ``SET large`` or cleanup ``DEL``.

No hidden retries: redis-py 8 retries a failed command up to 10 times with backoff by default (``Redis(retry=...)``
default), which would turn a 3 s stall into a retry storm. Every connection here gets ``Retry(NoBackoff(), 0)`` and no
``retry_on_error``/``retry_on_timeout`` (checked in redis 8.1's source: commands, connect and the health-check PING
all go through ``conn.retry``; ``health_check_interval`` stays 0; RESP3 maintenance notifications, which relax
timeouts and reconnect, are off). The only remaining reconnect is the pool's one re-connect of a pooled connection
found dead before use (``ConnectionPool.get_connection``), which re-sends nothing.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import redis
from locust import User, between, task
from locust.env import Environment
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from contract.schema import REDIS_SESSION_KEY
from sla_checks.gauges import record_gauge
from users.probe_base import ProbeFailure, skip_write_task, timed
from users.probe_options import ProbeConfig, probe_config

logger = logging.getLogger(__name__)

_pools: dict[tuple[str, int, float, float], SharedRedisPool] = {}
_pools_lock = threading.Lock()


def no_retry() -> Retry:
    """A retry policy that never retries (a fresh object each time: redis-py mutates it)."""
    return Retry(NoBackoff(), 0)


def connection_kwargs(cfg: ProbeConfig) -> dict[str, Any]:
    """Keyword arguments for a ``redis.Connection``/pool from the probe settings: timeouts set, retries off."""
    kwargs = parse_url(cfg.redis_url)
    kwargs.update(
        retry=no_retry(),
        retry_on_timeout=False,
        retry_on_error=[],
        socket_timeout=cfg.redis_timeout,
        socket_connect_timeout=cfg.redis_timeout,
        health_check_interval=0,
        # RESP3 (redis-py 8's default) would enable maintenance notifications ("auto"): relaxed timeouts and
        # reconnects on a managed server's maintenance events. A probe keeps its timeouts fixed.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    return kwargs


class SharedRedisPool:
    """One bounded redis-py pool per process and URL, shared by all RedisProbeUsers, with its use counted."""

    def __init__(self, cfg: ProbeConfig) -> None:
        kwargs = connection_kwargs(cfg)
        connection_class = kwargs.pop("connection_class", redis.Connection)
        self.size = cfg.redis_pool_size
        self.pool = redis.BlockingConnectionPool(
            max_connections=cfg.redis_pool_size, timeout=cfg.redis_pool_timeout,
            connection_class=connection_class, **kwargs,
        )
        self.in_use = 0

    @classmethod
    def for_config(cls, cfg: ProbeConfig) -> SharedRedisPool:
        key = (cfg.redis_url, cfg.redis_pool_size, cfg.redis_pool_timeout, cfg.redis_timeout)
        with _pools_lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = cls(cfg)
            return pool


def close_pools() -> None:
    """Disconnect and forget every shared pool (test teardown, end of run)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.pool.disconnect()
        _pools.clear()


def with_connect_weight(tasks: list[Any], weight: int) -> list[Any]:
    """``tasks`` (Locust's weighted list: a task repeated per unit of weight) with ``connect`` ``weight`` times."""
    connect = RedisProbeUser.connect
    return [t for t in tasks if t is not connect] + [connect] * weight


class RedisProbeUser(User):
    """Probes Redis: connect, pool acquire, GET/SET/MGET on the session-cache keys, large writes and INFO."""

    fixed_count = 1
    """One per run by default (``--redis-probe-users``)."""
    wait_time = between(0.5, 1.0)
    keys_per_user: int = 8
    """Session keys this user writes and reads (probe-owned ids, the backend's key shape)."""
    key_ttl_s: int = 120
    """TTL of the probe's keys, so nothing is left behind."""
    large_ttl_s: int = 30
    """TTL of the large values (they exist to load memory briefly, not to fill it)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.cfg = probe_config(environment)
        self.shared = SharedRedisPool.for_config(self.cfg)
        self.client = redis.Redis(connection_pool=self.shared.pool)
        tag = f"probe-{os.getpid()}-{id(self) & 0xFFFFFF:06x}"
        self.keys = [REDIS_SESSION_KEY.format(user_id=f"{tag}-{i}") for i in range(self.keys_per_user)]
        self.large_value = os.urandom(self.cfg.redis_large_value_kb * 1024)

    # -------------------------------------------------------------- helpers

    @contextmanager
    def lease(self) -> Iterator[redis.Redis | None]:
        """Borrow a pooled connection (sample ``REDIS pool acquire``); yields None when none came in time."""
        conn = None
        with timed(self.environment, "REDIS", "pool acquire") as meta:
            conn = self.shared.pool.get_connection()
            meta["context"]["pool_size"] = self.shared.size
        if conn is None:
            yield None
            return
        self.shared.in_use += 1
        self.client.connection = conn
        try:
            yield self.client
        finally:
            self.client.connection = None
            self.shared.in_use -= 1
            self.shared.pool.release(conn)

    def _session_value(self) -> bytes:
        return (
            '{"user_id": "probe", "email": "probe@example.com", "permissions": ["chat"], '
            f'"connected_at": {time.time():.3f}, "connection_id": "{random.getrandbits(64):016x}"}}'
        ).encode()

    def on_start(self) -> None:
        """A connect sample and a first INFO reading (memory baseline) in every run, whatever the task draw."""
        self.cfg = probe_config(self.environment)  # --probe-read-only as the web UI left it
        self.tasks = with_connect_weight(type(self).tasks, self.cfg.redis_connect_weight)
        self.connect()
        with self.lease() as client:
            if client is not None:
                self.record_info(client)

    # -------------------------------------------------------------- tasks

    @task(1)
    def connect(self) -> None:
        """A fresh connection (TCP + handshake), timed apart from any command."""
        kwargs = connection_kwargs(self.cfg)
        connection_class = kwargs.pop("connection_class", redis.Connection)
        conn = connection_class(**kwargs)
        try:
            with timed(self.environment, "REDIS", "connect"):
                conn.connect()
        finally:
            conn.disconnect()

    @task(3)
    def set_session(self) -> None:
        if self.cfg.probe_read_only:
            skip_write_task()
        with self.lease() as client:
            if client is None:
                return
            value = self._session_value()
            with timed(self.environment, "REDIS", "SET") as meta:
                client.set(random.choice(self.keys), value, ex=self.key_ttl_s)
                meta["response_length"] = len(value)

    @task(4)
    def get_session(self) -> None:
        with self.lease() as client:
            if client is None:
                return
            with timed(self.environment, "REDIS", "GET") as meta:
                value = client.get(random.choice(self.keys))
                meta["response_length"] = len(value or b"")

    @task(2)
    def mget_sessions(self) -> None:
        with self.lease() as client:
            if client is None:
                return
            with timed(self.environment, "REDIS", "MGET") as meta:
                values = client.mget(self.keys)
                meta["response_length"] = sum(len(v or b"") for v in values)

    @task(1)
    def write_large(self) -> None:
        """A large value, then INFO: write latency next to used_memory / maxmemory / evicted_keys (read-only: INFO)."""
        with self.lease() as client:
            if client is None:
                return
            if self.cfg.probe_read_only:
                self.record_info(client)
                return
            key = random.choice(self.keys) + ":large"
            with timed(self.environment, "REDIS", "SET large") as meta:
                client.set(key, self.large_value, ex=self.large_ttl_s)
                meta["response_length"] = len(self.large_value)
            self.record_info(client)

    def record_info(self, client: redis.Redis) -> dict[str, Any] | None:
        """``INFO`` (sample ``REDIS INFO``) → memory and pool gauges; returns the parsed INFO or None."""
        info: dict[str, Any] | None = None
        with timed(self.environment, "REDIS", "INFO") as meta:
            info = client.info()
            if not isinstance(info, dict) or "used_memory" not in info:
                raise ProbeFailure(f"INFO returned no used_memory ({type(info).__name__})")
            meta["response_length"] = len(info)
        if not info or "used_memory" not in info:
            return None
        env = self.environment
        record_gauge(env, "redis:used_memory_mb", int(info["used_memory"]) / 1048576)
        record_gauge(env, "redis:maxmemory_mb", int(info.get("maxmemory", 0)) / 1048576)
        record_gauge(env, "redis:evicted_keys", int(info.get("evicted_keys", 0)))
        record_gauge(env, "redis:connected_clients", int(info.get("connected_clients", 0)))
        record_gauge(env, "redis_probe:pool_size", self.shared.size)
        record_gauge(env, "redis_probe:pool_in_use", self.shared.in_use)
        return info

    def on_stop(self) -> None:
        if self.cfg.probe_read_only:
            return
        try:
            with self.lease() as client:
                if client is not None:
                    client.delete(*self.keys, *(k + ":large" for k in self.keys))
        except redis.RedisError as exc:
            logger.debug("redis probe cleanup failed: %s", exc)
