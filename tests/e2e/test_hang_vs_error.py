"""End to end: "errors are allowed, hangs are not" is a threshold (``WS hang count < 1``), judged on real runs.

Real ``locust --headless`` runs of ``ChatUser`` against the hostile WebSocket server (``tests/hostile_ws.py``):

* ``errors``: every message gets ``agent_started`` and then an ``agent_error`` (``DEPENDENCY_TIMEOUT``): every
  ``WS agent_completed`` fails, each failure is a ``WS error`` sample, there is no ``WS hang``: the run passes
  ``WS hang count < 1`` (exit 0, with ``--exit-code-on-error 0``);
* ``hangs``: every message gets ``agent_started`` and then nothing: ``WS events missing`` stays empty (an event came),
  each message is a ``WS hang`` sample whose response time is its wait (``--ws-hang-after``): the run fails
  ``WS hang count < 1`` (exit 3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.hostile_ws import HostileServer

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).parent / "locust")

pytestmark = pytest.mark.timeout(120)

THRESHOLDS = """\
[[thresholds."WS hang"]]
expression = "count < 1"
description = "no message hangs: every one ends with a reply or an error frame"

[[thresholds."WS agent_started"]]
expression = "p(95) < 2000"
description = "every message is picked up"
"""


def run(mode: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    config = tmp_path / "hang.toml"
    config.write_text(THRESHOLDS, encoding="utf-8")
    report = tmp_path / "sla.json"
    args = [LOCUST, "-f", "locustfile.py", "--headless", "--only-summary", "-u", "3", "-r", "3", "-t", "6s",
            "--ws-think-time", "0.1", "--ws-hang-after", "1", "--exit-code-on-error", "0",
            "--jwt-secret", "hostile-test-secret", "--sla-config", str(config), "--sla-report-json", str(report)]
    with HostileServer(mode) as server:
        args += ["-H", server.ws_url, "ChatUser"]
        proc = subprocess.run(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                              text=True, timeout=70)
    (tmp_path / "locust.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    return proc, json.loads(report.read_text(encoding="utf-8"))


def status(report: dict[str, Any], metric: str, expression: str) -> str:
    return next(t["status"] for t in report["thresholds"] if t["metric"] == metric and t["expression"] == expression)


def test_graceful_errors_pass_no_hang(tmp_path: Path) -> None:
    proc, rep = run("errors", tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert rep["verdict"] == "pass", rep.get("verdict_reasons")
    metrics = rep["metrics"]
    completed, error = metrics["WS agent_completed"], metrics["WS error"]
    assert completed["count"] >= 5 and completed["failures"] == completed["count"], completed
    assert error["count"] == error["failures"] == completed["failures"], (error, completed)
    assert "WS hang" not in metrics and "WS timeout" not in metrics, sorted(metrics)
    assert status(rep, "WS hang", "count < 1") == "pass"
    assert "DEPENDENCY_TIMEOUT" in out
    assert "Traceback" not in out, out[-3000:]


def test_a_hang_after_the_first_event_fails_the_hang_threshold(tmp_path: Path) -> None:
    proc, rep = run("hangs", tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-3000:]
    assert rep["verdict"] == "fail"
    metrics = rep["metrics"]
    hang = metrics["WS hang"]
    assert hang["count"] >= 3 and hang["failures"] == hang["count"], hang
    assert hang["count"] == metrics["WS agent_completed"]["failures"], metrics["WS agent_completed"]
    assert hang["min"] >= 1000, hang  # its response time is the wait: --ws-hang-after 1 s after agent_started
    assert "WS events missing" not in metrics  # agent_started came: only the hang deadline catches it
    assert "WS error" not in metrics
    assert status(rep, "WS hang", "count < 1") == "fail"
    assert "Traceback" not in out, out[-3000:]
