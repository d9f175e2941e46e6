"""The composition rule of scenario × SLA profile (scenarios.compose), and the matrix: every scenario of the catalogue
under every profile in config/, judged on synthesised healthy samples, passes (no false failure), and fails when the
same samples fail."""

from __future__ import annotations

import fnmatch

import pytest

from scenarios.compose import PRODUCES, compose, is_required, mean_chat_load, producible
from scenarios.registry import SCENARIOS, Scenario, Threshold, UserMix
from scenarios.shapes import Steady
from sla_checks.engine import Engine
from sla_checks.evaluate import ThresholdSpec
from sla_checks.profiles import Profile, available_profiles, load_profile
from sla_checks.report import build_report

PROFILES = available_profiles()
CHAT_SCENARIOS = [n for n, s in SCENARIOS.items() if {"ChatUser", "ChatFlowUser"} & set(s.user_classes)]


def lines(profile: Profile) -> set[tuple[str, str]]:
    return {(t.metric, str(t.expression)) for t in profile.thresholds}


def spec(profile: Profile, metric: str, expression: str) -> ThresholdSpec:
    found = [t for t in profile.thresholds if t.metric == metric and str(t.expression) == expression]
    assert len(found) == 1, (metric, expression, sorted(lines(profile)))
    return found[0]


# --------------------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("name", ["smoke", "soak", "resource-correlation"])
def test_staging_requires_no_metric_the_scenario_cannot_produce(name: str) -> None:
    """A staging run of a scenario without ChatFlowUser is not failed by staging's required FLOW line."""
    composed = compose(SCENARIOS[name], load_profile("staging"))
    assert not [t for t in composed.profile.thresholds if t.metric.startswith("FLOW")]
    assert any("FLOW login→send→receive max < 15000" in n and "no user class" in n for n in composed.notes)
    # ... while what the scenario's classes do produce stays required, as staging says
    assert spec(composed.profile, "WS agent_completed", "within(2000) >= 95%").required


@pytest.mark.parametrize("profile_name", PROFILES)
@pytest.mark.parametrize("name", CHAT_SCENARIOS)
def test_the_seed_failure_line_survives_every_chat_scenario(name: str, profile_name: str) -> None:
    """``WS agent_completed max < 3000`` of a profile survives unless the scenario sets its own ``max`` line."""
    profile = load_profile(profile_name)
    composed = compose(SCENARIOS[name], profile).profile
    seed = [t for t in profile.thresholds if t.metric == "WS agent_completed" and t.expression.lhs == "max"]
    own = [t for t in SCENARIOS[name].thresholds if t.metric == "WS agent_completed" and t.expr.startswith("max")]
    got = [t for t in composed.thresholds if t.metric == "WS agent_completed" and t.expression.lhs == "max"]
    if own:
        assert [str(t.expression) for t in got] == [t.expr for t in own]
    else:
        assert [str(t.expression) for t in got] == [str(t.expression) for t in seed]


def test_a_scenario_line_replaces_only_the_profile_line_with_its_left_hand_side() -> None:
    profile = load_profile("ci")
    composed = compose(SCENARIOS["smoke"], profile).profile
    p95 = [t for t in composed.thresholds if t.metric == "WS agent_completed" and t.expression.lhs == "p(95)"]
    assert len(p95) == 1 and p95[0].source == "scenario smoke"
    for expression in ("within(2000) >= 95%", "max < 3000"):
        assert spec(composed, "WS agent_completed", expression).source.startswith("ci.toml")
    # the profile's abort line survives beside the scenario's own fail_ratio line
    abort = spec(composed, "WS agent_completed", "fail_ratio < 0.5")
    assert abort.abort_on_fail and spec(composed, "WS agent_completed", "fail_ratio < 0.01").required


def test_replace_mode_keeps_the_environment_lines_of_the_profile_only() -> None:
    composed = compose(SCENARIOS["ws-reply-2s"], load_profile("ci")).profile
    kept = {(m, e) for m, e in lines(composed)} - {(t.metric, t.expr) for t in SCENARIOS["ws-reply-2s"].thresholds}
    assert ("WS agent_completed", "max < 3000") in kept and ("WS agent_completed", "fail_ratio < 0.5") in kept
    assert all(not e.startswith(("p(", "within(")) for _m, e in kept), kept  # latency limits are the scenario's


def test_scenario_lines_are_required_except_count_below_and_explicit_exceptions() -> None:
    assert is_required(Threshold("WS agent_completed", "p(95) < 2000"))
    assert is_required(Threshold("WS agent_completed", "fail_ratio < 0.01"))
    assert not is_required(Threshold("WS events missing", "count < 1"))
    assert is_required(Threshold("WS agent_completed", "count >= 10"))
    assert not is_required(Threshold("WS connect", "fail_ratio < 0.01", required=False))
    composed = compose(SCENARIOS["smoke"], load_profile("local")).profile
    assert spec(composed, "WS agent_completed", "p(95) < 2000").required
    assert not spec(composed, "WS events missing", "count < 1").required


