"""The reference backend's cache fallback (``--session-budget-ms``) against the real Redis and PostgreSQL.

With the fallback on, a message whose Redis session read misses the budget rebuilds the session from PostgreSQL,
refills the cache on the same pooled connection, and completes; without it (the default) the same Redis pause fails
the message with ``DEPENDENCY_TIMEOUT`` (``test_target_faults``). Redis CLIENT PAUSE pauses the shared Redis: pauses
here stay under 1 s.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from contract.schema import REDIS_SESSION_KEY
from reference_backend.process import BackendProcess
from tests.integration.test_target_pipeline import connect, recv_until_final, send_message

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def fallback_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    with BackendProcess.start(tmp_path_factory.mktemp("fallback-backend"), session_budget_ms=100) as b:
        yield b


def _health(b: BackendProcess) -> dict:
    with urllib.request.urlopen(b.http_url + "/health", timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.timeout(60)
def test_a_fast_cache_needs_no_fallback(fallback_backend: BackendProcess) -> None:
    before = _health(fallback_backend)["session_fallbacks"]
    ws = connect(fallback_backend, 7)
    try:
        for _ in range(3):
            send_message(ws, "healthy")
            assert recv_until_final(ws, 10)[-1]["type"] == "agent_completed"
    finally:
        ws.close()
    assert _health(fallback_backend)["session_fallbacks"] == before


@pytest.mark.timeout(60)
def test_a_slow_cache_falls_back_to_postgres_refills_the_session_and_the_message_completes(
    fallback_backend: BackendProcess,
) -> None:
    user_id = "user-0008"
    rds = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    ws = connect(fallback_backend, 8)
    try:
        thread = send_message(ws, "before the pause")
        assert recv_until_final(ws, 10)[-1]["type"] == "agent_completed"
        rds.delete(REDIS_SESSION_KEY.format(user_id=user_id))  # the rebuilt session must come from PostgreSQL
        before = _health(fallback_backend)["session_fallbacks"]
        fallback_backend.faults.apply("redis-pause", ms=800, for_s=1)
        t0 = time.monotonic()
        send_message(ws, "during the pause", thread_id=thread)
        frames = recv_until_final(ws, 10)
        took = time.monotonic() - t0
    finally:
        ws.close()
        fallback_backend.faults.clear()
    assert frames[-1]["type"] == "agent_completed", frames[-1]
    assert _health(fallback_backend)["session_fallbacks"] == before + 1
    assert took >= 0.5, took  # the refill waited for the pause, holding its PostgreSQL connection
    # the refill wrote the session rebuilt from PostgreSQL's rows; the run then updated it as usual
    session = json.loads(rds.get(REDIS_SESSION_KEY.format(user_id=user_id)) or b"{}")
    rds.close()
    assert session.get("messages", 0) >= 2 and session.get("last_thread_id") == thread, session


def test_the_fallback_is_off_by_default() -> None:
    from reference_backend.settings import settings_from_args

    assert settings_from_args(["--jwt-secret", "x" * 32]).session_budget_ms == 0
    assert settings_from_args(["--jwt-secret", "x" * 32, "--session-budget-ms", "100"]).session_budget_ms == 100


def test_rebuild_sql_reads_what_the_cache_holds() -> None:
    from reference_backend.tiers.postgres import SESSION_REBUILD_SQL

    for column in ("messages", "last_thread_id", "last_run_id"):
        assert f"AS {column}" in SESSION_REBUILD_SQL
