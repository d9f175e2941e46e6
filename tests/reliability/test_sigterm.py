"""A CI job cancelled mid-run (SIGTERM to a headless ``locust`` with chat + probe users): the process quits within
``--stop-timeout`` plus a few seconds, still writes the SLA report and the final stats, and loses no message."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import locust_env, spawn_locust, wait_until


@pytest.mark.timeout(90)
def test_sigterm_mid_run_quits_promptly_with_reports_and_no_lost_message(backend, tmp_path: Path) -> None:
    out, report, log = tmp_path / "bookkeeping.json", tmp_path / "sla.json", tmp_path / "locust.log"
    proc = spawn_locust(["--headless", "-u", "5", "-r", "5", "-t", "120s", "--stop-timeout", "3",
                         "--only-summary", "-H", backend.ws_url, "--ws-think-time", "0", "--csv", str(tmp_path / "run"),
                         "--sla-report-json", str(report), "ChatUser", "RedisProbeUser"],
                        locust_env({**backend.env, "RELIABILITY_OUT": str(out)}), log)
    try:
        assert wait_until(lambda: "All users spawned" in log.read_text(errors="replace"), 40), log.read_text()
        time.sleep(5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text(errors="replace")
    print(f"quit {took:.1f} s after SIGTERM, exit {proc.returncode}")
    assert took < 3 + 10, (took, text[-2000:])
    assert "Traceback" not in text, text[-3000:]
    rep = json.loads(report.read_text())
    assert rep["state"] == "finished" and rep["metrics"]["WS agent_completed"]["count"] > 0
    assert (tmp_path / "run_stats.csv").exists()
    data = json.loads(out.read_text())
    assert data["sent"] == data["stats_completed_requests"] + data["abandoned"], {
        k: v for k, v in data.items() if k != "samples"}
    # the SLA report judges the same samples as the final stats (the ones ending during the stop included)
    assert rep["metrics"]["WS agent_completed"]["count"] == data["stats_completed_requests"]
