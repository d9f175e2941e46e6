"""End-to-end: the verdict states against the reference backend (real ``locust`` processes, short runs).

* ``-u 0`` (closed model, and the open model with ``--ws-arrival-rate``): no user, nothing measured -> a warning at
  start, exit 4 (``--sla-inconclusive-exit-code``), JSON verdict ``inconclusive``; it was PASS / exit 0;
* ``-u -5``: one line, exit 2, no traceback, no verdict line (it was a greenlet traceback, then "SLA verdict: PASS");
* thresholds on metrics the run never produces (``PG *`` while only ``ChatUser`` runs) -> inconclusive, naming what
  the run did produce;
* open metric names: a plain HttpUser's ``GET /health`` is judged by a threshold file (pass, and fail on an
  impossible limit), and a misspelt ``GET /helth`` gets a "did you mean 'GET /health'".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).parent / "locust")
HTTP_LOCUSTFILE = str(Path(__file__).resolve().parent / "http_sla_locustfile.py")


def run(backend, args: list[str], tmp_path: Path, locustfile: str = str(ROOT / "locustfile.py"),
        timeout: float = 60) -> tuple[int, str, dict[str, Any] | None]:
    """``locust --headless`` with ``args``; (exit code, stdout + stderr, the JSON report or None)."""
    report = tmp_path / "r.json"
    proc = subprocess.run(
        [LOCUST, "-f", locustfile, "--headless", "--only-summary", "--sla-report-json", str(report),
         "--sla-report-junit", str(tmp_path / "r.xml"), *args],
        cwd=ROOT, env={**os.environ, **backend.env}, capture_output=True, text=True, timeout=timeout,
    )
    out = proc.stdout + proc.stderr
    return proc.returncode, out, json.loads(report.read_text(encoding="utf-8")) if report.exists() else None


@pytest.mark.timeout(90)
@pytest.mark.parametrize("open_model", [False, True], ids=["closed", "arrival-rate"])
def test_zero_users_is_inconclusive_exit_4_with_a_warning(backend, tmp_path, open_model):
    extra = ["--ws-arrival-rate", "5"] if open_model else []
    rc, out, rep = run(
        backend, ["ChatUser", "-u", "0", "-t", "4s", "--host", backend.ws_url, "--sla-profile", "ci", *extra], tmp_path
    )
    assert rc == 4, out[-3000:]
    assert rep is not None and rep["verdict"] == "inconclusive" and rep["exit_code"] == 4, rep
    assert rep["peak_users"] == 0 and rep["samples"] == 0
    assert "-u/--users 0: no user will run" in out  # the warning at start
    assert "never had a user" in rep["verdict_reasons"][0]
    assert "SLA verdict: INCONCLUSIVE (exit code 4)" in out and "SLA verdict: PASS" not in out
    assert 'type="SLAInconclusive"' in (tmp_path / "r.xml").read_text(encoding="utf-8")


@pytest.mark.timeout(60)
def test_negative_users_is_a_usage_error_in_one_line(backend, tmp_path):
    rc, out, rep = run(backend, ["ChatUser", "-u", "-5", "-t", "4s", "--host", backend.ws_url], tmp_path)
    assert rc == 2, out[-3000:]
    errors = [ln for ln in out.splitlines() if "/ERROR/" in ln or "/CRITICAL/" in ln]
    assert len(errors) == 1 and "-u/--users -5: expected a number of users >= 1" in errors[0], errors
    assert "Traceback" not in out and "SLA verdict" not in out and "Ramping" not in out
    assert rep is None


@pytest.mark.timeout(90)
def test_thresholds_on_metrics_the_run_never_produces_are_inconclusive(backend, tmp_path):
    cfg = tmp_path / "pg.toml"
    cfg.write_text('[thresholds]\n"PG *" = ["p(95) < 200"]\n"PG thread history" = ["p(99) < 500"]\n', encoding="utf-8")
    rc, out, rep = run(
        backend,
        ["ChatUser", "-u", "2", "-r", "2", "-t", "6s", "--host", backend.ws_url, "--ws-think-time", "0.2",
         "--sla-config", str(cfg), "--exit-code-on-error", "0"],
        tmp_path,
    )
    assert rc == 4, out[-3000:]
    assert rep is not None and rep["verdict"] == "inconclusive", rep["verdict_reasons"]
    assert rep["metrics"]["WS agent_completed"]["count"] > 0 and rep["peak_users"] == 2
    assert {t["status"] for t in rep["thresholds"]} == {"no data"}
    (reason,) = rep["verdict_reasons"]
    assert "no threshold was judged on a metric that had samples" in reason and "WS agent_completed" in reason


HTTP_OK = """
[thresholds]
"GET /health" = ["p(95) < 1000", "fail_ratio < 0.01"]
"GET /helth" = ["p(95) < 1000"]
"""
HTTP_IMPOSSIBLE = """
[thresholds]
"GET /health" = ["max < 0.001"]
"""


@pytest.mark.timeout(120)
def test_open_metric_names_judge_a_plain_http_user(backend, tmp_path):
    """A plain HttpUser's ``GET /health`` is gated like the suite's own metrics; a typo gets a "did you mean"."""
    common = ["-u", "2", "-r", "2", "-t", "4s", "--host", backend.http_url]
    ok_cfg = tmp_path / "ok.toml"
    ok_cfg.write_text(HTTP_OK, encoding="utf-8")
    rc, out, rep = run(backend, [*common, "--sla-config", str(ok_cfg)], tmp_path / "ok", HTTP_LOCUSTFILE)
    assert rc == 0, out[-3000:]
    assert rep is not None and rep["verdict"] == "pass", rep["verdict_reasons"]
    rows = {(t["metric"], t["expression"]): t for t in rep["thresholds"]}
    health = rows[("GET /health", "p(95) < 1000")]
    assert health["status"] == "pass" and health["samples"] == rep["metrics"]["GET /health"]["count"] > 10
    typo = rows[("GET /helth", "p(95) < 1000")]
    assert typo["status"] == "no data" and typo["did_you_mean"] == ["GET /health"]
    assert "GET /helth p(95) < 1000 got no samples; did you mean 'GET /health'?" in out

    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text(HTTP_IMPOSSIBLE, encoding="utf-8")
    rc, out, rep = run(backend, [*common, "--sla-config", str(bad_cfg)], tmp_path / "bad", HTTP_LOCUSTFILE)
    assert rc == 3, out[-3000:]
    assert rep is not None and rep["verdict"] == "fail"
    assert "SLA FAILED: GET /health max < 0.001 was" in out
