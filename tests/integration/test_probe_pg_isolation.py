"""PostgresProbeUser's isolation-level task against the real PostgreSQL: each level commits on a quiet row; a concurrent
writer on the hot row makes REPEATABLE READ / SERIALIZABLE fail with 40001 and retry (counted), READ COMMITTED wait;
the pg-hot-row fault exhausts the bounded retries; read-only and a missing table that may not be created stop it."""

from __future__ import annotations

import time

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import psycopg
import pytest
from locust.env import Environment
from locust.exception import RescheduleTaskImmediately

from contract.isolation import HOT_KEY, ISOLATION_TABLE
from sla_checks.state import state_of
from users.pg_isolation import MAX_ATTEMPTS, forget_isolation_checks, run_isolation_txn
from users.postgres_probe import PostgresProbeUser, close_pools, connect_pg, pg_error_text
from users.probe_options import ProbeConfig

pytestmark = pytest.mark.timeout(60)

DSN = ProbeConfig.pg_dsn
HOLD_S = 0.4


def _user(**cfg: object) -> tuple[PostgresProbeUser, list[dict], Environment]:
    env = Environment(user_classes=[PostgresProbeUser])
    state_of(env).probe_config = ProbeConfig(**{"pg_isolation_weight": 5, **cfg})
    samples: list[dict] = []
    env.events.request.add_listener(lambda **kw: samples.append(kw))
    return PostgresProbeUser(env), samples, env


@pytest.fixture(autouse=True)
def _fresh():
    close_pools()
    forget_isolation_checks()
    yield
    close_pools()
    forget_isolation_checks()


def _named(samples: list[dict], name: str) -> list[dict]:
    return [s for s in samples if s["request_type"] == "PG" and s["name"] == name]


def _hot_value() -> int:
    with psycopg.connect(DSN) as conn:
        row = conn.execute(f"SELECT value FROM {ISOLATION_TABLE} WHERE key = %s", (HOT_KEY,)).fetchone()
    assert row is not None
    return int(row[0])


def test_each_level_commits_its_read_modify_write_once_on_a_quiet_row() -> None:
    user, samples, env = _user()
    user.on_start()
    assert user.tasks.count(PostgresProbeUser.isolation_transaction) == 5
    user.isolation_transaction()  # creates the table (loopback DSN, --probe-create-schema auto) and the hot row
    before = _hot_value()
    for _ in range(3):
        user.isolation_transaction()
    assert _hot_value() == before + 3, "each transaction wrote the value it read plus one"
    for level in ("read_committed", "repeatable_read", "serializable"):
        txns = _named(samples, f"txn {level}")
        assert txns, f"no PG txn {level} sample"
        assert all(s["exception"] is None and s["context"]["attempts"] == 1 for s in txns), txns
        assert all(0 < s["response_time"] < 5000 for s in txns)
    assert not _named(samples, "serialization failure") and not _named(samples, "deadlock")
    assert any(n == "pg:lock_waiters" for _ts, n, _v in state_of(env).pending_gauges)


def test_the_task_is_off_by_default() -> None:
    user, _samples, _env = _user(pg_isolation_weight=0)
    user.on_start()
    assert PostgresProbeUser.isolation_transaction not in user.tasks


def _with_concurrent_writer(level: str) -> tuple[list[dict], float]:
    """Run one transaction of ``level`` while another session holds the hot row's lock HOLD_S, then commits."""
    user, samples, env = _user()
    user.on_start()
    user.isolation_transaction()  # table and row in place
    samples.clear()
    conn = connect_pg(user.cfg)
    blocker = psycopg.connect(DSN, autocommit=True)
    try:
        blocker.execute("BEGIN")
        blocker.execute(f"UPDATE {ISOLATION_TABLE} SET value = value + 1 WHERE key = %s", (HOT_KEY,))
        start = time.perf_counter()
        g = gevent.spawn(run_isolation_txn, env, conn, level, lambda exc: pg_error_text(exc, DSN))
        gevent.sleep(HOLD_S)
        blocker.execute("COMMIT")
        g.join(timeout=10)
        assert g.dead
        return samples, (time.perf_counter() - start) * 1000
    finally:
        blocker.close()
        conn.close()


