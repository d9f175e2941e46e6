"""End to end: the cleanup check (``BACKEND orphan runs``, ``users.cleanup_check``) of scenario
``graceful-timeout-vs-hang``, on real ``locust --headless`` runs against a reference backend of the test's own, with
the real PostgreSQL.

Healthy and graceful-timeout runs (a held pool: error frames) are proven to pass it with 0 orphans by the scenario
proofs (``tests/e2e/test_scenario_proofs.py``: the threshold is required, so a pass there is a measured 0). Here:

* an orphan fails it: while the run goes on, the test plants a ``running`` run row on one of the run's own threads
  (the chat users get a user-name pattern of their own, so the thread is found by its owner), as a backend that lost
  a run mid-way would leave it; the check waits for it to be closed (``min(--ws-reply-timeout, 10 s)``), counts 1
  orphan and the run fails (exit 3) on ``BACKEND orphan runs max < 1``;
* a store that cannot be read (``--pg-dsn`` names a database without the backend's ``runs`` table): the log says
  ``Cleanup not checked`` and the required threshold fails as "no samples" instead of passing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contract.schema import PG_DSN
from reference_backend.process import BackendProcess

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).parent / "locust")
METRIC = "BACKEND orphan runs"

pytestmark = pytest.mark.timeout(150)


def locust_args(backend: BackendProcess, report: Path, *extra: str) -> list[str]:
    return [LOCUST, "-f", "locustfile.py", "--headless", "--only-summary", "-H", backend.ws_url,
            "--scenario", "graceful-timeout-vs-hang", "--scenario-duration", "6", "--sla-warmup", "1s",
            "--sla-report-json", str(report), *extra]


def threshold(report: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in report["thresholds"] if t["metric"] == METRIC)


def test_an_orphan_run_fails_the_cleanup_check(start_backend: Any, tmp_path: Path) -> None:
    backend: BackendProcess = start_backend()
    tag = f"cleanup-{uuid.uuid4().hex[:8]}"
    report = tmp_path / "sla.json"
    args = locust_args(backend, report, "--jwt-user-pattern", tag + "-{n:04d}", "--ws-reply-timeout", "4")
    planted = f"planted-orphan-{uuid.uuid4().hex}"
    log = (tmp_path / "locust.log").open("w", encoding="utf-8")
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **backend.env, "PYTHONPATH": str(ROOT)},
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
            row = None
            deadline = time.monotonic() + 30
            while row is None and time.monotonic() < deadline and proc.poll() is None:
                row = conn.execute("SELECT thread_id, user_id FROM runs WHERE user_id LIKE %s LIMIT 1",
                                   (tag + "-%",)).fetchone()
                if row is None:
                    time.sleep(0.2)
            assert row is not None, "the run stored no run row of its own users"
            conn.execute("INSERT INTO runs (id, thread_id, user_id, status) VALUES (%s, %s, %s, 'running')",
                         (planted, row[0], row[1]))
            assert proc.wait(timeout=90) == 3
            out = (tmp_path / "locust.log").read_text(encoding="utf-8")
            rep = json.loads(report.read_text(encoding="utf-8"))
            # the backend itself left none: the planted row is the one orphan
            assert rep["metrics"][METRIC]["count"] == 1 and rep["metrics"][METRIC]["max"] == 1.0, rep["metrics"]
            assert threshold(rep)["status"] == "fail", rep["thresholds"]
            assert threshold(rep)["unit"] == "count", rep["thresholds"]  # a count, not "1.00 ms"
            assert "BACKEND orphan runs max < 1 was 1\n" in out, out[-3000:]
            assert "orphan runs: 1 run(s) of this test's threads still 'running'" in out, out[-3000:]
            assert "Traceback" not in out, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute("DELETE FROM runs WHERE id = %s", (planted,))


def test_a_store_it_cannot_read_is_not_a_pass(start_backend: Any, tmp_path: Path) -> None:
    backend: BackendProcess = start_backend()
    report = tmp_path / "sla.json"
    no_runs_table = PG_DSN.rsplit("/", 1)[0] + "/postgres"
    args = locust_args(backend, report, "--pg-dsn", no_runs_table)
    proc = subprocess.run(args, cwd=ROOT, env={**os.environ, **backend.env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=90)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-3000:]
    rep = json.loads(report.read_text(encoding="utf-8"))
    assert METRIC not in rep["metrics"], rep["metrics"]
    t = threshold(rep)
    assert t["status"] == "fail" and t["value"] is None, t
    assert "Cleanup not checked: cannot read the backend's runs" in out, out[-3000:]
    assert "BACKEND orphan runs max < 1 had no samples, but it is required" in out, out[-3000:]
