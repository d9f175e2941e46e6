"""ClickHouseProbeUser: batched agent-event inserts and the backend's analytics query, over ClickHouse's HTTP API.

Samples (request_type ``CH``): ``insert`` (one batch of ``--clickhouse-batch-size`` agent-event rows, JSONEachRow)
and ``query <name>`` for each query of ``target.schema.CH_QUERIES`` (today ``query agent stage summary``).

Why HTTP through Locust's FastHttpUser (geventhttpclient) and not clickhouse-connect: the HTTP interface is the same on
Debian's ClickHouse 18.16 that this project runs locally and on current servers (clickhouse-connect 1.x cannot talk to
18.16), it is gevent-native (no thread pool, no blocking socket), and the sample is exactly the query's round trip.
No extra package: ``requirements.txt`` stays honest.
"""

from __future__ import annotations

import json
import logging
import os
import random
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

from target.schema import CH_DATABASE, CH_QUERIES, CH_SCHEMA, CH_TABLE
from users.probe_base import TypedRequestEvent
from users.probe_options import clickhouse_request, probe_config

AGENTS = ("Supervisor", "Triage", "Data", "Optimizer")
EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
TOOLS = ("", "search", "sql", "calculator")

logger = logging.getLogger(__name__)

INSERT_PATH = "/?query=" + quote(f"INSERT INTO {CH_DATABASE}.{CH_TABLE} FORMAT JSONEachRow")


def agent_event_rows(n: int, user_id: str, now: datetime | None = None) -> bytes:
    """``n`` agent-event rows in JSONEachRow, shaped like the backend's (``CH_COLUMNS``); ``now`` injectable."""
    now = now or datetime.now(UTC)
    run_id = uuid.uuid4().hex
    thread_id = uuid.uuid4().hex
    date = now.strftime("%Y-%m-%d")
    ts = now.strftime("%Y-%m-%d %H:%M:%S")
    lines = []
    for i in range(n):
        event = EVENTS[i % len(EVENTS)]
        lines.append(json.dumps({
            "event_date": date, "ts": ts, "ts_ms": now.microsecond // 1000, "run_id": run_id, "thread_id": thread_id,
            "user_id": user_id, "agent_name": AGENTS[(i // len(EVENTS)) % len(AGENTS)], "event_type": event,
            "tool_name": random.choice(TOOLS[1:]) if event.startswith("tool_") else "",
            "duration_ms": round(random.uniform(5, 500), 3),
        }, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def error_text(status: int, body: str | None, error: BaseException | None = None) -> str:
    """A short failure text: ClickHouse's own message (first line, 200 chars) or the network error."""
    if error is not None and not status:
        return f"{type(error).__name__}: {error}"[:300]
    first = (body or "").strip().splitlines()[0] if (body or "").strip() else ""
    return f"HTTP {status}: {first[:200]}" if first else f"HTTP {status}"


class ClickHouseProbeUser(FastHttpUser):
    """Probes ClickHouse: batched agent-event inserts and the backend's analytics queries (HTTP interface)."""

    fixed_count = 1
    """One per run by default (``--clickhouse-probe-users``)."""
    wait_time = between(0.5, 1.0)
    _schema_ready = False

    def __init__(self, environment: Any) -> None:
        self.cfg = probe_config(environment)
        self.host = self.cfg.clickhouse_url  # our own base URL: Locust's --host is the chat target
        self.network_timeout = self.cfg.clickhouse_timeout
        self.connection_timeout = min(self.cfg.clickhouse_timeout, 5.0)
        super().__init__(environment)
        self.client.request_event = TypedRequestEvent(environment.events.request, "CH")
        self.user_id = f"probe-{os.getpid()}"

    def on_start(self) -> None:
        if ClickHouseProbeUser._schema_ready:
            return
        try:
            for stmt in CH_SCHEMA:  # the backend does the same; IF NOT EXISTS makes it idempotent
                clickhouse_request(self.cfg.clickhouse_url, " ".join(stmt.split()), body=b"",
                                   timeout=self.cfg.clickhouse_timeout)
        except OSError as exc:  # the insert samples will show the failure
            logger.warning("ClickHouse probe: schema setup failed: %s", exc)
            return
        ClickHouseProbeUser._schema_ready = True

    def _post(self, path: str, name: str, body: bytes) -> int:
        """POST and report; returns the number of lines in a successful answer, -1 on failure."""
        lines = -1
        with self.client.post(path, data=body, name=name, catch_response=True) as resp:
            status = resp.status_code or 0
            if status != 200:
                resp.failure(error_text(status, _safe_text(resp), getattr(resp, "error", None)))
            else:
                text = _safe_text(resp) or ""
                lines = text.count("\n")
                resp.success()
        return lines

    @task(3)
    def insert_batch(self) -> None:
        self._post(INSERT_PATH, "insert", agent_event_rows(self.cfg.clickhouse_batch_size, self.user_id))

    @task(1)
    def analytics_queries(self) -> None:
        for name, sql in CH_QUERIES.items():
            self._post("/", f"query {name}", (sql + " FORMAT TabSeparated").encode())


def _safe_text(resp: Any) -> str | None:
    try:
        return resp.text
    except Exception:  # noqa: BLE001  (an error response may have no readable body)
        return None
