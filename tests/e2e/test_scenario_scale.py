"""``--scenario-scale`` end to end: a real ``locust`` process runs a scenario against the reference backend with
twice its users at every step, and the SLA report says so."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.registry import SCENARIOS

REPO = Path(__file__).resolve().parents[2]
SCENARIO = "ws-concurrent-degradation"  # stepped: 2, 4, 6, 8 chat users, plus one fixed health poller


@pytest.mark.timeout(90)
def test_scenario_scale_2_runs_twice_the_users_of_every_step(backend, tmp_path: Path) -> None:
    report = tmp_path / "sla.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_"))}
    env.update(backend.env, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py"), "--headless", "--only-summary",
         "--host", backend.ws_url, "--scenario", SCENARIO, "--scenario-duration", "8", "--scenario-scale", "2",
         "--sla-report-json", str(report)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=75, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 2 and "Traceback" not in out, out[-3000:]
    scenario = SCENARIOS[SCENARIO]
    steps = [step.users for step in scenario.shape.steps]  # type: ignore[attr-defined]
    # Locust's own account of the users it ran at each step
    spawned = [sum(json.loads(m).values()) for m in re.findall(r"All users spawned: (\{[^}]*\})", out)]
    assert spawned == [2 * users + scenario.fixed_users for users in steps], out[-3000:]
    assert f"peak {2 * max(steps) + scenario.fixed_users} users (--scenario-scale 2)" in out
    data = json.loads(report.read_text())
    assert data["scenario"] == {"name": SCENARIO, "scale": 2.0, "peak_users": 2 * max(steps) + scenario.fixed_users,
                                "shape": "stepped", "duration_s": 8.0}
    assert data["peak_users"] == data["scenario"]["peak_users"]  # the users the SLA engine saw running at once
