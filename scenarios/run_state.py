"""What the scenario plugin keeps per environment (``state_of(environment).scenario``), its usage error, and the
scenario block of the SLA report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from locust import User
from locust.env import Environment

from config.errors import UsageError
from scenarios.compose import Composition
from scenarios.faults import FaultScheduler
from scenarios.registry import Scenario
from scenarios.shapes import ScenarioShape, Step
from sla_checks.state import state_of

__all__ = ["CurvePoint", "ScenarioError", "ScenarioState", "scenario_block", "scenario_state"]


@dataclass
class CurvePoint:
    step: int
    users: int
    inflight: int | None
    count: int = 0
    failures: int = 0
    p50: float = 0.0
    p95: float = 0.0
    max: float = 0.0


@dataclass
class ScenarioState:
    """What the plugin keeps in ``state_of(environment).scenario``."""

    scenario: Scenario | None = None
    time_scale: float = 1.0
    scale: float = 1.0
    """``--scenario-scale``: the factor on the shape's users and spawn rates."""
    shape: ScenarioShape | None = None
    original_user_classes: list[type[User]] = field(default_factory=list)
    original_attrs: dict[type[User], tuple[float, int]] = field(default_factory=dict)
    scheduler: FaultScheduler | None = None
    composition: Composition | None = None
    """The thresholds this scenario is judged with (handed to the SLA engine)."""
    curve: list[CurvePoint] = field(default_factory=list)
    step_marks: list[tuple[int, Step | None, dict[int, int], int, int, float]] = field(default_factory=list)
    """Per step started so far: (index, step, response-time buckets, requests, failures, max) of WS
    agent_completed when it started (:mod:`scenarios.steps`)."""
    stops_under_way: int = 0
    """Calls of the runner's ``stop()`` that have not returned (web UI): its users, shape worker and ``test_stop``
    listeners, the SLA engine's judgement of the test's end among them, are not done."""

    @property
    def peak_users(self) -> int:
        """The most users the scenario runs at once: the scaled shape's peak plus the fixed-count users."""
        if self.scenario is None or self.shape is None:
            return 0
        return self.shape.spec.max_users + self.shape.fixed_users


class ScenarioError(UsageError):
    """A user error activating a scenario (exit code 2 at start)."""


def scenario_state(environment: Environment) -> ScenarioState:
    """The scenario plugin's state of ``environment`` (created empty on first use)."""
    suite = state_of(environment)
    if not isinstance(suite.scenario, ScenarioState):
        suite.scenario = ScenarioState()
    return suite.scenario


def scenario_block(state: ScenarioState) -> dict[str, Any] | None:
    """What the SLA report says about the scenario of the run (``"scenario"``; None: a plain run)."""
    if state.scenario is None or state.shape is None:
        return None
    return {
        "name": state.scenario.name,
        "scale": state.scale,
        "peak_users": state.peak_users,
        "shape": state.scenario.shape.kind,
        "duration_s": round(state.shape.wall_duration_s, 3),
    }
