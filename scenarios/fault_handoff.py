"""A scenario's faults at run time (``--inject-faults``, ``--inject-tolerated-faults``): check that the target is the
bundled backend on loopback, build the :class:`~scenarios.faults.FaultScheduler` on the scenario's (rescaled) schedule
and hand every applied fault to the SLA engine for the report."""

from __future__ import annotations

import logging
import os
from typing import Any

from locust.env import Environment

from scenarios.faults import (
    FaultScheduler,
    FaultTargetError,
    PlannedFault,
    admin_base_url,
    check_local_backend,
    fault_timeline,
)
from scenarios.registry import Scenario
from scenarios.run_state import ScenarioState
from sla_checks.state import state_of

__all__ = ["prepare_faults"]

logger = logging.getLogger("scenarios.plugin")  # the plugin's log lines keep its name


def _admin_token(options: Any) -> str:
    return getattr(options, "target_admin_token", "") or os.environ.get("TARGET_ADMIN_TOKEN", "")


def _fault_base_url(environment: Environment) -> str:
    options = environment.parsed_options
    url = getattr(options, "scenario_target_url", "") or environment.host or getattr(options, "host", "") or ""
    if not url:
        raise FaultTargetError(
            "Fault injection needs the backend's address: set --host ws://127.0.0.1:PORT/ws or --scenario-target-url"
        )
    return admin_base_url(url)


def _wanted_faults(scenario: Scenario, options: Any) -> list[Any]:
    faults: list[Any] = []
    if getattr(options, "inject_faults", False):
        faults.extend(scenario.faults)
    if getattr(options, "inject_tolerated_faults", False):
        faults.extend(scenario.tolerated_faults)
    return faults


def prepare_faults(environment: Environment, state: ScenarioState) -> None:
    """Check the target and build the scheduler (raises FaultTargetError / ScenarioError)."""
    from contract.faults import FaultsClient

    scenario = state.scenario
    assert scenario is not None
    options = environment.parsed_options
    faults = _wanted_faults(scenario, options)
    if not faults:
        state.scheduler = None
        if getattr(options, "inject_faults", False) or getattr(options, "inject_tolerated_faults", False):
            logger.warning("Scenario %s has no faults of the requested kind; running without faults", scenario.name)
        return
    base = _fault_base_url(environment)
    token = _admin_token(options)
    client = FaultsClient(base, token) if token else None
    check_local_backend(base, client)
    assert client is not None
    state.scheduler = FaultScheduler(
        client,
        fault_timeline(faults, state.time_scale),
        on_applied=lambda planned, at, error: _note_fault(environment, planned, at, error),
    )
    for planned in state.scheduler.plan:
        logger.info("Scenario %s will inject %s", scenario.name, planned.describe())


def _note_fault(environment: Environment, planned: PlannedFault, at: float, error: str | None) -> None:
    """Hand an applied (or failed) fault to the SLA engine: its kind, start and planned end go into the report."""
    sla = state_of(environment).sla
    if sla is not None:
        sla.record_fault(planned.spec.kind, at, at + planned.for_s, planned.detail(), error)
