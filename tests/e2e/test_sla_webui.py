"""Headless-Chromium checks of the SLA HTML report and of the live SLA tab in Locust's web UI.

Chromium is driven over the DevTools protocol (websocket-client, already a suite dependency): console errors and
uncaught exceptions are collected from ``Runtime``/``Log`` events, the DOM is queried with ``Runtime.evaluate`` and
screenshots are saved under ``artifacts/`` (gitignored) for a person to look at.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped with that hint when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from sla_checks.attribution import tier_of
from sla_checks.report_html import write_html_report
from tests.helpers import free_port
from tests.unit.test_sla_html import FIXTURE, example_report

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("SLA_TEST_CHROMIUM", "/usr/bin/chromium")
LOCUST = ROOT / ".venv" / "bin" / "locust"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)),
    reason=f"headless Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`",
)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class CdpPage:
    """One Chromium tab over the DevTools protocol: send commands, keep every event, collect console errors."""

    def __init__(self, ws_url: str, timeout: float = 20.0) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(
        self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"DevTools {method} got no answer within {timeout or self.timeout} s")
            self.ws.settimeout(remaining)
            message = json.loads(self.ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method} failed: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate({expression!r}) threw: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def navigate(self, url: str, timeout: float = 30.0) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'", timeout)

    def wait_for(self, expression: str, timeout: float, interval: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"waited {timeout} s for {expression!r}; last value {value!r}")

    def screenshot(self, path: Path, width: int = 1280, max_height: int = 8000) -> Path:
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
        height = int(min(max(size.get("height", 900), 600), max_height))
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        data = self.send("Page.captureScreenshot", {"format": "png"}, timeout=60)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert calls and error-level log entries (network, CSP ...)."""
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                errors.append(
                    f"Uncaught: {details.get('exception', {}).get('description') or details.get('text')}"
                )
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = [a.get("value", a.get("description", "")) for a in params.get("args", [])]
                errors.append(f"console.{params.get('type')}: {' '.join(map(str, args))}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                errors.append(
                    f"log {entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip()
                )
        return errors

    def close(self) -> None:
        try:
            self.ws.close()
        except OSError:
            pass


