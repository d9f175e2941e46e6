"""Activating a scenario on an environment: its user classes and mix, its load shape, its faults and its thresholds
(or back to a plain run); shared by the ``init`` listener and the web UI's ``/swarm`` hook."""

from __future__ import annotations

import logging
import os
from typing import Any

from locust import User
from locust.env import Environment
from locust.runners import WorkerRunner

from scenarios.fault_handoff import prepare_faults
from scenarios.faults import FaultTargetError
from scenarios.options import scale_option, time_scale
from scenarios.read_only import read_only_conflict
from scenarios.registry import get_scenario
from scenarios.run_state import ScenarioError, ScenarioState, scenario_state
from scenarios.shapes import ScenarioShape, Stepped, build_shape
from scenarios.sla_handoff import sla_handoff, sla_restore, tell_sla
from scenarios.staging import staging_problems
from scenarios.steps import on_step

__all__ = ["activate", "apply_user_mix", "available_classes"]

logger = logging.getLogger("scenarios.plugin")  # the plugin's log lines keep its name


def available_classes(environment: Environment, state: ScenarioState) -> dict[str, type[User]]:
    classes: dict[str, Any] = dict(environment.available_user_classes or {})  # Locust annotates classes as instances
    for cls in state.original_user_classes:
        classes.setdefault(cls.__name__, cls)
    return classes


def _restore_users(environment: Environment, state: ScenarioState) -> None:
    for cls, (weight, fixed_count) in state.original_attrs.items():
        cls.weight, cls.fixed_count = weight, fixed_count
    if state.original_user_classes:
        environment.user_classes = list(state.original_user_classes)


def activate(environment: Environment, name: str) -> ScenarioState:
    """Make ``name`` the scenario of this run (or restore a plain run for ``""``); raises ScenarioError."""
    state = scenario_state(environment)
    options = environment.parsed_options
    runner = environment.runner
    if not state.original_user_classes:
        state.original_user_classes = list(environment.user_classes)
        for cls in available_classes(environment, state).values():
            state.original_attrs[cls] = (cls.weight, cls.fixed_count)
    _restore_users(environment, state)
    if not name:
        state.scenario, state.shape, state.scheduler = None, None, None
        if isinstance(environment.shape_class, ScenarioShape):
            environment.shape_class = None
        sla_restore(environment, state)
        tell_sla(environment, state)
        return state
    try:
        scenario = get_scenario(name)
    except KeyError as e:
        raise ScenarioError(str(e)) from None
    available = available_classes(environment, state)
    missing = [c for c in scenario.user_classes if c not in available]
    if missing:
        raise ScenarioError(
            f"scenario {scenario.name} needs user class(es) {', '.join(missing)}, which the locustfile does not "
            f"expose (available: {', '.join(sorted(available)) or 'none'}); use -f locustfile.py of this suite"
        )
    state.scenario = scenario
    state.time_scale = time_scale(scenario, getattr(options, "scenario_duration", "") or "")
    state.scale = scale_option(options)
    if options is not None and hasattr(options, "scenario_scale"):
        options.scenario_scale = state.scale  # a number again (the web UI's form hands over text)
    classes = [available[mix.user_class] for mix in scenario.users]
    apply_user_mix(environment)
    # also on workers: they spawn by class name what the master dispatches, and other plugins (probe start-up
    # checks) then only look at the scenario's classes
    environment.user_classes = classes
    for key, value in scenario.options:
        if hasattr(options, key):
            setattr(options, key, value)
        else:
            logger.warning("Scenario %s: option %s=%r is not known to this locustfile; ignored", name, key, value)
    if isinstance(runner, WorkerRunner):
        return state
    conflict = read_only_conflict(scenario, bool(getattr(options, "probe_read_only", False)))
    if conflict:
        raise ScenarioError(conflict)
    if getattr(options, "sla_profile", "") == "staging":
        problems = staging_problems(scenario, options, environment.host, dict(os.environ))
        if problems:
            raise ScenarioError(
                f"scenario {scenario.name} with --sla-profile staging is not configured:\n  " + "\n  ".join(problems)
            )
    state.step_marks = []
    state.shape = build_shape(
        scenario.shape.scaled(state.scale),
        time_scale=state.time_scale,
        fixed_users=scenario.fixed_users,
        on_step=(lambda index, step: on_step(environment, state, index, step))
        if isinstance(scenario.shape, Stepped)
        else None,
    )
    state.shape.runner = runner
    environment.shape_class = state.shape
    try:
        prepare_faults(environment, state)  # first: a refusal exits before any file is written
    except FaultTargetError as e:
        raise ScenarioError(str(e)) from None
    sla_handoff(environment, state)
    tell_sla(environment, state)
    logger.info(
        "Scenario %s: %s; users %s; %s shape for %.1f s%s, peak %d users%s",
        scenario.name,
        scenario.summary,
        ", ".join(
            f"{m.user_class}{' x' + str(m.fixed_count) if m.fixed_count else ' w' + str(m.weight)}"
            for m in scenario.users
        ),
        scenario.shape.kind,
        state.shape.wall_duration_s,
        f" (time scale {state.time_scale:.3g})" if state.time_scale != 1.0 else "",
        state.peak_users,
        f" (--scenario-scale {state.scale:g})" if state.scale != 1.0 else "",
    )
    return state


def apply_user_mix(environment: Environment) -> None:
    """Set the scenario's ``weight`` / ``fixed_count`` on its user classes (again after other plugins' init)."""
    state = scenario_state(environment)
    if state.scenario is None:
        return
    available = available_classes(environment, state)
    for mix in state.scenario.users:
        cls = available[mix.user_class]
        cls.weight, cls.fixed_count = (mix.weight if not mix.fixed_count else 0), mix.fixed_count
