"""The seed plan in the registry (phases, files) and the pure parts of running a seed test as pytest
(``scenarios/seed_run.py``): option pass-through, the Locust command line, the assertion text, the JUnit properties."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.registry import (
    SEED_PHASES,
    SEED_PLAN,
    SEED_TESTS,
    get_scenario,
    seed_phase_tests,
    seed_test_index,
)
from scenarios.seed_run import (
    DEADLINE_SLACK_S,
    deadline_s,
    locust_argv,
    option_args,
    report_properties,
    verdict_problem,
)

ROOT = Path(__file__).resolve().parents[2]
SEED_PLAN_FILE = Path("/work/shared/seed-test-plan.md")


@pytest.mark.skipif(not SEED_PLAN_FILE.exists(), reason="the seed plan is outside the repo")
def test_phases_and_files_are_the_seed_plans() -> None:
    """Each seed test sits under the plan's "### Phase N" heading and after its "**File**: `...`" line."""
    phase = 0
    file = ""
    found: list[tuple[str, int, str]] = []
    for line in SEED_PLAN_FILE.read_text().splitlines():
        if m := re.match(r"### Phase (\d):", line):
            phase = int(m.group(1))
        elif m := re.match(r"\*\*File\*\*: `([^`]+)`", line):
            file = m.group(1)
        elif m := re.match(r"- `(test_[a-z0-9_]+)\(\)`", line):
            found.append((m.group(1), phase, file))
    assert found == [(t.name, t.phase, t.file) for t in SEED_PLAN]
    assert SEED_PHASES == (1, 2, 3, 4, 5)
    assert [t.name for p in SEED_PHASES for t in seed_phase_tests(p)] == list(SEED_TESTS)
    assert seed_phase_tests(6) == ()


def test_seed_options_become_locust_arguments() -> None:
    assert option_args(["ws_think_time=0.5", "--sla-warmup=1s", "inject-faults", "users_file=a=b.csv"]) == [
        "--ws-think-time", "0.5", "--sla-warmup", "1s", "--inject-faults", "--users-file", "a=b.csv"]
    assert option_args([]) == []


@pytest.mark.parametrize("bad", ["=1", "", "two words=1", "Caps=1", "-=x"])
def test_a_bad_seed_option_names_itself_and_the_form(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"--seed-option {bad!r}: expected KEY=VALUE")):
        option_args([bad])


def test_the_locust_command_line_runs_the_scenario_with_the_options_last() -> None:
    argv = locust_argv(python="py", locustfile="/x/locustfile.py", host="ws://h/ws", scenario="ws-reply-2s",
                       report_json="/r.json", duration="5", profile="staging", options=["--sla-warmup", "1s"])
    assert argv == ["py", "-m", "locust", "-f", "/x/locustfile.py", "--headless", "--only-summary", "--host",
                    "ws://h/ws", "--scenario", "ws-reply-2s", "--sla-report-json", "/r.json",
                    "--scenario-duration", "5", "--sla-profile", "staging", "--sla-warmup", "1s"]
    assert "--scenario-duration" not in locust_argv(python="py", locustfile="l", host="h", scenario="s",
                                                    report_json="r")


def test_the_deadline_is_the_run_length_plus_slack() -> None:
    scenario = get_scenario("ws-reply-2s")
    assert deadline_s(scenario, 5.0) == 5.0 + DEADLINE_SLACK_S
    assert deadline_s(scenario, None) == scenario.duration_s + DEADLINE_SLACK_S


REPORT = {
    "verdict": "fail",
    "verdict_reasons": ["SLA FAILED: WS agent_completed p(95) < 2000 was 2,500 ms", "a worker was lost"],
    "thresholds": [
        {"metric": "WS agent_completed", "expression": "p(95) < 2000", "status": "fail", "value": 2500.0,
         "samples": 40},
        {"metric": "WS hang", "expression": "count < 1", "status": "pass", "value": 0.0, "samples": 0},
        {"metric": "WS error", "expression": "max < 3000", "status": "no data", "value": None, "samples": 0},
    ],
}


def test_a_pass_is_no_problem_and_anything_else_names_what_failed() -> None:
    assert verdict_problem({"verdict": "pass"}, 0, scenario="s", log="l") is None
    text = verdict_problem(REPORT, 3, scenario="ws-reply-2s", log="/tmp/x.log")
    assert text == ("scenario ws-reply-2s: verdict fail (exit 3), expected pass\n"
                    "  FAIL WS agent_completed p(95) < 2000 = 2500 (40 samples)\n"
                    "  reason: a worker was lost\n"
                    "  log: /tmp/x.log")
    # Locust's own exit 1 (requests failed) with an SLA pass is not a pass of the seed test
    assert "verdict pass (exit 1)" in str(verdict_problem({"verdict": "pass"}, 1, scenario="s", log="l"))
    assert "no SLA report" in str(verdict_problem(None, 2, scenario="s", log="l"))
    assert "killed after its deadline" in str(verdict_problem(None, None, scenario="s", log="l"))
    inconclusive = {"verdict": "inconclusive", "verdict_reasons": ["no threshold was judged on a metric with samples"]}
    assert "reason: no threshold was judged" in str(verdict_problem(inconclusive, 4, scenario="s", log="l"))


def test_properties_carry_the_verdict_each_threshold_and_the_whole_report() -> None:
    props = dict(report_properties(REPORT, scenario="ws-reply-2s", phase=2, returncode=3, report_path="/r.json"))
    assert props["scenario"] == "ws-reply-2s" and props["phase"] == "phase2"
    assert props["verdict"] == "fail" and props["exit_code"] == "3" and props["sla_report_path"] == "/r.json"
    assert props["threshold WS agent_completed p(95) < 2000"] == "fail 2500 (40 samples)"
    assert props["threshold WS error max < 3000"] == "no data (0 samples)"
    assert json.loads(props["sla_report"]) == REPORT
    killed = dict(report_properties(None, scenario="s", phase=1, returncode=None, report_path="/r"))
    assert killed["exit_code"] == "killed" and killed["verdict"] == "none" and "sla_report" not in killed


def test_loading_the_pytest_plugin_does_not_import_locust() -> None:
    """pytest may load the installed plugin into any run: without --seed-host it must not monkey-patch the process."""
    code = "import sys, scenarios.pytest_plugin; print('locust' in sys.modules, 'gevent' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_the_scenarios_page_lists_all_28_seed_items_with_scenario_judgement_and_status() -> None:
    page = (ROOT / "docs" / "scenarios.md").read_text()
    section = page.split("## The seed plan, item by item", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if re.match(r"\| \d+ \|", line)]
    assert [int(r[0]) for r in rows] == list(range(1, 29))
    index = seed_test_index()
    for row, seed in zip(rows, SEED_PLAN, strict=False):
        assert row[1] == f"`{seed.name}`" and row[2] == str(seed.phase), row
        assert row[3] == f"`{index[seed.name]}`", row
    for row in rows:
        assert row[4], row  # how it is judged
        status = row[5]
        assert status == "faithful" or (status.startswith("partial: ") and len(status) > 20), row