class Chromium:
    """A headless Chromium process with remote debugging on a free port (read from DevToolsActivePort)."""

    def __init__(self, workdir: Path) -> None:
        self.profile = workdir / "chromium-profile"
        self.profile.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "chromium.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not open its DevTools port; log: {self.log_path}")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])

    def page(self) -> CdpPage:
        deadline = time.monotonic() + 15
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=5) as response:
                targets = json.loads(response.read())
            pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
            if pages:
                return CdpPage(pages[0]["webSocketDebuggerUrl"])
            if time.monotonic() > deadline:
                raise RuntimeError(f"chromium has no page target: {targets}")
            time.sleep(0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    browser = Chromium(tmp_path)
    try:
        yield browser
    finally:
        browser.close()


# ------------------------------------------------------------------------------------------------ (a) HTML report


def _reports() -> list[Any]:
    params = [pytest.param("synthetic", example_report(), id="synthetic")]
    if FIXTURE.exists():  # the SLA core's committed example, as its engine writes it
        params.append(
            pytest.param("core", json.loads(FIXTURE.read_text(encoding="utf-8")), id="core-fixture")
        )
    return params


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("name", "report"), _reports())
def test_html_report_renders_in_chromium_with_chart_points_and_no_console_errors(
    chromium: Chromium, tmp_path: Path, name: str, report: dict[str, Any]
) -> None:
    html_path = write_html_report(report, tmp_path / "sla-report.html")
    page = chromium.page()
    try:
        page.navigate(html_path.as_uri())
        assert "SLA report: FAIL" in page.evaluate("document.title")
        assert page.evaluate("document.getElementById('verdict').innerText") == "SLA FAILED"
        rows = page.evaluate("document.querySelectorAll('#thresholds tbody tr').length")
        assert rows == len(report["thresholds"])
        # every chart has data (points, lines, bins) that the browser laid out inside the chart's box
        charts = page.evaluate(
            """Array.from(document.querySelectorAll('svg.chart-svg')).map(svg => {
                 const box = svg.getBoundingClientRect();
                 const pts = Array.from(svg.querySelectorAll('.pt, .series polyline, rect.bin'))
                     .map(p => p.getBoundingClientRect());
                 const inside = pts.filter(r => (r.width > 0 || r.height > 0) && r.left >= box.left - 1
                     && r.right <= box.right + 1 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1);
                 return {id: svg.id, width: box.width, points: pts.length, inside: inside.length,
                         lines: svg.querySelectorAll('polyline').length,
                         dots: svg.querySelectorAll('.pt').length};
               })"""
        )
        by_id = {c["id"]: c for c in charts}
        assert {"chart-windows", "chart-stages", "chart-metrics", "chart-gauge-0"} <= set(by_id)
        for chart in charts:
            assert chart["width"] > 300, chart
            assert chart["points"] > 0 and chart["inside"] == chart["points"], chart
        tiers = {tier_of(m) for w in report["windows"] for m in w["metrics"]} - {None}
        assert by_id["chart-windows"]["lines"] == 1 + len(tiers)  # WS agent_completed + one line per tier
        expected = sum(
            ("WS agent_completed" in w["metrics"]) + len({tier_of(m) for m in w["metrics"]} - {None})
            for w in report["windows"]
        )  # one point per window for each series that has data in that window
        assert by_id["chart-windows"]["dots"] == expected
        screenshot = page.screenshot(ARTIFACTS / f"sla_report_chromium_{name}.png")
        assert screenshot.stat().st_size > 10_000
        assert page.console_errors() == []
    finally:
        page.close()


@pytest.mark.timeout(90)
def test_html_report_blocks_injected_markup_in_chromium(chromium: Chromium, tmp_path: Path) -> None:
    report = example_report()
    report["thresholds"][0]["description"] = (
        "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
    )
    report["attribution"][0]["summary"] = "<b id=injected>bold</b>"
    html_path = write_html_report(report, tmp_path / "hostile.html")
    page = chromium.page()
    try:
        page.navigate(html_path.as_uri())
        assert page.evaluate("document.title").startswith("SLA report")
        assert page.evaluate("document.querySelectorAll('script, img, #injected').length") == 0
        assert "<script>document.title='pwned'</script>" in page.evaluate("document.body.innerText")
        assert page.console_errors() == []
    finally:
        page.close()


# ------------------------------------------------------------------------------------------------ (b) live web UI

# The locustfile of the live test (written to tmp_path so pytest never imports it): synthetic chat, PG and Redis
# samples through the real SLA plugin and the SLA tab; healthy until the test creates the flag file, then the chat
# replies and PG "thread history" turn slow (a PG-lock-like incident), so the tab must go from pass to FAIL.
SYNTHETIC_LOCUSTFILE = textwrap.dedent(
    '''
    """Synthetic samples for the SLA web-UI test: healthy until $SLA_WEBUI_SLOW_FLAG exists, then PG-bound slow."""

    from __future__ import annotations

    import os
    import random

    import gevent
    import locust  # noqa: F401
    import psutil
    from locust import User, constant, task

    import sla_checks.plugin  # noqa: F401  (the SLA engine: --sla-* options, live evaluation, reports)
    import sla_checks.webui  # noqa: F401  (the SLA tab)
    from sla_checks.gauges import record_gauge

    FLAG = os.environ["SLA_WEBUI_SLOW_FLAG"]
    STAGES = ("agent_started→agent_thinking", "agent_thinking→tool_executing", "tool_executing→tool_completed",
              "tool_completed→agent_completed")
    PROCESS = psutil.Process()


    class SyntheticChatUser(User):
        wait_time = constant(0.05)

        @task
        def message(self) -> None:
            slow = os.path.exists(FLAG)
            pg = random.uniform(1500.0, 2500.0) if slow else random.uniform(3.0, 20.0)
            thinking = random.uniform(200.0, 500.0) + (pg if slow else 0.0)
            gaps = [thinking, random.uniform(50, 150), random.uniform(100, 300), random.uniform(20, 80)]
            fire = self.environment.events.request.fire
            fire(request_type="WS", name="agent_completed", response_time=sum(gaps), response_length=0,
                 exception=None, context={"outcome": "completed", "stages": dict(zip(STAGES, gaps))})
            fire(request_type="PG", name="thread history", response_time=pg, response_length=0, exception=None)
            fire(request_type="REDIS", name="GET", response_time=random.uniform(0.3, 2.0), response_length=0,
                 exception=None)
            if random.random() < 0.05:
                record_gauge(self.environment, "locust:cpu_percent", PROCESS.cpu_percent())
            gevent.sleep(0)
    '''
)

