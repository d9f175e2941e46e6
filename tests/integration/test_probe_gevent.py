"""The gevent proof: psycopg 3 under Locust's monkey-patching yields while PostgreSQL works, so a pg_sleep(2) in one
greenlet does not delay a concurrent Redis probe in the same process."""

from __future__ import annotations

import time

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import psycopg.waiting
import pytest
from locust.env import Environment

from sla_checks.state import state_of
from users import postgres_probe, redis_probe
from users.postgres_probe import PostgresProbeUser
from users.probe_options import ProbeConfig
from users.redis_probe import RedisProbeUser

pytestmark = pytest.mark.timeout(60)


def test_psycopg_wait_is_cooperative_under_locust() -> None:
    assert psycopg.waiting.wait is not getattr(psycopg.waiting, "wait_c", None)
    assert psycopg.waiting._is_select_patched()


def test_pg_sleep_does_not_delay_concurrent_redis_probe() -> None:
    redis_probe.close_pools()
    postgres_probe.close_pools()
    env = Environment(user_classes=[RedisProbeUser, PostgresProbeUser])
    state_of(env).probe_config = ProbeConfig()
    samples: list[dict] = []
    env.events.request.add_listener(lambda **kw: samples.append(kw))
    redis_user, pg_user = RedisProbeUser(env), PostgresProbeUser(env)
    redis_user.get_session()  # warm both pools
    conn = pg_user.pool.acquire()
    samples.clear()
    done: dict[str, float] = {}

    def sleeper() -> None:
        start = time.perf_counter()
        conn.execute("SELECT pg_sleep(2)")
        done["pg_s"] = time.perf_counter() - start

    lateness: list[float] = []
    try:
        g = gevent.spawn(sleeper)
        gevent.sleep(0)  # let the query go out
        while not g.dead:
            before = time.perf_counter()
            redis_user.get_session()
            gevent.sleep(0.02)
            lateness.append((time.perf_counter() - before) * 1000 - 20)
        g.join(timeout=5)
    finally:
        pg_user.pool.release(conn)
        redis_probe.close_pools()
        postgres_probe.close_pools()
    gets = [s["response_time"] for s in samples if s["name"] == "GET"]
    print(f"during pg_sleep(2) ({done.get('pg_s', 0):.2f} s): {len(gets)} REDIS GETs, max {max(gets):.1f} ms, "
          f"median {sorted(gets)[len(gets) // 2]:.2f} ms; worst loop lateness {max(lateness):.1f} ms")
    assert done["pg_s"] >= 1.9
    assert len(gets) >= 20, "the Redis probe kept running while PG slept"
    assert max(gets) < 100


def test_blocking_wait_c_would_stall_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter-proof: with psycopg's C wait (what it picks when imported before gevent patching, and what
    ``_ensure_cooperative`` replaces) a pg_sleep(1) stalls every greenlet, so the test above can fail."""
    wait_c = getattr(psycopg.waiting, "wait_c", None)
    if wait_c is None:
        pytest.skip("psycopg has no C wait function in this build")
    monkeypatch.setattr(psycopg.waiting, "wait", wait_c)
    ticks: list[float] = []

    def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            gevent.sleep(0.01)

    t = gevent.spawn(ticker)
    gevent.sleep(0.05)
    with psycopg.connect(ProbeConfig.pg_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(1)")
    gevent.sleep(0.05)
    t.kill()
    worst_gap = max(b - a for a, b in zip(ticks, ticks[1:], strict=False))
    print(f"with wait_c: worst ticker gap {worst_gap * 1000:.0f} ms")
    assert worst_gap >= 0.9
