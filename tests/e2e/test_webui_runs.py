"""Web-UI runs are independent, driven in a real browser (Playwright with Debian's chromium; no browser download).

* A plain test, Stop, New, then scenario ``smoke`` with "Inject faults" (the backend's agent slowed by 2.5 s): when
  the scenario ends by itself, the SLA tab shows ``VERDICT: FAIL`` without a reload, failing rows first; the
  verdict is judged from the second test's samples only (its counts are Locust's own for that test, no ``FLOW``
  sample of the plain test's ``ChatFlowUser``, its start time is the second start), and the process exits with the
  SLA exit code.
* The same scenario started twice, once with the form and once with ``POST /swarm`` and an empty ``sla_config`` (as
  the form sends it), is judged by the same thresholds (not profile ``local``'s).

Needs ``pip install playwright`` (requirements.txt) and /usr/bin/chromium; skipped with that hint otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_backend.process import BackendProcess
from tests.helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SLA_TEST_CHROMIUM", "/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements.txt)")
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
    reason=f"headless Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`",
)
SCENARIO_SECONDS = 16  # smoke's 30 s shape and its agent-slow fault (5 s .. 25 s), shortened


class LocustWeb:
    """``locust -f locustfile.py`` with its web UI on a free port (no --autostart), against ``backend``."""

    def __init__(self, backend: BackendProcess, tmp: Path, *extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "locust.log"
        self.report_path = tmp / "sla.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_", "JWT_"))}
        env.update(backend.env)
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "locust"), "-f", "locustfile.py", "--web-host", "127.0.0.1",
             "--web-port", str(self.port), "-H", backend.ws_url, "--stop-timeout", "3",
             "--sla-report-json", str(self.report_path), *extra],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        assert wait_until(self._answers, 40), self.log()

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=40) as r:
            return json.loads(r.read())

    def post(self, path: str, form: dict[str, str]) -> Any:
        data = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(urllib.request.Request(self.base + path, data=data, method="POST"), timeout=20) as r:
            return json.loads(r.read() or b"{}")

    def sla(self) -> dict[str, Any]:
        return self.get("/sla/status")

    def locust_counts(self) -> dict[str, int]:
        """Locust's own request counts now, from ``/stats/requests/csv``: ``/stats/requests`` (what the Statistics
        tab polls) is memoized for 2 s or more, so right after a stop it can miss the samples of the last seconds
        (the messages that ended during the stop)."""
        with urllib.request.urlopen(self.base + "/stats/requests/csv", timeout=40) as r:
            rows = csv.DictReader(io.StringIO(r.read().decode()))
            return {f"{row['Type']} {row['Name']}": int(row["Request Count"]) for row in rows
                    if row["Name"] != "Aggregated"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def browser_page() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def own_backend(start_backend: Callable[..., BackendProcess]) -> BackendProcess:
    """A backend of this test's own: the agent-slow fault acts on the whole backend process."""
    return start_backend()


def start_from_form(page: Any, users: int, scenario: str = "", inject_faults: bool = False,
                    duration: str = "") -> float:
    page.fill("input[name=userCount]", str(users))
    page.fill("input[name=spawnRate]", str(users))
    custom = page.get_by_role("button", name="Custom parameters")
    if custom.get_attribute("aria-expanded") != "true":
        custom.click()
    page.select_option("select[name=scenario]", scenario)
    page.set_checked("input[name=injectFaults]", inject_faults)
    page.fill("input[name=scenarioDuration]", duration)
    started = time.time()
    page.click("button[type=submit]")
    return started


def sla_tab_text(page: Any) -> str:
    return page.locator("table").first.inner_text()


def judged_lines(snapshot: dict[str, Any]) -> set[tuple[str, str, bool]]:
    """The thresholds a report judges with (a glob's once, however many metrics it matched)."""
    return {(t["pattern"], t["expression"], bool(t.get("required"))) for t in snapshot["thresholds"]}


def judged_with(snapshot: dict[str, Any]) -> str:
    """What a report says it judged with: its profile, its scenario and its start (for failure messages)."""
    scenario = (snapshot.get("scenario") or {}).get("name")
    return (f"profile {snapshot.get('profile')!r}, scenario {scenario!r}, state {snapshot.get('state')!r}, "
            f"started {snapshot.get('started_at')}")


def metric_counts(snapshot: dict[str, Any]) -> dict[str, int]:
    return {name: m["count"] for name, m in (snapshot.get("metrics") or {}).items() if m.get("count")}


