"""``--ws-arrival-rate`` is a total rate: with a master and 2 workers each worker sends half of it (the master
tells them their share), so the run sends what one process would, not twice as much."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
LOCUST = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py")]
RATE = 20.0
SECONDS = 10


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_arrival_rate_is_split_across_workers(backend, tmp_path: Path) -> None:
    env = {**os.environ, **backend.env, "PYTHONPATH": str(ROOT)}
    port = free_port()
    report = tmp_path / "sla.json"
    master = subprocess.Popen(
        [*LOCUST, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
         "--expect-workers", "2", "--headless", "-H", backend.ws_url, "-u", "4", "-r", "4", "-t", f"{SECONDS}s",
         "--stop-timeout", "5", "--ws-arrival-rate", str(RATE), "--sla-report-json", str(report),
         "--exit-code-on-error", "0", "ChatUser"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers = [
        subprocess.Popen([*LOCUST, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "ChatUser"],
                         cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        out, _ = master.communicate(timeout=90)
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
    assert "Traceback" not in out, out[-3000:]
    metrics = json.loads(report.read_text())["metrics"]
    # One "WS generator lag" sample per message sent on schedule, whichever worker sent it.
    sent = metrics["WS generator lag"]["count"]
    expected = RATE * SECONDS
    # Split: about RATE x SECONDS in all (less while users connect); without the split it would be ~2x that.
    assert 0.6 * expected <= sent <= 1.25 * expected, (sent, expected, out[-2000:])
