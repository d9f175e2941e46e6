"""``locust --headless -f locustfile.py`` with the chat users for ~20 s against the reference backend: every chat
metric of docs/protocol.md is in the ``--csv`` stats with plausible values and no failures; bad start-up options exit 2."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]


def _locust(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), *args], cwd=cwd,
                          env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_headless_run_records_every_chat_metric_without_failures(backend, tmp_path: Path) -> None:
    env = {**os.environ, **backend.env}
    proc = _locust(["--headless", "-H", backend.ws_url, "-u", "6", "-r", "6", "-t", "20s", "--stop-timeout", "10",
                    "--csv", str(tmp_path / "run"), "--only-summary", "--sla-off",
                    "--ws-heartbeat-interval", "2", "--ws-think-time", "0.5", "ChatUser", "ChatFlowUser"],
                   env, tmp_path, timeout=120)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-4000:]
    assert backend.jwt_secret not in out
    with open(tmp_path / "run_stats.csv", newline="") as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f) if r["Name"] != "Aggregated"}
    failures = (tmp_path / "run_failures.csv").read_text() if (tmp_path / "run_failures.csv").exists() else ""
    expected = [("WS", "connect"), ("WS", "heartbeat"), ("FLOW", "login→send→receive")] + [("WS", n) for n in FIVE]
    for key in expected:
        assert key in rows, (key, sorted(rows))
        row = rows[key]
        assert int(row["Request Count"]) > 0, row
        assert int(row["Failure Count"]) == 0, (row, failures)  # DEPENDENCY_* here: a shared tier was degraded
        assert 0 < float(row["Average Response Time"]) < 15000, row
    assert ("WS", "events missing") not in rows and ("WS", "disconnect") not in rows
    # the events arrive in pipeline order, so their mean latencies from the send are ordered too
    means = [float(rows[("WS", n)]["Average Response Time"]) for n in FIVE]
    assert means == sorted(means), means
    # enough traffic in 20 s: 3 ChatUsers at 0.5 s think time and ~0.5 s replies
    assert int(rows[("WS", "agent_completed")]["Request Count"]) >= 20
    assert float(rows[("FLOW", "login→send→receive")]["Average Response Time"]) >= float(
        rows[("WS", "agent_completed")]["Min Response Time"])
    assert proc.returncode == 0, out[-3000:]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-H", "http://127.0.0.1:1"], "--host has value 'http://127.0.0.1:1'"),
        (["-H", "ws://127.0.0.1:1", "--ws-reply-timeout", "0"], "--ws-reply-timeout has value 0"),
        (["-H", "ws://127.0.0.1:1", "--token-file", "/nonexistent/tokens.txt"], "--token-file '/nonexistent"),
        (["-H", "ws://127.0.0.1:1", "--ws-arrival-rate", "fast"], "--ws-arrival-rate has value 'fast'"),
    ],
)
def test_bad_chat_option_exits_2_with_a_clear_error(tmp_path: Path, args: list[str], fragment: str) -> None:
    env = {**os.environ, "JWT_SECRET_KEY": "s" * 40}
    proc = _locust(["--headless", "-u", "1", "-t", "3s", "--sla-off", *args, "ChatUser"], env, tmp_path, timeout=50)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert fragment in out, out[-2000:]
    assert "Traceback" not in out


@pytest.mark.timeout(60)
def test_missing_credentials_exit_2_naming_the_options(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET_KEY", "LOCUST_JWT_SECRET")}
    proc = _locust(["--headless", "-u", "1", "-t", "3s", "--sla-off", "-H", "ws://127.0.0.1:1", "ChatUser"], env,
                   tmp_path, timeout=50)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "--jwt-secret" in out and "--token-file" in out and "Traceback" not in out
