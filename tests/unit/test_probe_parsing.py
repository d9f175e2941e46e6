"""Pure helpers of the HTTP probes: /health/ready body parsing, ClickHouse rows and error texts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest

from contract.schema import CH_COLUMNS
from users.clickhouse_probe import agent_event_rows, error_text
from users.health import tier_readings

pytestmark = pytest.mark.timeout(30)

READY = {
    "status": "degraded",
    "tiers": {
        "redis": {"ok": True, "latency_ms": 0.8, "error": None},
        "postgres": {"ok": False, "latency_ms": 2000.5, "error": "timeout"},
        "clickhouse": {"ok": True, "latency_ms": "3.5", "error": None},
    },
}


def test_tier_readings_reference_body_gives_one_reading_per_tier() -> None:
    assert tier_readings(json.dumps(READY)) == [
        ("clickhouse", 3.5, None), ("postgres", 2000.5, "timeout"), ("redis", 0.8, None),
    ]


@pytest.mark.parametrize("body", [None, "", "OK", '{"status": "ok"}', "[1, 2]", '{"tiers": "x"}', b"\xff"])
def test_tier_readings_static_or_odd_body_gives_nothing(body: str | bytes | None) -> None:
    assert tier_readings(body) == []


def test_tier_readings_not_ok_without_error_says_not_ok() -> None:
    assert tier_readings('{"tiers": {"redis": {"ok": false}}}') == [("redis", 0.0, "not ok")]


def test_agent_event_rows_match_backend_columns() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    lines = agent_event_rows(12, "probe-1", now=now).decode().splitlines()
    assert len(lines) == 12
    rows = [json.loads(line) for line in lines]
    assert all(tuple(r) == CH_COLUMNS for r in rows)
    assert rows[0]["ts"] == "2026-01-02 03:04:05" and rows[0]["ts_ms"] == 678
    assert rows[0]["event_date"] == "2026-01-02"
    assert {r["agent_name"] for r in rows} <= {"Supervisor", "Triage", "Data", "Optimizer"}
    assert all(r["tool_name"] for r in rows if r["event_type"].startswith("tool_"))


@pytest.mark.parametrize(
    ("status", "body", "error", "expected"),
    [
        (500, "Code: 60, e.displayText() = DB::Exception: Table x doesn't exist\nstack", None,
         "HTTP 500: Code: 60, e.displayText() = DB::Exception: Table x doesn't exist"),
        (503, "", None, "HTTP 503"),
        (0, None, ConnectionRefusedError("refused"), "ConnectionRefusedError: refused"),
    ],
)
def test_error_text_names_clickhouse_message_or_network_error(status: int, body: str | None,
                                                             error: BaseException | None, expected: str) -> None:
    assert error_text(status, body, error) == expected
