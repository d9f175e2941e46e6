"""Pure tests of the scenario catalogue, the load shapes, the fault schedule and the generated SLA profiles."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest

from contract.faults import FAULT_KINDS
from scenarios.faults import (
    FaultScheduler,
    FaultTargetError,
    admin_base_url,
    check_local_backend,
    fault_timeline,
    looks_like_reference_health,
    resolves_to_loopback,
)
from scenarios.options import parse_seconds
from scenarios.registry import (
    SCENARIOS,
    SEED_TESTS,
    FaultSpec,
    Scenario,
    Threshold,
    UnknownScenarioError,
    UserMix,
    get_scenario,
    seed_test_index,
)
from scenarios.shapes import Ramp, Soak, Spike, Steady, Step, Stepped, build_shape
from sla_checks.attribution import tier_of
from sla_checks.expressions import parse_expression
from sla_checks.profiles import validate_metric
from tests.helpers import shape_ticks as ticks

SEED_PLAN = Path("/work/shared/seed-test-plan.md")


# --------------------------------------------------------------------------------------------- catalogue


def test_every_seed_test_maps_to_exactly_one_scenario() -> None:
    index = seed_test_index()
    assert set(index) == set(SEED_TESTS)
    listed = [seed for s in SCENARIOS.values() for seed in s.seed_tests]
    assert len(listed) == len(set(listed))


@pytest.mark.skipif(not SEED_PLAN.exists(), reason="the seed plan is outside the repo")
def test_seed_test_names_match_the_plan_exactly() -> None:
    text = SEED_PLAN.read_text()
    import re

    in_plan = set(re.findall(r"`(test_[a-z0-9_]+)\(\)`", text))
    assert in_plan == set(SEED_TESTS)


def test_catalogue_has_smoke_soak_and_one_scenario_per_seed_test() -> None:
    assert {"smoke", "soak"} <= set(SCENARIOS)
    assert SCENARIOS["soak"].duration_s >= 3600
    assert SCENARIOS["smoke"].duration_s == 30
    assert "soak" in SCENARIOS["soak"].tags


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_thresholds_parse_and_name_known_metrics(name: str) -> None:
    scenario = SCENARIOS[name]
    for t in scenario.thresholds:
        parse_expression(t.expr)
        assert validate_metric(t.metric) is None, (t.metric, validate_metric(t.metric))
    for metric in scenario.expected_breaches:
        assert any(fnmatch.fnmatchcase(metric, t.metric) or metric == t.metric for t in scenario.thresholds)


def test_tier_evidence_of_every_faulted_scenario_is_explicit() -> None:
    """Each scenario faulting a tier names it (ranked first by attribution, or breached by its own probe) or says
    why not; the cascade's proof is the order of its attribution chain instead."""
    for scenario in SCENARIOS.values():
        if any(f.tier for f in scenario.faults):
            assert bool(scenario.expected_tier) != bool(scenario.tier_exception), scenario.name
    cascade = SCENARIOS["three-tier-cascade"]  # one cause (Redis); the chain in its attribution shows the effects
    assert {f.tier for f in cascade.faults} == {"redis"}
    assert {tier_of(m) for m in cascade.expected_breaches} == {"redis"} and cascade.tier_exception
    assert SCENARIOS["ws-connect-under-stress"].attributed_breaches == ("WS agent_completed",)
    assert SCENARIOS["health-endpoints"].attributed_breaches == ()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_faults_are_backend_kinds_inside_the_run(name: str) -> None:
    scenario = SCENARIOS[name]
    for fault in (*scenario.faults, *scenario.tolerated_faults):
        assert fault.kind in FAULT_KINDS
        assert 0 < fault.start_s and fault.start_s + fault.for_s <= scenario.duration_s
    if scenario.faults:
        assert scenario.expected_breaches


def test_unknown_scenario_error_names_the_fix() -> None:
    with pytest.raises(UnknownScenarioError) as err:
        get_scenario("redis")
    text = str(err.value)
    assert "'redis'" in text and "--list-scenarios" in text and "redis-connect-latency" in text