SLA_CONFIG = textwrap.dedent(
    """
    description = "SLA web-UI test: chat reply and tier thresholds"
    eval_interval_s = 1

    # 95 % of chat replies within 2 s
    [[thresholds."WS agent_completed"]]
    expression = "p(95) < 2000"
    description = "95 % of chat replies arrive in under 2 s"

    [[thresholds."WS agent_completed"]]
    expression = "within(2000) >= 95%"
    description = "at least 95 % of messages answered within 2 s"

    [[thresholds."PG *"]]
    expression = "p(95) < 200"
    description = "PostgreSQL statements under 200 ms at p95"

    [[thresholds."REDIS *"]]
    expression = "p(95) < 50"
    description = "Redis commands under 50 ms at p95"

    # no health user in this run: must show "no data", not a failure
    [[thresholds."HTTP /health*"]]
    expression = "p(99) < 1000"
    description = "health endpoints under 1 s at p99"
    """
)

# the rows of the SLA tab's table, as the browser shows them
ROWS_JS = """Array.from(document.querySelectorAll('table tbody tr')).map(
    tr => Array.from(tr.cells).map(td => td.innerText.trim()))"""


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"locust exited with {proc.returncode} before its web UI came up:\n{log.read_text()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(
        f"locust web UI at {url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}"
    )


def _row(rows: list[list[str]], metric: str, expression: str) -> list[str]:
    matches = [r for r in rows if len(r) >= 5 and r[1] == metric and r[2] == expression]
    assert matches, f"no row for {metric} {expression} in {rows}"
    return matches[0]


def _wait_rows(page: CdpPage, predicate: Any, timeout: float, what: str) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    rows: list[list[str]] = []
    while time.monotonic() < deadline:
        rows = page.evaluate(ROWS_JS) or []
        try:
            if predicate(rows):
                return rows
        except (AssertionError, IndexError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"SLA tab never showed {what} within {timeout} s; last rows: {rows}")


