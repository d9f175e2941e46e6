"""End to end: a backend that fails in any of the ways a real one does fails the run (exit 3), naming the threshold;
a healthy one passes (exit 0). Real ``locust --headless`` processes load ``ChatUser`` against the hostile WebSocket
server of ``tests/hostile_ws.py`` (raw asyncio, its own thread or process) or the reference backend.

* never answers / stalls mid-run: the messages still waiting at the stop have waited past ``max < 3000`` and are
  judged as failures of ``WS agent_completed`` at the time they waited (they used to be dropped: PASS);
* killed with ``kill -9`` mid-run, ``--exit-code-on-error 0``: ``WS disconnect count < 1`` and
  ``WS connect fail_ratio < 0.01`` fail;
* refuses every upgrade (HTTP 503) with ``--ws-skip-start-check``: ``WS connect fail_ratio < 0.01`` fails;
* duplicate ``agent_completed`` / garbage, binary and invalid-UTF-8 frames beside every reply:
  ``WS protocol anomaly count < 1`` fails, the anomalies are counted per kind;
* healthy (the hostile server's ``normal`` mode, the reference backend): every profile line holds, no planned close at
  the end counts as a disconnect, and sent = completed + failed + in flight.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, kill_running, wait_until
from tests.hostile_ws import HostileServer

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).parent / "locust")
EXIT_FAIL = 3

pytestmark = pytest.mark.timeout(150)


def run_chat(host: str, tmp_path: Path, *extra: str, seconds: int = 6, users: int = 5,
             env: dict[str, str] | None = None, popen: bool = False) -> Any:
    """``locust --headless`` with ``ChatUser`` against ``host`` (profile ci unless ``extra`` says otherwise)."""
    report = tmp_path / "sla.json"
    args = [LOCUST, "-f", "locustfile.py", "--headless", "--only-summary", "-u", str(users), "-r", str(users),
            "-t", f"{seconds}s", "-H", host, "--ws-think-time", "0.1", "--sla-report-json", str(report), *extra,
            "ChatUser"]
    if "--sla-profile" not in extra and "--sla-config" not in extra:
        args[-1:-1] = ["--sla-profile", "ci"]
    if not any(a.startswith("--jwt-secret") for a in extra):
        args[-1:-1] = ["--jwt-secret", "hostile-test-secret"]
    run_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if popen:
        log = open(tmp_path / "locust.log", "wb")  # noqa: SIM115 - closed below, the child keeps its own fd
        try:
            return subprocess.Popen(args, cwd=ROOT, env=run_env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        finally:
            log.close()
    proc = subprocess.run(args, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=seconds + 60)
    (tmp_path / "locust.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    return proc


def report_of(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "sla.json").read_text(encoding="utf-8"))


def failing(report: dict[str, Any]) -> set[str]:
    return {f"{t['metric']} {t['expression']}" for t in report["thresholds"] if t["status"] == "fail"}


def log_of(tmp_path: Path) -> str:
    return (tmp_path / "locust.log").read_text(encoding="utf-8", errors="replace")


def assert_messages_add_up(report: dict[str, Any]) -> dict[str, Any]:
    m = report["messages"]
    assert m is not None, report
    assert m["sent"] == m["completed"] + m["failed"] + m["in_flight"], m
    assert m["unaccounted"] == 0, m
    assert report["metrics"]["WS agent_completed"]["count"] == m["completed"] + m["failed"] + m["not_sent"], m
    return m


def test_server_that_never_answers_fails_the_run_on_max(tmp_path):
    with HostileServer("never_answers") as server:
        proc = run_chat(server.ws_url, tmp_path, seconds=8)
    rep = report_of(tmp_path)
    out = log_of(tmp_path)
    assert proc.returncode == EXIT_FAIL, out[-3000:]
    assert rep["verdict"] == "fail"
    assert "WS agent_completed max < 3000" in failing(rep), failing(rep)
    m = assert_messages_add_up(rep)
    # every user's one message waited ~8 s: all of them judged, none dropped
    assert m["completed"] == 0 and m["failed_at_stop"] == m["sent"] >= 5, m
    assert rep["metrics"]["WS agent_completed"]["max"] > 3000
    assert "still in flight at stop after waiting past their limit" in out
    assert "Traceback" not in out, out[-3000:]


def test_a_run_shorter_than_the_limit_against_a_silent_server_is_inconclusive_not_pass(tmp_path):
    """2 s against a server that never answers: every message is still younger than ``max < 3000`` at the stop, so
    none is judged; the connects alone are no evidence about the replies (it used to PASS on them)."""
    with HostileServer("never_answers") as server:
        proc = run_chat(server.ws_url, tmp_path, seconds=2)
    rep = report_of(tmp_path)
    out = log_of(tmp_path)
    assert proc.returncode == 4, out[-3000:]
    assert rep["verdict"] == "inconclusive", rep.get("verdict_reasons")
    assert any("were sent but none was answered" in r for r in rep["verdict_reasons"]), rep["verdict_reasons"]
    m = rep["messages"]
    assert m["completed"] == m["failed"] == 0 and m["in_flight"] == m["sent"] >= 1, m
    assert "WS agent_completed" not in rep["metrics"]


def test_messages_in_flight_on_a_worker_are_judged_by_the_master(tmp_path):
    """The ages of a worker's messages in flight at the stop reach the master with its final report."""
    port = free_port()
    with HostileServer("never_answers") as server:
        master = run_chat(server.ws_url, tmp_path, "--master", "--master-bind-host", "127.0.0.1",
                          "--master-bind-port", str(port), "--expect-workers", "1", seconds=8, popen=True)
        worker = None
        try:
            worker_args = [LOCUST, "-f", "locustfile.py", "--worker", "--master-host", "127.0.0.1", "--master-port",
                           str(port), "ChatUser"]
            with open(tmp_path / "worker.log", "wb") as log:
                worker = subprocess.Popen(worker_args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
            master.wait(90)
            worker.wait(30)
        finally:
            kill_running(master, worker)
    rep = report_of(tmp_path)
    assert master.returncode == EXIT_FAIL, log_of(tmp_path)[-3000:]
    assert rep["workers"] == 1
    assert "WS agent_completed max < 3000" in failing(rep), failing(rep)
    m = assert_messages_add_up(rep)
    assert m["completed"] == 0 and m["failed_at_stop"] == m["sent"] >= 5, m


def test_server_that_stalls_mid_run_fails_the_run(tmp_path):
    with HostileServer("stall_at", at=5.0) as server:
        proc = run_chat(server.ws_url, tmp_path, seconds=10)
        answered = server.replies
    rep = report_of(tmp_path)
    assert answered > 0  # it did answer before the stall
    assert proc.returncode == EXIT_FAIL, log_of(tmp_path)[-3000:]
    assert "WS agent_completed max < 3000" in failing(rep), failing(rep)
    m = assert_messages_add_up(rep)
    assert m["completed"] > 0 and m["failed_at_stop"] >= 1, m


def test_server_killed_mid_run_fails_on_disconnects_and_connects(tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.hostile_ws", "--mode", "dies", "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc = None
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith(b"READY"), "hostile server did not start"
        proc = run_chat(f"ws://127.0.0.1:{port}", tmp_path, "--exit-code-on-error", "0", seconds=10, popen=True)
        assert wait_until(lambda: b"Ramping to" in (tmp_path / "locust.log").read_bytes()
                          or b"All users spawned" in (tmp_path / "locust.log").read_bytes(), 30)
        time.sleep(4)
        server.send_signal(signal.SIGKILL)  # the backend dies: every connection and the listener at once
        server.wait(10)
        proc.wait(60)
    finally:
        kill_running(server, proc)
    rep = report_of(tmp_path)
    assert proc.returncode == EXIT_FAIL, log_of(tmp_path)[-3000:]
    assert {"WS disconnect count < 1", "WS connect fail_ratio < 0.01"} <= failing(rep), failing(rep)
    assert rep["metrics"]["WS disconnect"]["count"] >= 5  # every user's connection dropped
    assert_messages_add_up(rep)


def test_server_that_refuses_every_upgrade_fails_on_connects(tmp_path):
    with HostileServer("refuses") as server:
        proc = run_chat(server.ws_url, tmp_path, "--ws-skip-start-check", "--exit-code-on-error", "0", seconds=6)
    rep = report_of(tmp_path)
    assert proc.returncode == EXIT_FAIL, log_of(tmp_path)[-3000:]
    assert "WS connect fail_ratio < 0.01" in failing(rep), failing(rep)
    connect = rep["metrics"]["WS connect"]
    assert connect["count"] == connect["failures"] >= 5
    assert rep["messages"] is None  # nothing was ever sent


@pytest.mark.parametrize(("mode", "kinds"), [
    ("duplicates", {"duplicate completed"}),
    ("garbage", {"malformed json", "binary frame", "invalid utf-8"}),
])
def test_protocol_anomalies_fail_the_run_and_are_counted_per_kind(tmp_path, mode, kinds):
    with HostileServer(mode) as server:
        proc = run_chat(server.ws_url, tmp_path, seconds=6)
    rep = report_of(tmp_path)
    out = log_of(tmp_path)
    assert proc.returncode == EXIT_FAIL, out[-3000:]
    assert failing(rep) == {"WS protocol anomaly count < 1"}, failing(rep)  # the replies themselves were fine
    assert set(rep["anomalies"]) == kinds, rep["anomalies"]
    replies = rep["messages"]["completed"]
    assert replies > 10
    # one anomaly of each kind per reply (the last reply's extras may be cut off by the stop)
    assert all(replies - 5 <= rep["anomalies"][k] <= replies + 5 for k in kinds), (replies, rep["anomalies"])
    assert rep["metrics"]["WS protocol anomaly"]["failures"] == sum(rep["anomalies"].values())
    assert all(f"protocol anomaly: {k}" in out for k in kinds)  # Locust's own failure table names the kind


def test_healthy_hostile_server_passes_every_ci_line(tmp_path):
    with HostileServer("normal") as server:
        proc = run_chat(server.ws_url, tmp_path, seconds=6)
    rep = report_of(tmp_path)
    assert proc.returncode == 0, log_of(tmp_path)[-3000:]
    assert rep["verdict"] == "pass" and not failing(rep)
    judged = {f"{t['metric']} {t['expression']}": t for t in rep["thresholds"]}
    for line in ("WS disconnect count < 1", "WS events missing count < 1", "WS protocol anomaly count < 1"):
        assert judged[line]["status"] == "pass" and judged[line]["value"] == 0, judged[line]
    assert judged["WS connect fail_ratio < 0.01"]["samples"] >= 5
    assert_messages_add_up(rep)
    assert rep["messages"]["failed"] == 0


@pytest.mark.timeout(120)
def test_healthy_reference_backend_passes_with_health_lines_judged(backend, tmp_path):
    """The users stop at the end of the run and close their connections: planned, not unplanned disconnects."""
    proc = run_chat(backend.ws_url, tmp_path, "--jwt-secret", backend.jwt_secret, "--sla-profile", "local",
                    "--ws-heartbeat-interval", "1", seconds=8, users=10, env=backend.env)
    rep = report_of(tmp_path)
    out = log_of(tmp_path)
    assert proc.returncode == 0, out[-3000:]
    assert rep["verdict"] == "pass", rep["verdict_reasons"]
    judged = {f"{t['metric']} {t['expression']}": t for t in rep["thresholds"]}
    assert judged["WS heartbeat fail_ratio < 0.01"]["samples"] > 0  # the heartbeat was judged, not "no data"
    for line in ("WS disconnect count < 1", "WS events missing count < 1", "WS protocol anomaly count < 1"):
        assert judged[line]["status"] == "pass", judged[line]
    assert "WS disconnect" not in rep["metrics"] and "WS protocol anomaly" not in rep["metrics"]
    assert_messages_add_up(rep)
