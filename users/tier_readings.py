"""Server-side tier readings turned into gauges: what :mod:`users.tier_gauges` records, as pure functions.

Each function takes what a tier answered (Redis ``INFO`` as a dict, a PostgreSQL statistics row, ClickHouse
``system.metrics`` / ``system.events`` rows, a health JSON body) and returns ``{gauge name: value}``. Counters that
only grow (transactions, ClickHouse events) become per-second rates or per-interval counts through :class:`Deltas`,
which needs two readings: the first reading of a counter gives no rate.

Gauge names (``<tier>:<what>``):

* ``redis:used_memory_mb``, ``redis:connected_clients``, ``redis:ops_per_sec`` (``instantaneous_ops_per_sec``),
  ``redis:blocked_clients``, ``redis:evicted_keys``;
* ``pg:sessions_<state>`` (client sessions by ``pg_stat_activity.state``: ``active``, ``idle``,
  ``idle_in_transaction`` always, other states when seen; the reading's own session not counted), ``pg:connections``
  (all client sessions), ``pg:max_connections``, ``pg:locks_not_granted`` (``pg_locks``), and from
  ``pg_stat_database`` of the probed database: ``pg:commits_per_s``, ``pg:rollbacks_per_s``, ``pg:deadlocks`` (new
  since the previous reading);
* ``clickhouse:queries_running``, ``clickhouse:tcp_connections``, ``clickhouse:http_connections`` (the reading's own
  query and connection not counted), ``clickhouse:merges_running``, ``clickhouse:delayed_inserts`` (``system.metrics``),
  ``clickhouse:queries_per_s``, ``clickhouse:selects_per_s``, ``clickhouse:inserts_per_s``,
  ``clickhouse:failed_queries_per_s``, ``clickhouse:inserted_rows_per_s`` (``system.events``);
* ``backend:<key>``: the numbers of the target's health payload (``{"connections": 3, "clickhouse":
  {"buffered_rows": 0}}`` → ``backend:connections``, ``backend:clickhouse_buffered_rows``), at most
  :data:`MAX_BACKEND_GAUGES`; ``pid`` and ``uptime*`` are left out.

Pure: no I/O, clock passed in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CH_EVENTS", "CH_METRICS", "CH_READING_SQL", "Deltas", "MAX_BACKEND_GAUGES", "PG_READING_SQL", "backend_gauges",
    "clickhouse_gauges", "pg_gauges", "redis_gauges",
]

MB = 1048576.0
MAX_BACKEND_GAUGES = 30
"""Most numbers taken from one health payload (a big JSON document is not a gauge set)."""

REDIS_FIELDS: dict[str, tuple[str, float]] = {
    "used_memory": ("redis:used_memory_mb", MB),
    "connected_clients": ("redis:connected_clients", 1.0),
    "instantaneous_ops_per_sec": ("redis:ops_per_sec", 1.0),
    "blocked_clients": ("redis:blocked_clients", 1.0),
    "evicted_keys": ("redis:evicted_keys", 1.0),
}
"""INFO field → (gauge, divisor)."""

PG_READING_SQL = (
    "SELECT (SELECT coalesce(json_object_agg(state, n), '{}'::json) FROM (SELECT coalesce(state, 'unknown') AS state,"
    " count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    " GROUP BY 1) s),"
    " d.xact_commit, d.xact_rollback, d.deadlocks,"
    " (SELECT count(*) FROM pg_locks WHERE NOT granted),"
    " current_setting('max_connections')::int"
    " FROM pg_stat_database d WHERE d.datname = current_database()"
)
"""One round trip: sessions by state (json), commits, rollbacks, deadlocks, locks not granted, max_connections."""
PG_BASE_STATES = ("active", "idle", "idle_in_transaction")

CH_METRICS: dict[str, tuple[str, int]] = {
    "Query": ("clickhouse:queries_running", 1),
    "TCPConnection": ("clickhouse:tcp_connections", 0),
    "HTTPConnection": ("clickhouse:http_connections", 1),
    "Merge": ("clickhouse:merges_running", 0),
    "DelayedInserts": ("clickhouse:delayed_inserts", 0),
}
"""``system.metrics`` name → (gauge, how many of it the reading itself adds: its query, its HTTP connection)."""
CH_EVENTS: dict[str, str] = {
    "Query": "clickhouse:queries_per_s",
    "SelectQuery": "clickhouse:selects_per_s",
    "InsertQuery": "clickhouse:inserts_per_s",
    "FailedQuery": "clickhouse:failed_queries_per_s",
    "InsertedRows": "clickhouse:inserted_rows_per_s",
}
"""``system.events`` name → per-second gauge (an event not yet seen by the server counts 0)."""


def _in(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


CH_READING_SQL = (
    f"SELECT 'm', metric, toFloat64(value) FROM system.metrics WHERE metric IN ({_in(CH_METRICS)}) "
    f"UNION ALL SELECT 'e', event, toFloat64(value) FROM system.events WHERE event IN ({_in(CH_EVENTS)}) "
    "FORMAT TabSeparated"
)
"""One round trip (works on ClickHouse 18.16 and current servers): rows ``m|e <TAB> name <TAB> value``."""


class Deltas:
    """Per-key change of growing counters between consecutive readings."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def change(self, key: str, value: float, now: float) -> tuple[float, float] | None:
        """``(increase, seconds)`` since the previous reading of ``key``; None on the first reading, when no time
        passed, or when the counter went down (a server restart or a stats reset)."""
        last = self._last.get(key)
        self._last[key] = (value, now)
        if last is None:
            return None
        increase, seconds = value - last[0], now - last[1]
        if increase < 0 or seconds <= 0:
            return None
        return increase, seconds

    def rate(self, key: str, value: float, now: float) -> float | None:
        """Increase per second since the previous reading (see :meth:`change`)."""
        change = self.change(key, value, now)
        return None if change is None else change[0] / change[1]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def redis_gauges(info: Mapping[str, Any]) -> dict[str, float]:
    """Gauges from a parsed ``INFO`` reply (fields missing from it are left out)."""
    out: dict[str, float] = {}
    for field, (name, divisor) in REDIS_FIELDS.items():
        value = _number(info.get(field))
        if value is not None:
            out[name] = value / divisor
    return out


