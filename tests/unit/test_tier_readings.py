"""Tier readings → gauges (users/tier_readings.py): pure, fed what the servers answer, clock passed in."""

from __future__ import annotations

import json

import pytest

from users.tier_readings import (
    MAX_BACKEND_GAUGES,
    Deltas,
    backend_gauges,
    clickhouse_gauges,
    pg_gauges,
    redis_gauges,
)


def test_redis_info_gives_memory_clients_ops_and_blocked() -> None:
    info = {"used_memory": 3 * 1048576, "connected_clients": 7, "instantaneous_ops_per_sec": 120,
            "blocked_clients": 1, "evicted_keys": 0, "role": "master"}
    assert redis_gauges(info) == {"redis:used_memory_mb": 3.0, "redis:connected_clients": 7.0,
                                  "redis:ops_per_sec": 120.0, "redis:blocked_clients": 1.0, "redis:evicted_keys": 0.0}
    assert redis_gauges({"used_memory": "x"}) == {}


def test_pg_row_gives_sessions_by_state_and_rates_from_the_second_reading() -> None:
    deltas = Deltas()
    first = pg_gauges(({"idle": 3, "active": 1, "idle in transaction (aborted)": 2}, 100, 5, 0, 1, 100), deltas, 10.0)
    assert first == {"pg:sessions_active": 1.0, "pg:sessions_idle": 3.0, "pg:sessions_idle_in_transaction": 0.0,
                     "pg:sessions_idle_in_transaction_aborted": 2.0, "pg:connections": 6.0,
                     "pg:max_connections": 100.0, "pg:locks_not_granted": 1.0}
    second = pg_gauges((json.dumps({"active": 2}), 150, 6, 2, 0, 100), deltas, 12.0)
    assert second["pg:commits_per_s"] == 25.0 and second["pg:rollbacks_per_s"] == 0.5
    assert second["pg:deadlocks"] == 2.0 and second["pg:sessions_idle"] == 0.0 and second["pg:connections"] == 2.0


def test_deltas_skip_a_counter_reset_and_zero_time() -> None:
    d = Deltas()
    assert d.rate("x", 10, 1.0) is None
    assert d.rate("x", 5, 2.0) is None  # went down: a restart or stats reset
    assert d.rate("x", 9, 2.0) is None  # no time passed
    assert d.rate("x", 19, 4.0) == pytest.approx(5.0)


def test_clickhouse_rows_give_metrics_without_the_reading_itself_and_event_rates() -> None:
    deltas = Deltas()
    text = "m\tQuery\t3\nm\tTCPConnection\t2\nm\tHTTPConnection\t1\nm\tMerge\t0\ne\tQuery\t100\ne\tSelectQuery\t60\n"
    first = clickhouse_gauges(text, deltas, 0.0)
    assert first == {"clickhouse:queries_running": 2.0, "clickhouse:tcp_connections": 2.0,
                     "clickhouse:http_connections": 0.0, "clickhouse:merges_running": 0.0}
    second = clickhouse_gauges("e\tQuery\t110\ne\tSelectQuery\t60\ne\tFailedQuery\t4\ngarbage\n", deltas, 5.0)
    assert second == {"clickhouse:queries_per_s": 2.0, "clickhouse:selects_per_s": 0.0,
                      "clickhouse:inserts_per_s": 0.0, "clickhouse:failed_queries_per_s": 0.8,
                      "clickhouse:inserted_rows_per_s": 0.0}


def test_backend_payload_numbers_two_levels_deep_without_pid_and_uptime() -> None:
    body = json.dumps({"status": "ok", "pid": 42, "uptime_s": 9.5, "connections": 3, "in_flight": 1,
                       "ok": True, "clickhouse": {"buffered_rows": 10, "last_flush_ms": 2.5, "deep": {"x": 1}},
                       "faults": ["hang"]})
    assert backend_gauges(body) == {"backend:connections": 3.0, "backend:in_flight": 1.0,
                                    "backend:clickhouse_buffered_rows": 10.0,
                                    "backend:clickhouse_last_flush_ms": 2.5}
    assert backend_gauges(b"OK") == {} and backend_gauges(None) == {} and backend_gauges("[1, 2]") == {}
    many = json.dumps({f"k{i}": i for i in range(100)})
    assert len(backend_gauges(many)) == MAX_BACKEND_GAUGES
