"""PostgresProbeUser against the real PostgreSQL: every metric on a healthy stack, lock waits on shared rows, the
probe's own pool exhausted (a timeout, never a hang), and the pg-lock fault seen as query latency."""

from __future__ import annotations

import time

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import psycopg
import pytest
from locust.env import Environment

from sla_checks.state import state_of
from users.postgres_probe import PostgresProbeUser, close_pools, connect_pg
from users.probe_options import ProbeConfig

pytestmark = pytest.mark.timeout(60)

DSN = ProbeConfig.pg_dsn


def _user(**cfg: object) -> tuple[PostgresProbeUser, list[dict], Environment]:
    env = Environment(user_classes=[PostgresProbeUser])
    state_of(env).probe_config = ProbeConfig(**cfg)
    samples: list[dict] = []
    env.events.request.add_listener(lambda **kw: samples.append(kw))
    return PostgresProbeUser(env), samples, env


@pytest.fixture(autouse=True)
def _fresh_pools():
    close_pools()
    yield
    close_pools()


def _by_name(samples: list[dict], name: str) -> list[dict]:
    return [s for s in samples if s["request_type"] == "PG" and s["name"] == name]


def test_pg_probe_healthy_stack_records_every_metric() -> None:
    user, samples, env = _user()
    user.on_start()
    user.connect()
    user.message_flow()
    user.contended_transaction()
    user.on_stop()
    names = ("pool acquire", "connect", "thread upsert", "thread history", "message insert", "thread update",
             "run insert", "run complete", "commit", "lock stats")
    for name in names:
        got = _by_name(samples, name)
        assert got, f"no PG {name} sample"
        assert all(s["exception"] is None for s in got), [s["exception"] for s in got]
        assert all(0 < s["response_time"] < 5000 for s in got), [s["response_time"] for s in got]
    gauges = {name: value for _ts, name, value in state_of(env).pending_gauges}
    assert gauges["pg:lock_waiters"] >= 0 and gauges["pg:lock_wait_max_ms"] >= 0
    assert gauges["pg_probe:pool_size"] == 2
    with psycopg.connect(DSN) as conn:
        left = conn.execute("SELECT count(*) FROM threads WHERE id = %s", (user.thread_id,)).fetchone()
    assert left == (0,), "on_stop removes the probe's own thread"


def test_pg_probe_own_pool_exhausted_fails_acquire_with_timeout_message() -> None:
    user, samples, _ = _user(pg_pool_size=1, pg_pool_timeout=0.5)
    held = user.pool.acquire()
    try:
        start = time.perf_counter()
        user.message_flow()
        elapsed = time.perf_counter() - start
    finally:
        user.pool.release(held)
    acquire = _by_name(samples, "pool acquire")
    assert len(acquire) == 1
    assert str(acquire[0]["exception"]) == "PG probe pool: no connection free within 0.5 s (pool size 1, 1 in use)"
    assert acquire[0]["response_time"] >= 490
    assert elapsed < 3.0, "exhaustion is a timeout, never a hang"
    assert not _by_name(samples, "thread history")


def test_pg_probe_concurrent_update_waits_and_lock_waits_are_recorded() -> None:
    user, samples, env = _user()
    user.on_start()
    blocker = psycopg.connect(DSN)
    blocker.execute("BEGIN")
    blocker.execute("UPDATE threads SET message_count = message_count WHERE id = ANY(%s)", (user.shared_ids,))
    hold_s = 1.5
    try:
        g = gevent.spawn(user.contended_transaction)
        gevent.sleep(0.6)
        observer = connect_pg(user.cfg)
        try:
            waiters, max_ms = user.record_lock_stats(observer) or (0, 0.0)
        finally:
            observer.close()
        gevent.sleep(hold_s - 0.6)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    g.join(timeout=10)
    assert g.dead
    print(f"lock waiters seen: {waiters}, longest wait {max_ms:.0f} ms")
    assert waiters >= 1 and max_ms >= 300
    update = _by_name(samples, "thread update")[-1]
    assert update["exception"] is None and update["response_time"] >= hold_s * 1000 - 100
    assert _by_name(samples, "commit") and _by_name(samples, "commit")[-1]["exception"] is None
    gauges = [(n, v) for _ts, n, v in state_of(env).pending_gauges if n == "pg:lock_waiters"]
    assert any(v >= 1 for _n, v in gauges)


@pytest.mark.timeout(90)
def test_pg_lock_fault_shows_as_query_latency(faults) -> None:
    user, samples, _ = _user()
    user.on_start()
    user.message_flow()  # warm: pooled connection ready, schema and thread in place
    samples.clear()
    fault = faults.apply("pg-lock", for_s=2.5)
    remaining_ms = (float(fault["expires_at"]) - time.time()) * 1000
    user.message_flow()
    history = _by_name(samples, "thread history")[0]
    print(f"PG thread history under pg-lock: {history['response_time']:.0f} ms (lock had {remaining_ms:.0f} ms left)")
    assert history["exception"] is None
    assert remaining_ms > 1000
    assert history["response_time"] >= remaining_ms - 100
    user.on_stop()


def test_pg_probe_terminated_connection_fails_once_then_recovers() -> None:
    user, samples, _ = _user(pg_pool_size=1)
    user.on_start()
    conn = user.pool.acquire()
    pid = conn.info.backend_pid
    user.pool.release(conn)
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    samples.clear()
    user.contended_transaction()  # the pooled session is dead: a failed sample, no exception out of the task
    failed = [s for s in samples if s["exception"] is not None]
    assert failed and failed[0]["name"] == "thread update", [(s["name"], s["exception"]) for s in samples]
    samples.clear()
    user.message_flow()  # a fresh connection replaces the dead one
    assert [s["name"] for s in samples] == ["pool acquire", "thread history", "message insert", "thread update"]
    assert all(s["exception"] is None for s in samples), [s["exception"] for s in samples]
    user.on_stop()
