"""End-to-end: the attribution of a failing ``rps`` line against the reference backend, local and master + worker.

Three closed-model chat users thinking 1 s between ~0.5 s replies can send about 2 messages a second, so
``rps >= 10`` cannot hold however fast the backend is: the report must put that on the offered load (with the cap
computed from the run's own users, think time and replies), not on the backend.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = str(ROOT / "locustfile.py")
RPS_ONLY = '[thresholds]\n"WS agent_completed" = ["rps >= 10"]\n'


def _locust(args: list[str], env: dict[str, str]) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--only-summary", *args]


def _run(args: list[str], env: dict[str, str], tmp_path: Path, timeout: float) -> tuple[int, str]:
    proc = subprocess.run(_locust(args, env), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def _run_distributed(args: list[str], env: dict[str, str], tmp_path: Path, timeout: float) -> tuple[int, str]:
    port = free_port()
    master = subprocess.Popen(
        _locust([*args, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                 "--expect-workers", "1"], env),
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    worker = subprocess.Popen(
        _locust(["--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "ChatUser"], env),
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        out, _ = master.communicate(timeout=timeout)
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
    return master.returncode, out


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", ["local", "master+worker"])
def test_rps_out_of_reach_of_few_thinking_users_is_put_on_the_offered_load(backend, tmp_path: Path, mode: str):
    cfg = tmp_path / "rps.toml"
    cfg.write_text(RPS_ONLY, encoding="utf-8")
    report_path = tmp_path / "report.json"
    env = {**os.environ, **backend.env, "PYTHONPATH": str(ROOT)}
    args = ["--headless", "-H", backend.ws_url, "-u", "3", "-r", "10", "-t", "8s", "--stop-timeout", "5",
            "--ws-think-time", "1", "--sla-config", str(cfg), "--sla-report-json", str(report_path), "ChatUser"]
    run = _run if mode == "local" else _run_distributed
    code, out = run(args, env, tmp_path, 100)
    assert "Traceback" not in out, out[-4000:]
    assert code == 3, out[-4000:]
    rep: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    assert rep["verdict"] == "fail" and rep["workers"] == (0 if mode == "local" else 1), out[-3000:]
    (row,) = [t for t in rep["thresholds"] if t["expression"] == "rps >= 10"]
    (a,) = [a for a in rep["attribution"] if a["expression"] == "rps >= 10"]
    load = a["offered_load"]
    assert load is not None, a
    # the facts: the run's own users (time average over the run, spawn included), think time and mean reply
    assert (load["model"], load["peak_users"], load["inflight"], load["think_s"]) == ("closed", 3, 1.0, 1.0), load
    assert 2.0 <= load["users"] <= 3.0, load
    assert load["reply_s"] == pytest.approx(rep["metrics"]["WS agent_completed"]["avg"] / 1000.0, rel=0.02), load
    cap = load["users"] * load["inflight"] / (load["think_s"] + load["reply_s"])
    assert load["cap_rps"] == pytest.approx(cap, abs=0.01) and cap < 10, load
    assert load["caps"] is True and row["value"] < 10, (row, load)
    summary = a["summary"]
    said = re.search(r"the offered load caps throughput at ([\d.]+) msg/s \(([\d.]+) users, think ~1 s, "
                     r"reply ~([\d.]+) s\): raise users or lower think time", summary)
    assert said, summary
    assert float(said[1]) == pytest.approx(load["cap_rps"], abs=0.051), summary  # one decimal
    assert float(said[2]) == pytest.approx(load["users"], abs=0.051), summary
    assert float(said[3]) == pytest.approx(load["reply_s"], abs=0.0051), summary  # two significant digits
    assert "itself is slow" not in summary, summary
    if "the run delivered" in summary:  # messages failed (a shared tier degraded by another run): less than the
        assert "no tier was measured" in summary, summary  # load offered, so the tier clause follows (none here)
    else:  # the load alone: nothing else is said
        assert "slow" not in summary and "tier" not in summary, summary
    assert "SLA attribution: WS agent_completed rps" in out and "the offered load caps throughput" in out
