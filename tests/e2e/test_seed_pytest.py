"""End to end: the seed test plan run as pytest tests (``scenarios/pytest_plugin.py``) against the reference backend.

* ``pytest -p scenarios.pytest_plugin --seed-host URL --junitxml F`` in a subprocess runs all five phases of the
  seed plan (each seed test a short Locust run of its scenario, ~2.5 min in all): exit 0, and the one JUnit file
  holds one testcase per seed test, named as in the seed plan, classname the plan's module, none failed, each with
  its properties (scenario, phase, verdict pass, the whole SLA report as JSON); ``-k phase1`` selects one phase;
* loaded through a ``pytest11`` entry point (as ``pip install`` registers it) it collects the 20 seed tests with
  ``--seed-host`` and adds nothing without; given both ways at once it loads once;
* a bad plugin option is a usage error naming the option, before anything runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reference_backend.process import BackendProcess
from scenarios.registry import SEED_TESTS, seed_phase_tests, seed_test_index

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "scenarios.pytest_plugin"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOCUST_", "TARGET_", "JWT_", "PYTEST_")) and k != "PYTHONPATH"}
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _pytest(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.timeout(600)
def test_all_phases_of_the_seed_plan_run_as_pytest_tests_with_one_junit_file(backend: BackendProcess,
                                                                            tmp_path: Path) -> None:
    junit = tmp_path / "seed.xml"
    proc = _pytest("-p", PLUGIN, "--seed-host", backend.ws_url, "--seed-duration", "5",
                   "--seed-option", "sla_warmup=1s", "--seed-report-dir", str(tmp_path / "runs"),
                   "--junitxml", str(junit), env=_env(backend.env), timeout=560)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert f"{len(SEED_TESTS)} passed" in out, out[-2000:]

    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert [c.get("name") for c in cases] == list(SEED_TESTS)
    seeds = [seed for phase in range(1, 6) for seed in seed_phase_tests(phase)]
    assert sorted(t.name for t in seeds) == sorted(SEED_TESTS)
    by_name = {seed.name: (phase, seed) for phase in range(1, 6) for seed in seed_phase_tests(phase)}
    for case in cases:
        phase, seed = by_name[str(case.get("name"))]
        assert case.get("classname") == seed.file.removesuffix(".py").replace("/", "."), case.attrib
        assert not [child.tag for child in case if child.tag in ("failure", "error", "skipped")], case.get("name")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["scenario"] == seed_test_index()[seed.name]
        assert props["phase"] == f"phase{phase}" and props["verdict"] == "pass" and props["exit_code"] == "0", props
        report = json.loads(props["sla_report"])
        assert report["verdict"] == "pass" and report["scenario"], report.get("verdict_reasons")
        judged = [k for k in props if k.startswith("threshold ")]
        assert judged and all(props[k].split(" ", 1)[0] in ("pass", "no") for k in judged), props
        assert Path(props["sla_report_path"]).is_file()


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