PG_SLOW = FaultSpec("pg-slow-query", start_s=1, for_s=2, ms=800)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "Bad Name"}, "lower-case"),
        ({"users": ()}, "at least one"),
        ({"users": (UserMix("ChatUser"), UserMix("ChatUser"))}, "twice"),
        ({"faults": (FaultSpec("hang", start_s=1, for_s=100),), "expected_breaches": ("WS agent_completed",)},
         "after the scenario"),
        ({"faults": (FaultSpec("hang", start_s=1, for_s=2),)}, "which metric"),
        ({"expected_breaches": ("PG *",)}, "no threshold"),
        # a tier fault names the tier attribution must rank first, or says why not
        ({"faults": (PG_SLOW,), "expected_breaches": ("WS agent_completed",)}, "tier_exception why"),
        ({"faults": (PG_SLOW,), "expected_breaches": ("WS agent_completed",), "expected_tier": "redis"},
         "not a tier its faults act on"),
        ({"faults": (PG_SLOW,), "expected_breaches": ("WS agent_completed",), "expected_tier": "postgres",
          "tier_exception": "because"}, "not both"),
        # without a WS/FLOW breach to attribute, the breaches themselves must be the tier's
        ({"faults": (PG_SLOW,), "thresholds": (Threshold("REDIS *", "p(95) < 50"),),
          "expected_breaches": ("REDIS GET",), "expected_tier": "postgres"}, "must include a postgres metric"),
        ({"faults": (PG_SLOW,), "thresholds": (Threshold("REDIS *", "p(95) < 50"), Threshold("PG *", "p(95) < 9")),
          "expected_breaches": ("PG thread history", "REDIS GET"), "expected_tier": "postgres"}, "none of another"),
        # attribution to a tier needs that tier's own latency threshold (its rise when it has no baseline samples)
        ({"faults": (PG_SLOW,), "expected_breaches": ("WS agent_completed",), "expected_tier": "postgres"},
         "needs a p\\(..\\) threshold on a postgres metric"),
    ],
)
def test_scenario_rejects_inconsistent_definitions(kwargs: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {
        "name": "x",
        "summary": "s",
        "seed_tests": (),
        "users": (UserMix("ChatUser"),),
        "shape": Steady(users=1, duration_s=10),
        "thresholds": (Threshold("WS agent_completed", "p(95) < 2000"),),
    }
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Scenario(**base)


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "nope", "start_s": 1, "for_s": 1}, {"kind": "hang", "start_s": -1, "for_s": 1},
     {"kind": "hang", "start_s": 1, "for_s": 0}],
)
def test_fault_spec_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaultSpec(**kwargs)


def test_one_line_names_duration_shape_and_fault() -> None:
    line = SCENARIOS["reproduce-3s-timeout"].one_line()
    assert line.startswith("reproduce-3s-timeout") and "1m" in line and "steady" in line and "redis-pause" in line


# --------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    "spec, times, users",
    [
        (Steady(users=5, duration_s=10), [0, 5, 9.99], [5, 5, 5]),
        (Ramp(start_users=2, end_users=12, duration_s=10), [0, 5, 9.9], [2, 7, 12]),
        (Spike(base_users=2, peak_users=9, at_s=3, for_s=2, duration_s=10), [0, 2.9, 3, 4.9, 5], [2, 2, 9, 9, 2]),
        (Soak(users=10, ramp_s=10, duration_s=100), [0.5, 5, 10, 99], [1, 5, 10, 10]),
        (Stepped(steps=(Step(2, 3), Step(4, 3), Step(8, 4))), [0, 2.9, 3, 6, 9.9], [2, 2, 4, 8, 8]),
    ],
)
def test_shape_users_follow_the_spec(spec: Any, times: list[float], users: list[int]) -> None:
    assert [tick[0] for tick in ticks(spec, times)] == users


@pytest.mark.parametrize(
    "spec",
    [Steady(users=1, duration_s=10), Ramp(start_users=1, end_users=3, duration_s=10),
     Stepped(steps=(Step(1, 4), Step(2, 6)))],
)
def test_shape_ends_the_run_at_its_duration(spec: Any) -> None:
    assert ticks(spec, [9.99, 10.0, 50.0])[1:] == [None, None]


def test_time_scale_shrinks_every_phase_and_speeds_up_spawning() -> None:
    spec = Spike(base_users=2, peak_users=9, at_s=30, for_s=20, duration_s=100, spawn_rate=5)
    out = ticks(spec, [2.9, 3.0, 4.9, 5.0, 9.99, 10.0], time_scale=0.1)
    assert [o[0] if o else None for o in out] == [2, 9, 9, 2, 2, None]
    assert out[0][1] == pytest.approx(50.0)


