"""End-to-end: real ``locust`` processes judged by the SLA engine.

* synthetic users (``tests/e2e/sla_synthetic_locustfile.py``, fixed sample sets, no I/O): a master + 2 workers run
  gives the same verdict and percentiles as a local run; ``abort_on_fail`` stops a run early;
* chat + probe users against the reference backend (``backend`` / ``faults`` fixtures): healthy -> exit 0 and a
  passing report; a ``pg-lock`` / ``redis-pause`` fault during the run -> exit 3 and the attribution names the tier.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sla_checks.profiles import validate_metric
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).parent / "locust")
SYNTH = str(Path(__file__).resolve().parent / "sla_synthetic_locustfile.py")

SYNTH_CONFIG = """
[thresholds]
"WS agent_completed" = ["p(95) < 2000", "p(99) < 3000", "within(2000) >= 95%", "max < 5000"]
"PG *" = ["p(95) < 200"]
"""


def run_locust(
    args: list[str], env: dict[str, str], timeout: float, locustfile: str = SYNTH
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOCUST, "-f", locustfile, "--only-summary", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.timeout(120)
def test_master_with_two_workers_matches_local_run(tmp_path):
    cfg = tmp_path / "synth.toml"
    cfg.write_text(SYNTH_CONFIG, encoding="utf-8")
    env = {"SLA_SYNTH_MODE": "slow", "SLA_SYNTH_SAMPLES": "300"}
    common = ["--headless", "-u", "6", "-r", "6", "-t", "8s", "--sla-config", str(cfg)]
    local = run_locust([*common, "--sla-report-json", str(tmp_path / "local.json")], env, 60)

    port = free_port()
    master = subprocess.Popen(
        [
            LOCUST,
            "-f",
            SYNTH,
            "--only-summary",
            *common,
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            "2",
            "--sla-report-json",
            str(tmp_path / "dist.json"),
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    workers = [
        subprocess.Popen(
            [LOCUST, "-f", SYNTH, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        out, _ = master.communicate(timeout=60)
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
    assert local.returncode == 3, local.stderr[-3000:]
    assert master.returncode == 3, out[-3000:]
    a, b = load(tmp_path / "local.json"), load(tmp_path / "dist.json")
    assert (a["workers"], b["workers"]) == (0, 2)
    assert a["verdict"] == b["verdict"] == "fail"
    assert [(t["metric"], t["expression"], t["status"]) for t in a["thresholds"]] == [
        (t["metric"], t["expression"], t["status"]) for t in b["thresholds"]
    ]
    for metric in ("WS agent_completed", "PG thread history"):
        ma, mb = a["metrics"][metric], b["metrics"][metric]
        assert ma["count"] == mb["count"] == 6 * 300
        for q in ("p50", "p90", "p95", "p99", "max"):
            assert abs(ma[q] - mb[q]) <= max(1.0, 0.01 * ma[q]), (metric, q, ma[q], mb[q])
    assert "SLA FAILED: WS agent_completed p(95) < 2000 was" in out


@pytest.mark.timeout(90)
def test_lost_worker_fails_the_verdict(tmp_path):
    cfg = tmp_path / "synth.toml"
    cfg.write_text(SYNTH_CONFIG, encoding="utf-8")
    env = {**os.environ, "SLA_SYNTH_MODE": "healthy", "SLA_SYNTH_SAMPLES": "200"}
    port = free_port()
    master = subprocess.Popen(
        [
            LOCUST,
            "-f",
            SYNTH,
            "--only-summary",
            "--headless",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "14s",
            "--sla-config",
            str(cfg),
            "--sla-eval-interval",
            "1",
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            "2",
            "--sla-report-json",
            str(tmp_path / "r.json"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    workers = [
        subprocess.Popen(
            [LOCUST, "-f", SYNTH, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        time.sleep(6)
        workers[0].kill()  # no goodbye: the master only sees its heartbeats stop
        out, _ = master.communicate(timeout=60)
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
    assert master.returncode == 3, out[-3000:]
    rep = load(tmp_path / "r.json")
    assert (rep["workers"], rep["workers_lost"], rep["verdict"]) == (2, 1, "fail")
    assert any("worker(s) lost" in r for r in rep["verdict_reasons"])


@pytest.mark.timeout(60)
def test_sla_window_judges_each_window_and_reports_failing_ones(tmp_path):
    """Replies turn slow half-way (>= 3 s in): the first 2 s window passes, later ones fail, p95 drifts up."""
    cfg = tmp_path / "synth.toml"
    cfg.write_text(SYNTH_CONFIG, encoding="utf-8")
    res = run_locust(
        [
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "8s",
            "--sla-config",
            str(cfg),
            "--sla-window",
            "2",
            "--sla-report-json",
            str(tmp_path / "r.json"),
            "--sla-report-junit",
            str(tmp_path / "r.xml"),
        ],
        {
            "SLA_SYNTH_MODE": "slow",
            "SLA_SYNTH_SAMPLES": "300",
            "SLA_SYNTH_PAUSE": "0.02",
            "SLA_SYNTH_SLOW_FROM": "150",
        },
        50,
    )
    assert res.returncode == 3, res.stderr[-3000:]
    rep = load(tmp_path / "r.json")
    assert rep["windows_judged"] and rep["window_s"] == 2 and len(rep["windows"]) >= 3
    p95 = next(t for t in rep["thresholds"] if t["expression"] == "p(95) < 2000")
    assert 0 not in p95["failed_windows"] and p95["failed_windows"], p95
    assert rep["windows"][0]["failed"] == []
    assert [w["index"] for w in rep["windows"] if "WS agent_completed p(95) < 2000" in w["failed"]] == p95[
        "failed_windows"
    ]
    drift = rep["drift"]["WS agent_completed"]
    assert drift["first_p95"] < 2000 <= drift["max_p95"]
    junit = (tmp_path / "r.xml").read_text(encoding="utf-8")
    assert f"WS agent_completed p(95) &lt; 2000 [window {p95['failed_windows'][0]} " in junit


@pytest.mark.timeout(120)
def test_sla_warmup_keeps_slow_start_out_of_the_verdict_locally_and_on_a_master(tmp_path):
    """Slow replies in the first ~2.5 s only: judged, the run fails; with --sla-warmup 5s it passes, and the report
    still accounts for every sample Locust counted (judged + warm-up), on a local runner and on a master."""
    cfg = tmp_path / "synth.toml"
    cfg.write_text(SYNTH_CONFIG, encoding="utf-8")
    env = {"SLA_SYNTH_MODE": "slow", "SLA_SYNTH_SAMPLES": "300", "SLA_SYNTH_PAUSE": "0.02",
           "SLA_SYNTH_SLOW_UNTIL": "120"}  # a tenth of each user's first 120 replies (~2.5 s) over 2.5 s
    common = ["--headless", "-u", "2", "-r", "2", "-t", "10s", "--sla-config", str(cfg), "--csv", str(tmp_path / "s")]
    cold = run_locust([*common, "--sla-report-json", str(tmp_path / "cold.json")], env, 60)
    assert cold.returncode == 3, cold.stderr[-3000:]
    assert load(tmp_path / "cold.json")["warmup_samples"] == 0
    warm = run_locust([*common, "--sla-warmup", "5s", "--sla-report-json", str(tmp_path / "warm.json")], env, 60)
    assert warm.returncode == 0, warm.stderr[-3000:]
    rep = load(tmp_path / "warm.json")
    locust_total = _csv_total_requests(tmp_path / "s_stats.csv")
    assert locust_total == 2 * 2 * 300
    assert rep["warmup_s"] == 5 and rep["warmup_samples"] > 2 * 2 * 120  # the slow start and a little more
    assert rep["samples"] + rep["warmup_samples"] == locust_total
    assert "first 5 s were warm-up" in warm.stderr

    port = free_port()
    master = subprocess.Popen(
        [LOCUST, "-f", SYNTH, "--only-summary", *common, "--sla-warmup", "5s", "--master", "--master-bind-host",
         "127.0.0.1", "--master-bind-port", str(port), "--expect-workers", "1",
         "--sla-report-json", str(tmp_path / "dist.json")],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    worker = subprocess.Popen(
        [LOCUST, "-f", SYNTH, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        out, _ = master.communicate(timeout=60)
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
    assert master.returncode == 0, out[-3000:]
    dist = load(tmp_path / "dist.json")
    assert dist["workers"] == 1 and dist["warmup_samples"] > 2 * 2 * 120
    assert dist["samples"] + dist["warmup_samples"] == 2 * 2 * 300


@pytest.mark.timeout(90)
def test_web_ui_stop_then_ctrl_c_keeps_the_verdict_and_writes_the_report(tmp_path):
    """The web UI's Stop ends the test (Locust then cancels --run-time, so --autoquit never comes); the operator's
    Ctrl-C afterwards must still give the SLA exit code and the final report of the test that ran."""
    import signal
    import urllib.request

    cfg = tmp_path / "synth.toml"
    cfg.write_text(SYNTH_CONFIG, encoding="utf-8")
    port = free_port()
    env = {**os.environ, "SLA_SYNTH_MODE": "slow", "SLA_SYNTH_SAMPLES": "100", "SLA_SYNTH_PAUSE": "0.01"}
    proc = subprocess.Popen(
        [LOCUST, "-f", SYNTH, "--autostart", "--autoquit", "1", "-t", "60s", "-u", "2", "-r", "2",
         "--web-host", "127.0.0.1", "--web-port", str(port), "--sla-config", str(cfg),
         "--sla-report-json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "s")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        samples = 0
        while time.monotonic() < deadline and samples < 2 * 2 * 100:  # every synthetic sample fired
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(base + "/stats/requests", timeout=5) as r:
                    stats = json.loads(r.read())["stats"]
                samples = next(row["num_requests"] for row in stats if row["name"] == "Aggregated")
            except (OSError, ValueError, KeyError, StopIteration):
                continue
        assert samples == 2 * 2 * 100, samples
        req = urllib.request.Request(base + "/stop", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["success"]
        time.sleep(3)  # longer than --autoquit: the process is still there, as Locust leaves it after a UI stop
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 3, out[-3000:]
    rep = load(tmp_path / "r.json")
    assert (rep["state"], rep["verdict"], rep["samples"]) == ("finished", "fail", 2 * 2 * 100)
    assert "SLA FAILED: WS agent_completed p(95) < 2000 was" in out


def _csv_total_requests(path: Path) -> int:
    import csv

    with path.open(encoding="utf-8") as f:
        return next(int(row["Request Count"]) for row in csv.DictReader(f) if row["Name"] == "Aggregated")


@pytest.mark.timeout(90)
def test_abort_on_fail_stops_run_early(tmp_path):
    cfg = tmp_path / "abort.toml"
    cfg.write_text(
        '[[thresholds."WS agent_completed"]]\nexpression = "fail_ratio < 0.2"\nabort_on_fail = true\n'
        'delay_abort_eval = "2s"\n',
        encoding="utf-8",
    )
    t0 = time.monotonic()
    res = run_locust(
        [
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "60s",
            "--sla-config",
            str(cfg),
            "--sla-eval-interval",
            "1",
            "--sla-report-json",
            str(tmp_path / "r.json"),
            "--sla-report-junit",
            str(tmp_path / "r.xml"),
        ],
        {"SLA_SYNTH_MODE": "failing", "SLA_SYNTH_SAMPLES": "100000"},
        80,
    )
    elapsed = time.monotonic() - t0
    assert res.returncode == 3, res.stderr[-3000:]
    assert elapsed < 40, f"run was not stopped early ({elapsed:.0f} s of 60 s)"
    rep = load(tmp_path / "r.json")
    assert rep["aborted"]["threshold"] == "WS agent_completed fail_ratio < 0.2"
    assert rep["duration_s"] < 40
    assert "SLA ABORT: WS agent_completed fail_ratio < 0.2 was" in res.stderr
    assert "aborted" in (tmp_path / "r.xml").read_text(encoding="utf-8")


@pytest.mark.timeout(40)
def test_bad_sla_config_exits_2_before_any_load(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[thresholds]\n"WS agent_complete" = ["p(95) < 2000"]\n', encoding="utf-8")
    res = run_locust(["--headless", "-u", "1", "-t", "5s", "--sla-config", str(cfg)], {}, 30)
    assert res.returncode == 2
    assert str(cfg) in res.stderr and "unknown metric 'WS agent_complete'" in res.stderr
    assert "Traceback" not in res.stderr
    assert "Ramping" not in res.stderr


# --- against the reference backend --------------------------------------------------------------------------------

BACKEND_CONFIG = """
[[thresholds."WS agent_completed"]]
expression = "p(95) < 2000"
description = "95 % of chat replies within 2 s"
required = true

