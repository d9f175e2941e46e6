"""ClickHouseProbeUser: batched agent-event inserts and the backend's analytics query, over ClickHouse's HTTP API.

Samples (request_type ``CH``): ``insert`` (one batch of ``--clickhouse-batch-size`` agent-event rows, JSONEachRow)
and ``query <name>`` for each query of ``contract.schema.CH_QUERIES`` (today ``query agent stage summary``), against
``--clickhouse-database``. ``--probe-read-only``: the queries only. A missing database or table is created only when
``--probe-create-schema`` allows it (``auto``: the URL is on loopback); otherwise the first user of the process logs one
error naming it, fires one failed ``CH schema`` sample with that text, and inserts and queries do not run (their
thresholds say "no data" rather than blaming ClickHouse for a schema mismatch).

``--clickhouse-queries FILE`` (:mod:`users.query_files`): the file's statements replace the inserts and the bundled
query, the next by weight per task, sampled as ``CH query <name>``; reads are sent with ``readonly=1``, params as
``param_<name>``.

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
import urllib.error
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import between, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from contract.schema import CH_TABLE, ch_queries, ch_schema
from users.probe_base import SchemaGate, TypedRequestEvent, skip_write_task
from users.probe_options import ProbeConfig, clickhouse_request, probe_config, schema_missing_message
from users.query_files import ProbeQuery

AGENTS = ("Supervisor", "Triage", "Data", "Optimizer")
EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
TOOLS = ("", "search", "sql", "calculator")

logger = logging.getLogger(__name__)

_schema_gate = SchemaGate("CH", logger)


def insert_path(database: str) -> str:
    return "/?query=" + quote(f"INSERT INTO {database}.{CH_TABLE} FORMAT JSONEachRow")


def schema_gate(cfg: ProbeConfig, environment: Environment) -> bool:
    """True when the agent-event table is missing; checked once per process, URL, database and mode.

    Creates the database and table first when ``--probe-create-schema`` allows it. The call that finds the table
    missing logs the one error and fires the one failed ``CH schema`` sample. An ``OSError`` (ClickHouse unreachable,
    or an HTTP error) propagates and nothing is cached.
    """
    create, _why = cfg.creates_schema("clickhouse")
    table = f"{cfg.clickhouse_database}.{CH_TABLE}"

    def create_tables() -> None:
        try:
            for stmt in ch_schema(cfg.clickhouse_database):  # the backend does the same; IF NOT EXISTS
                clickhouse_request(cfg.clickhouse_url, " ".join(stmt.split()), body=b"", timeout=cfg.clickhouse_timeout)
        except urllib.error.HTTPError as exc:  # e.g. no CREATE grant: the check below says what is missing
            logger.warning("ClickHouse probe: could not create the schema: HTTP %s", exc.code)

    def find_missing() -> list[str]:
        exists = clickhouse_request(cfg.clickhouse_url, f"EXISTS TABLE {table}", timeout=cfg.clickhouse_timeout)
        return [] if exists.strip() == b"1" else [table]

    stopped = [] if cfg.probe_read_only else ["CH insert"]
    stopped += [f"CH query {name}" for name in ch_queries(cfg.clickhouse_database)]
    return bool(_schema_gate.check(
        (cfg.clickhouse_url, cfg.clickhouse_database, cfg.probe_read_only, create), environment,
        find_missing=find_missing,
        describe=lambda missing: schema_missing_message(cfg, "clickhouse", missing, stopped),
        create=create_tables if create else None,
    ))


def forget_schema_checks() -> None:
    """Check the table again at the next start (tests)."""
    _schema_gate.forget()


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


def query_path(query: ProbeQuery, read_only: bool) -> str:
    """The HTTP path of a query file's query: ``readonly=1`` for a read (the server refuses any write), its params as
    ``param_<name>`` (ClickHouse's ``{name:Type}`` query parameters)."""
    args: dict[str, str] = {"readonly": "1"} if read_only else {}
    if isinstance(query.params, dict):
        for key, value in query.params.items():
            args[f"param_{key}"] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return "/?" + urlencode(args) if args else "/"


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

    def __init__(self, environment: Environment) -> None:
        self.cfg = probe_config(environment)
        self.host = self.cfg.clickhouse_url  # our own base URL: Locust's --host is the chat target
        self.network_timeout = self.cfg.clickhouse_timeout
        self.connection_timeout = min(self.cfg.clickhouse_timeout, 5.0)
        super().__init__(environment)
        self.client.request_event = TypedRequestEvent(environment.events.request, "CH")
        self.user_id = f"probe-{os.getpid()}"
        self._schema: bool | None = None
        """None: not checked yet; True: the table is there; False: missing, nothing runs (module docstring)."""
        self._schema_warned = False

    def on_start(self) -> None:
        self.cfg = probe_config(self.environment)  # --probe-read-only / --probe-create-schema as the web UI left them
        self._schema_ok()

    def _schema_ok(self) -> bool:
        """Whether inserts and queries may run; checks (once per process) until the check itself succeeds. Always
        with ``--clickhouse-queries`` (its statements need none of the bundled backend's tables)."""
        if self.cfg.clickhouse_query_file is not None:
            return True
        if self._schema is None:
            try:
                self._schema = not schema_gate(self.cfg, self.environment)
            except OSError as exc:  # unreachable: the insert/query samples will show the failure
                if not self._schema_warned:
                    logger.warning("ClickHouse probe: schema check failed: %s", exc)
                    self._schema_warned = True
                return True
        return self._schema

    def _post(self, path: str, name: str, body: bytes) -> int:
        """POST and report; returns the number of lines in a successful answer, -1 on failure."""
        lines = -1
        # FastHttpSession sends bytes as they are; Locust annotates data narrower
        with self.client.post(path, data=body, name=name, catch_response=True) as resp:  # type: ignore[arg-type]
            status = resp.status_code or 0
            if status != 200:
                resp.failure(error_text(status, _safe_text(resp), getattr(resp, "error", None)))
            else:
                text = _safe_text(resp) or ""
                lines = text.count("\n")
                resp.success()
        return lines

    def run_query_file_query(self) -> None:
        """One query of ``--clickhouse-queries`` by weight, the next in turn (sample ``CH query <name>``; reads only, with
        ``readonly=1``, under ``--probe-read-only``); a failure carries ClickHouse's message."""
        qf = self.cfg.clickhouse_query_file
        query = qf.pick(read_only=self.cfg.probe_read_only) if qf is not None else None
        if query is None:
            return
        read_only = self.cfg.probe_read_only or not query.write
        self._post(query_path(query, read_only), query.metric_name, query.sql.encode())

    @task(3)
    def insert_batch(self) -> None:
        """A batch of agent-event rows (``CH insert``); with ``--clickhouse-queries``, one query of the file."""
        if self.cfg.clickhouse_query_file is not None:
            self.run_query_file_query()
            return
        if self.cfg.probe_read_only:
            skip_write_task()
        if not self._schema_ok():
            return
        self._post(insert_path(self.cfg.clickhouse_database), "insert",
                   agent_event_rows(self.cfg.clickhouse_batch_size, self.user_id))

    @task(1)
    def analytics_queries(self) -> None:
        """The bundled backend's analytics queries; with ``--clickhouse-queries``, one query of the file."""
        if self.cfg.clickhouse_query_file is not None:
            self.run_query_file_query()
            return
        if not self._schema_ok():
            return
        for name, sql in ch_queries(self.cfg.clickhouse_database).items():
            self._post("/", f"query {name}", (sql + " FORMAT TabSeparated").encode())


def _safe_text(resp: Any) -> str | None:
    try:
        return resp.text
    except Exception:  # noqa: BLE001  (an error response may have no readable body)
        return None