def test_fixed_users_come_on_top_of_the_shape() -> None:
    assert ticks(Steady(users=3, duration_s=10), [1], fixed_users=2)[0][0] == 5


def test_stepped_shape_calls_on_step_once_per_step() -> None:
    seen: list[tuple[int, Any]] = []
    spec = Stepped(steps=(Step(2, 3, inflight=1), Step(4, 3, inflight=2)))
    ticks(spec, [0, 1, 2, 3, 4, 5], on_step=lambda i, step: seen.append((i, step.inflight)))
    assert seen == [(0, 1), (1, 2)]


@pytest.mark.parametrize(
    "factory",
    [lambda: Steady(users=-1, duration_s=1), lambda: Steady(users=1, duration_s=0),
     lambda: Ramp(start_users=1, end_users=2, duration_s=1, spawn_rate=0),
     lambda: Spike(base_users=1, peak_users=2, at_s=5, for_s=10, duration_s=10),
     lambda: Soak(users=1, ramp_s=10, duration_s=10), lambda: Stepped(steps=()), lambda: Step(1, 0),
     lambda: Step(1, 1, inflight=0)],
)
def test_shape_specs_reject_bad_values(factory: Any) -> None:
    with pytest.raises(ValueError):
        factory()


def test_build_shape_rejects_bad_time_scale() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        build_shape(Steady(users=1, duration_s=1), time_scale=0)


# --------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    "text, seconds", [("10", 10), ("10.5", 10.5), ("90s", 90), ("2m", 120), ("1h", 3600), ("1h30m", 5400)]
)
def test_parse_seconds_accepts_plain_and_suffixed(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "ten", "5x", "m"])
def test_parse_seconds_rejects_with_the_fix(text: str) -> None:
    with pytest.raises(ValueError):
        parse_seconds(text)


# --------------------------------------------------------------------------------------------- faults


def test_fault_timeline_scales_times_not_intensity() -> None:
    faults = (
        FaultSpec("pg-slow-query", start_s=40, for_s=60, ms=1500),
        FaultSpec("redis-slow", start_s=20, for_s=80, ms=300),
    )
    plan = fault_timeline(faults, 0.1)
    assert [(p.spec.kind, p.at_s, p.for_s, p.spec.ms) for p in plan] == [
        ("redis-slow", pytest.approx(2.0), pytest.approx(8.0), 300),
        ("pg-slow-query", pytest.approx(4.0), pytest.approx(6.0), 1500),
    ]


