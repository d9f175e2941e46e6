"""``--prometheus-port`` end to end, scraped by a real Prometheus (Debian's ``prometheus``, installed by
``scripts/setup``).

The proof: Prometheus (scrape interval 1 s, storage in a temp dir, its own free port on 127.0.0.1) scrapes a real
``locust`` run of chat users against a reference backend of the test's own; once Prometheus has seen the reply
threshold pass, the test slows every reply by 2.5 s through the backend's admin API for 8 s. Then, from Prometheus'
HTTP API only:

* ``histogram_quantile(0.95, ...)`` over the exposed buckets of every metric lies in the bucket that holds the SLA
  JSON report's p95 (the bucket resolution), and every metric's count equals the report's;
* ``bucket{le="2.0"} / count`` of ``WS agent_completed`` is exactly the report's ``within(2000)`` (an edge sits at
  the threshold's limit);
* the ``p(95) < 2000`` threshold's state series was 0 (pass) before the fault, never 1 before it, and 1 (fail)
  while the fault was on; the last verdict series is the report's verdict;
* every query of the Grafana dashboard (``dashboards/grafana-sla.json``) is valid PromQL, and the panels about
  the chat reply, the thresholds, the verdict, users and memory return data for a moment of the run.

Without ``/usr/bin/prometheus`` the Prometheus test skips and says how to install it. The start-up checks of the
option (a bad value, a taken port: exit 2 before any load) need no Prometheus.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_backend.process import BackendProcess
from tests.helpers import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
LOCUST = [sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py")]
PROMETHEUS = shutil.which("prometheus")
P95_LINE = {"metric": "WS agent_completed", "expression": "p(95) < 2000"}
FAULT_MS = 2500
FAULT_S = 8.0
RUN_S = 24


def locust_env(backend: BackendProcess | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_", "JWT_"))}
    env.update(backend.env if backend else {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Prometheus:
    """A Prometheus server of the test's own, scraping one target every second."""

    def __init__(self, root: Path, target_port: int) -> None:
        assert PROMETHEUS is not None
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = root / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: loadtest\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n",
            encoding="utf-8",
        )
        self.log_path = root / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        if not wait_until(self._ready, timeout=30, interval=0.2):
            self.stop()
            raise AssertionError(f"prometheus did not become ready within 30 s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result of an instant query at now (a vector, or a matrix for a range selector)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": f"{time.time():.3f}"})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int], Prometheus]]:
    if PROMETHEUS is None:
        pytest.skip("Debian's prometheus is not installed (/usr/bin/prometheus): scripts/setup installs it as root "
                    "(apt-get install --no-install-recommends prometheus)")
    started: list[Prometheus] = []

    def start(target_port: int) -> Prometheus:
        server = Prometheus(tmp_path / f"prometheus-{len(started)}", target_port)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def selector(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def by_labels(result: list[dict[str, Any]], *keys: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(k, "") for k in keys): float(r["value"][1]) for r in result}