[[thresholds."WS agent_completed"]]
expression = "within(2000) >= 95%"
description = "at least 95 % of messages answered within 2 s"

# tier limits looser than the seed's (200 / 50 ms): the test machine is shared and noisy; the faults stall for seconds
[thresholds]
"PG *" = ["p(95) < 1000"]
"REDIS *" = ["p(95) < 500"]
"HTTP /health*" = ["p(99) < 1000"]
"""

USERS = ["ChatUser", "PostgresProbeUser", "RedisProbeUser"]


def backend_run(backend, tmp_path: Path, seconds: int, fault: tuple[str, int, float] | None = None):
    """Chat + probe users for ``seconds``; ``fault`` = (kind, ms, for_s) applied ~5 s in. Returns (proc, report)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "backend.toml"
    cfg.write_text(BACKEND_CONFIG, encoding="utf-8")
    report = tmp_path / "r.json"
    cmd = [
        LOCUST,
        "-f",
        str(ROOT / "locustfile.py"),
        *USERS,
        "--headless",
        "--only-summary",
        "-u",
        "6",
        "-r",
        "6",
        "-t",
        f"{seconds}s",
        "--host",
        backend.ws_url,
        "--ws-think-time",
        "0.5",
        "--sla-config",
        str(cfg),
        "--sla-eval-interval",
        "2",
        "--sla-report-json",
        str(report),
        "--exit-code-on-error",
        "0",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **backend.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    applied: list[dict] = []
    if fault is not None:
        kind, ms, for_s = fault

        def inject() -> None:
            time.sleep(5)
            if proc.poll() is None:
                applied.append(backend.faults.apply(kind, ms=ms, for_s=for_s))

        t = threading.Thread(target=inject, daemon=True)
        t.start()
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if fault is not None:
            t.join(timeout=10)
            backend.faults.clear()
    if fault is not None:
        assert applied, "the fault was not applied during the run"
    assert report.exists(), out[-4000:]
    return proc.returncode, out, load(report)


@pytest.mark.timeout(120)
def test_healthy_backend_exits_0_with_passing_report(backend, tmp_path):
    rc, out, rep = backend_run(backend, tmp_path, 12)
    if rc != 0 and any(not t["within_sla"] for a in rep["attribution"] for t in a["tiers"]):
        # Redis / PostgreSQL are shared with every other test process on this machine: a fault injected by another
        # test (CLIENT PAUSE, maxmemory) breaks this "healthy" run, and the attribution says so. Try once more.
        rc, out, rep = backend_run(backend, tmp_path / "again", 12)
    assert rc == 0, (rep["verdict_reasons"], rep["attribution"][:1], out[-2500:])
    assert rep["verdict"] == "pass", rep["verdict_reasons"]
    by = {(t["metric"], t["expression"]): t for t in rep["thresholds"]}
    assert by[("WS agent_completed", "p(95) < 2000")]["status"] == "pass"
    assert rep["metrics"]["WS agent_completed"]["count"] > 10
    assert any(m.startswith("PG ") for m in rep["metrics"]) and any(
        m.startswith("REDIS ") for m in rep["metrics"]
    )
    assert rep["stages"], "the chat samples carry no stage timings"
    # every metric the suite's users really emit can be named in a threshold file
    assert {m: validate_metric(m) for m in rep["metrics"] if validate_metric(m)} == {}
    assert "SLA verdict: PASS" in out


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("kind", "ms", "tier"), [("pg-lock", None, "postgres"), ("redis-pause", 4000, "redis")]
)
def test_tier_fault_exits_3_and_attribution_names_tier(backend, faults, tmp_path, kind, ms, tier):
    rc, out, rep = backend_run(backend, tmp_path, 16, fault=(kind, ms, 5.0))
    assert rc == 3, out[-4000:]
    assert rep["verdict"] == "fail"
    ws = [a for a in rep["attribution"] if a["metric"] == "WS agent_completed"]
    assert ws, (rep["verdict_reasons"], out[-3000:])
    assert ws[0]["tiers"][0]["tier"] == tier, ws[0]["summary"]
    assert "SLA attribution: WS agent_completed" in out
