"""A probe scenario judges the statements the probe runs: ``pg-message-flow-queries`` with ``--pg-queries FILE``,
and ``redis-write-memory-pressure`` refused under ``--probe-read-only``; real ``locust`` runs against the reference
backend and the real PostgreSQL.

* healthy: a query file of message-flow reads on the backend's own tables: the scenario's lines on the bundled
  statements (``PG thread history`` ...) are gone, each of the file's queries is judged ``p(95) < 200`` on samples,
  the run passes (exit 0);
* slow: the same file plus a query that really is slow (``pg_sleep(0.3)``): its line fails, the run fails (exit 3),
  the fast queries still pass;
* read-only: ``redis-write-memory-pressure --probe-read-only`` is a usage error (exit 2) whose one line names the
  conflict and the fix, before any user starts; in the web UI the start form's read-only box refuses the start the
  same way (the answer carries the line, nothing runs).

The two query-file runs go in parallel (~10 s wall); each refusal takes a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from reference_backend.process import BackendProcess
from tests.e2e.test_scenario_proofs import HEALTHY_WARMUP, _env
from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
DURATION = "8"

FLOW_READS = """
[queries."recent messages"]
sql = "SELECT role, content, created_at FROM messages WHERE thread_id = %s ORDER BY created_at DESC LIMIT %s"
params = ["e2e-query-file-thread", 20]
weight = 2

[queries."thread count"]
sql = "SELECT count(*) FROM threads WHERE user_id = %(user)s"
params = { user = "e2e-query-file-user" }
weight = 2  # each query of the file is required: drawn often enough that an 8 s run samples it
"""
SLOW = """
[queries."slow history"]
sql = "SELECT pg_sleep(0.3), count(*) FROM messages WHERE thread_id = %s"
params = ["e2e-query-file-thread"]
"""


def _argv(backend: BackendProcess, report: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py"), "--headless", "--only-summary",
        "--host", backend.ws_url, "--stop-timeout", "5", "--sla-report-json", str(report), *extra,
    ]


def _report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _by_metric(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{t['metric']} {t['expression']}": t for t in report.get("thresholds", [])}


@pytest.mark.timeout(120)
def test_pg_message_flow_queries_judges_the_query_file_healthy_and_slow(backend: BackendProcess,
                                                                      tmp_path: Path) -> None:
    healthy_file, slow_file = tmp_path / "flow.toml", tmp_path / "flow-slow.toml"
    healthy_file.write_text(FLOW_READS)
    slow_file.write_text(FLOW_READS + SLOW)
    runs = {}
    for name, qfile in (("healthy", healthy_file), ("slow", slow_file)):
        report, log = tmp_path / f"{name}.json", tmp_path / f"{name}.log"
        argv = _argv(backend, report, "--scenario", "pg-message-flow-queries", "--scenario-duration", DURATION,
                     "--sla-warmup", HEALTHY_WARMUP, "--pg-queries", str(qfile))
        with log.open("w") as out:
            proc = subprocess.Popen(argv, cwd=REPO, env=_env(backend), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        runs[name] = (proc, report, log)
    deadline = time.monotonic() + 90
    for proc, _, _ in runs.values():
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    proc, report_path, log = runs["healthy"]
    report, text = _report(report_path), log.read_text(errors="replace")
    judged = _by_metric(report)
    assert proc.returncode == 0, (report.get("verdict_reasons"), text[-3000:])
    assert report["verdict"] == "pass", report.get("verdict_reasons")
    assert not [k for k in judged if k.startswith(("PG thread history", "PG message insert", "PG thread update"))], \
        sorted(judged)
    for query in ("recent messages", "thread count"):
        line = judged[f"PG query {query} p(95) < 200"]
        assert line["status"] == "pass" and line["samples"] > 0 and line["required"], line
    assert "--pg-queries: the probe runs the file's 2 statement(s), not the bundled backend's" in text

    proc, report_path, log = runs["slow"]
    report, text = _report(report_path), log.read_text(errors="replace")
    judged = _by_metric(report)
    assert proc.returncode == 3, (report.get("verdict_reasons"), text[-3000:])
    assert report["verdict"] == "fail"
    slow = judged["PG query slow history p(95) < 200"]
    assert slow["status"] == "fail" and slow["samples"] > 0 and slow["value"] >= 300, slow
    assert judged["PG query recent messages p(95) < 200"]["status"] == "pass"
    assert [t["metric"] for t in report["thresholds"] if t["status"] == "fail"] == ["PG query slow history"]


@pytest.mark.timeout(60)
def test_redis_write_memory_pressure_is_refused_under_probe_read_only(backend: BackendProcess,
                                                                     tmp_path: Path) -> None:
    report = tmp_path / "sla.json"
    res = subprocess.run(
        _argv(backend, report, "--scenario", "redis-write-memory-pressure", "--scenario-duration", "5",
              "--probe-read-only"),
        cwd=REPO, env=_env(backend), capture_output=True, text=True, timeout=45, stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 2, res.stderr[-3000:]
    errors = [line for line in res.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, res.stderr[-3000:]
    assert ("scenario redis-write-memory-pressure measures cache writes (REDIS SET*) under memory pressure, but "
            "--probe-read-only disables the probes' writes, so it would measure nothing: run it without "
            "--probe-read-only") in errors[0]
    assert "PASS" not in res.stderr and not report.exists()


@pytest.mark.timeout(60)
def test_web_ui_refuses_redis_write_memory_pressure_with_read_only_ticked(backend: BackendProcess,
                                                                          tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py"), "--web-host", "127.0.0.1",
             "--web-port", str(port), "--host", backend.ws_url],
            cwd=REPO, env=_env(backend), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text(errors="replace")
                time.sleep(0.3)

        def start(read_only: str) -> dict[str, Any]:
            form = urllib.parse.urlencode({
                "user_count": 1, "spawn_rate": 1, "host": backend.ws_url, "scenario": "redis-write-memory-pressure",
                "scenario_duration": "5", "probe_read_only": read_only,
            }).encode()
            with urllib.request.urlopen(urllib.request.Request(base + "/swarm", data=form), timeout=10) as r:
                answer: dict[str, Any] = json.loads(r.read())
            return answer

        answer = start("true")
        assert answer["success"] is False, answer
        assert "--probe-read-only disables the probes' writes" in answer["message"], answer
        with urllib.request.urlopen(base + "/stats/requests", timeout=5) as r:
            assert json.loads(r.read())["state"] in ("ready", "stopped")  # nothing started
        answer = start("false")  # the same scenario, writes allowed: it starts
        assert answer["success"] is True, answer
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
