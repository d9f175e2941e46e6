"""The composition hand-off: the scenario's thresholds composed with the run's SLA profile
(:func:`scenarios.compose.compose`) and handed to the SLA engine as a profile object, with the scenario block of its
report; back to the ``--sla-*`` options for a plain run."""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

from locust.env import Environment

from scenarios.compose import Composition, compose
from scenarios.query_thresholds import on_query_files
from scenarios.registry import Scenario
from scenarios.run_state import ScenarioError, ScenarioState, scenario_block
from sla_checks.state import state_of
from users.query_files import QueryFileError, load_query_file

__all__ = ["composed_profile", "hand_to_sla", "sla_handoff", "sla_restore", "tell_sla"]

logger = logging.getLogger("scenarios.plugin")  # the plugin's log lines keep its name


def _number(value: Any, default: float, allow_zero: bool = False) -> float:
    """``value`` as a finite positive number (or 0 with ``allow_zero``), else ``default``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        return default
    return number


def _arrival_rate(options: Any, wall_s: float) -> float | None:
    """The open model's mean rate over the run (msg/s), or None for the closed model (or a bad schedule, which the
    chat options refuse at start)."""
    text = str(getattr(options, "ws_arrival_rate", "") or "").strip()
    if not text:
        return None
    from config.arrival import ArrivalSchedule, ScheduleError

    try:
        schedule = ArrivalSchedule.parse(text)
    except (ScheduleError, ValueError):
        return None
    return schedule.count_until(wall_s) / wall_s if wall_s > 0 else None


def composed_profile(options: Any, scenario: Scenario, time_scale: float = 1.0) -> Composition:
    """The thresholds ``scenario`` is judged with under the run's SLA options (raises ScenarioError on a bad one).

    The base is ``--sla-config`` when given, else ``--sla-profile``, except that a scenario with a profile of its own
    (soak) uses that one instead of the default ``local``. The offered load comes from the chat options
    (``--ws-think-time``, ``--ws-inflight``, ``--ws-arrival-rate``) and ``--scenario-scale`` when present. With
    ``--pg-queries`` / ``--clickhouse-queries`` the scenario's lines on the bundled backend's statements judge the
    file's statements instead (:func:`scenarios.query_thresholds.on_query_files`; a note says so)."""
    from sla_checks.profiles import ConfigError, load_profile

    user_config = getattr(options, "sla_config", "") or ""
    profile_name = getattr(options, "sla_profile", "") or ""
    if scenario.sla_profile and profile_name in ("", "local"):
        profile_name = scenario.sla_profile
    try:
        base = load_profile(path=user_config) if user_config else load_profile(profile_name or "local")
    except ConfigError as e:
        raise ScenarioError(str(e)) from None
    window = float(max(1, round(scenario.sla_window_s * time_scale))) if scenario.sla_window_s else None
    scenario, moved = on_query_files(scenario, _query_names(options, "pg_queries", "--pg-queries", "pg"),
                                     _query_names(options, "clickhouse_queries", "--clickhouse-queries", "ch"))
    composition = compose(
        scenario,
        base,
        think_s=_number(getattr(options, "ws_think_time", 1.0), 1.0, allow_zero=True),
        inflight=int(_number(getattr(options, "ws_inflight", 1), 1.0)),
        arrival_rate=_arrival_rate(options, scenario.duration_s * time_scale),
        scale=_number(getattr(options, "scenario_scale", 1.0), 1.0),
        window_s=window,
    )
    composition.notes[:0] = moved
    return composition


def _query_names(options: Any, attr: str, option: str, dialect: Literal["pg", "ch"]) -> tuple[str, ...]:
    """The names of the statements the probe runs from the query file of ``option`` (reads only under
    ``--probe-read-only``); () without a file. A bad file is a ScenarioError (the probe's own check says the same)."""
    path = str(getattr(options, attr, "") or "")
    if not path:
        return ()
    try:
        queries = load_query_file(path, option, dialect).queries
    except QueryFileError as e:
        raise ScenarioError(str(e)) from None
    read_only = bool(getattr(options, "probe_read_only", False))
    return tuple(q.name for q in queries if not (read_only and q.write))


def sla_handoff(environment: Environment, state: ScenarioState) -> None:
    """Compose the scenario's thresholds with the SLA profile and hand them to the SLA engine: now when it is set up
    (web UI: the scenario is picked at swarm time), else from the late ``init`` listener (after the engine's own)."""
    scenario = state.scenario
    assert scenario is not None
    options = environment.parsed_options
    if not hasattr(options, "sla_config") and not hasattr(options, "sla_profile"):
        logger.warning("The SLA engine is not loaded: scenario %s runs without its thresholds", scenario.name)
        return
    state.composition = composed_profile(options, scenario, state.time_scale)
    profile = state.composition.profile
    logger.info(
        "Scenario %s: judged with %d thresholds: its own %d (%s mode) and profile %r's (%s)",
        scenario.name,
        len(profile.thresholds),
        len(scenario.thresholds),
        scenario.threshold_mode,
        profile.name.split(" × ")[0],
        profile.path,
    )
    for note in state.composition.notes:
        logger.info("Scenario %s: %s", scenario.name, note)
    hand_to_sla(environment, state)


def hand_to_sla(environment: Environment, state: ScenarioState) -> None:
    sla = state_of(environment).sla
    if sla is not None and state.composition is not None:
        sla.reconfigure(state.composition.profile)


def sla_restore(environment: Environment, state: ScenarioState) -> None:
    """Back to a plain run (web UI): the SLA engine judges with the --sla-* options again, not the scenario's."""
    if state.composition is None:
        return
    state.composition = None
    sla = state_of(environment).sla
    if sla is not None:
        sla.reconfigure(None)


def tell_sla(environment: Environment, state: ScenarioState) -> None:
    """Hand :func:`scenario_block` to the SLA engine (when it is set up: at init its own listener runs later)."""
    sla = state_of(environment).sla
    if sla is not None:
        sla.scenario = sla.engine.scenario = scenario_block(state)