class FakeFaults:
    def __init__(self, fail_kind: str | None = None, status: int | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_kind = fail_kind
        self.status = status

    def apply(self, kind: str, ms: int | None = None, for_s: float = 10.0, **params: Any) -> dict[str, Any]:
        self.calls.append(("apply", kind, ms, for_s, params))
        if kind == self.fail_kind:
            raise RuntimeError("backend said no")
        return {"id": "f1", "kind": kind}

    def list(self) -> list[dict[str, Any]]:
        if self.status:
            err = RuntimeError("refused")
            err.status = self.status  # type: ignore[attr-defined]
            raise err
        return []

    def clear(self) -> None:
        self.calls.append(("clear",))


def test_scheduler_applies_each_fault_at_its_time_and_stop_clears() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(dt: float) -> None:
        sleeps.append(dt)
        now[0] += dt

    client = FakeFaults(fail_kind="hang")
    plan = fault_timeline(
        (FaultSpec("drop-event", start_s=2, for_s=3, params=(("event", "tool_completed"),)),
         FaultSpec("hang", start_s=5, for_s=1)),
        1.0,
    )
    scheduler = FaultScheduler(client, plan, clock=lambda: now[0], sleep=sleep)
    scheduler.run()
    assert sleeps == [2.0, 3.0]
    assert client.calls == [
        ("apply", "drop-event", None, 3.0, {"event": "tool_completed"}),
        ("apply", "hang", None, 1.0, {}),
    ]
    assert len(scheduler.errors) == 1 and "hang" in scheduler.errors[0]
    scheduler.stop()
    assert client.calls[-1] == ("clear",)


@pytest.mark.parametrize(
    "url, base",
    [("ws://127.0.0.1:8765/ws", "http://127.0.0.1:8765"), ("wss://h.example:443/api/v1/websocket", "https://h.example:443"),
     ("http://localhost:9/x", "http://localhost:9"), ("ws://user:pw@127.0.0.1:1/ws", "http://127.0.0.1:1")],
)
def test_admin_base_url_from_the_host(url: str, base: str) -> None:
    assert admin_base_url(url) == base


def test_admin_base_url_rejects_other_schemes() -> None:
    with pytest.raises(FaultTargetError, match="--scenario-target-url"):
        admin_base_url("redis://127.0.0.1:6379")


@pytest.mark.parametrize(
    "host, addresses, loopback",
    [("127.0.0.1", None, True), ("::1", None, True), ("[::1]", None, True), ("10.0.0.5", None, False),
     ("localhost", ["127.0.0.1", "::1"], True), ("staging.example", ["10.2.3.4"], False),
     ("mixed.example", ["127.0.0.1", "10.2.3.4"], False), ("box", ["127.0.1.1"], True),
     ("app.localhost", None, True), ("10.0.0.5", ["127.0.0.1"], False), ("", ["127.0.0.1"], False)],
)
def test_resolves_to_loopback(host: str, addresses: list[str] | None, loopback: bool) -> None:
    assert resolves_to_loopback(host, resolve=lambda _name: addresses or []) is loopback


@pytest.mark.parametrize(
    "body, ok",
    [({"status": "ok", "pid": 12, "uptime_s": 3.2}, True), ({"status": "ok", "pid": 12, "uptime_s": 3}, True),
     ({"status": "ok"}, False), ({"status": "ok", "pid": True, "uptime_s": 1}, False),
     ({"status": "UP", "pid": 1, "uptime_s": 1}, False), ("ok", False), (None, False)],
)
def test_reference_health_shape(body: Any, ok: bool) -> None:
    assert looks_like_reference_health(body) is ok


def test_fault_injection_refused_for_a_non_loopback_target() -> None:
    with pytest.raises(FaultTargetError) as err:
        check_local_backend("http://10.9.8.7:8765", FakeFaults())
    assert "refused" in str(err.value) and "10.9.8.7" in str(err.value)


# --------------------------------------------------------------------------------------------- staging


class Options:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


STAGING_OK = {
    "token_file": "/run/secrets/tokens.txt",
    "redis_url": "rediss://redis.staging.internal:6380/0",
    "pg_dsn": "postgresql://loadtest@pg.staging.internal/chat",
    "clickhouse_url": "https://ch.staging.internal:8443",
    "health_url": "",
}


def test_staging_run_with_everything_configured_is_ready() -> None:
    from scenarios.staging import staging_problems

    problems = staging_problems(SCENARIOS["three-tier-cascade"], Options(**STAGING_OK), "wss://chat.staging.example/ws", {})
    assert problems == []


@pytest.mark.parametrize(
    "change, host, needle",
    [
        ({"token_file": ""}, "wss://chat.staging.example/ws", "LOCUST_TOKEN_FILE"),
        ({}, None, "LOCUST_HOST"),
        ({}, "ws://localhost:8765/ws", "this machine"),
        ({"redis_url": "redis://127.0.0.1:6379/0"}, "wss://chat.staging.example/ws", "LOCUST_REDIS_URL"),
        ({"pg_dsn": ""}, "wss://chat.staging.example/ws", "LOCUST_PG_DSN"),
        ({"clickhouse_url": "http://[::1]:8123"}, "wss://chat.staging.example/ws", "LOCUST_CLICKHOUSE_URL"),
    ],
)
def test_staging_run_names_the_missing_setting(change: dict[str, Any], host: str | None, needle: str) -> None:
    from scenarios.staging import staging_problems

    options = Options(**{**STAGING_OK, **change})
    problems = staging_problems(SCENARIOS["three-tier-cascade"], options, host, {})
    assert len(problems) == 1 and needle in problems[0], problems


def test_staging_chat_may_mint_tokens_from_the_jwt_secret_env() -> None:
    from scenarios.staging import staging_problems

    options = Options(**{**STAGING_OK, "token_file": ""})
    assert staging_problems(SCENARIOS["ws-reply-2s"], options, "wss://c.example/ws", {"JWT_SECRET_KEY": "s"}) == []


def test_scenarios_page_table_maps_every_seed_test_to_its_scenario() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "scenarios.md").read_text()
    section = page.split("## The seed tests and their scenarios", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[2].strip(" `"): line.split("|")[3].strip(" `") for line in section.splitlines()
            if line.startswith("| ") and "`test_" in line}
    assert rows == seed_test_index()
