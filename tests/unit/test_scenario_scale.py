"""``--scenario-scale``: the shape specs scaled (users and spawn rates times the factor, form and timing kept), the
Locust shape built from them, and the scenario plugin's activation (no Locust process: an Environment without a
runner)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
from locust.env import Environment

from scenarios.activation import activate
from scenarios.registry import SCENARIOS
from scenarios.run_state import ScenarioError, scenario_block
from scenarios.shapes import MAX_SCALE, Ramp, Soak, Spike, Steady, Step, Stepped, scale_users
from tests.helpers import shape_ticks as ticks

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("spec", "scaled", "max_users"),
    [
        (Steady(users=3, spawn_rate=3, duration_s=30), Steady(users=6, spawn_rate=6, duration_s=30), 6),
        (Ramp(start_users=2, end_users=20, duration_s=120, spawn_rate=10),
         Ramp(start_users=4, end_users=40, duration_s=120, spawn_rate=20), 40),
        (Spike(base_users=2, peak_users=10, at_s=20, for_s=20, duration_s=60),
         Spike(base_users=4, peak_users=20, at_s=20, for_s=20, duration_s=60, spawn_rate=100), 20),
        (Soak(users=20, ramp_s=120, duration_s=3600), Soak(users=40, ramp_s=120, duration_s=3600, spawn_rate=2), 40),
    ],
)
def test_scaled_spec_multiplies_users_and_spawn_rate_and_keeps_the_timing(spec: Any, scaled: Any,
                                                                          max_users: int) -> None:
    assert spec.scaled(2) == scaled
    assert spec.scaled(2).max_users == max_users == 2 * spec.max_users
    assert spec.scaled(1) is spec


def test_scaled_stepped_keeps_holds_and_inflight() -> None:
    spec = Stepped(steps=(Step(2, 30, inflight=1), Step(8, 30, inflight=4)), spawn_rate=10)
    big = spec.scaled(2.5)
    assert [(s.users, s.hold_s, s.inflight) for s in big.steps] == [(5, 30, 1), (20, 30, 4)]
    assert big.duration_s == spec.duration_s and big.spawn_rate == 25 and big.max_users == 20


@pytest.mark.parametrize(("users", "factor", "expected"), [(3, 0.1, 1), (0, 5, 0), (8, 0.5, 4), (3, 1.5, 4),
                                                           (10, 1000, 10_000)])
def test_scale_users_rounds_and_keeps_a_phase_that_had_users(users: int, factor: float, expected: int) -> None:
    assert scale_users(users, factor) == expected


@pytest.mark.parametrize("factor", [0, -1, math.nan, math.inf, MAX_SCALE * 2])
def test_scaled_refuses_a_meaningless_factor(factor: float) -> None:
    with pytest.raises(ValueError, match="scale factor"):
        Steady(users=3, duration_s=10).scaled(factor)
    with pytest.raises(ValueError, match="scale factor"):
        Stepped(steps=(Step(2, 3),)).scaled(factor)


def test_scaled_shape_ticks_twice_the_users_fixed_ones_on_top() -> None:
    spec = Ramp(start_users=2, end_users=12, duration_s=10, spawn_rate=4)
    plain = ticks(spec, [0, 5, 9.9], fixed_users=3)
    double = ticks(spec.scaled(2), [0, 5, 9.9], fixed_users=3)
    assert [u for u, _ in plain] == [5, 10, 15]
    assert [u for u, _ in double] == [7, 17, 27]  # 2 x (2, 7, 12) + the same 3 fixed users
    assert [r for _, r in double] == [8, 8, 8]


def test_scaled_stepped_shape_reports_the_scaled_step() -> None:
    seen: list[tuple[int, int, int | None]] = []
    spec = Stepped(steps=(Step(2, 3, inflight=1), Step(4, 3, inflight=2))).scaled(3)
    ticks(spec, [0, 3], on_step=lambda i, step: seen.append((i, step.users, step.inflight)))
    assert seen == [(0, 6, 1), (1, 12, 2)]


def _env(**options: Any) -> Environment:
    from users.chat import ChatUser
    from users.health import HealthCheckUser

    env = Environment(user_classes=[ChatUser, HealthCheckUser])
    env.parsed_options = SimpleNamespace(scenario_duration="8", ws_inflight=1, **options)  # type: ignore[assignment]
    return env


def test_activate_scales_the_shape_and_reports_scale_and_peak_users() -> None:
    env = _env(scenario_scale=2.0)
    state = activate(env, "ws-concurrent-degradation")
    base = SCENARIOS["ws-concurrent-degradation"]
    assert state.scale == 2.0
    assert state.shape is not None and state.shape.spec.max_users == 2 * base.shape.max_users == 16
    assert state.peak_users == 16 + base.fixed_users
    assert scenario_block(state) == {"name": "ws-concurrent-degradation", "scale": 2.0, "peak_users": 17,
                                     "shape": "stepped", "duration_s": 8.0}
    assert activate(env, "") and scenario_block(state) is None


@pytest.mark.parametrize("value", [0.0, -2.0, math.nan, math.inf, 1e6, "abc"])
def test_activate_refuses_a_bad_scale_naming_the_option(value: Any) -> None:
    with pytest.raises(ScenarioError, match=r"--scenario-scale has value .*: expected a finite number > 0"):
        activate(_env(scenario_scale=value), "ws-reply-2s")


def test_text_from_the_web_form_becomes_a_number() -> None:
    env = _env(scenario_scale="0.5")
    state = activate(env, "resource-correlation")
    assert state.scale == 0.5 and env.parsed_options.scenario_scale == 0.5
    assert state.shape is not None and state.shape.spec.max_users == 5  # ramp 2 → 10, halved
    activate(env, "")  # restores the user classes' weights and fixed counts for the other tests
