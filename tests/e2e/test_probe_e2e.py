"""One headless ``locust -f locustfile.py`` run against the reference backend with the probe users (and the chat
user when the project has one): every tier ends up in the same stats table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROBES = ["RedisProbeUser", "PostgresProbeUser", "ClickHouseProbeUser", "HealthCheckUser"]


def _chat_class() -> str | None:
    """The chat user class offered by locustfile.py, if it exists yet."""
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--list"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    names = [line.strip() for line in proc.stdout.splitlines() if line.strip().endswith("User")]
    if "ChatUser" in names:
        return "ChatUser"
    chat = [n for n in names if n not in PROBES and "Chat" in n]
    return chat[0] if chat else None


def test_probe_users_with_chat_share_one_stats_table(backend, tmp_path: Path) -> None:
    chat = _chat_class()
    classes = PROBES + ([chat] if chat else [])
    users = len(PROBES) + (2 if chat else 0)
    env = {**os.environ, **backend.env, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless",
           "-H", backend.ws_url, "-u", str(users), "-r", str(users), "-t", "12s", "--stop-timeout", "5",
           "--csv", str(tmp_path / "run"), "--only-summary", "--sla-report-json", str(tmp_path / "sla.json"),
           *classes]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-4000:]
    with open(tmp_path / "run_stats.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] != "Aggregated"]
    seen = {(r["Type"], r["Name"]): r for r in rows}
    print(f"exit {proc.returncode}; chat class: {chat}; stats rows: {sorted(seen)}")
    # the samples every probe user takes at start, plus its most frequent task
    expected = [("REDIS", "connect"), ("REDIS", "pool acquire"), ("PG", "connect"), ("PG", "thread upsert"),
                ("PG", "message insert"), ("CH", "insert"), ("HTTP", "/health/ready"),
                ("HTTP", "ready:redis"), ("HTTP", "ready:postgres"), ("HTTP", "ready:clickhouse")]
    with open(tmp_path / "run_failures.csv", newline="") as f:
        failures = [(r["Method"], r["Name"], r["Error"], r["Occurrences"]) for r in csv.DictReader(f)]
    print(f"failures: {failures}")
    for key in expected:
        assert key in seen, (key, sorted(seen))
        # the tiers are shared with the whole team (faults, restarts): a stray failure is possible, a dead probe not
        assert int(seen[key]["Failure Count"]) < int(seen[key]["Request Count"]), (key, seen[key], failures)
    assert not any(m in ("REDIS", "PG", "CH") for m, *_ in failures), failures
    if chat:
        assert any(t == "WS" for t, _n in seen), sorted(seen)
    assert "Probe start-up check failed" not in out
    # the probes' and the resource monitor's gauges reach the SLA report
    gauges = json.loads((tmp_path / "sla.json").read_text()).get("gauges", {})
    print(f"gauges in the SLA report: {sorted(gauges)}")
    for name in ("locust:cpu_percent", "locust:rss_mb", "target:rss_mb", "redis:used_memory_mb", "pg:lock_waiters"):
        assert gauges.get(name), (name, sorted(gauges))
