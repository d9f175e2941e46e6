"""The scenario options end to end (real ``locust`` processes): listing, bad names, refused fault injection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scenarios.registry import SCENARIOS
from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
LOCUST = [sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py")]


def run_locust(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    penv = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_"))}
    penv.update(env or {})
    return subprocess.run(
        [*LOCUST, *args], cwd=REPO, env=penv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.mark.timeout(60)
def test_list_scenarios_prints_one_line_each_and_exits_0() -> None:
    res = run_locust("--list-scenarios")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    for name, scenario in SCENARIOS.items():
        matching = [line for line in lines if line.split(" ", 1)[0] == name]
        assert len(matching) == 1, f"{name} not listed once in:\n{res.stdout}"
        assert scenario.shape.kind in matching[0]
    assert f"{len(SCENARIOS)} scenarios" in res.stdout


@pytest.mark.timeout(60)
def test_unknown_scenario_exits_2_naming_the_choices() -> None:
    res = run_locust("--headless", "--scenario", "no-such-scenario", "--host", "ws://127.0.0.1:9/ws")
    assert res.returncode == 2
    assert "no-such-scenario" in res.stderr and "smoke" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.timeout(60)
def test_bad_scenario_duration_exits_2_with_the_fix() -> None:
    res = run_locust(
        "--headless", "--scenario", "smoke", "--scenario-duration", "ten", "--host", "ws://127.0.0.1:9/ws"
    )
    assert res.returncode == 2
    assert "--scenario-duration" in res.stderr and "'ten'" in res.stderr and "'2m'" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.timeout(60)
def test_inject_faults_against_a_remote_host_is_refused_with_exit_2() -> None:
    # 192.0.2.1 (TEST-NET-1) is never contacted: the loopback check refuses first.
    res = run_locust(
        "--headless", "--scenario", "ws-reply-2s", "--inject-faults", "--host", "wss://192.0.2.1/ws",
        env={"TARGET_ADMIN_TOKEN": "x" * 16},
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "refused" in res.stderr and "192.0.2.1" in res.stderr and "not a loopback" in res.stderr
    assert "x" * 16 not in res.stderr + res.stdout


class _NotTheBackend(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"status": "UP"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_local_service() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotTheBackend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(60)
def test_inject_faults_against_a_local_non_reference_service_is_refused(other_local_service: int) -> None:
    res = run_locust(
        "--headless", "--scenario", "ws-reply-2s", "--inject-faults",
        "--host", f"ws://127.0.0.1:{other_local_service}/ws", env={"TARGET_ADMIN_TOKEN": "y" * 16},
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "does not answer like the reference backend" in res.stderr
    assert "y" * 16 not in res.stderr + res.stdout


@pytest.mark.timeout(60)
def test_inject_faults_with_a_wrong_admin_token_is_refused(backend) -> None:  # noqa: ANN001
    res = run_locust(
        "--headless", "--scenario", "ws-reply-2s", "--inject-faults", "--host", backend.ws_url,
        env={**backend.env, "TARGET_ADMIN_TOKEN": "wrong-token-1234"},
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "refused the admin token" in res.stderr and "TARGET_ADMIN_TOKEN" in res.stderr
    assert "wrong-token-1234" not in res.stderr + res.stdout


def _get_json(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.mark.timeout(90)
def test_web_ui_scenario_picker_runs_the_picked_scenario(backend, tmp_path: Path) -> None:  # noqa: ANN001
    import time
    import urllib.parse
    import urllib.request

    port = free_port()
    penv = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_", "JWT_"))}
    penv.update(backend.env)
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [*LOCUST, "--web-host", "127.0.0.1", "--web-port", str(port), "--host", backend.ws_url,
         "--sla-report-json", str(tmp_path / "sla.json")],
        cwd=REPO, env=penv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = urllib.request.urlopen(base + "/", timeout=2).read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "web.log").read_text()
                time.sleep(0.3)
        assert "redis-connect-latency" in page  # the drop-down's choices
        form = urllib.parse.urlencode(
            {"user_count": 1, "spawn_rate": 1, "host": backend.ws_url, "scenario": "redis-connect-latency",
             "scenario_duration": "5"}
        ).encode()
        with urllib.request.urlopen(urllib.request.Request(base + "/swarm", data=form), timeout=10) as r:
            answer = json.loads(r.read())
        assert answer["success"] and "SteadyShape" in answer["message"], answer
        deadline = time.monotonic() + 30
        seen: set[tuple[str, str]] = set()
        while True:
            stats = _get_json(base + "/stats/requests")
            seen |= {(s["method"], s["name"]) for s in stats["stats"] if s["num_requests"] and s["name"] != "Aggregated"}
            if stats["state"] == "stopped":
                break
            assert time.monotonic() < deadline, stats["state"]
            time.sleep(0.5)
        assert ("REDIS", "connect") in seen
        assert {method for method, _ in seen} == {"REDIS"}, seen  # only the scenario's users ran
        sla = _get_json(base + "/sla/status")  # the SLA engine judged with the scenario's thresholds
        thresholds = {(t["metric"], t["expression"]) for t in sla.get("thresholds", [])}
        assert ("REDIS connect", "p(95) < 100") in thresholds, sla
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.mark.timeout(60)
def test_locust_conf_example_is_read_and_staging_refuses_a_local_target() -> None:
    # the example's keys parse (scenario and staging profile come from the file); pointing its host at this
    # machine makes the staging check name the setting to fix, before any load
    res = run_locust("--config", str(REPO / "locust.conf.example"), "--host", "ws://127.0.0.1:9/ws")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "scenario ws-reply-2s with --sla-profile staging" in res.stderr
    assert "is this machine, not staging" in res.stderr and "LOCUST_HOST" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.timeout(120)
def test_distributed_scenario_runs_on_workers_and_judges_on_the_master(backend, tmp_path: Path) -> None:  # noqa: ANN001
    """``--master`` + ``--worker`` with the same ``--scenario``: the master's shape drives the worker, the in-flight
    steps reach it (no handler error), only the scenario's users run, and the master's verdict passes."""
    port = free_port()
    penv = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_", "JWT_"))}
    penv.update(backend.env)
    common = ["--host", backend.ws_url, "--scenario", "ws-concurrent-degradation"]
    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [*LOCUST, "--worker", "--master-port", str(port), *common],
        cwd=REPO, env=penv, stdout=worker_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        res = subprocess.run(
            [*LOCUST, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
             "--expect-workers", "1", "--expect-workers-max-wait", "30", "--headless", "--only-summary",
             *common, "--scenario-duration", "8", "--sla-report-json", str(tmp_path / "sla.json"),
             "--scenario-curve-csv", str(tmp_path / "curve.csv")],
            cwd=REPO, env=penv, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
        )
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
        worker_log.close()
    wlog = (tmp_path / "worker.log").read_text(errors="replace")
    assert res.returncode == 0, res.stderr[-3000:] + "\n--- worker ---\n" + wlog[-2000:]
    assert "Uncaught exception" not in wlog and "Traceback" not in wlog, wlog[-3000:]
    report = json.loads((tmp_path / "sla.json").read_text())
    assert report["verdict"] == "pass" and report["workers"] == 1
    assert all(m.startswith(("WS ", "HTTP ")) for m in report["metrics"]), list(report["metrics"])  # its users only
    assert report["metrics"]["WS agent_completed"]["count"] > 0
    rows = (tmp_path / "curve.csv").read_text().splitlines()[1:]
    assert [r.split(",")[2] for r in rows] == ["1", "2", "3", "4"], rows
