"""Proof that every scenario detects what it is for: real ``locust`` runs against the reference backend.

For every scenario of the catalogue:

* **healthy**: ``--scenario NAME`` on a healthy stack passes its thresholds (exit 0, report verdict ``pass``);
* **faulted**: ``--scenario NAME --inject-faults`` fails (exit 3) and the SLA JSON report names the expected failing
  metric, keeps the metrics the scenario shows to be robust (``holds_under_fault``) passing, and shows the expected
  tier: with a WS/FLOW breach expected, the attribution of that breach must exist and rank ``expected_tier`` first
  (as a tier that coincides); otherwise (a probe scenario) the breach is the tier's own metric and no other tier's
  threshold fails. A scenario faulting a tier without an expected tier says why in ``tier_exception``;
* **tolerated** (scenarios with legitimate delays, e.g. heartbeat during slow replies): still exit 0.

The runs that must pass are judged from 1 s in (``--sla-warmup``, see ``HEALTHY_WARMUP``); faulted runs whole.

Budget: each run is shortened with ``--scenario-duration`` (10 s by default; the few scenarios whose fault needs
more wall time say so in ``DURATION``). Healthy runs go in parallel against the session backend; faults that live
inside the backend process (agent-slow, hang, drop-event, slow-pong, the backend's own pool) run in parallel, each
against a backend of its own; faults on the shared Redis/PostgreSQL/ClickHouse run one after another.
The full-length soak is marked ``soak`` (not in CI); CI runs it shortened with the others.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reference_backend.process import BackendProcess
from scenarios.registry import SCENARIOS, Scenario
from sla_checks.attribution import COINCIDE_SCORE, MIN_GAUGE_WINDOWS, tier_of

REPO = Path(__file__).resolve().parents[2]
PARALLEL = int(os.environ.get("SCENARIO_PROOF_PARALLEL", "3"))
DEFAULT_DURATION = 10.0
HEALTHY_DURATION = 8.0
# Runs that must pass judge from 1 s in: shortened, a probe gets ~10 samples, so its p95 is its maximum, and the
# first pooled connections of 3 runs spawning at once on 2 cores would be that maximum (smoke's REDIS pool acquire
# reached 46 ms of its 50 in one of three clean-clone runs). A full-length run dilutes them; a faulted run (its fault
# starts later) is judged whole.
HEALTHY_WARMUP = "1s"
# Wall seconds for the faulted run where the fault itself needs time to show (never for the healthy run).
DURATION = {
    "pipeline-under-10s": 17.0,  # a reply slowed past 10 s must time out (--ws-reply-timeout 10.5) inside the run
    "login-send-receive": 24.0,  # a workflow slowed past 15 s must complete inside the run
    "db-slow-queries-5s": 12.0,
    # 3 s Redis pauses from 1/4 of the run for 1/2 of it: 10 s hold two pauses, and four pollers in phase put 0 to 5 of
    # 16 /health/ready calls into the first 2 s of one (0 in CI22: a PASS); 20 s hold three, 26-36 % of ~28 calls breach
    "health-endpoints": 20.0,
    "resource-correlation": 24.0,  # enough 2 s buckets (>= 5 with replies) for the gauge correlation to be reported
}
KEEP_RUNS = 3
LOCAL_FAULTS = {"agent-slow", "hang", "drop-event", "slow-pong", "pg-pool-exhaustion"}


@dataclass
class Run:
    name: str
    mode: str  # healthy | faulted | tolerated
    duration: float
    report_path: Path
    log_path: Path
    returncode: int | None = None
    seconds: float = 0.0

    @property
    def curve_path(self) -> Path:
        return self.report_path.with_suffix(".curve.csv")

    @property
    def report(self) -> dict[str, Any]:
        try:
            return json.loads(self.report_path.read_text())
        except (OSError, ValueError):
            return {}

    def explain(self) -> str:
        tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:]) if self.log_path.exists() else ""
        report = self.report
        lines = [
            f"{self.name} [{self.mode}] exit {self.returncode} after {self.seconds:.1f} s (log {self.log_path})",
            *(
                f"  {t['status']:<7} {t['metric']} {t['expression']} = {t['value']} ({t['samples']} samples)"
                for t in report.get("thresholds", [])
            ),
            *(f"  attribution: {a['summary']}" for a in report.get("attribution", [])),
            "--- log tail ---",
            tail,
        ]
        return "\n".join(lines)


def _argv(run: Run, backend: BackendProcess) -> list[str]:
    argv = [
        sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py"), "--headless", "--only-summary",
        "--host", backend.ws_url, "--scenario", run.name, "--scenario-duration", f"{run.duration:g}",
        "--sla-report-json", str(run.report_path), "--stop-timeout", "5",
        "--scenario-curve-csv", str(run.curve_path),
    ]
    if run.mode == "faulted":
        argv.append("--inject-faults")
    elif run.mode == "tolerated":
        argv.append("--inject-tolerated-faults")
    if run.mode != "faulted":
        argv += ["--sla-warmup", HEALTHY_WARMUP]
    return argv


def _env(backend: BackendProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_", "JWT_"))}
    env.update(backend.env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_batch(pairs: list[tuple[Run, BackendProcess]]) -> None:
    """Start the runs together and wait for all (each with a hard deadline: no run may hang the suite)."""
    procs = []
    for run, backend in pairs:
        log = open(run.log_path, "wb")  # noqa: SIM115 - closed below
        started = time.monotonic()
        proc = subprocess.Popen(
            _argv(run, backend), cwd=REPO, env=_env(backend), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        procs.append((run, proc, log, started))
    for run, proc, log, started in procs:
        deadline = run.duration + 60
        try:
            run.returncode = proc.wait(timeout=max(1.0, deadline - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            run.returncode = None
        run.seconds = time.monotonic() - started
        log.close()


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _faulted_duration(name: str) -> float:
    return DURATION.get(name, DEFAULT_DURATION)


def _is_local(scenario: Scenario) -> bool:
    return all(f.kind in LOCAL_FAULTS for f in scenario.faults)


@pytest.fixture(scope="module")
def proof_runs(backend: BackendProcess) -> dict[tuple[str, str], Run]:
    """Every proof run of the catalogue, executed once per test session (see the module docstring)."""
    # Kept after the session (CI artifacts; pytest's own tmp dirs rotate): logs, SLA reports, a summary, in a
    # directory of this session's own (two sessions at once must not overwrite each other's files); the last
    # KEEP_RUNS sessions are kept.
    root = REPO / "artifacts" / "scenario-proofs"
    root.mkdir(parents=True, exist_ok=True)
    for old in sorted(root.glob("run-*"))[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)
    out_dir = root / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    out_dir.mkdir()
    runs: dict[tuple[str, str], Run] = {}
    phases: list[str] = []
    t0 = time.monotonic()

    def new(name: str, mode: str, duration: float) -> Run:
        run = Run(name, mode, duration, out_dir / f"{name}-{mode}.json", out_dir / f"{name}-{mode}.log")
        runs[(name, mode)] = run
        return run

    # 1. healthy, in parallel against the shared session backend
    healthy = [new(name, "healthy", HEALTHY_DURATION) for name in SCENARIOS]
    for chunk in _chunks(healthy, PARALLEL):
        run_batch([(run, backend) for run in chunk])
    phases.append(f"healthy runs: {time.monotonic() - t0:.0f} s")

    # 2. faults inside the backend process: parallel, one backend each
    local = [
        new(name, "faulted", _faulted_duration(name))
        for name, s in SCENARIOS.items()
        if s.faults and _is_local(s)
    ]
    local += [new(name, "tolerated", DEFAULT_DURATION) for name, s in SCENARIOS.items() if s.tolerated_faults]
    local.sort(key=lambda r: r.duration)
    backend_dir = out_dir / "backends"
    for chunk in _chunks(local, PARALLEL):
        own = [BackendProcess.start(backend_dir) for _ in chunk]
        try:
            run_batch(list(zip(chunk, own, strict=True)))
        finally:
            for b in own:
                b.stop()
    phases.append(f"+ backend-local faults: {time.monotonic() - t0:.0f} s")

    # 3. faults on the shared tiers: one at a time, against the session backend
    for name, s in SCENARIOS.items():
        if s.faults and not _is_local(s):
            run = new(name, "faulted", _faulted_duration(name))
            run_batch([(run, backend)])
            backend.faults.clear()
    phases.append(f"+ shared-tier faults: {time.monotonic() - t0:.0f} s")
    (out_dir / "summary.txt").write_text(
        "\n".join([*phases, "", *(f"{r.name:<28} {r.mode:<9} exit {r.returncode} verdict "
                                  f"{r.report.get('verdict')} {r.seconds:5.1f} s" for r in runs.values())]) + "\n"
    )
    return runs


def _matches(threshold: dict[str, Any], metric: str) -> bool:
    return metric in (threshold["metric"], threshold["pattern"]) or fnmatch.fnmatchcase(threshold["metric"], metric)


HEALTHY = sorted(SCENARIOS)
FAULTED = sorted(n for n, s in SCENARIOS.items() if s.faults)
TOLERATED = sorted(n for n, s in SCENARIOS.items() if s.tolerated_faults)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", HEALTHY)
def test_scenario_passes_on_a_healthy_stack(proof_runs: dict[tuple[str, str], Run], name: str) -> None:
    run = proof_runs[(name, "healthy")]
    report = run.report
    assert run.returncode == 0, run.explain()
    assert report.get("verdict") == "pass", run.explain()
    own = {t.metric for t in SCENARIOS[name].thresholds}
    judged = [t for t in report["thresholds"] if t["pattern"] in own and t["status"] == "pass"]
    assert judged, f"no scenario threshold was judged on data:\n{run.explain()}"
    if SCENARIOS[name].sla_window_s:
        assert report.get("windows_judged") is True and len(report.get("windows", [])) >= 2, run.explain()


@pytest.mark.timeout(900)
def test_stepped_scenario_reports_its_latency_curve(proof_runs: dict[tuple[str, str], Run]) -> None:
    run = proof_runs[("ws-concurrent-degradation", "healthy")]
    rows = [line.split(",") for line in run.curve_path.read_text().splitlines()[1:]]
    steps = SCENARIOS["ws-concurrent-degradation"].shape.steps  # type: ignore[attr-defined]
    assert [(int(r[1]), int(r[2])) for r in rows] == [(st.users, st.inflight) for st in steps], rows
    assert sum(int(r[3]) for r in rows) > 0 and all(float(r[6]) >= float(r[5]) for r in rows), rows


@pytest.mark.timeout(900)
def test_resource_scenario_reports_generator_and_backend_gauges(proof_runs: dict[tuple[str, str], Run]) -> None:
    run = proof_runs[("resource-correlation", "faulted")]
    gauges = run.report.get("gauges", {})
    for name in ("locust:cpu_percent", "locust:rss_mb", "target:rss_mb"):
        assert gauges.get(name), f"gauge {name} missing:\n{run.explain()}"
    # ... and the attribution of the WS breach correlates each of them with WS p95 over enough buckets
    records = [a for a in run.report.get("attribution", []) if a["metric"] == "WS agent_completed"]
    assert records, run.explain()
    for record in records:
        rows = {g["gauge"]: g for g in record.get("gauges", [])}
        for name in ("locust:cpu_percent", "locust:rss_mb", "target:cpu_percent", "target:rss_mb"):
            row = rows.get(name)
            assert row and row["windows"] >= MIN_GAUGE_WINDOWS, f"{name}: {row}\n{run.explain()}"
            assert row["correlation"] is None or -1.0 <= row["correlation"] <= 1.0, row  # None: a flat gauge
        assert any(row["correlation"] is not None for row in rows.values()), f"{rows}\n{run.explain()}"


@pytest.mark.timeout(900)
def test_isolation_scenario_counts_serialization_failures_under_its_concurrent_writer(
    proof_runs: dict[tuple[str, str], Run],
) -> None:
    healthy, faulted = proof_runs[("pg-isolation-levels", "healthy")], proof_runs[("pg-isolation-levels", "faulted")]
    for level in ("read_committed", "repeatable_read", "serializable"):
        assert healthy.report["metrics"][f"PG txn {level}"]["count"] > 0, healthy.explain()
    # the pg-hot-row writer fails the snapshot levels with 40001: each attempt is a failed sample, counted
    failures = faulted.report["metrics"].get("PG serialization failure", {})
    assert failures.get("failures", 0) >= 2 and failures["failures"] == failures["count"], faulted.explain()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", FAULTED)
def test_scenario_fails_with_exit_3_when_its_fault_is_injected(
    proof_runs: dict[tuple[str, str], Run], name: str
) -> None:
    scenario = SCENARIOS[name]
    run = proof_runs[(name, "faulted")]
    report = run.report
    assert run.returncode == 3, run.explain()
    assert report.get("verdict") == "fail", run.explain()
    failed = [t for t in report["thresholds"] if t["status"] == "fail"]
    for metric in scenario.expected_breaches:
        assert any(_matches(t, metric) for t in failed), f"{metric} did not fail:\n{run.explain()}"
    for metric in scenario.holds_under_fault:
        broken = [t for t in report["thresholds"] if _matches(t, metric) and t["status"] == "fail"]
        assert not broken, f"{metric} should hold under the fault:\n{run.explain()}"
    if scenario.expected_tier:
        problem = _tier_problem(scenario, report, failed)
        assert problem is None, f"{problem}:\n{run.explain()}"


def _tier_problem(scenario: Scenario, report: dict[str, Any], failed: list[dict[str, Any]]) -> str | None:
    """Why the report does not show ``scenario.expected_tier`` (None when it does); see the module docstring."""
    tier = scenario.expected_tier
    chat = scenario.attributed_breaches
    if not chat:
        other = sorted({t["metric"] for t in failed if tier_of(t["metric"]) not in (None, tier)})
        return f"a probe scenario of {tier}, but other tiers failed too: {other}" if other else None
    records = [a for a in report.get("attribution") or [] if any(fnmatch.fnmatchcase(a["metric"], m) for m in chat)]
    if not records:
        return f"no attribution of the expected breach {chat} (attribution: {report.get('attribution')})"
    for a in records:
        tiers = a.get("tiers") or []
        if not tiers or tiers[0]["tier"] != tier:
            return f"attribution of {a['metric']} {a['expression']} ranks {[t['tier'] for t in tiers]}, not {tier} first"
        top = tiers[0]
        if top["score"] < COINCIDE_SCORE and top["within_sla"]:
            return f"{tier} ranks first for {a['metric']} {a['expression']} but does not coincide with it: {top}"
    return None


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", TOLERATED)
def test_scenario_survives_its_tolerated_fault(proof_runs: dict[tuple[str, str], Run], name: str) -> None:
    run = proof_runs[(name, "tolerated")]
    assert run.returncode == 0, run.explain()
    assert run.report.get("verdict") == "pass", run.explain()


@pytest.mark.soak
@pytest.mark.timeout(0)
@pytest.mark.skipif(
    not os.environ.get("SCENARIO_SOAK_DURATION"),
    reason="the full soak runs for hours: set SCENARIO_SOAK_DURATION (e.g. 1h, 4h) to run it",
)
def test_soak_full_length_passes(backend: BackendProcess, tmp_path: Path) -> None:
    """The real soak (SCENARIO_SOAK_DURATION, e.g. 4h as the scenario's default): windows judged, healthy stack
    passes. Marked ``soak`` (CI deselects it) and skipped unless the duration is given, so a plain ``pytest`` never
    starts a 4-hour run."""
    from scenarios.options import parse_seconds

    seconds = parse_seconds(os.environ["SCENARIO_SOAK_DURATION"])
    run = Run("soak", "healthy", seconds, tmp_path / "soak.json", tmp_path / "soak.log")
    run_batch([(run, backend)])
    assert run.returncode == 0, run.explain()
    assert run.report.get("windows_judged") is True, run.explain()
