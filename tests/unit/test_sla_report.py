from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sla_checks.engine import Engine
from sla_checks.profiles import load_profile
from sla_checks.report import SCHEMA, build_report, render_junit, render_terminal, write_reports

pytestmark = pytest.mark.timeout(20)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sla_report_example.json"
T0 = 1_800_000_000.0


def soak_engine(lock: bool = True) -> Engine:
    """120 s, 30 s windows, PostgreSQL stalls in seconds 60-89 (when ``lock``)."""
    rnd = random.Random(5)
    prof = load_profile("soak")
    eng = Engine(prof.thresholds, window_s=30, profile="soak", config_file=prof.path)
    eng.start(T0)
    c = eng.collector
    for s in range(120):
        t = T0 + s + 0.5
        bad = lock and 60 <= s < 90
        for _ in range(12):
            extra = rnd.uniform(2000, 2600) if bad else 0.0
            c.record(
                "WS",
                "agent_completed",
                700 + rnd.random() * 300 + extra,
                False,
                t,
                {"agent_started→agent_thinking": 40 + extra},
            )
        c.record("PG", "thread history", (2900 if bad else 4) + rnd.random(), False, t)
        c.record("REDIS", "GET", 0.5 + rnd.random(), False, t)
        c.record_gauge("locust:cpu_percent", 40.0 + s % 7, t)
    eng.flush_local()
    eng.stop(T0 + 120)
    return eng


def shape(obj, depth=0):
    """Key structure of a report (dict keys; first element of lists)."""
    if isinstance(obj, dict):
        return {k: shape(v, depth + 1) for k, v in obj.items()} if depth < 1 else set(obj)
    return type(obj).__name__


def test_report_has_schema_fields_and_matches_committed_example():
    rep = build_report(soak_engine(), T0 + 120)
    example = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert rep["schema"] == example["schema"] == SCHEMA
    assert set(rep) == set(example)
    for key in ("thresholds", "windows", "attribution"):
        assert set(rep[key][0]) == set(example[key][0]), key
    assert set(rep["attribution"][0]["tiers"][0]) == set(example["attribution"][0]["tiers"][0])
    m = rep["metrics"]["WS agent_completed"]
    assert set(m) == set(example["metrics"]["WS agent_completed"])
    assert {
        "request_type",
        "name",
        "count",
        "failures",
        "p50",
        "p90",
        "p95",
        "p99",
        "max",
        "avg",
        "rps",
    } <= set(m)
    assert set(rep["windows"][0]["metrics"]["WS agent_completed"]) >= {
        "count",
        "failures",
        "p50",
        "p95",
        "p99",
        "max",
    }
    assert rep["gauges"]["locust:cpu_percent"][0] == [T0 + 0.5, 40.0]
    json.dumps(rep, allow_nan=False)  # strict JSON


def test_report_verdict_windows_and_attribution_for_a_pg_stall():
    rep = build_report(soak_engine(), T0 + 120)
    assert (rep["verdict"], rep["exit_code"]) == ("fail", 3)
    by = {(t["metric"], t["expression"]): t for t in rep["thresholds"]}
    assert by[("WS agent_completed", "p(95) < 2000")]["failed_windows"] == [2]
    assert by[("REDIS connect", "p(95) < 100")]["status"] == "no data"
    a = rep["attribution"][0]
    assert a["tiers"][0]["tier"] == "postgres"
    assert 'coincides with PG "thread history"' in a["summary"]
    assert a["slowest_stage"] == "agent_started→agent_thinking"
    # the run's gauges are correlated with the failing metric per bucket: a CPU reading that cycles every 7 s does
    # not move with a 30 s PostgreSQL stall, so it is reported but not named in the summary
    (cpu,) = a["gauges"]
    assert (cpu["gauge"], cpu["windows"]) == ("locust:cpu_percent", round(120 / rep["bucket_s"]))
    assert cpu["correlation"] is not None and abs(cpu["correlation"]) < 0.5
    assert "moves with" not in a["summary"]


def test_healthy_report_passes_with_locusts_own_exit_code():
    rep = build_report(soak_engine(lock=False), T0 + 120, other_exit_code=1)
    assert (rep["verdict"], rep["exit_code"], rep["attribution"]) == ("pass", 1, [])


def test_terminal_table_lists_thresholds_then_attribution_and_verdict():
    text = render_terminal(build_report(soak_engine(), T0 + 120))
    lines = text.splitlines()
    assert any(ln.startswith("FAIL") and "WS agent_completed" in ln and "p(95) < 2000" in ln for ln in lines)
    assert any(ln.startswith("no data") and "REDIS connect" in ln for ln in lines)
    assert text.index("attribution:") < text.index("SLA verdict: FAIL (exit code 3)")
    assert "window 2 (" in text


def test_junit_has_one_testcase_per_threshold_and_failing_window():
    rep = build_report(soak_engine(), T0 + 120)
    root = ET.fromstring(render_junit(rep))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    n_windows_failed = sum(len(w["failed"]) for w in rep["windows"])
    assert len(cases) == len(rep["thresholds"]) + n_windows_failed
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert "WS agent_completed p(95) < 2000 [window 2 " in " ".join(failed)
    assert int(suite.get("failures")) == len(failed)
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    assert "REDIS connect p(95) < 100" in skipped


def test_write_reports_writes_json_and_junit(tmp_path):
    rep = build_report(soak_engine(lock=False), T0 + 120)
    paths = write_reports(rep, str(tmp_path / "a" / "r.json"), str(tmp_path / "r.xml"), None)
    assert len(paths) == 2
    assert json.loads((tmp_path / "a" / "r.json").read_text())["verdict"] == "pass"
    ET.parse(tmp_path / "r.xml")
