"""The probes in someone else's database: no DDL unless asked (a missing table is one clear error and one failed
``schema`` sample, the operations that need it do not run), ``--probe-read-only`` writes nothing, and the bundled
backend's default (loopback: create, read and write) is unchanged.

Isolation: every test works in its own throwaway PostgreSQL schema (the probe's DSN sets ``search_path`` to it), its
own ClickHouse database and the probe's own Redis keys, and drops them afterwards; nothing shared is touched.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import psycopg
import pytest
import redis
from locust.env import Environment
from locust.exception import RescheduleTaskImmediately

from contract.schema import CH_TABLE, PG_SCHEMA, ch_schema
from sla_checks.state import state_of
from users import clickhouse_probe, postgres_probe
from users.clickhouse_probe import ClickHouseProbeUser
from users.postgres_probe import PostgresProbeUser, connect_pg
from users.probe_options import ProbeConfig, clickhouse_request, probe_config
from users.redis_probe import RedisProbeUser
from users.redis_probe import close_pools as close_redis_pools

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
PG_DSN = ProbeConfig.pg_dsn
CH_URL = ProbeConfig.clickhouse_url
WRITES_PG = ("thread upsert", "message insert", "thread update", "run insert", "run complete", "commit")


def _env(user_class: type, **cfg: object) -> tuple[Environment, list[dict]]:
    env = Environment(user_classes=[user_class], host="ws://127.0.0.1:1/ws")
    state_of(env).probe_config = ProbeConfig(**cfg)
    samples: list[dict] = []
    env.events.request.add_listener(lambda **kw: samples.append(kw))
    return env, samples


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    for reset in (postgres_probe.close_pools, postgres_probe.forget_schema_checks, close_redis_pools,
                  clickhouse_probe.forget_schema_checks):
        reset()
    yield
    for reset in (postgres_probe.close_pools, close_redis_pools):
        reset()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """An empty PostgreSQL schema of our own; yields a DSN whose search_path is only that schema."""
    name = f"probe_safety_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")  # type: ignore[arg-type]
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")  # type: ignore[arg-type]


def _dsn(schema: str) -> str:
    return f"{PG_DSN}?options=-csearch_path%3D{schema}"


def _pg_tables(schema: str) -> list[str]:
    with psycopg.connect(PG_DSN) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                            "ORDER BY table_name", (schema,)).fetchall()
    return [r[0] for r in rows]


def _pg_counts(schema: str) -> dict[str, int]:
    with psycopg.connect(PG_DSN) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {schema}.{t}").fetchone()[0]  # type: ignore[arg-type,index]
                for t in ("threads", "messages", "runs")}


@pytest.fixture
def ch_database() -> Iterator[str]:
    """A ClickHouse database name of our own (not created here); dropped afterwards if anything created it."""
    name = f"probe_safety_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        clickhouse_request(CH_URL, f"DROP DATABASE IF EXISTS {name}", body=b"")


def _ch_database_exists(name: str) -> bool:
    return clickhouse_request(CH_URL, f"SELECT count() FROM system.databases WHERE name = '{name}'").strip() == b"1"


def _names(samples: list[dict], request_type: str) -> list[str]:
    return [s["name"] for s in samples if s["request_type"] == request_type]


def _as_locust_runs(task: object) -> None:
    """Call a task the way Locust's scheduler does: a write task skipped by --probe-read-only just ends."""
    try:
        task()  # type: ignore[operator]
    except RescheduleTaskImmediately:
        assert task.__self__.cfg.probe_read_only, "only a read-only write task skips"  # type: ignore[attr-defined]


def _run_pg(user: PostgresProbeUser) -> None:
    user.on_start()
    for _ in range(2):
        user.message_flow()
        _as_locust_runs(user.contended_transaction)
    user.on_stop()


# ---------------------------------------------------------------- PostgreSQL