def test_an_unreachable_rps_line_is_left_out_with_the_cap_and_kept_where_the_load_reaches_it() -> None:
    profile = load_profile("local")
    small = compose(SCENARIOS["smoke"], profile)
    assert ("WS agent_completed", "rps >= 10") not in lines(small.profile)
    note = next(n for n in small.notes if "rps >= 10" in n)
    assert "caps throughput at 1 msg/s" in note and "3 users" in note, note
    # soak's 20 users reach 10 msg/s only with replies under 1 s; scaled up they reach it at the 2 s limit
    assert ("WS agent_completed", "rps >= 10") not in lines(compose(SCENARIOS["soak"], profile).profile)
    assert ("WS agent_completed", "rps >= 10") in lines(compose(SCENARIOS["soak"], profile, scale=2).profile)
    # the open model: the arrival rate is the cap
    assert ("WS agent_completed", "rps >= 10") in lines(compose(SCENARIOS["smoke"], profile, arrival_rate=12).profile)


def test_a_user_class_the_table_does_not_know_keeps_every_line() -> None:
    assert producible("FLOW login→send→receive", ["ChatUser", "MyOwnUser"])
    assert not producible("FLOW login→send→receive", ["ChatUser", "HealthCheckUser"])
    assert producible("HTTP /auth/login", ["ChatFlowUser"]) and not producible("HTTP /health*", ["ChatFlowUser"])
    scenario = Scenario(name="x", summary="s", seed_tests=(), users=(UserMix("ChatUser"),),
                        shape=Steady(users=1, duration_s=10), thresholds=(Threshold("WS connect", "max < 500"),))
    assert ("FLOW login→send→receive", "max < 15000") in lines(
        compose(scenario, load_profile("local"), ["ChatUser", "MyOwnUser"]).profile)


def test_every_scenario_line_is_on_a_metric_its_classes_produce() -> None:
    for scenario in SCENARIOS.values():
        for t in scenario.thresholds:
            assert producible(t.metric, scenario.user_classes), (scenario.name, t.metric)
        assert set(scenario.user_classes) <= set(PRODUCES), scenario.name


def test_mean_chat_load_follows_shape_weights_and_steps() -> None:
    assert mean_chat_load(SCENARIOS["smoke"]).chat_users == pytest.approx(3)
    assert mean_chat_load(SCENARIOS["pg-lock-contention"]).chat_users == pytest.approx(1)  # 1 of 4 by weight
    assert mean_chat_load(SCENARIOS["redis-write-memory-pressure"]).chat_users == pytest.approx(1)  # fixed count
    stepped = mean_chat_load(SCENARIOS["ws-concurrent-degradation"])
    assert (stepped.chat_users, stepped.chat_concurrency) == (pytest.approx(5), pytest.approx(15))


# --------------------------------------------------------------------------------------------- the matrix

T0 = 1_700_000_000.0
THINK_S = 1.0
# What each user class records on a healthy reference stack (ms): every chat message's events, the probes' statements.
HEALTHY_MS: dict[str, dict[str, float]] = {
    "ChatUser": {
        "WS connect": 25, "WS agent_started": 60, "WS agent_thinking": 150, "WS tool_executing": 250,
        "WS tool_completed": 350, "WS agent_completed": 450, "WS heartbeat": 5,
        "WS recovery": 1500,  # only where a stepped shape lowers the demand (users.recovery); harmless elsewhere
        "BACKEND orphan runs": 0,  # the cleanup check's count (users.cleanup_check, --cleanup-check)
    },
    "ChatFlowUser": {
        "HTTP /auth/login": 40, "WS connect": 25, "WS agent_started": 60, "WS agent_thinking": 150,
        "WS tool_executing": 250, "WS tool_completed": 350, "WS agent_completed": 450,
        "FLOW login→send→receive": 600,
    },
    "RedisProbeUser": {
        "REDIS connect": 3, "REDIS pool acquire": 1, "REDIS SET": 1, "REDIS GET": 1, "REDIS MGET": 1,
        "REDIS SET large": 2, "REDIS INFO": 1,
    },
    "PostgresProbeUser": {
        "PG connect": 15, "PG pool acquire": 1, "PG thread history": 4, "PG message insert": 3,
        "PG thread update": 3, "PG run insert": 3, "PG run complete": 3, "PG commit": 2, "PG lock stats": 2,
        "PG txn read_committed": 3, "PG txn repeatable_read": 3, "PG txn serializable": 3,
    },
    "ClickHouseProbeUser": {"CH insert": 40, "CH query agent stage summary": 60},
    "HealthCheckUser": {
        "HTTP /health": 5, "HTTP /health/ready": 30, "HTTP ready:redis": 2, "HTTP ready:postgres": 5,
        "HTTP ready:clickhouse": 10,
    },
}
PER_MESSAGE = {"WS agent_started", "WS agent_thinking", "WS tool_executing", "WS tool_completed", "WS agent_completed"}


