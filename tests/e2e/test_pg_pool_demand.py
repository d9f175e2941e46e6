"""Proof of ``pg-pool-demand``: real connection demand against a pool sized for it passes, against a smaller pool
fails with the pool's waits and refusals in the report, and recovery after the demand drops is judged.

No fault is injected: two reference backends differ only in their PostgreSQL pool (``--pg-pool-size``), and each
message holds its pooled connection for ``--pg-work-ms`` of server-side work (``pg_sleep``), so the connections a
backend needs grow with the messages in flight. The scenario's stepped shape raises the messages in flight per chat
user 4x for its middle step and drops them again:

* **sized** (pool 32 >= 6 users x 4 in flight): exit 0, verdict pass, ``WS recovery`` judged and passing;
* **small** (pool 3): exit 3, ``WS agent_completed`` fails with ``DEPENDENCY_TIMEOUT`` replies (acquire refused at the
  backend's 2 s deadline), the report's gauges show callers waiting for the pool and acquire timeouts, the server's
  connection count (``pg:connections``) next to ``max_connections``, and ``WS recovery`` is measured after the drop.

Both runs go in parallel, each against a backend of its own, 12 s each (the proof machinery's ``Run``). The shared
PostgreSQL server's ``max_connections`` is never touched.
"""

from __future__ import annotations

from typing import Any

import pytest

from reference_backend.process import BackendProcess
from tests.e2e.test_scenario_proofs import Run, run_batch

NAME = "pg-pool-demand"
DURATION = 12.0
WORK_MS = 500
SIZED_POOL = 32
SMALL_POOL = 3


def _threshold(report: dict[str, Any], metric: str, expression: str) -> dict[str, Any]:
    rows = [t for t in report.get("thresholds", []) if t["metric"] == metric and t["expression"] == expression]
    assert rows, f"no threshold {metric} {expression} in {[(t['metric'], t['expression']) for t in report['thresholds']]}"
    return rows[0]


def _gauge_max(report: dict[str, Any], name: str) -> float | None:
    points = report.get("gauges", {}).get(name)
    if not points:
        return None
    values = [p[1] if isinstance(p, list | tuple) else p.get("value", p.get("max")) for p in points]
    return max(float(v) for v in values if v is not None)


@pytest.fixture(scope="module")
def demand_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    out = tmp_path_factory.mktemp("pg-pool-demand")
    runs = {
        mode: Run(NAME, "healthy", DURATION, out / f"{mode}.json", out / f"{mode}.log")
        for mode in ("sized", "small")
    }
    backends = [
        BackendProcess.start(out / "backends", pg_pool_size=pool, pg_work_ms=WORK_MS)
        for pool in (SIZED_POOL, SMALL_POOL)
    ]
    try:
        run_batch(list(zip(runs.values(), backends, strict=True)))
    finally:
        for b in backends:
            b.stop()
    return runs


@pytest.mark.timeout(120)
def test_a_pool_sized_for_the_demand_passes_and_recovery_is_judged(demand_runs: dict[str, Run]) -> None:
    run = demand_runs["sized"]
    report = run.report
    assert run.returncode == 0, run.explain()
    assert report.get("verdict") == "pass", run.explain()
    recovery = _threshold(report, "WS recovery", "max < 5000")
    assert recovery["status"] == "pass" and recovery["samples"] >= 1, run.explain()


@pytest.mark.timeout(120)
def test_real_demand_on_a_small_pool_fails_with_waits_and_refusals(demand_runs: dict[str, Run]) -> None:
    run = demand_runs["small"]
    report = run.report
    assert run.returncode == 3, run.explain()
    assert report.get("verdict") == "fail", run.explain()
    assert _threshold(report, "WS agent_completed", "fail_ratio < 0.01")["status"] == "fail", run.explain()
    # errors, not hangs: the backend refuses at its deadline with an error frame
    for metric in ("WS hang", "WS timeout", "WS events missing"):
        assert _threshold(report, metric, "count < 1")["status"] == "pass", run.explain()
    text = run.log_path.read_text(errors="replace")
    assert "DEPENDENCY_TIMEOUT" in text and "pool acquire" in text, run.explain()
    waiting = _gauge_max(report, "backend:pg_pool_waiting")
    timeouts = _gauge_max(report, "backend:pg_pool_acquire_timeouts")
    in_use = _gauge_max(report, "backend:pg_pool_in_use")
    assert waiting and waiting > 0, f"{report.get('gauges', {}).keys()}\n{run.explain()}"
    wait_ms = _gauge_max(report, "backend:pg_pool_wait_ms")
    assert wait_ms and wait_ms > 0, run.explain()
    assert timeouts and timeouts > 0, run.explain()
    assert in_use == SMALL_POOL, run.explain()
    connections = _gauge_max(report, "pg:connections")
    max_connections = _gauge_max(report, "pg:max_connections")
    assert connections and max_connections and connections <= max_connections, run.explain()
    # recovery after the drop is measured (and judged) in the failing run too
    assert _threshold(report, "WS recovery", "max < 5000")["samples"] >= 1, run.explain()
