"""The SLA HTML report of two real runs in headless Chromium: a healthy and a faulted ``--scenario smoke`` against
the reference backend (20 s each, one after the other, each against a backend of its own: side by side, on a slow
2-core VM under CI, the healthy run once measured a 90 ms Redis GET among its 11 and failed its 50 ms p(95), which
was the truth about that machine, not about the report). Both runs take ``--exit-code-on-error 0``, so the
thresholds alone decide the exit code: CI22's healthy run exited 1, Locust's code for a request that failed, while
its thresholds held (``test_scenario_proofs`` keeps asserting that a healthy ``smoke`` run fails no request).

Checks: the exit codes (0 / 3); the injected fault recorded in the JSON report; every chart drawn with a size in the
browser, the fault hatched on each time chart, no console error, no request besides the page itself (the report is
self-contained); each chart's data equal to the JSON (the unit suite's reader); Locust's own ``--html`` report
carrying the SLA summary and a link to the SLA report. Screenshots for a person to look at are saved under
``artifacts/`` (gitignored): ``sla-report-healthy.png``, ``sla-report-faulted.png``, ``locust-report-faulted.png``;
the faulted run's JSON goes to ``artifacts/sla-report-faulted.json`` (re-record the unit fixture from it:
``tests/fixtures/sla_report_faulted.json``, its ``histograms`` left out).

Drives Debian's ``/usr/bin/chromium`` through Playwright (no browser download); skipped without either.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reference_backend.process import BackendProcess
from tests.unit.test_sla_html import _charts, _same

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("SLA_TEST_CHROMIUM", "/usr/bin/chromium")
DURATION_S = 20
CHARTS = ("chart-load", "chart-latency", "chart-distribution", "chart-line-0", "chart-windows", "chart-stages",
          "chart-metrics", "chart-gauge-0")

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
    reason=f"headless Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`",
)


def _run(mode: str, backend: BackendProcess, out: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "--only-summary",
        "--host", backend.ws_url, "--scenario", "smoke", "--scenario-duration", str(DURATION_S),
        "--stop-timeout", "5", "--exit-code-on-error", "0", "--sla-report-json", str(out / f"{mode}.json"),
        "--sla-report-html", str(out / f"{mode}.html"), "--html", str(out / f"{mode}-locust.html"),
    ]
    if mode == "faulted":
        argv.append("--inject-faults")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_", "JWT_"))}
    env.update(backend.env, PYTHONUNBUFFERED="1")
    log = open(out / f"{mode}.log", "wb")  # noqa: SIM115 - the child holds it; closed with the process
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _browse(path: Path, shot: Path, check: Callable[[Any], None]) -> None:
    """Open ``path`` in headless Chromium, run ``check(page)``, save a full-page screenshot; no console error and
    no request besides the file itself."""
    errors: list[str] = []
    requests: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(20_000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            check(page)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert requests == [path.as_uri()], requests


def _check_report(report: dict[str, Any], faulted: bool) -> Callable[[Any], None]:
    def check(page: Any) -> None:
        for chart_id in CHARTS:
            box = page.locator(f"svg#{chart_id}").bounding_box()
            assert box and box["width"] > 300 and box["height"] > 100, (chart_id, box)
        time_charts = page.locator('svg[data-kind="time"]')
        assert time_charts.count() >= 6
        hatched = page.locator('svg[data-kind="time"] rect.span.fault')
        if faulted:
            assert hatched.count() == time_charts.count()  # the one fault on every time chart
            box = hatched.first.bounding_box()
            assert box and box["width"] > 20
        else:
            assert hatched.count() == 0
        verdict = page.locator("#verdict").inner_text()
        assert verdict == ("SLA FAILED" if faulted else "SLA PASSED")
        assert page.locator("#thresholds tbody tr").count() == len(report["thresholds"])

    return check


@pytest.mark.timeout(DURATION_S * 2 + 180)
def test_healthy_and_faulted_reports_in_chromium(tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    backends = {mode: BackendProcess.start(tmp_path / f"backend-{mode}") for mode in ("healthy", "faulted")}
    try:
        procs = {}
        codes = {}
        for mode, backend in backends.items():
            proc = procs[mode] = _run(mode, backend, tmp_path)
            try:
                codes[mode] = proc.wait(timeout=DURATION_S + 90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                codes[mode] = None
    finally:
        for backend in backends.values():
            backend.stop()
    logs = {m: (tmp_path / f"{m}.log").read_text(errors="replace")[-3000:] for m in procs}
    assert codes == {"healthy": 0, "faulted": 3}, logs
    reports = {m: json.loads((tmp_path / f"{m}.json").read_text(encoding="utf-8")) for m in procs}
    shutil.copy(tmp_path / "faulted.json", ARTIFACTS / "sla-report-faulted.json")

    assert reports["healthy"]["faults"] == []
    (fault,) = reports["faulted"]["faults"]
    scale = DURATION_S / 30  # smoke: agent-slow 2500 ms from 5 s for 20 s of its 30 s
    assert (fault["kind"], fault["detail"], fault["error"]) == ("agent-slow", "2500 ms", None)
    assert fault["start_s"] == pytest.approx(5 * scale, abs=1.5)
    assert fault["end_s"] == pytest.approx(min(25 * scale, reports["faulted"]["duration_s"]), abs=1.5)

    for mode, report in reports.items():
        html_path = tmp_path / f"{mode}.html"
        charts = _charts(html_path.read_text(encoding="utf-8"))
        assert _same(charts["chart-load"].series["requests/s"].values, report["timeline"]["requests_per_s"])
        assert _same(charts["chart-latency"].series["p95"].values, report["timeline"]["latency"]["p95"])
        assert [c for *_, c in charts["chart-distribution"].bins] == [c for c in report["distribution"]["counts"] if c]
        assert report["locust_report"] == f"{mode}-locust.html"
        _browse(html_path, ARTIFACTS / f"sla-report-{mode}.png", _check_report(report, mode == "faulted"))

    def locust_page(page: Any) -> None:
        summary = page.locator("#sla-summary")
        assert "SLA FAIL" in summary.inner_text()
        assert summary.locator("a").get_attribute("href") == "faulted.html"
        page.wait_for_selector("#root *")  # Locust's own report rendered below it

    locust_html = tmp_path / "faulted-locust.html"
    errors: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(locust_html.as_uri(), wait_until="load")
            locust_page(page)
            page.screenshot(path=str(ARTIFACTS / "locust-report-faulted.png"))
        finally:
            browser.close()
    assert not errors, errors
