"""Server-side tier gauges (users/tier_gauges.py) against the real Redis, PostgreSQL, ClickHouse and the reference
backend: the readings reach the JSON report of a short distributed run (read by the master alone); an unreachable
tier is one warning and the run still judges; a tier that accepts connections and never answers holds nothing up."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.env import Environment

from sla_checks.state import state_of
from users.probe_options import ProbeConfig
from users.tier_gauges import TierGauges, clickhouse_reader, pg_reader

pytestmark = pytest.mark.timeout(150)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-tier-gauges"
TIER_ONLY = ("redis:ops_per_sec", "redis:blocked_clients", "pg:sessions_idle", "pg:connections", "pg:max_connections",
             "pg:locks_not_granted", "pg:commits_per_s", "clickhouse:queries_running", "clickhouse:queries_per_s",
             "backend:connections", "backend:in_flight")
"""Gauges only the tier readers record (the probes record others)."""


def _locust(tmp_path: Path, args: list[str], classes: list[str], env: dict[str, str] | None = None,
            run_time: str = "6s") -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "-u", str(len(classes)),
           "-r", str(len(classes)), "-t", run_time, "--stop-timeout", "3", "--only-summary", *args, *classes]
    return subprocess.run(cmd, cwd=tmp_path, env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


def test_tier_gauges_reach_the_report_read_by_the_master_only(backend, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = _locust(tmp_path, ["-H", backend.ws_url, "--processes", "2", "--tier-gauges-interval", "1",
                              "--sla-report-json", str(report)],
                   ["RedisProbeUser", "PostgresProbeUser", "ClickHouseProbeUser", "HealthCheckUser"],
                   env=backend.env, run_time="8s")
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-4000:]
    assert out.count("Tier gauges every 1 s: redis, pg, clickhouse, health") == 1, out[-4000:]
    assert "Tier gauges: cannot read" not in out, out[-4000:]
    gauges = json.loads(report.read_text())["gauges"]
    for name in TIER_ONLY:
        assert name in gauges, (name, sorted(gauges))
    # about one reading a second over the run, from one reader (the master), not one per process
    readings = len(gauges["pg:sessions_idle"])
    assert 4 <= readings <= 10, readings
    assert gauges["pg:max_connections"][-1][1] >= 1
    assert gauges["pg:connections"][-1][1] >= 1  # at least the PG probe's own pooled session
    assert all(v >= 0 for _ts, v in gauges["clickhouse:queries_per_s"])


def test_unreachable_tier_is_one_warning_and_the_run_still_judges(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    started = time.monotonic()
    proc = _locust(tmp_path, ["--tier-gauges-interval", "1", "--sla-report-json", str(report),
                              "--pg-dsn", f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"],
                   ["RedisProbeUser"], run_time="5s")
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    warnings = [line for line in out.splitlines() if "Tier gauges: cannot read" in line]
    assert len(warnings) == 1, out[-3000:]
    assert "cannot read pg at postgresql://postgres:***@127.0.0.1:1/test" in warnings[0]
    assert "--pg-dsn" in warnings[0] and SECRET not in out
    doc = json.loads(report.read_text())
    assert doc["verdict"] == "pass", doc["verdict_reasons"]
    assert "redis:ops_per_sec" in doc["gauges"] and not any(g.startswith("pg:s") for g in doc["gauges"])
    assert elapsed < 30, elapsed


class _BlackHole:
    """A loopback listener that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


def test_silent_tier_times_out_warns_once_and_stops_promptly(caplog: pytest.LogCaptureFixture) -> None:
    hole = _BlackHole()
    try:
        cfg = ProbeConfig(pg_dsn=f"postgresql://postgres@127.0.0.1:{hole.port}/test",
                          clickhouse_url=f"http://127.0.0.1:{hole.port}")
        env = Environment()
        state_of(env).probe_config = cfg
        monitor = TierGauges(env, interval=1.0, readers=[pg_reader(cfg, 1.0), clickhouse_reader(cfg, 1.0)])
        ticks: list[float] = []

        def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                gevent.sleep(0.05)

        tick = gevent.spawn(ticker)
        with caplog.at_level(logging.WARNING, logger="users.tier_gauges"):
            monitor.start()
            gevent.sleep(3.0)
            started = time.monotonic()
            monitor.stop()
            stop_s = time.monotonic() - started
        tick.kill()
    finally:
        hole.close()
    warnings = [r.getMessage() for r in caplog.records if "Tier gauges" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert any("cannot read pg" in w and "no answer within 1 s" in w for w in warnings), warnings
    assert any("cannot read clickhouse" in w for w in warnings), warnings
    assert stop_s < 2.0
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert max(gaps) < 0.5, max(gaps)  # the readers waited cooperatively: the process kept running
    assert not state_of(env).pending_gauges