@pytest.fixture
def locust_web(tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    locustfile = tmp_path / "sla_webui_locustfile.py"
    locustfile.write_text(SYNTHETIC_LOCUSTFILE, encoding="utf-8")
    config = tmp_path / "sla_webui.toml"
    config.write_text(SLA_CONFIG, encoding="utf-8")
    flag = tmp_path / "slow.flag"
    paths = {"json": tmp_path / "sla.json", "html": tmp_path / "sla.html", "log": tmp_path / "locust.log"}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLA_WEBUI_SLOW_FLAG": str(flag)}
    env = {k: v for k, v in env.items() if not k.startswith("LOCUST_")}  # no stray options from the caller
    cmd = [
        str(LOCUST) if LOCUST.exists() else sys.executable,
        *([] if LOCUST.exists() else ["-m", "locust"]),
        "-f", str(locustfile), "--autostart", "-t", "20s", "--autoquit", "2",
        "--web-host", "127.0.0.1", "--web-port", str(port), "-u", "4", "-r", "4",
        "--sla-config", str(config), "--sla-eval-interval", "1",
        "--sla-report-json", str(paths["json"]), "--sla-report-html", str(paths["html"]),
    ]  # fmt: skip
    with paths["log"].open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield {"proc": proc, "url": f"http://127.0.0.1:{port}", "flag": flag, **paths}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.mark.timeout(150)
def test_webui_sla_tab_updates_live_from_pass_to_fail_in_chromium(
    chromium: Chromium, locust_web: dict[str, Any]
) -> None:
    proc, url, log = locust_web["proc"], locust_web["url"], locust_web["log"]
    _wait_http(f"{url}/", proc, log)
    page = chromium.page()
    try:
        page.navigate(f"{url}/?tab=sla")
        tab = page.wait_for(
            "Array.from(document.querySelectorAll('[role=tab]')).find("
            "t => t.textContent.trim() === 'SLA' && t.getAttribute('aria-selected') === 'true') ? 'selected' : ''",
            20,
        )
        assert tab == "selected"

        def healthy(rows: list[list[str]]) -> bool:
            ws = _row(rows, "WS agent_completed", "p(95) < 2000")
            return rows[0][0] == "VERDICT: PASS" and ws[0] == "✔ pass" and ws[4] not in ("–", "0")

        rows = _wait_rows(page, healthy, 40, "a passing WS agent_completed p(95) < 2000 with samples")
        assert _row(rows, "HTTP /health*", "p(99) < 1000")[0] == "– no data"
        assert _row(rows, "PG thread history", "p(95) < 200")[0] == "✔ pass"
        samples_before = int(_row(rows, "WS agent_completed", "p(95) < 2000")[4].replace(",", ""))
        page.screenshot(ARTIFACTS / "sla_webui_tab_pass.png", max_height=1200)

        locust_web["flag"].touch()  # the incident starts: PG-bound slow replies

        def failing(rows: list[list[str]]) -> bool:
            ws = _row(rows, "WS agent_completed", "p(95) < 2000")
            pg = _row(rows, "PG thread history", "p(95) < 200")
            return rows[0][0] == "VERDICT: FAIL" and ws[0] == "✘ FAIL" and pg[0] == "✘ FAIL"

        rows = _wait_rows(page, failing, 40, "WS agent_completed and PG thread history failing")
        ws = _row(rows, "WS agent_completed", "p(95) < 2000")
        assert int(ws[4].replace(",", "")) > samples_before  # the tab kept updating
        assert float(ws[3].removesuffix(" ms").replace(",", "")) > 2000
        assert _row(rows, "REDIS GET", "p(95) < 50")[0] == "✔ pass"
        page.screenshot(ARTIFACTS / "sla_webui_tab_fail.png", max_height=1200)

        with urllib.request.urlopen(f"{url}/sla/status", timeout=10) as response:
            status = json.loads(response.read())
        assert status["verdict"] == "fail" and status["state"] == "running"

        page.evaluate(
            "Array.from(document.querySelectorAll('[role=tab]'))"
            ".find(t => t.textContent.trim() === 'SLA attribution').click()"
        )
        attribution = _wait_rows(
            page,
            lambda rows: any("postgres" in " ".join(r) and "WS agent_completed" in r[0] for r in rows),
            20,
            "an attribution row naming postgres",
        )
        time.sleep(0.6)  # let the tab indicator finish its slide before the screenshot
        page.screenshot(ARTIFACTS / "sla_webui_tab_attribution.png", max_height=1200)
        assert page.console_errors() == []
    finally:
        page.close()

    assert proc.wait(timeout=60) == 3, log.read_text()[-3000:]  # the SLA breach exit code
    report = json.loads(locust_web["json"].read_text(encoding="utf-8"))
    assert report["verdict"] == "fail" and report["state"] == "finished"
    assert "SLA FAILED" in locust_web["html"].read_text(encoding="utf-8")
    assert attribution
