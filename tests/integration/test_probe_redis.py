"""RedisProbeUser against the real Redis: every metric on a healthy stack, and the redis-pause fault seen as one slow
sample (no hidden retry)."""

from __future__ import annotations

import time

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
import redis
from locust.env import Environment

from sla_checks.state import state_of
from users.probe_options import ProbeConfig
from users.redis_probe import RedisProbeUser, close_pools

pytestmark = pytest.mark.timeout(60)


def _user(**cfg: object) -> tuple[RedisProbeUser, list[dict], Environment]:
    env = Environment(user_classes=[RedisProbeUser])
    state_of(env).probe_config = ProbeConfig(**cfg)
    samples: list[dict] = []
    env.events.request.add_listener(lambda **kw: samples.append(kw))
    return RedisProbeUser(env), samples, env


@pytest.fixture(autouse=True)
def _fresh_pools():
    close_pools()
    yield
    close_pools()


def _by_name(samples: list[dict], name: str) -> list[dict]:
    return [s for s in samples if s["request_type"] == "REDIS" and s["name"] == name]


def test_redis_probe_healthy_stack_records_every_metric() -> None:
    user, samples, env = _user(redis_large_value_kb=64)
    user.connect()
    user.set_session()
    user.get_session()
    user.mget_sessions()
    user.write_large()
    user.on_stop()
    for name in ("connect", "pool acquire", "SET", "GET", "MGET", "SET large", "INFO"):
        got = _by_name(samples, name)
        assert got, f"no REDIS {name} sample"
        assert all(s["exception"] is None for s in got), [s["exception"] for s in got]
        assert all(0 < s["response_time"] < 2000 for s in got), [s["response_time"] for s in got]
    assert _by_name(samples, "SET large")[0]["response_length"] == 64 * 1024
    gauges = {name: value for _ts, name, value in state_of(env).pending_gauges}
    assert gauges["redis:used_memory_mb"] > 0
    assert gauges["redis:maxmemory_mb"] >= 0 and gauges["redis:evicted_keys"] >= 0
    assert gauges["redis_probe:pool_size"] == 4 and gauges["redis:connected_clients"] >= 1


def test_redis_probe_pool_exhausted_fails_acquire_with_message() -> None:
    holder, _, _ = _user(redis_pool_size=1, redis_pool_timeout=0.3)
    user, samples, _ = _user(redis_pool_size=1, redis_pool_timeout=0.3)
    with holder.lease() as client:
        assert client is not None
        start = time.perf_counter()
        user.get_session()
        elapsed = time.perf_counter() - start
    acquire = _by_name(samples, "pool acquire")
    assert len(acquire) == 1 and "No connection available" in str(acquire[0]["exception"])
    assert acquire[0]["response_time"] >= 290
    assert elapsed < 2.0 and not _by_name(samples, "GET")


@pytest.mark.timeout(90)
def test_redis_pause_fault_shows_as_one_slow_get(faults) -> None:
    user, samples, _ = _user()
    user.get_session()  # warm the pooled connection: the pause must hit the GET, not the handshake
    samples.clear()
    fault = faults.apply("redis-pause", ms=3000, for_s=5)
    user.get_session()
    gets = _by_name(samples, "GET")
    assert gets, [(s["name"], s["response_time"], s["exception"]) for s in samples]
    print(f"REDIS GET during a 3000 ms redis-pause: {gets[0]['response_time']:.0f} ms; fault {fault.get('id')}")
    assert len(gets) == 1, "one GET call must give exactly one sample"
    assert gets[0]["exception"] is None
    assert gets[0]["response_time"] >= 2900


@pytest.mark.timeout(90)
def test_redis_pause_with_short_timeout_fails_once_without_retry(faults) -> None:
    """redis-py's default client retries a timed-out command (10 times, with backoff) and so would report a late
    success; the probe must report the one timeout instead."""
    user, samples, _ = _user(redis_timeout=1.0)
    user.get_session()
    samples.clear()
    default_client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1.0)  # the default Retry
    default_client.ping()
    faults.apply("redis-pause", ms=2500, for_s=4)
    user.get_session()
    start = time.perf_counter()
    default_client.get("probe-test:nothing")  # no exception: it silently retried past the pause
    default_ms = (time.perf_counter() - start) * 1000
    default_client.close()
    gets = _by_name(samples, "GET")
    assert gets, [(s["name"], s["response_time"], s["exception"]) for s in samples]
    print(f"probe GET with 1 s timeout: {gets[0]['response_time']:.0f} ms, {gets[0]['exception']!r}; "
          f"default redis-py client: succeeded after {default_ms:.0f} ms")
    assert len(gets) == 1
    assert isinstance(gets[0]["exception"], redis.TimeoutError)
    assert 900 <= gets[0]["response_time"] < 1900


@pytest.mark.timeout(90)
def test_redis_memory_pressure_fault_seen_in_info_gauges(faults) -> None:
    user, samples, env = _user(redis_large_value_kb=512)
    user.write_large()
    before = {n: v for _ts, n, v in state_of(env).pending_gauges}
    fault = faults.apply("redis-memory-pressure", for_s=3, headroom_mb=2)
    samples.clear()
    for _ in range(4):
        user.write_large()
    during = [(n, v) for _ts, n, v in state_of(env).pending_gauges[-20:]]
    faults.clear()
    maxmem = [v for n, v in during if n == "redis:maxmemory_mb"]
    evicted = [v for n, v in during if n == "redis:evicted_keys"]
    large = _by_name(samples, "SET large")
    oom = [s for s in large if s["exception"] is not None and "OOM" in str(s["exception"])]
    print(f"memory pressure {fault.get('info')}: maxmemory {maxmem[-1]:.1f} MB, evicted_keys "
          f"{before['redis:evicted_keys']:.0f} -> {max(evicted):.0f}, SET large "
          f"{[round(s['response_time'], 1) for s in large]} ms, {len(oom)} OOM failures")
    assert maxmem and maxmem[-1] > 0, "maxmemory set by the fault shows in the gauge"
    assert max(evicted) > before["redis:evicted_keys"] or oom, "pressure shows as evictions or OOM failures"
