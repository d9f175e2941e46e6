"""A scenario under the staging profile's thresholds, live against the reference backend.

``--sla-profile staging`` refuses a loopback target (the staging checks in ``scenarios.staging.staging_problems``),
so the same thresholds come in as a file (``--sla-config config/staging.toml``): ``smoke`` runs no
``ChatFlowUser``, and staging's required ``FLOW`` line must not fail it with "no data (required)"; the seed's
failure line ``max < 3000`` is judged, and what staging requires of the tiers smoke does probe is judged on data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference_backend.process import BackendProcess

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_smoke_under_the_staging_thresholds_passes_on_a_healthy_backend(backend: BackendProcess, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_", "JWT_"))}
    env.update(backend.env)
    report_path = tmp_path / "sla.json"
    res = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py"), "--headless", "--only-summary",
         "--host", backend.ws_url, "--scenario", "smoke", "--scenario-duration", "8", "--sla-warmup", "1s",
         "--sla-config", str(REPO / "config" / "staging.toml"), "--sla-report-json", str(report_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    assert res.returncode == 0, (report.get("verdict_reasons"), res.stderr[-3000:])
    assert report["verdict"] == "pass", report.get("verdict_reasons")
    judged = {(t["pattern"], t["expression"]): t for t in report["thresholds"]}
    assert not [k for k in judged if k[0].startswith("FLOW")], sorted(judged)
    assert "FLOW login→send→receive max < 15000" in res.stderr  # left out, and the log says so
    seed = judged[("WS agent_completed", "max < 3000")]
    assert seed["status"] == "pass" and seed["samples"] > 0
    required = [t for t in report["thresholds"] if t.get("required")]
    assert required and all(t["samples"] for t in required), [(t["metric"], t["samples"]) for t in required]
