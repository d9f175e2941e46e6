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


_IMPORTED_FIRST = """
import psycopg  # before Locust's gevent patching, as a test module or a user's locustfile may import it
import locust  # noqa: F401
import socket, time, gevent
from users.postgres_probe import _ensure_cooperative
_ensure_cooperative()
hole = socket.socket(); hole.bind(("127.0.0.1", 0)); hole.listen(8)  # connects, then never answers
ticks = []
def ticker():
    while True:
        ticks.append(time.monotonic()); gevent.sleep(0.05)
gevent.spawn(ticker)
started = time.monotonic()
try:
    with gevent.Timeout(1.0):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{hole.getsockname()[1]}/test", connect_timeout=5)
except gevent.Timeout:
    pass
print(round(time.monotonic() - started, 2), round(max(b - a for a, b in zip(ticks, ticks[1:])), 2))
"""


def test_connect_yields_even_when_psycopg_was_imported_before_the_patching() -> None:
    """psycopg's connect waits on the selector class it bound at import: an unpatched one froze every greenlet for
    the whole connect_timeout (the tier-gauge reader of a silent PostgreSQL, in a process that had imported psycopg
    first)."""
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run([sys.executable, "-c", _IMPORTED_FIRST], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    waited, max_gap = (float(x) for x in proc.stdout.split())
    assert waited < 2.0, proc.stdout  # gevent's 1 s timeout, not psycopg's 5 s connect_timeout
    assert max_gap < 0.5, proc.stdout  # the other greenlet kept running while the connect waited