def class_users(scenario: Scenario) -> dict[str, float]:
    """Mean users per class over the scenario's shape."""
    shape = scenario.shape
    points = 500
    mean_shape = sum(shape.users_at((i + 0.5) * shape.duration_s / points) for i in range(points)) / points
    weighted = sum(m.weight for m in scenario.users if not m.fixed_count) or 1
    return {m.user_class: m.fixed_count or mean_shape * m.weight / weighted for m in scenario.users}


def recorded_samples(scenario: Scenario, span_s: float) -> list[tuple[str, float, float]]:
    """``(metric, t, ms)`` of a healthy run of ``span_s`` s: chat messages at the rate the scenario's load delivers
    (closed model: slots / (think + reply)), each with its events; connects once per user; heartbeats every 5 s;
    probes and health checks about one sample per user and second over their statements."""
    load = mean_chat_load(scenario)
    users = class_users(scenario)
    out: list[tuple[str, float, float]] = []
    for cls, per_metric in HEALTHY_MS.items():
        if cls not in users:
            continue
        for metric, ms in per_metric.items():
            if metric in PER_MESSAGE:
                slots = load.chat_concurrency if cls == "ChatUser" else load.flow_users
                n = slots / (THINK_S + HEALTHY_MS[cls]["WS agent_completed"] / 1000) * span_s
            elif metric == "FLOW login→send→receive":
                n = load.flow_users / (THINK_S + ms / 1000) * span_s
            elif metric == "WS connect":
                n = users[cls] * 1.5 if cls == "ChatUser" else load.flow_users / (THINK_S + 0.6) * span_s
            elif metric == "WS heartbeat":
                n = users[cls] * span_s / 5
            else:
                n = users[cls] * span_s / len(per_metric)
            count = max(1, round(n))
            out += [(metric, T0 + span_s * (i + 0.5) / count, ms) for i in range(count)]
    return out


def judge(profile: Profile, samples: list[tuple[str, float, float]], span_s: float, failed: bool = False,
          peak_users: int = 1) -> dict:
    engine = Engine(list(profile.thresholds), window_s=profile.window_s, warmup_s=profile.warmup_s)
    engine.start(T0)
    if hasattr(engine, "peak_users"):
        engine.peak_users = peak_users
    for metric, t, ms in samples:
        rtype, name = metric.split(" ", 1)
        engine.collector.record(rtype, name, ms, failed, t)
    engine.flush_local()
    engine.stop(T0 + span_s)
    return build_report(engine, T0 + span_s, final=True)


def explain(report: dict, notes: list[str]) -> str:
    rows = [f"  {t['status']:<8} {t['metric']} {t['expression']} = {t['value']} ({t['samples']} samples)"
            f"{' required' if t.get('required') else ''}" for t in report["thresholds"]]
    return "\n".join([f"verdict {report['verdict']}", *rows, *report.get("verdict_reasons", []), *notes])


@pytest.mark.parametrize("profile_name", PROFILES)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_under_every_profile_passes_on_healthy_samples_and_fails_on_failed_ones(
    name: str, profile_name: str
) -> None:
    scenario = SCENARIOS[name]
    composed = compose(scenario, load_profile(profile_name), think_s=THINK_S)
    span = max(60.0, 2 * composed.profile.window_s)
    samples = recorded_samples(scenario, span)
    healthy = judge(composed.profile, samples, span)
    assert healthy["verdict"] == "pass", explain(healthy, composed.notes)
    judged = [t for t in healthy["thresholds"] if t["status"] == "pass" and t["samples"]]
    assert judged, explain(healthy, composed.notes)
    broken = judge(composed.profile, samples, span, failed=True)
    assert broken["verdict"] == "fail", explain(broken, composed.notes)


@pytest.mark.parametrize("profile_name", PROFILES)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_scenario_metric_without_samples_fails_the_run(name: str, profile_name: str) -> None:
    """The scenario exists to measure its metrics: a healthy run that lacks one of them is no pass."""
    scenario = SCENARIOS[name]
    composed = compose(scenario, load_profile(profile_name), think_s=THINK_S)
    target = next(t for t in composed.profile.thresholds if t.required and t.source == f"scenario {name}")
    span = max(60.0, 2 * composed.profile.window_s)
    samples = [s for s in recorded_samples(scenario, span) if not fnmatch.fnmatchcase(s[0], target.metric)]
    report = judge(composed.profile, samples, span)
    assert report["verdict"] == "fail", explain(report, composed.notes)