def test_pg_create_schema_off_missing_tables_no_ddl_one_error_and_table_operations_stop(
        pg_schema: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    env, samples = _env(PostgresProbeUser, pg_dsn=_dsn(pg_schema), probe_create_schema="off")
    users = [PostgresProbeUser(env), PostgresProbeUser(env)]  # two users, one process: still one error
    for user in users:
        _run_pg(user)
    assert _pg_tables(pg_schema) == [], "no DDL without --probe-create-schema"
    schema = [s for s in samples if s["request_type"] == "PG" and s["name"] == "schema"]
    assert len(schema) == 1, _names(samples, "PG")
    text = str(schema[0]["exception"])
    for part in ("PostgresProbeUser: table threads, messages, runs missing", "(tier pg)",
                 "--probe-create-schema is off", "--probe-create-schema on", "--pg-dsn", "PG thread history"):
        assert part in text, text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [text], "exactly one start-up error, the sample's text"
    names = set(_names(samples, "PG"))
    assert names == {"connect", "pool acquire", "lock stats", "schema"}, names
    assert all(s["exception"] is None for s in samples if s["name"] != "schema")


def test_pg_create_schema_auto_not_loopback_is_off(pg_schema: str) -> None:
    cfg = ProbeConfig(pg_dsn="postgresql://loadtest@pg.staging.internal:5432/chat")
    assert cfg.creates_schema("pg") == (False, "--probe-create-schema is auto and pg is not on loopback")
    assert ProbeConfig(pg_dsn=_dsn(pg_schema)).creates_schema("pg")[0] is True


def test_pg_default_on_loopback_creates_schema_and_writes_as_before(pg_schema: str) -> None:
    env, samples = _env(PostgresProbeUser, pg_dsn=_dsn(pg_schema))
    user = PostgresProbeUser(env)
    user.on_start()
    user.message_flow()
    user.contended_transaction()
    assert _pg_tables(pg_schema) == ["messages", "runs", "threads"]
    names = set(_names(samples, "PG"))
    assert {"thread upsert", "thread history", "message insert", "thread update", "run insert", "run complete",
            "commit", "lock stats"} <= names, names
    assert "schema" not in names
    assert all(s["exception"] is None for s in samples), [(s["name"], s["exception"]) for s in samples]
    assert _pg_counts(pg_schema)["messages"] == 1
    user.on_stop()


def test_pg_read_only_writes_no_row_and_reads_history(pg_schema: str) -> None:
    with psycopg.connect(_dsn(pg_schema), autocommit=True) as conn:
        for stmt in PG_SCHEMA:
            conn.execute(stmt)  # type: ignore[arg-type]
        conn.execute("INSERT INTO threads (id, user_id) VALUES ('someone-elses', 'u')")
    before = _pg_counts(pg_schema)
    env, samples = _env(PostgresProbeUser, pg_dsn=_dsn(pg_schema), probe_read_only=True)
    _run_pg(PostgresProbeUser(env))
    assert _pg_counts(pg_schema) == before == {"threads": 1, "messages": 0, "runs": 0}
    names = _names(samples, "PG")
    assert names.count("thread history") == 2 and not set(names) & set(WRITES_PG), names
    assert all(s["exception"] is None for s in samples), [(s["name"], s["exception"]) for s in samples]
    with connect_pg(probe_config(env)) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("DELETE FROM threads")  # the probe's sessions themselves refuse writes


def test_pg_read_only_missing_table_is_not_created_even_on_loopback(pg_schema: str) -> None:
    env, samples = _env(PostgresProbeUser, pg_dsn=_dsn(pg_schema), probe_read_only=True)
    _run_pg(PostgresProbeUser(env))
    assert _pg_tables(pg_schema) == []
    (schema,) = [s for s in samples if s["name"] == "schema"]
    assert "table messages missing" in str(schema["exception"])
    assert "--probe-read-only is on" in str(schema["exception"])
    assert "thread history" not in _names(samples, "PG")


# ---------------------------------------------------------------- ClickHouse


def test_clickhouse_create_schema_off_no_database_one_error_and_nothing_runs(
        ch_database: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    env, samples = _env(ClickHouseProbeUser, clickhouse_database=ch_database, probe_create_schema="off")
    for user in (ClickHouseProbeUser(env), ClickHouseProbeUser(env)):
        user.on_start()
        user.insert_batch()
        user.analytics_queries()
    assert not _ch_database_exists(ch_database), "no CREATE DATABASE without --probe-create-schema"
    assert _names(samples, "CH") == ["schema"]
    text = str(samples[0]["exception"])
    for part in (f"ClickHouseProbeUser: table {ch_database}.{CH_TABLE} missing", "(tier clickhouse)",
                 "--probe-create-schema is off", "--clickhouse-database", "CH insert", "CH query agent stage summary"):
        assert part in text, text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [text]


def test_clickhouse_default_on_loopback_creates_database_and_inserts(ch_database: str) -> None:
    env, samples = _env(ClickHouseProbeUser, clickhouse_database=ch_database, clickhouse_batch_size=5)
    user = ClickHouseProbeUser(env)
    user.on_start()
    user.insert_batch()
    user.analytics_queries()
    assert _names(samples, "CH") == ["insert", "query agent stage summary"]
    assert all(s["exception"] is None for s in samples), [s["exception"] for s in samples]
    count = clickhouse_request(CH_URL, f"SELECT count() FROM {ch_database}.{CH_TABLE}")
    assert int(count) == 5


def test_clickhouse_read_only_inserts_nothing_and_queries(ch_database: str) -> None:
    for stmt in ch_schema(ch_database):
        clickhouse_request(CH_URL, " ".join(stmt.split()), body=b"")
    env, samples = _env(ClickHouseProbeUser, clickhouse_database=ch_database, probe_read_only=True)
    user = ClickHouseProbeUser(env)
    user.on_start()
    for _ in range(3):
        with pytest.raises(RescheduleTaskImmediately):  # skipped without spending a wait on it
            user.insert_batch()
        user.analytics_queries()
    assert int(clickhouse_request(CH_URL, f"SELECT count() FROM {ch_database}.{CH_TABLE}")) == 0
    assert _names(samples, "CH") == ["query agent stage summary"] * 3
    assert all(s["exception"] is None for s in samples), [s["exception"] for s in samples]


# ---------------------------------------------------------------- Redis


def test_redis_read_only_sets_no_key_and_still_reads() -> None:
    env, samples = _env(RedisProbeUser, probe_read_only=True)
    user = RedisProbeUser(env)
    keys = [*user.keys, *(k + ":large" for k in user.keys)]
    check = redis.Redis.from_url(ProbeConfig.redis_url)
    try:
        assert check.exists(*keys) == 0
        user.on_start()
        for _ in range(3):
            with pytest.raises(RescheduleTaskImmediately):
                user.set_session()
            user.write_large()
            user.get_session()
            user.mget_sessions()
        assert check.exists(*keys) == 0, "read-only wrote a key"
        user.on_stop()
    finally:
        check.delete(*keys)
        check.close()
    names = _names(samples, "REDIS")
    assert not {"SET", "SET large"} & set(names), names
    assert {"connect", "pool acquire", "GET", "MGET", "INFO"} <= set(names), names
    assert all(s["exception"] is None for s in samples), [s["exception"] for s in samples]


# ---------------------------------------------------------------- a real locust process (options and env vars)

LOCUSTFILE = """
import locust  # noqa: F401
from users.postgres_probe import PostgresProbeUser  # noqa: F401
from users.clickhouse_probe import ClickHouseProbeUser  # noqa: F401
"""


def _locust(tmp_path: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    lf = tmp_path / "probes_locustfile.py"
    lf.write_text(LOCUSTFILE)
    cmd = [sys.executable, "-m", "locust", "-f", str(lf), "--headless", "-u", "2", "-r", "2", "-t", "3s",
           "--only-summary", *args, "PostgresProbeUser", "ClickHouseProbeUser"]
    return subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=60)


def _stats_counts(out: str) -> dict[str, int]:
    """``{"PG connect": 1, …}``: the request rows of Locust's summary table (type and name, spaces collapsed)."""
    table = out.split("Response time percentiles")[0]
    return {" ".join(line.split("|")[0].split()[:-2]): int(line.split("|")[0].split()[-2])
            for line in table.splitlines() if line.startswith(("PG ", "CH ")) and "|" in line}


def test_locust_run_create_schema_off_by_env_no_ddl_one_error_per_tier(
        tmp_path: Path, pg_schema: str, ch_database: str) -> None:
    proc = _locust(tmp_path, ["--pg-dsn", _dsn(pg_schema), "--clickhouse-database", ch_database],
                   {"LOCUST_PROBE_CREATE_SCHEMA": "off"})
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    assert proc.returncode == 1, out[-3000:]  # the two failed schema samples: Locust's requests-failed rule
    assert out.count("ERROR/users.postgres_probe: PostgresProbeUser: table threads, messages, runs missing") == 1
    assert out.count(f"ERROR/users.clickhouse_probe: ClickHouseProbeUser: table {ch_database}.{CH_TABLE}") == 1
    assert _pg_tables(pg_schema) == [] and not _ch_database_exists(ch_database)
    rows = _stats_counts(out)
    assert set(rows) == {"PG connect", "PG pool acquire", "PG lock stats", "PG schema", "CH schema"}, out[-3000:]


def test_locust_run_read_only_flag_writes_nothing(tmp_path: Path, pg_schema: str, ch_database: str) -> None:
    with psycopg.connect(_dsn(pg_schema), autocommit=True) as conn:
        for stmt in PG_SCHEMA:
            conn.execute(stmt)  # type: ignore[arg-type]
    for stmt in ch_schema(ch_database):
        clickhouse_request(CH_URL, " ".join(stmt.split()), body=b"")
    proc = _locust(tmp_path, ["--probe-read-only", "--pg-dsn", _dsn(pg_schema), "--clickhouse-database", ch_database],
                   {})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert _pg_counts(pg_schema) == {"threads": 0, "messages": 0, "runs": 0}
    assert int(clickhouse_request(CH_URL, f"SELECT count() FROM {ch_database}.{CH_TABLE}")) == 0
    counts = _stats_counts(out)
    assert set(counts) == {"PG connect", "PG pool acquire", "PG lock stats", "PG thread history",
                           "CH query agent stage summary"}, out[-3000:]
    # The skipped write tasks cost no wait (users.probe_base.skip_write_task): with waits of at most 1 s, 3 s give
    # each probe a task that waits at start and after each wait. Were a skipped insert to spend a wait, the ClickHouse
    # probe (insert weight 3, query 1) would query in about 1 iteration of 4, and often not at all in 3 s. The PG
    # probe's tasks that wait are message_flow (a history read) and connect (one more connect than on_start's).
    assert counts["CH query agent stage summary"] >= 2, counts
    assert counts["PG thread history"] + counts["PG connect"] - 1 >= 2, counts
