"""The reference backend leaves no orphan run rows (``runs.status = 'running'``) behind, over real sockets and the real
PostgreSQL: a run whose client goes away mid-way is closed as ``cancelled``; a run that fails with a dependency
timeout while the backend's own pool is held (``agent_error``) is closed as ``failed`` once the pool is back (the close
is retried, not given up after one timed-out attempt). What ``users.cleanup_check`` (``BACKEND orphan runs``) reads.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest

from contract.schema import PG_DSN
from tests.integration.test_target_pipeline import connect, send_message

pytestmark = pytest.mark.timeout(90)


def run_status(thread_id: str) -> str | None:
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT status FROM runs WHERE thread_id = %s", (thread_id,)).fetchone()
    return None if row is None else str(row[0])


def wait_status(thread_id: str, wanted: str, timeout: float) -> str | None:
    end = time.monotonic() + timeout
    status = run_status(thread_id)
    while status != wanted and time.monotonic() < end:
        time.sleep(0.1)
        status = run_status(thread_id)
    return status


def recv_type(ws: Any, wanted: str, timeout: float) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        ws.settimeout(max(0.05, end - time.monotonic()))
        frame = json.loads(ws.recv())
        if frame["type"] == wanted:
            return frame
        assert time.monotonic() < end, f"no {wanted} within {timeout} s"


def test_a_run_whose_client_goes_away_is_closed_as_cancelled(start_backend: Any) -> None:
    backend = start_backend(think_min_ms=3000, think_max_ms=3000)
    ws = connect(backend)
    thread_id = send_message(ws)
    recv_type(ws, "agent_started", 10)
    assert run_status(thread_id) == "running"
    ws.close()  # mid-run: the backend cancels the message's task
    assert wait_status(thread_id, "cancelled", 10) == "cancelled"


def test_a_run_failed_by_a_held_pool_is_closed_once_the_pool_is_back(start_backend: Any) -> None:
    backend = start_backend(think_min_ms=1500, think_max_ms=1500, pg_timeout_ms=500)
    ws = connect(backend)
    try:
        thread_id = send_message(ws)
        recv_type(ws, "agent_started", 10)
        backend.faults.apply("pg-pool-exhaustion", for_s=4)  # the run's closing statements cannot get a connection
        error = recv_type(ws, "agent_error", 10)
        context = error["data"]["error_context"]
        assert (context["error_code"], context["tier"]) == ("DEPENDENCY_TIMEOUT", "postgres"), error
        assert run_status(thread_id) == "running"  # the first close attempt timed out too: retried, not dropped
        assert wait_status(thread_id, "failed", 15) == "failed"
    finally:
        ws.close()