@pytest.mark.timeout(180)
def test_prometheus_agrees_with_the_sla_report_and_sees_the_fault_flip_the_threshold(
    tmp_path: Path, start_backend: Callable[..., BackendProcess], prometheus: Callable[[int], Prometheus]
) -> None:
    backend = start_backend()
    port = free_port()
    prom = prometheus(port)
    report_path = tmp_path / "report.json"
    log_path = tmp_path / "locust.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*LOCUST, "--headless", "--only-summary", "ChatUser", "-u", "4", "-r", "4", "-t", f"{RUN_S}s",
             "--host", backend.ws_url, "--stop-timeout", "5", "--sla-report-json", str(report_path),
             "--prometheus-port", str(port), "--web-host", "127.0.0.1", "--prometheus-linger", "10s"],
            cwd=REPO, env=locust_env(backend), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        state = f"loadtest_threshold_state{selector(**P95_LINE)}"
        passing = wait_until(lambda: any(float(r["value"][1]) == 0 for r in prom.query(state)), timeout=30,
                             interval=0.5)
        assert passing, f"Prometheus never saw {state} == 0:\n{log_path.read_text(errors='replace')[-3000:]}"
        fault_on = time.time()
        backend.faults.apply("agent-slow", ms=FAULT_MS, for_s=FAULT_S)
        fault_off = fault_on + FAULT_S
        returncode = proc.wait(RUN_S + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log_text = log_path.read_text(errors="replace")
    assert returncode == 3, log_text[-3000:]
    assert "Traceback" not in log_text, log_text[-3000:]
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "fail"

    # the threshold state flipped to failing while the fault was on, and only then
    history = prom.query(f"{state}[10m]")
    assert len(history) == 1, history
    points = [(float(t), float(v)) for t, v in history[0]["values"]]
    before = [v for t, v in points if t < fault_on]
    during = [v for t, v in points if fault_on <= t <= fault_off + 1]
    assert 0 in before and 1 not in before, points
    assert 1 in during, points

    # the last scrape is the final state: the verdict and every metric's count
    verdict = by_labels(prom.query("last_over_time(loadtest_verdict[10m])"), "verdict")
    assert verdict[("fail",)] == 1 and sum(verdict.values()) == 1, verdict
    counts = by_labels(prom.query("last_over_time(loadtest_response_time_seconds_count[10m])"),
                       "request_type", "name")
    assert counts == {(m["request_type"], m["name"]): float(m["count"]) for m in report["metrics"].values()}

    # p95 from the exposed buckets lies in the bucket holding the report's exact p95, for every metric
    measured = []
    for key, m in sorted(report["metrics"].items()):
        labels = selector(request_type=m["request_type"], name=m["name"])
        buckets = by_labels(prom.query(f"last_over_time(loadtest_response_time_seconds_bucket{labels}[10m])"), "le")
        edges = sorted(float(le) * 1000 for (le,) in buckets if le != "+Inf")
        q = prom.query(f"histogram_quantile(0.95, last_over_time(loadtest_response_time_seconds_bucket{labels}[10m]))")
        prom_p95 = float(q[0]["value"][1]) * 1000
        hi = next((e for e in edges if e >= m["p95"]), None)
        lo = max((e for e in edges if e < m["p95"]), default=0.0)
        assert hi is not None and lo - 1e-6 <= prom_p95 <= hi + 1e-6, (key, m["p95"], prom_p95, lo, hi)
        measured.append(f"{key}: report p95 {m['p95']} ms, Prometheus {prom_p95:.1f} ms, bucket ({lo:g}, {hi:g}]")
    assert any(k.startswith("WS agent_completed:") for k in measured), measured
    print("\n".join(measured))

    # an edge at the threshold's limit: the share at or under 2 s is exact
    chat = report["metrics"]["WS agent_completed"]
    within = next(t for t in report["thresholds"] if t["expression"] == "within(2000) >= 95%")
    le2 = by_labels(prom.query("last_over_time(loadtest_response_time_seconds_bucket"
                               f"{selector(request_type='WS', name='agent_completed', le='2.0')}[10m])"), "le")
    if chat["failures"] == 0:  # within() counts successes only: with no failure it is the bucket's share
        assert 100.0 * le2[("2.0",)] / chat["count"] == pytest.approx(within["value"], abs=0.001)
    value = prom.query(f"last_over_time(loadtest_threshold_value{selector(**P95_LINE, unit='ms')}[10m])")
    p95_row = next(t for t in report["thresholds"] if t["expression"] == P95_LINE["expression"])
    assert float(value[0]["value"][1]) == pytest.approx(p95_row["value"], abs=0.001)
    gauges = by_labels(prom.query("last_over_time(loadtest_gauge[10m])"), "gauge")
    assert ("locust:rss_mb",) in gauges, gauges
    assert prom.query("last_over_time(loadtest_messages_in_flight[10m])"), "no messages in flight series"
    check_dashboard_queries(prom, fault_on)


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the Grafana dashboard, its variables filled in for this run."""
    dashboard = json.loads((REPO / "dashboards" / "grafana-sla.json").read_text(encoding="utf-8"))
    fill = {"$job": ".*", "$instance": ".*", "$metric": "WS agent_completed", "$__rate_interval": "4s"}
    out = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for var, val in fill.items():
                expr = expr.replace(var, val)
            assert "$" not in expr, (panel["title"], expr)
            out.append((panel["title"], expr))
    return out


def check_dashboard_queries(prom: Prometheus, during_run: float) -> None:
    """Every dashboard query is valid PromQL for Prometheus; the ones about the chat reply return data for a moment
    of the run (the dashboard shows the run, not only an empty frame)."""
    must_have_data = ("Verdict", "Thresholds now (as the SLA tab)", "Threshold states over time",
                      "WS agent_completed: judged latency vs limit", "p95 per metric, whole run (as judged)",
                      "Chat reply p50 / p95 / p99 (1 min windows)", "Requests/s per metric",
                      "Users and messages in flight", "Memory (MB)")
    seen = set()
    for title, expr in dashboard_queries():
        url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{during_run + 5:.3f}"})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", (title, expr, body)
        if body["data"]["result"]:
            seen.add(title.replace("$metric", "WS agent_completed"))
    missing = [t for t in must_have_data if t not in seen]
    assert not missing, f"dashboard panels without data during the run: {missing}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("value, expected", [("70000", "--prometheus-port has value 70000"),
                                             ("-1", "--prometheus-port has value -1")])
def test_a_bad_port_exits_2_before_any_load(value: str, expected: str) -> None:
    res = subprocess.run(
        [*LOCUST, "--headless", "ChatUser", "-u", "1", "-t", "1s", "--host", "ws://127.0.0.1:9/ws",
         "--prometheus-port", value],
        cwd=REPO, env=locust_env(), capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert expected in res.stderr and "Traceback" not in res.stderr


@pytest.mark.timeout(60)
def test_a_taken_port_exits_2_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = subprocess.run(
            [*LOCUST, "--headless", "ChatUser", "-u", "1", "-t", "1s", "--host", "ws://127.0.0.1:9/ws",
             "--prometheus-port", str(port), "--web-host", "127.0.0.1"],
            cwd=REPO, env=locust_env(), capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL,
        )
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if f"--prometheus-port {port}" in line]
    assert len(lines) == 1 and "cannot listen" in lines[0] and "choose a free port" in lines[0], res.stderr[-2000:]
    assert "Spawning" not in res.stderr
