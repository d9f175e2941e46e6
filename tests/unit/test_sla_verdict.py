"""The verdict states (pure): pass, fail, inconclusive; their exit codes; ``count`` on no samples; evidence; the
"did you mean" of a threshold that got no samples; how each report format shows an inconclusive verdict.

Contract (README, "Verdict and exit codes"): fail beats inconclusive beats pass; inconclusive = nothing failed but
there is no evidence (the run never had a user, or no threshold was judged on a metric that had samples).
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.env import Environment
from locust.event import Events

from sla_checks.engine import Engine
from sla_checks.evaluate import (
    FAIL,
    INCONCLUSIVE,
    NO_DATA,
    PASS,
    MetricData,
    ThresholdSpec,
    closest_metrics,
    evaluate,
    has_evidence,
)
from sla_checks.plugin import SlaPlugin
from sla_checks.plugin_options import check_users, inconclusive_code_option
from sla_checks.profiles import ConfigError, Profile
from sla_checks.report import build_report, render_junit, render_terminal, verdict_exit_code
from sla_checks.report_html import render
from sla_checks.webui import threshold_rows, verdict_text

pytestmark = pytest.mark.timeout(20)

T0 = 1_800_000_000.0


def engine(*specs: ThresholdSpec, samples: dict[str, list[float]] | None = None, users: int | None = 3) -> Engine:
    """An ended 10 s run with ``samples`` (metric -> latencies, all successful) and ``users`` at peak."""
    eng = Engine(list(specs), profile="t", config_file="t.toml")
    eng.start(T0)
    for metric, values in (samples or {}).items():
        rtype, name = metric.split(" ", 1)
        for i, ms in enumerate(values):
            eng.collector.record(rtype, name, ms, False, T0 + 1 + i * 0.01)
    eng.flush_local()
    eng.peak_users = users
    eng.stop(T0 + 10)
    return eng


def verdict(eng: Engine) -> tuple[str, list[str]]:
    return eng.verdict(eng.evaluate(T0 + 10))


# --- count on no samples, evidence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "status"), [("count < 1", PASS), ("count >= 1", FAIL), ("count == 0", PASS)]
)
def test_count_on_a_metric_without_samples_is_zero_and_judged(expression, status):
    (r,) = evaluate([ThresholdSpec.of("WS events missing", expression)], {}, 10.0)
    assert (r.status, r.value, r.samples) == (status, 0.0, 0)


def test_count_with_samples_counts_them_and_other_statistics_stay_no_data():
    data = MetricData()
    for ms in (1.0, 2.0):
        data.record(ms, failed=False)
    res = evaluate(
        [ThresholdSpec.of("WS events missing", "count < 1"), ThresholdSpec.of("WS heartbeat", "p(95) < 10")],
        {"WS events missing": data},
        10.0,
    )
    assert [(r.status, r.value) for r in res] == [(FAIL, 2.0), (NO_DATA, None)]


def test_required_does_not_fail_a_count_judged_on_no_samples():
    spec = ThresholdSpec.of("WS events missing", "count < 1", required=True)
    (r,) = evaluate([spec], {}, 10.0)
    assert r.status == PASS


def test_evidence_is_a_judgement_on_samples():
    data = MetricData()
    data.record(5.0, failed=False)
    judged = evaluate([ThresholdSpec.of("PG x", "p(95) < 100")], {"PG x": data}, 10.0)
    count_only = evaluate([ThresholdSpec.of("WS events missing", "count < 1")], {}, 10.0)
    no_data = evaluate([ThresholdSpec.of("PG y", "p(95) < 100")], {"PG x": data}, 10.0)
    assert has_evidence(judged) and not has_evidence(count_only) and not has_evidence(no_data)
    assert not has_evidence([])


# --- the verdict -----------------------------------------------------------------------------------------------------


def test_passes_with_evidence():
    eng = engine(ThresholdSpec.of("WS agent_completed", "p(95) < 2000"), samples={"WS agent_completed": [100.0]})
    assert verdict(eng) == (PASS, [])


def test_every_threshold_without_samples_is_inconclusive_naming_what_the_run_produced():
    eng = engine(
        ThresholdSpec.of("PG *", "p(95) < 200"),
        ThresholdSpec.of("WS events missing", "count < 1"),  # judged, but on nothing
        samples={"WS agent_completed": [100.0, 120.0]},
    )
    state, reasons = verdict(eng)
    assert state == INCONCLUSIVE
    assert len(reasons) == 1 and reasons[0].startswith("SLA INCONCLUSIVE: no threshold was judged")
    assert "PG *" in reasons[0] and "WS agent_completed" in reasons[0] and "add thresholds" in reasons[0]


def test_sent_chat_messages_without_any_judged_reply_are_inconclusive_despite_other_evidence():
    """Connect samples are no evidence about the reply SLA: sent messages that all stayed in flight (younger than the
    limit) leave the chat lines without data, so the run cannot pass on the connects alone."""
    eng = engine(
        ThresholdSpec.of("WS agent_completed", "max < 3000"),
        ThresholdSpec.of("WS connect", "p(95) < 1000"),
        samples={"WS connect": [5.0, 6.0]},
    )
    eng.store.counts["chat:sent"] = 4
    state, reasons = verdict(eng)
    assert state == INCONCLUSIVE
    assert "4 chat message(s) were sent but none was answered" in reasons[0]
    eng.collector.record("WS", "agent_completed", 150.0, False, T0 + 2)  # one reply judged: evidence again
    eng.flush_local()
    assert verdict(eng) == (PASS, [])


def test_no_samples_at_all_is_inconclusive():
    state, reasons = verdict(engine(ThresholdSpec.of("WS agent_completed", "p(95) < 2000")))
    assert state == INCONCLUSIVE and "no samples at all" in reasons[0]


def test_a_run_without_users_is_inconclusive_even_with_samples():
    eng = engine(
        ThresholdSpec.of("WS agent_completed", "p(95) < 2000"), samples={"WS agent_completed": [100.0]}, users=0
    )
    state, reasons = verdict(eng)
    assert state == INCONCLUSIVE and "never had a user (peak 0 users)" in reasons[0] and "-u 1" in reasons[0]


def test_untracked_users_do_not_make_a_run_inconclusive():
    eng = engine(
        ThresholdSpec.of("WS agent_completed", "p(95) < 2000"), samples={"WS agent_completed": [9.0]}, users=None
    )
    assert verdict(eng)[0] == PASS


@pytest.mark.parametrize("users", [0, 3])
def test_fail_beats_inconclusive(users):
    eng = engine(ThresholdSpec.of("WS agent_completed", "p(95) < 2000", required=True), users=users)
    state, reasons = verdict(eng)
    assert state == FAIL and reasons == [
        "SLA FAILED: WS agent_completed p(95) < 2000: no data (required: the metric got no samples)"
    ]


def test_a_lost_worker_fails_a_run_without_evidence():
    eng = engine(ThresholdSpec.of("WS agent_completed", "p(95) < 2000"))
    eng.lost_workers.add("w1")
    assert verdict(eng)[0] == FAIL


@pytest.mark.parametrize(
    ("state", "other", "code"),
    [(PASS, 0, 0), (PASS, 1, 1), (FAIL, 0, 3), (FAIL, 1, 3), (INCONCLUSIVE, 0, 4), (INCONCLUSIVE, 1, 4)],
)
def test_exit_code_per_verdict(state, other, code):
    assert verdict_exit_code(state, 3, 4, other) == code


# --- did you mean ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("GET /helth", ["GET /health"]),
        ("POST /health", ["GET /health"]),  # the same name under another request type
        ("MyType my_nme", ["MyType my_name"]),
        ("WS agent_completed (intended)", []),  # a real metric of another mode, not a typo
        ("WS generator lag", []),
        ("PG *", []),
    ],
)
def test_closest_metrics(pattern, expected):
    produced = ["GET /health", "GET /api/items", "MyType my_name", "WS agent_completed", "WS agent_started"]
    assert closest_metrics(pattern, produced) == expected


def test_report_names_the_closest_metric_for_a_threshold_without_samples():
    eng = engine(
        ThresholdSpec.of("GET /helth", "p(95) < 1000"),
        ThresholdSpec.of("GET /health", "max < 5000"),
        samples={"GET /health": [3.0, 4.0]},
    )
    rep = build_report(eng, T0 + 10)
    rows = {t["metric"]: t for t in rep["thresholds"]}
    assert rows["GET /helth"]["did_you_mean"] == ["GET /health"] and rows["GET /health"]["did_you_mean"] == []
    assert rep["verdict"] == PASS
    assert "GET /helth p(95) < 1000 got no samples; did you mean 'GET /health'?" in render_terminal(rep)


# --- every report format ---------------------------------------------------------------------------------------------


def inconclusive_report(**kw) -> dict:
    eng = engine(ThresholdSpec.of("PG *", "p(95) < 200"), samples={"WS agent_completed": [100.0]})
    eng.inconclusive_exit_code = 7
    return build_report(eng, T0 + 10, **kw)


def test_inconclusive_report_json_terminal_junit_html_and_tab():
    rep = inconclusive_report(other_exit_code=1)
    assert (rep["verdict"], rep["exit_code"], rep["peak_users"]) == (INCONCLUSIVE, 7, 3)
    text = render_terminal(rep)
    assert text.endswith("SLA verdict: INCONCLUSIVE (exit code 7)")
    assert "SLA INCONCLUSIVE: no threshold was judged" in text
    suite = ET.fromstring(render_junit(rep)).find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and suite.get("failures") == "0"
    error = suite.find("testcase/error")
    assert error is not None and error.get("type") == "SLAInconclusive"
    assert error.get("message", "").startswith("SLA INCONCLUSIVE")
    html = render(rep)
    assert 'class="banner inconclusive"' in html and "SLA INCONCLUSIVE" in html
    row = threshold_rows(rep)[0]
    assert row["status"] == "VERDICT: INCONCLUSIVE" and "SLA INCONCLUSIVE" in row["description"]


def test_live_tab_says_no_data_yet_instead_of_inconclusive():
    assert verdict_text({"state": "running", "verdict": INCONCLUSIVE}) == "NO DATA YET"
    assert verdict_text({"state": "finished", "verdict": INCONCLUSIVE}) == "INCONCLUSIVE"
    assert verdict_text({"state": "running", "verdict": FAIL}) == "FAIL"


# --- options and the plugin --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "ok"), [(4, True), (1, True), (255, True), (0, False), (256, False), (-1, False)])
def test_inconclusive_exit_code_option_is_1_to_255(code, ok):
    options = argparse.Namespace(sla_inconclusive_exit_code=code)
    if ok:
        assert inconclusive_code_option(options) == code
    else:
        with pytest.raises(ConfigError, match=rf"--sla-inconclusive-exit-code {code}: expected an exit code 1\.\.255"):
            inconclusive_code_option(options)


def env_with(**options) -> Environment:
    env = Environment(events=Events(), parsed_options=argparse.Namespace(**options))
    env.create_local_runner()
    return env


def test_negative_users_are_a_usage_error_and_zero_a_warning():
    with pytest.raises(ConfigError, match=r"-u/--users -5: expected a number of users >= 1"):
        check_users(env_with(num_users=-5, headless=True))
    warning = check_users(env_with(num_users=0, headless=True))
    assert warning is not None and "INCONCLUSIVE (exit code 4)" in warning
    assert check_users(env_with(num_users=0, headless=False)) is None  # the web UI's form default
    assert check_users(env_with(num_users=0, headless=True, scenario="smoke")) is None  # the shape sets users
    assert check_users(env_with(num_users=None, headless=True)) is None


def test_plugin_tracks_peak_users_and_a_run_without_users_exits_with_the_inconclusive_code():
    env = env_with(num_users=0, headless=True)
    spec = ThresholdSpec.of("WS agent_completed", "p(95) < 2000")
    plugin = SlaPlugin.register(env, Profile(name="t", path="t.toml", thresholds=[spec]), inconclusive_exit_code=9)
    env.events.test_start.fire(environment=env)
    assert plugin.peak_users == 0
    env.events.request.fire(
        request_type="WS", name="agent_completed", response_time=10.0, response_length=0, exception=None, context={}
    )
    env.events.test_stopping.fire(environment=env)
    env.events.quitting.fire(environment=env)
    assert (plugin.final_report["verdict"], env.process_exit_code) == (INCONCLUSIVE, 9)
    plugin.note_users(user_count=4)  # spawning_complete(user_count=4)
    assert plugin.peak_users == 4 and plugin.engine.peak_users == 4
