"""End to end: the seed test plan run as pytest tests (``scenarios/pytest_plugin.py``) against the reference backend.

* ``pytest -p scenarios.pytest_plugin --seed-host URL --junitxml F`` in a subprocess runs all five phases of the
  seed plan (each seed test a short Locust run of its scenario, ~2.5 min in all): exit 0, and the one JUnit file
  holds one testcase per seed test, named as in the seed plan, classname the plan's module, none failed, each with
  its properties (scenario, phase, verdict pass, the whole SLA report as JSON); ``-k phase1`` selects one phase;
* loaded through a ``pytest11`` entry point (as ``pip install`` registers it) it collects the 20 seed tests with
  ``--seed-host`` and adds nothing without; given both ways at once it loads once;
* a bad plugin option is a usage error naming the option, before anything runs.

Each run is 5 s judged from 1 s in, so a probe's p(95) is over 3-10 samples: its slowest one. On a 2-core CI VM one
stall decides it (CI22: a Redis SET of 78 ms where the same run measures 0.5-1.4 ms). A seed test that failed only
on such bounds (a percentile whose rank is the last sample, or a max) is run once more, alone, and must pass then;
anything else failing, or more than ``MAX_RERUNS`` such tests, fails this test. Each re-run is a warning in the
summary. A backend or a suite that is slower every time fails the re-run too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from reference_backend.process import BackendProcess
from scenarios.registry import SEED_TESTS, seed_phase_tests, seed_test_index
from sla_checks.evaluate import few_samples_note
from sla_checks.expressions import parse_expression

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "scenarios.pytest_plugin"
MAX_RERUNS = 2


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOCUST_", "TARGET_", "JWT_", "PYTEST_")) and k != "PYTHONPATH"}
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _pytest(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _properties(case: ET.Element) -> dict[str, str]:
    return {str(p.get("name")): str(p.get("value")) for p in case.iter("property")}


def _failed(case: ET.Element) -> bool:
    return any(child.tag in ("failure", "error", "skipped") for child in case)


def _one_sample_decided(report: dict[str, Any]) -> bool:
    """True when the run failed on latency bounds only, each decided by its single slowest sample."""
    failing = [t for t in report.get("thresholds", []) if t.get("status") == "fail"]
    others = [r for r in report.get("verdict_reasons", []) if not str(r).startswith("SLA FAILED: ")]

    def by_one(t: dict[str, Any]) -> bool:
        expr = parse_expression(t["expression"])
        return expr.stat == "max" or bool(few_samples_note(expr, int(t["samples"])))

    return bool(failing) and not others and all(by_one(t) for t in failing)


def _seed_run(backend: BackendProcess, junit: Path, runs: Path, *args: str) -> tuple[int, str, list[ET.Element]]:
    proc = _pytest("-p", PLUGIN, "--seed-host", backend.ws_url, "--seed-duration", "5",
                   "--seed-option", "sla_warmup=1s", "--seed-report-dir", str(runs),
                   "--junitxml", str(junit), *args, env=_env(backend.env), timeout=560)
    cases = list(ET.parse(junit).getroot().iter("testcase")) if junit.exists() else []
    return proc.returncode, proc.stdout + proc.stderr, cases


@pytest.mark.timeout(900)
def test_all_phases_of_the_seed_plan_run_as_pytest_tests_with_one_junit_file(backend: BackendProcess,
                                                                            tmp_path: Path) -> None:
    junit = tmp_path / "seed.xml"
    returncode, out, cases = _seed_run(backend, junit, tmp_path / "runs")
    failed = [c for c in cases if _failed(c)]
    assert returncode == (1 if failed else 0), out[-6000:]
    assert len(failed) <= MAX_RERUNS, out[-6000:]
    for case in failed:
        report = json.loads(_properties(case).get("sla_report", "{}"))
        assert _one_sample_decided(report), out[-6000:]
    assert f"{len(SEED_TESTS) - len(failed)} passed" in out, out[-2000:]
    assert [c.get("name") for c in cases] == list(SEED_TESTS)

    final = {str(c.get("name")): c for c in cases}
    for case in failed:
        name = str(case.get("name"))
        failure = case.find("failure")
        why = "" if failure is None else str(failure.get("message", ""))
        warnings.warn(f"seed test {name} failed on one slow sample and was run again: {why}", stacklevel=1)
        again = tmp_path / f"seed-{name}.xml"
        rc, rerun_out, (rerun,) = _seed_run(backend, again, tmp_path / "reruns", "-k", name)
        assert rc == 0 and "1 passed" in rerun_out, rerun_out[-6000:]
        final[name] = rerun

    seeds = [seed for phase in range(1, 6) for seed in seed_phase_tests(phase)]
    assert sorted(t.name for t in seeds) == sorted(SEED_TESTS)
    by_name = {seed.name: (phase, seed) for phase in range(1, 6) for seed in seed_phase_tests(phase)}
    for case in final.values():
        phase, seed = by_name[str(case.get("name"))]
        assert case.get("classname") == seed.file.removesuffix(".py").replace("/", "."), case.attrib
        assert not _failed(case), case.get("name")
        props = _properties(case)
        assert props["scenario"] == seed_test_index()[seed.name]
        assert props["phase"] == f"phase{phase}" and props["verdict"] == "pass" and props["exit_code"] == "0", props
        report = json.loads(props["sla_report"])
        assert report["verdict"] == "pass" and report["scenario"], report.get("verdict_reasons")
        judged = [k for k in props if k.startswith("threshold ")]
        assert judged and all(props[k].split(" ", 1)[0] in ("pass", "no") for k in judged), props
        assert Path(props["sla_report_path"]).is_file()


def test_only_a_failure_decided_by_one_sample_is_run_again() -> None:
    """The re-run rule above: a p(95) over fewer than 20 samples or a max, and nothing else failing."""
    def report(*failing: tuple[str, int], reasons: tuple[str, ...] = ("SLA FAILED: x",)) -> dict[str, Any]:
        return {"thresholds": [{"status": "fail", "expression": e, "samples": n} for e, n in failing]
                + [{"status": "pass", "expression": "fail_ratio < 0.01", "samples": 40}],
                "verdict_reasons": list(reasons)}

    assert _one_sample_decided(report(("p(95) < 50", 6)))
    assert _one_sample_decided(report(("p(95) < 50", 19), ("max < 1000", 300)))
    assert not _one_sample_decided(report(("p(95) < 50", 20)))
    assert not _one_sample_decided(report(("p(99) < 50", 99), ("fail_ratio < 0.01", 6)))
    assert not _one_sample_decided(report(("p(95) < 50", 6), reasons=("SLA FAILED: x", "a worker was lost")))
    assert not _one_sample_decided(report())


@pytest.mark.timeout(240)
def test_one_phase_is_selected_with_k(backend: BackendProcess, tmp_path: Path) -> None:
    """``-k phase1`` runs that phase's seed tests only (collection only: the runs are the test above's)."""
    proc = _pytest("-p", PLUGIN, "--seed-host", backend.ws_url, "-k", "phase1", "--collect-only", "-q",
                   env=_env(backend.env), timeout=60)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    listed = [line.rsplit("::", 1)[1] for line in proc.stdout.splitlines() if "::test_" in line]
    assert listed == [t.name for t in seed_phase_tests(1)]


def _entry_point(tmp_path: Path) -> dict[str, str]:
    """A distribution on PYTHONPATH that registers the plugin as ``pip install`` does (``pytest11``)."""
    dist = tmp_path / "site" / "ws_agent_loadtest_probe-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ws-agent-loadtest-probe\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(f"[pytest11]\n{PLUGIN} = {PLUGIN}\n")
    return _env({"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])})


@pytest.mark.timeout(120)
def test_the_entry_point_adds_the_seed_tests_only_when_asked(tmp_path: Path) -> None:
    env = _entry_point(tmp_path)
    proc = _pytest("--seed-host", "ws://127.0.0.1:9/ws", "--collect-only", "-q", env=env, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    listed = [line.rsplit("::", 1)[1] for line in proc.stdout.splitlines() if "::test_" in line]
    assert listed == list(SEED_TESTS), out[-3000:]

    both = _pytest("-p", PLUGIN, "--seed-host", "ws://127.0.0.1:9/ws", "--collect-only", "-q", "-m", "phase4",
                   env=env, timeout=60)
    assert both.returncode == 0, (both.stdout + both.stderr)[-3000:]
    assert [line.rsplit("::", 1)[1] for line in both.stdout.splitlines() if "::test_" in line] == [
        t.name for t in seed_phase_tests(4)]

    plain = _pytest("--collect-only", "-q", "tests/unit/test_sla_formatting.py", env=env, timeout=60)
    assert plain.returncode == 0, (plain.stdout + plain.stderr)[-3000:]
    assert "test_websocket_" not in plain.stdout and "seed tests:" not in plain.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "needle"), [
    (("--seed-host", "127.0.0.1:8765"), "--seed-host '127.0.0.1:8765': expected a ws://"),
    (("--seed-host", "ws://127.0.0.1:9/ws", "--seed-duration", "0"), "--seed-duration '0'"),
    (("--seed-host", "ws://127.0.0.1:9/ws", "--seed-option", "=1"), "--seed-option '=1'"),
    (("--seed-catalogue",), "--seed-catalogue needs a host"),
])
def test_bad_plugin_options_are_a_usage_error_naming_the_option(args: tuple[str, ...], needle: str) -> None:
    proc = _pytest("-p", PLUGIN, *args, "--collect-only", "-q", env=_env(), timeout=50)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's exit code for a usage error
    assert needle in proc.stderr, proc.stderr