@pytest.mark.parametrize("level", ["repeatable_read", "serializable"])
def test_a_concurrent_commit_fails_the_snapshot_levels_with_40001_and_the_retry_commits(level: str) -> None:
    samples, _ms = _with_concurrent_writer(level)
    failures = _named(samples, "serialization failure")
    assert len(failures) == 1, samples
    assert str(failures[0]["exception"]).startswith(f"40001 serialization failure under {level} (retried): ")
    assert failures[0]["response_time"] >= HOLD_S * 1000 - 100, "the attempt waited for the writer's commit"
    txn = _named(samples, f"txn {level}")
    assert len(txn) == 1 and txn[0]["exception"] is None, txn
    assert txn[0]["context"]["attempts"] == 2 and txn[0]["context"]["retries"] == 1
    assert txn[0]["response_time"] >= failures[0]["response_time"], "the transaction's time includes its retries"


def test_read_committed_waits_for_the_concurrent_writer_and_commits_without_failing() -> None:
    samples, _ms = _with_concurrent_writer("read_committed")
    assert not _named(samples, "serialization failure")
    txn = _named(samples, "txn read_committed")
    assert len(txn) == 1 and txn[0]["exception"] is None and txn[0]["context"]["attempts"] == 1
    assert txn[0]["response_time"] >= HOLD_S * 1000 - 100


@pytest.mark.timeout(90)
def test_pg_hot_row_fault_exhausts_the_bounded_retries_of_repeatable_read(faults) -> None:
    user, samples, env = _user()
    user.on_start()
    user.isolation_transaction()
    samples.clear()
    faults.apply("pg-hot-row", ms=300, for_s=6, gap_ms=0)
    conn = connect_pg(user.cfg)
    try:
        gevent.sleep(0.2)
        outcome = run_isolation_txn(env, conn, "repeatable_read", lambda exc: pg_error_text(exc, DSN))
        waited = run_isolation_txn(env, conn, "read_committed", lambda exc: pg_error_text(exc, DSN))
    finally:
        conn.close()
        faults.clear()
    print(f"repeatable_read: {outcome}; read_committed: {waited}")
    assert not outcome.committed and outcome.attempts == MAX_ATTEMPTS
    failures = _named(samples, "serialization failure")
    assert len(failures) == MAX_ATTEMPTS
    assert "(gave up after 3 attempts)" in str(failures[-1]["exception"])
    txn = _named(samples, "txn repeatable_read")
    assert len(txn) == 1 and str(txn[0]["exception"]).startswith("40001 serialization failure: 3 attempts")
    assert waited.committed and waited.attempts == 1, "READ COMMITTED waits for the row, it does not fail"


def test_read_only_skips_the_task() -> None:
    user, samples, _env = _user(probe_read_only=True)
    with pytest.raises(RescheduleTaskImmediately):
        user.isolation_transaction()
    assert not samples


def test_missing_table_that_may_not_be_created_fails_one_schema_sample_and_stops_the_task() -> None:
    other_db = DSN.rsplit("/", 1)[0] + "/postgres"  # a database without the scratch table
    with psycopg.connect(other_db, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {ISOLATION_TABLE}")
    user, samples, _env = _user(pg_dsn=other_db, probe_create_schema="off")
    user.isolation_transaction()
    user.isolation_transaction()
    schema = _named(samples, "schema")
    assert len(schema) == 1 and f"table {ISOLATION_TABLE} missing" in str(schema[0]["exception"])
    assert "PG txn read_committed" in str(schema[0]["exception"])
    assert not [s for s in samples if s["name"].startswith("txn ")]
    with psycopg.connect(other_db) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (ISOLATION_TABLE,)).fetchone() == (None,), "not created"