def _state_gauge(state: str) -> str:
    return "pg:sessions_" + re.sub(r"[^a-z0-9]+", "_", state.lower()).strip("_")


def pg_gauges(row: tuple[Any, ...], deltas: Deltas, now: float) -> dict[str, float]:
    """Gauges from one row of :data:`PG_READING_SQL` (its first column a dict or JSON text of state → count)."""
    states_raw, commits, rollbacks, deadlocks, not_granted, max_connections = row
    states = json.loads(states_raw) if isinstance(states_raw, str) else dict(states_raw or {})
    out = {_state_gauge(s): 0.0 for s in PG_BASE_STATES}
    total = 0.0
    for state, count in states.items():
        n = _number(count) or 0.0
        out[_state_gauge(str(state))] = out.get(_state_gauge(str(state)), 0.0) + n
        total += n
    out["pg:connections"] = total
    out["pg:max_connections"] = float(max_connections)
    out["pg:locks_not_granted"] = float(not_granted)
    for key, value in (("pg:commits_per_s", commits), ("pg:rollbacks_per_s", rollbacks)):
        rate = deltas.rate(key, float(value), now)
        if rate is not None:
            out[key] = rate
    change = deltas.change("pg:deadlocks", float(deadlocks), now)
    if change is not None:
        out["pg:deadlocks"] = change[0]
    return out


def clickhouse_gauges(text: str, deltas: Deltas, now: float) -> dict[str, float]:
    """Gauges from the TabSeparated answer to :data:`CH_READING_SQL`."""
    metrics: dict[str, float] = {}
    events: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        value = _number(parts[2])
        if value is None:
            continue
        (metrics if parts[0] == "m" else events)[parts[1]] = value
    out: dict[str, float] = {}
    for metric, (name, own) in CH_METRICS.items():
        if metric in metrics:
            out[name] = max(metrics[metric] - own, 0.0)
    for event, name in CH_EVENTS.items():
        rate = deltas.rate(name, events.get(event, 0.0), now)
        if rate is not None:
            out[name] = rate
    return out


def _gauge_key(path: list[str]) -> str:
    return re.sub(r"[^a-z0-9]+", "_", "_".join(path).lower()).strip("_")


def backend_gauges(body: str | bytes | None) -> dict[str, float]:
    """``backend:<key>`` gauges from the numbers of a health payload (two levels deep); {} for a body that is not a
    JSON object."""
    try:
        doc = json.loads(body or b"")
    except (ValueError, TypeError):
        return {}
    if not isinstance(doc, dict):
        return {}
    out: dict[str, float] = {}

    def walk(node: Mapping[str, Any], path: list[str]) -> None:
        for key, value in node.items():
            if len(out) >= MAX_BACKEND_GAUGES:
                return
            key = str(key)
            if not path and (key == "pid" or key.startswith("uptime")):
                continue
            if isinstance(value, dict) and not path:
                walk(value, [key])
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                name = _gauge_key([*path, key])
                if name:
                    out[f"backend:{name}"] = float(value)

    walk(doc, [])
    return out