@pytest.mark.timeout(240)
def test_a_scenario_after_a_plain_run_is_judged_on_its_own_samples_and_fails(
    own_backend: BackendProcess, browser_page: Any, tmp_path: Path
) -> None:
    web = LocustWeb(own_backend, tmp_path)
    page = browser_page
    try:
        page.goto(web.base + "/")
        # 1. a plain run of every user class (ChatFlowUser too: FLOW samples), stopped with the button
        start_from_form(page, users=6)
        assert wait_until(lambda: web.locust_counts().get("WS agent_completed", 0) >= 5, 40), web.log()
        page.get_by_role("button", name="Stop").click()
        assert wait_until(lambda: web.sla().get("state") == "finished", 30), web.sla()
        first = web.sla()
        assert "FLOW login→send→receive" in metric_counts(first), metric_counts(first)
        # 2. New: smoke with its paired fault (agent-slow 2.5 s), ending by itself
        page.get_by_role("button", name="New").click()
        second_start = start_from_form(page, users=1, scenario="smoke", inject_faults=True,
                                       duration=str(SCENARIO_SECONDS))
        page.get_by_role("tab", name="SLA", exact=True).click()
        # the tab, never reloaded, follows the new test live, then shows its final verdict once it ended by itself
        page.wait_for_function("() => document.querySelector('table').innerText.includes('running, updated')")
        page.wait_for_function(
            "() => { const t = document.querySelector('table').innerText;"
            " return t.includes('VERDICT: FAIL') && t.includes('finished, updated'); }",
            timeout=(SCENARIO_SECONDS + 40) * 1000,
        )
        rows = [r.inner_text() for r in page.locator("table tbody tr").all()]
        assert "VERDICT: FAIL" in rows[0] and "FAIL" in rows[1], rows[:3]  # failing rows right after the verdict
        assert "WS agent_completed" in "\n".join(r for r in rows if "FAIL" in r), rows
        snap = web.sla()
        counts = metric_counts(snap)
        locust = web.locust_counts()
        assert (snap["state"], snap["verdict"]) == ("finished", "fail"), snap.get("verdict_reasons")
        assert not [m for m in counts if m.startswith("FLOW")], counts  # smoke runs no ChatFlowUser
        # the SLA also judges the messages still in flight at the stop past their limit (failed samples that
        # Locust's stats never see): its count is Locust's plus those, and every other metric is Locust's exactly
        at_stop = (snap.get("messages") or {}).get("failed_at_stop", 0)
        assert counts["WS agent_completed"] == locust["WS agent_completed"] + at_stop, (counts, locust, at_stop)
        same = [m for m in counts if m in locust and m != "WS agent_completed"]
        assert {m: counts[m] for m in same} == {m: locust[m] for m in same}
        assert counts["WS agent_completed"] < first["metrics"]["WS agent_completed"]["count"] + locust[
            "WS agent_completed"]
        started = time.mktime(time.strptime(snap["started_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert started >= second_start - 2, (snap["started_at"], second_start)
        failing = {t["metric"] for t in snap["thresholds"] if t["status"] == "fail"}
        assert "WS agent_completed" in failing, snap["thresholds"]
    finally:
        code = web.stop()
    report = json.loads(web.report_path.read_text())
    assert code == 3, web.log()
    assert report["verdict"] == "fail" and report["started_at"] == snap["started_at"], report["started_at"]
    assert metric_counts(report).get("WS agent_completed") == counts["WS agent_completed"]


@pytest.mark.timeout(200)
def test_the_same_scenario_started_by_form_and_by_post_is_judged_by_the_same_thresholds(
    backend: BackendProcess, browser_page: Any, tmp_path: Path
) -> None:
    web = LocustWeb(backend, tmp_path)
    page = browser_page
    try:
        page.goto(web.base + "/")
        start_from_form(page, users=1, scenario="smoke", duration="6")
        page.get_by_role("tab", name="SLA", exact=True).click()
        page.wait_for_function("() => document.querySelector('table').innerText.includes('finished, updated')",
                               timeout=50_000)
        by_form = web.sla()
        assert by_form["state"] == "finished", judged_with(by_form)
        assert (by_form.get("scenario") or {}).get("name") == "smoke", (judged_with(by_form), web.log())
        form_lines = judged_lines(by_form)
        assert ("WS events missing", "count < 1", False) in form_lines, (judged_with(by_form), form_lines)
        assert ("WS agent_completed", "p(95) < 2000", True) in form_lines, (judged_with(by_form), form_lines)
        answer = web.post("/swarm", {
            "user_count": "1", "spawn_rate": "1", "host": backend.ws_url, "scenario": "smoke",
            "scenario_duration": "6", "sla_config": "", "sla_profile": "local", "inject_faults": "false",
        })
        assert answer.get("success"), answer
        assert wait_until(lambda: web.sla().get("started_at") != by_form["started_at"], 20), (
            judged_with(web.sla()), web.log())
        assert wait_until(lambda: web.sla().get("state") == "finished", 40), judged_with(web.sla())
        by_post = web.sla()
        assert judged_lines(by_post) == form_lines, (judged_with(by_form), judged_with(by_post))
        assert by_post["profile"] == by_form["profile"] and "scenario smoke" in by_post["profile"], (
            judged_with(by_form), judged_with(by_post))
        assert (by_post.get("scenario") or {}).get("name") == "smoke", judged_with(by_post)
    finally:
        web.stop()
    log = web.log_path.read_text(errors="replace")
    assert "judging with profile 'local'" not in log and "thresholds were not handed over" not in log, log[-6000:]
