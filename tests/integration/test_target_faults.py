"""Each fault of the reference backend degrades a real dependency, measured from outside (the test's own Redis,
PostgreSQL, ClickHouse or WebSocket client), and ``clear`` undoes it.

Redis CLIENT PAUSE pauses the whole shared Redis: durations here stay <= 3 s.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import psycopg
import pytest
import redis
import websocket

from contract.schema import CH_DATABASE, CH_TABLE, PG_QUERIES, to_pyformat
from tests.integration.test_target_pipeline import connect, recv_until_final, send_message

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
CH_URL = "http://127.0.0.1:8123"


def timed(fn, *a, **kw) -> tuple[float, object]:  # noqa: ANN001
    t0 = time.perf_counter()
    try:
        out = fn(*a, **kw)
    except Exception as e:  # noqa: BLE001 - the caller looks at the exception
        out = e
    return time.perf_counter() - t0, out


def ws_ready(backend) -> tuple[int, dict]:  # noqa: ANN001
    try:
        with urllib.request.urlopen(backend.http_url + "/health/ready", timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def rds():
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    yield r
    r.close()


@pytest.mark.timeout(60)
def test_redis_pause_stalls_a_redis_get_and_times_out_a_message(backend, faults, rds):
    rds.set("target:test:probe", "1", ex=60)
    ws = connect(backend, 10)
    try:
        t_apply = time.time()
        info = faults.apply("redis-pause", ms=3000, for_s=3)
        send_message(ws, "during pause")
        issued = time.time()
        elapsed, _ = timed(rds.get, "target:test:probe")
        frames = recv_until_final(ws, 10)
    finally:
        ws.close()
    assert info["kind"] == "redis-pause"
    # The pause began before apply() returned: the GET waits for what is left of the 3 s.
    assert elapsed >= min(2.9, 3.0 - (issued - t_apply)) - 0.05, elapsed
    assert frames[-1]["type"] == "error_message" and frames[-1]["error_code"] == "DEPENDENCY_TIMEOUT", frames[-1]
    faults.clear()
    after = [timed(rds.get, "target:test:probe")[0] for _ in range(5)]
    assert statistics.median(after) < 0.05, after


@pytest.mark.timeout(60)
def test_redis_slow_makes_some_redis_commands_slow_until_cleared(backend, faults, rds):
    faults.apply("redis-slow", ms=150, for_s=3, period_ms=300)
    during = []
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        during.append(timed(rds.get, "target:test:probe")[0])
        time.sleep(0.02)
    faults.clear()
    time.sleep(0.2)  # the last short pause ends by itself
    after = [timed(rds.get, "target:test:probe")[0] for _ in range(10)]
    assert sum(1 for d in during if d >= 0.05) >= 3, during
    assert max(during) >= 0.1, during
    assert statistics.median(after) < 0.05, after


@pytest.mark.timeout(60)
def test_redis_memory_pressure_forces_evictions_and_restores_config(backend, faults, rds):
    before = rds.config_get("maxmemory") | rds.config_get("maxmemory-policy")
    evicted0 = int(rds.info("stats")["evicted_keys"])
    info = faults.apply("redis-memory-pressure", for_s=10, headroom_mb=2)
    try:
        cfg = rds.config_get("maxmemory") | rds.config_get("maxmemory-policy")
        assert int(cfg["maxmemory"]) == info["info"]["maxmemory"] and cfg["maxmemory-policy"] == "volatile-lru"
        # the fill writes twice the headroom in keys with a TTL: Redis must evict to take them
        assert int(rds.info("stats")["evicted_keys"]) > evicted0
    finally:
        faults.clear()
    assert (rds.config_get("maxmemory") | rds.config_get("maxmemory-policy")) == before
    assert not list(rds.scan_iter(match="target:fault:fill:*", count=1000))


@pytest.mark.timeout(60)
def test_redis_memory_pressure_with_noeviction_refuses_writes_until_cleared(backend, faults, rds):
    """noeviction makes the refusal independent of how many volatile keys others keep in the shared Redis."""
    before = rds.config_get("maxmemory") | rds.config_get("maxmemory-policy")
    big = b"y" * (1024 * 1024)
    key = f"target:test:big:{uuid.uuid4().hex}"
    faults.apply("redis-memory-pressure", for_s=3, headroom_mb=1, policy="noeviction")
    try:
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            rds.set(key, big, ex=30)
    finally:
        faults.clear()
    assert (rds.config_get("maxmemory") | rds.config_get("maxmemory-policy")) == before
    try:
        assert rds.set(key, big, ex=30) is True
    finally:
        rds.delete(key)


@pytest.mark.timeout(60)
def test_pg_lock_blocks_messages_table_and_times_out_a_message(backend, faults):
    faults.apply("pg-lock", for_s=8)  # well past the probe (1.5 s) plus the message's 2 s PG timeout; cleared below
    ws = connect(backend, 11)
    try:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute("SET statement_timeout = '1500ms'")
            elapsed, out = timed(conn.execute, "SELECT count(*) FROM messages")
            assert isinstance(out, psycopg.errors.QueryCanceled), out
            assert elapsed >= 1.4
            send_message(ws, "during lock")
            frames = recv_until_final(ws, 10)
            assert frames[-1]["type"] == "error_message" and frames[-1]["error_code"] == "DEPENDENCY_TIMEOUT"
            assert "postgres" in frames[-1]["error_message"]
            faults.clear()
            elapsed, out = timed(conn.execute, "SELECT count(*) FROM messages")
            assert not isinstance(out, Exception) and elapsed < 0.5, (elapsed, out)
        send_message(ws, "after lock")
        assert recv_until_final(ws, 10)[-1]["type"] == "agent_completed"
    finally:
        ws.close()


@pytest.mark.timeout(60)
def test_pg_pool_exhaustion_makes_readiness_fail_on_postgres(backend, faults):
    info = faults.apply("pg-pool-exhaustion", for_s=8)
    assert info["info"]["held_connections"] >= 1
    status, body = ws_ready(backend)
    assert status == 503 and not body["tiers"]["postgres"]["ok"], body
    assert "pool acquire" in body["tiers"]["postgres"]["error"]
    assert body["tiers"]["postgres"]["latency_ms"] >= 1900
    faults.clear()
    status, body = ws_ready(backend)
    assert body["tiers"]["postgres"]["ok"], body  # (other tiers are not this test's business)


@pytest.mark.timeout(60)
def test_pg_slow_query_slows_the_thread_history_query_inside_postgres(backend, faults):
    sql = to_pyformat(PG_QUERIES["thread history"])
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        faults.apply("pg-slow-query", ms=400, for_s=4)
        during = []
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            during.append(timed(conn.execute, sql, ("no-such-thread", 20))[0])
            time.sleep(0.13)
        faults.clear()
        after = [timed(conn.execute, sql, ("no-such-thread", 20))[0] for _ in range(10)]
    assert sum(1 for d in during if d >= 0.1) >= 2, during
    assert max(during) >= 0.2, during
    assert statistics.median(after) < 0.05, after


def ch_insert_row() -> None:
    row = {"event_date": time.strftime("%Y-%m-%d", time.gmtime()),
           "ts": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "ts_ms": 0, "run_id": "test", "thread_id": "test",
           "user_id": "test", "agent_name": "test", "event_type": "test_probe", "tool_name": "", "duration_ms": 0.0}
    q = urllib.parse.quote(f"INSERT INTO {CH_DATABASE}.{CH_TABLE} FORMAT JSONEachRow")
    req = urllib.request.Request(f"{CH_URL}/?query={q}", data=json.dumps(row).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


@pytest.mark.timeout(90)
def test_clickhouse_stall_blocks_inserts_into_the_event_table(backend, faults):
    faults.apply("clickhouse-stall", for_s=4)
    t_apply = time.monotonic()
    elapsed, out = timed(ch_insert_row)
    assert not isinstance(out, Exception), out
    assert elapsed >= 2.0, elapsed
    faults.clear()
    assert time.monotonic() - t_apply < 20
    elapsed, out = timed(ch_insert_row)
    assert not isinstance(out, Exception) and elapsed < 1.0, (elapsed, out)
    with urllib.request.urlopen(f"{CH_URL}/?query=" + urllib.parse.quote(
            f"SELECT comment FROM system.columns WHERE database='{CH_DATABASE}' AND table='{CH_TABLE}' "
            f"AND name='tool_name'"), timeout=10) as r:
        assert "fault" not in r.read().decode()


@pytest.mark.timeout(60)
def test_agent_slow_adds_think_time(backend, faults):
    ws = connect(backend, 12)
    try:
        faults.apply("agent-slow", ms=1500, for_s=10)
        t0 = time.perf_counter()
        send_message(ws)
        assert recv_until_final(ws, 10)[-1]["type"] == "agent_completed"
        slow = time.perf_counter() - t0
        faults.clear()
        t0 = time.perf_counter()
        send_message(ws)
        assert recv_until_final(ws, 10)[-1]["type"] == "agent_completed"
        fast = time.perf_counter() - t0
    finally:
        ws.close()
    assert slow >= 1.5 + 0.3, slow
    assert slow - fast >= 1.0, (slow, fast)


@pytest.mark.timeout(60)
def test_hang_swallows_messages_until_cleared(backend, faults):
    ws = connect(backend, 13)
    try:
        faults.apply("hang", for_s=10)
        send_message(ws)
        ws.settimeout(1.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()
        faults.clear()
        send_message(ws)
        assert recv_until_final(ws, 10)[-1]["type"] == "agent_completed"
    finally:
        ws.close()


@pytest.mark.timeout(60)
def test_drop_event_never_sends_that_event_type(backend, faults):
    ws = connect(backend, 14)
    try:
        faults.apply("drop-event", for_s=10, event="agent_thinking")
        send_message(ws)
        frames = recv_until_final(ws, 10)
        dropped = [f["type"] for f in frames]
        faults.clear()
        send_message(ws)
        kept = [f["type"] for f in recv_until_final(ws, 10)]
    finally:
        ws.close()
    assert "agent_thinking" not in dropped and dropped[-1] == "agent_completed", frames[-1]
    assert "agent_thinking" in kept


@pytest.mark.timeout(60)
def test_drop_event_agent_completed_leaves_the_message_without_end(backend, faults):
    ws = connect(backend, 15)
    try:
        faults.apply("drop-event", for_s=10, event="agent_completed")
        send_message(ws)
        types = []
        ws.settimeout(2.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            while True:
                types.append(json.loads(ws.recv())["type"])
    finally:
        ws.close()
    assert types[0] == "agent_started" and "tool_completed" in types and "agent_completed" not in types


@pytest.mark.timeout(60)
def test_slow_pong_delays_pong(backend, faults):
    ws = connect(backend, 16)

    def ping() -> float:
        t0 = time.perf_counter()
        ws.send(json.dumps({"type": "ping", "timestamp": t0}))
        f = json.loads(ws.recv())
        assert f["type"] == "pong" and f["data"]["timestamp"] == t0
        return time.perf_counter() - t0

    try:
        ws.settimeout(10)
        faults.apply("slow-pong", ms=1000, for_s=10)
        slow = ping()
        faults.clear()
        fast = ping()
    finally:
        ws.close()
    assert slow >= 1.0 and fast < 0.5, (slow, fast)


@pytest.mark.timeout(30)
def test_fault_expires_by_itself(backend, faults):
    faults.apply("agent-slow", ms=100, for_s=0.5)
    assert [f["kind"] for f in faults.list()] == ["agent-slow"]
    time.sleep(1.0)
    assert faults.list() == []


@pytest.mark.timeout(60)
def test_cli_applies_lists_and_clears_faults(backend, faults):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TARGET_ADMIN_TOKEN": backend.admin_token, "TARGET_URL": backend.http_url}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "reference_backend.faults", *args], capture_output=True, text=True,
                              timeout=30, env=env, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))

    r = cli("apply", "drop-event", "agent_completed", "--for", "20")
    assert r.returncode == 0, r.stderr
    applied = json.loads(r.stdout)
    assert applied["kind"] == "drop-event" and applied["params"] == {"event": "agent_completed"}
    listed = json.loads(cli("list").stdout)
    assert [f["id"] for f in listed] == [applied["id"]]
    assert faults.list()[0]["id"] == applied["id"]
    r = cli("apply", "pg-lock", "--for", "nope")
    assert r.returncode == 2 and "--for" in r.stderr
    r = cli("apply", "drop-event", "no_such_event")
    assert r.returncode == 2 and "agent_completed" in r.stderr
    assert cli("clear").returncode == 0
    assert faults.list() == []
    env["TARGET_ADMIN_TOKEN"] = "not-the-admin-token-42"
    r = cli("list")
    assert r.returncode == 2 and "401" in r.stderr and "not-the-admin-token-42" not in r.stderr
