"""End to end: recovery after a lost heartbeat is judged (``WS heartbeat recovery``, scenario
``ws-heartbeat-slow-replies``), on real ``locust --headless`` runs over real sockets.

* the reference backend with the scenario's paired fault (``slow-pong`` 1500 ms against the scenario's 1 s heartbeat
  timeout): heartbeats are really lost (the client closes the connection after 2 missed pongs), ``WS heartbeat``
  fails, and once the fault ends a new connection answers its first ping: ``WS heartbeat recovery`` has successful
  samples and its thresholds (``max < 5000``, ``fail_ratio < 0.01``) pass;
* the hostile server (``tests/hostile_ws.py``) in ``stall_at`` mode (answers normally, then never again: new
  connections are accepted and greeted, but no ping is answered): the lost heartbeat is never recovered from, each
  user's stop records a failed ``WS heartbeat recovery`` and the recovery threshold fails the run (exit 3). (A
  connection the server cuts, ``dies`` mode, is a ``WS disconnect``, not a lost heartbeat.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reference_backend.process import BackendProcess
from tests.hostile_ws import HostileServer

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).parent / "locust")
METRIC = "WS heartbeat recovery"

pytestmark = pytest.mark.timeout(150)


def run(host: str, env: dict[str, str], tmp_path: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    report = tmp_path / "sla.json"
    args = [LOCUST, "-f", "locustfile.py", "--headless", "--only-summary", "-H", host,
            "--scenario", "ws-heartbeat-slow-replies", "--scenario-duration", "12", "--sla-report-json", str(report),
            *extra]
    proc = subprocess.run(args, cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=90)
    out = proc.stdout + proc.stderr
    (tmp_path / "locust.log").write_text(out, encoding="utf-8")
    return proc.returncode, out, json.loads(report.read_text(encoding="utf-8"))


def statuses(report: dict[str, Any], metric: str) -> dict[str, str]:
    return {t["expression"]: t["status"] for t in report["thresholds"] if t["metric"] == metric}


def test_lost_heartbeats_are_recovered_from(start_backend: Any, tmp_path: Path) -> None:
    backend: BackendProcess = start_backend()
    code, out, rep = run(backend.ws_url, backend.env, tmp_path, "--inject-faults")
    assert code == 3, out[-3000:]
    heartbeat = rep["metrics"]["WS heartbeat"]
    assert heartbeat["failures"] >= 2, heartbeat  # pongs really missed: the fault is seen
    assert statuses(rep, "WS heartbeat")["fail_ratio < 0.01"] == "fail"
    recovery = rep["metrics"][METRIC]
    assert recovery["count"] >= 1 and recovery["failures"] == 0, recovery
    assert recovery["max"] < 5000, recovery
    assert statuses(rep, METRIC) == {"max < 5000": "pass", "fail_ratio < 0.01": "pass"}, rep["thresholds"]
    assert "Traceback" not in out, out[-3000:]


def test_a_backend_that_never_answers_again_fails_recovery(tmp_path: Path) -> None:
    with HostileServer("stall_at", at=3.0) as server:
        code, out, rep = run(server.ws_url, {"JWT_SECRET_KEY": "hostile-test-secret"}, tmp_path,
                             "--exit-code-on-error", "0")
    assert code == 3, out[-3000:]
    recovery = rep["metrics"][METRIC]
    assert recovery["count"] >= 1 and recovery["failures"] == recovery["count"], recovery
    assert statuses(rep, METRIC)["fail_ratio < 0.01"] == "fail", rep["thresholds"]
    assert "heartbeat recovery: no working session" in out, out[-3000:]
