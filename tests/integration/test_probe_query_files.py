"""--pg-queries / --clickhouse-queries against the real PostgreSQL and ClickHouse: a query file's statements run
instead of the bundled backend's, each sampled as ``PG query NAME`` / ``CH query NAME``; a failing statement is a
failed sample carrying the server's message (no password); reads run in read-only sessions; a write query under
--probe-read-only stops a real ``locust`` at start with exit code 2 and one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import psycopg
import pytest
from locust.env import Environment

from sla_checks.state import state_of
from users.clickhouse_probe import ClickHouseProbeUser
from users.postgres_probe import PostgresProbeUser, close_pools
from users.probe_options import ProbeConfig

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-query-file"
# trust auth on the test server: the password is sent and ignored, so it can be checked for in every message
DSN = f"postgresql://postgres:{SECRET}@127.0.0.1:5432/test"
TABLE = "probe_query_file_test"

PG_FILE = f'''
[queries.ping]
sql = "SELECT 1"
weight = 3

[queries."threads by state"]
sql = "SELECT state, count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY 1"
params = ["test"]

[queries."named lookup"]
sql = "SELECT n FROM {TABLE} WHERE n = %(n)s"
params = {{ n = 1 }}

[queries.missing]
sql = "SELECT * FROM no_such_table_for_probe_query_files"

[queries."sneaky write"]
sql = "WITH d AS (DELETE FROM {TABLE} RETURNING n) SELECT count(*) FROM d"

[queries.touch]
sql = "UPDATE {TABLE} SET n = n WHERE n = %s"
params = [1]
write = true
'''


@pytest.fixture
def pg_table():
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (n int)")
        conn.execute(f"INSERT INTO {TABLE} VALUES (1), (2)")
    close_pools()
    yield
    close_pools()
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


def _env(user_class: type, **cfg: object) -> tuple[Environment, list[dict]]:
    env = Environment(user_classes=[user_class], host="ws://127.0.0.1:1/ws")
    state_of(env).probe_config = ProbeConfig(**cfg)
    samples: list[dict] = []
    env.events.request.add_listener(lambda **kw: samples.append(kw))
    return env, samples


def test_pg_query_file_runs_each_query_under_its_name_with_server_errors_and_read_only_sessions(
        tmp_path: Path, pg_table: None) -> None:
    path = tmp_path / "pg.toml"
    path.write_text(PG_FILE)
    env, samples = _env(PostgresProbeUser, pg_dsn=DSN, pg_queries=str(path))
    user = PostgresProbeUser(env)
    user.on_start()
    qf = user.cfg.pg_query_file
    assert qf is not None
    with user.lease() as conn:
        assert conn is not None
        for query in qf.queries:
            user.run_probe_query(conn, query, read_only=not query.write)
    user.message_flow()  # a task runs one query of the file, never the bundled statements
    user.contended_transaction()
    user.on_stop()
    by = {s["name"]: s for s in samples if s["request_type"] == "PG"}
    bundled = {"thread upsert", "thread history", "message insert", "commit", "schema"}
    assert not bundled & set(by), sorted(by)
    for name in ("query ping", "query threads by state", "query named lookup", "query touch"):
        assert by[name]["exception"] is None, (name, by[name]["exception"])
    assert by["query threads by state"]["response_length"] >= 1
    assert by["query named lookup"]["response_length"] == 1
    missing = str(by["query missing"]["exception"])
    assert missing == '42P01: relation "no_such_table_for_probe_query_files" does not exist', missing
    sneaky = str(by["query sneaky write"]["exception"])
    assert sneaky.startswith("25006:") and "read-only transaction" in sneaky, sneaky
    assert all(SECRET not in str(s["exception"]) for s in samples)
    with psycopg.connect(DSN) as conn:  # the read-only session refused the DELETE hidden in a WITH
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 2  # type: ignore[index]
    assert sum(1 for s in samples if s["name"].startswith("query ")) >= len(qf.queries) + 2


def test_pg_query_file_write_query_is_skipped_when_read_only_is_switched_on_later(tmp_path: Path,
                                                                                  pg_table: None) -> None:
    path = tmp_path / "pg.toml"
    path.write_text(f'[queries.touch]\nsql = "DELETE FROM {TABLE}"\nwrite = true\n')
    env, samples = _env(PostgresProbeUser, pg_dsn=DSN, pg_queries=str(path), probe_read_only=True)
    user = PostgresProbeUser(env)
    user.on_start()
    for _ in range(5):
        user.message_flow()
    assert not [s for s in samples if s["name"] == "query touch"]
    with psycopg.connect(DSN) as conn:
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 2  # type: ignore[index]


def test_clickhouse_query_file_runs_reads_read_only_and_reports_server_errors(tmp_path: Path) -> None:
    table = f"default.probe_query_file_{time.time_ns()}"
    path = tmp_path / "ch.toml"
    path.write_text('''
[queries.one]
sql = "SELECT 1"

[queries.tables]
sql = "SELECT count() FROM system.tables"
weight = 2

[queries.missing]
sql = "SELECT * FROM default.no_such_table_for_probe_query_files"

[queries.parenthesised]
sql = "(SELECT 1) -- a comment"
''')
    env, samples = _env(ClickHouseProbeUser, clickhouse_queries=str(path))
    user = ClickHouseProbeUser(env)
    user.on_start()
    for _ in range(12):
        user.insert_batch()
        user.analytics_queries()
    by: dict[str, list[dict]] = {}
    for s in samples:
        assert s["request_type"] == "CH"
        by.setdefault(s["name"], []).append(s)
    assert set(by) == {"query one", "query tables", "query missing", "query parenthesised"}, sorted(by)
    assert "insert" not in by and "query agent stage summary" not in by
    assert all(s["exception"] is None for s in by["query one"] + by["query tables"] + by["query parenthesised"])
    error = str(by["query missing"][0]["exception"])
    assert "no_such_table_for_probe_query_files" in error and "doesn't exist" in error, error
    # a statement sent as a read runs with readonly=1: ClickHouse itself refuses a write
    from users.clickhouse_probe import query_path
    from users.query_files import ProbeQuery

    create = ProbeQuery(name="create", sql=f"CREATE TABLE {table} (x UInt8) ENGINE = Memory", kind="CREATE")
    user._post(query_path(create, read_only=True), create.metric_name, create.sql.encode())
    refused = str(samples[-1]["exception"])
    assert "readonly" in refused.lower(), refused


def _locust(tmp_path: Path, args: list[str], classes: list[str], run_time: str = "4s",
            ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "-u", str(len(classes)),
           "-r", str(len(classes)), "-t", run_time, "--only-summary", "--tier-gauges-interval", "0", *args, *classes]
    return subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=90)


def test_write_query_under_probe_read_only_exits_2_at_start_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pg.toml"
    path.write_text('[queries.ok]\nsql = "SELECT 1"\n[queries.purge]\nsql = "DELETE FROM threads"\nwrite = true\n')
    started = time.monotonic()
    proc = _locust(tmp_path, ["--pg-dsn", DSN, "--pg-queries", str(path), "--probe-read-only"],
                   ["PostgresProbeUser"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    lines = [line for line in out.splitlines() if "--pg-queries" in line]
    assert len(lines) == 1, out[-3000:]
    assert f"--pg-queries {str(path)!r}: [queries.purge] key 'write': a write query (DELETE)" in lines[0]
    assert "Traceback" not in out and SECRET not in out and "PG query" not in out
    assert time.monotonic() - started < 30


def test_bad_query_file_exits_2_naming_file_table_and_key(tmp_path: Path) -> None:
    path = tmp_path / "ch.toml"
    path.write_text('[queries.top]\nsql = "SELECT 1"\nweight = -2\n')
    proc = _locust(tmp_path, ["--clickhouse-queries", str(path)], ["ClickHouseProbeUser"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert f"--clickhouse-queries {str(path)!r}: [queries.top] key 'weight': -2 is not a whole number" in out
    assert "Traceback" not in out


def test_query_file_run_reports_its_names_and_a_threshold_on_them_is_judged(tmp_path: Path) -> None:
    pg = tmp_path / "pg.toml"
    pg.write_text('[queries.ping]\nsql = "SELECT 1"\n[queries."slow ping"]\nsql = "SELECT pg_sleep(0.01)"\n')
    ch = tmp_path / "ch.toml"
    ch.write_text('[queries.one]\nsql = "SELECT 1"\n')
    profile = tmp_path / "q.toml"
    profile.write_text('[thresholds]\n"PG query *" = ["p(95) < 2000"]\n"CH query *" = ["fail_ratio < 0.5"]\n')
    report = tmp_path / "r.json"
    proc = _locust(tmp_path, ["--pg-dsn", DSN, "--pg-queries", str(pg), "--clickhouse-queries", str(ch),
                              "--sla-config", str(profile), "--sla-report-json", str(report)],
                   # each PG task runs the file's next query (0.5-1 s apart), in turns by weight: 5 s make ~5 picks,
                   # and any 2 in a row run both (random draws once missed "slow ping" in 5 s in CI: 1 time in 16)
                   ["PostgresProbeUser", "ClickHouseProbeUser"], run_time="5s")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    doc = json.loads(report.read_text())
    assert doc["verdict"] == "pass", doc["verdict_reasons"]
    metrics = set(doc["metrics"])
    assert {"PG query ping", "PG query slow ping", "CH query one"} <= metrics, sorted(metrics)
    assert not {"PG thread history", "CH insert", "CH query agent stage summary"} & metrics, sorted(metrics)
    judged = {(t["metric"], t["expression"]) for t in doc["thresholds"]}
    assert {("PG query ping", "p(95) < 2000"), ("PG query slow ping", "p(95) < 2000"),
            ("CH query one", "fail_ratio < 0.5")} <= judged, judged  # the globs, judged on each query file name
    assert SECRET not in out and SECRET not in report.read_text()
