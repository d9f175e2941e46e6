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
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from sla_checks.report_html import write_html_report
from tests.unit.test_sla_html import example_report

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


@pytest.mark.timeout(90)
def test_html_report_renders_in_chromium_with_chart_points_and_no_console_errors(
    chromium: Chromium, tmp_path: Path
) -> None:
    report = example_report()
    html_path = write_html_report(report, tmp_path / "sla-report.html")
    page = chromium.page()
    try:
        page.navigate(html_path.as_uri())
        assert "SLA report: FAIL" in page.evaluate("document.title")
        assert page.evaluate("document.getElementById('verdict').innerText") == "SLA FAILED"
        rows = page.evaluate("document.querySelectorAll('#thresholds tbody tr').length")
        assert rows == len(report["thresholds"])
        # every chart has data points that the browser laid out inside the chart's box
        charts = page.evaluate(
            """Array.from(document.querySelectorAll('svg.chart-svg')).map(svg => {
                 const box = svg.getBoundingClientRect();
                 const pts = Array.from(svg.querySelectorAll('.pt')).map(p => p.getBoundingClientRect());
                 const inside = pts.filter(r => r.width > 0 && r.height > 0 && r.left >= box.left - 1
                     && r.right <= box.right + 1 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1);
                 return {id: svg.id, width: box.width, points: pts.length, inside: inside.length,
                         lines: svg.querySelectorAll('polyline').length};
               })"""
        )
        by_id = {c["id"]: c for c in charts}
        assert {"chart-windows", "chart-stages", "chart-metrics", "chart-gauge-0"} <= set(by_id)
        for chart in charts:
            assert chart["width"] > 300, chart
            assert chart["points"] > 0 and chart["inside"] == chart["points"], chart
        windows = len(report["windows"])
        assert by_id["chart-windows"]["points"] == 4 * windows  # WS + redis, postgres, clickhouse per window
        assert by_id["chart-windows"]["lines"] == 4
        screenshot = page.screenshot(ARTIFACTS / "sla_report_chromium.png")
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
