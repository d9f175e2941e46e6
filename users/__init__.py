
"""Locust User classes of the suite (layout: docs/development.md)."""

from __future__ import annotations

import locust  # noqa: F401  (first: locust monkey-patches gevent)

from users.chat import ChatFlowUser, ChatUser
from users.clickhouse_probe import ClickHouseProbeUser
from users.health import HealthCheckUser
from users.postgres_probe import PostgresProbeUser
from users.redis_probe import RedisProbeUser

__all__ = ["ChatFlowUser", "ChatUser", "ClickHouseProbeUser", "HealthCheckUser", "PostgresProbeUser", "RedisProbeUser"]
