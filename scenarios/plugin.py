"""Locust hooks for named scenarios: ``--scenario NAME``, ``--list-scenarios``, ``--inject-faults`` ...

Importing this module (``locustfile.py`` does) registers the options and listeners. How a scenario takes over a run
(Locust 2.47 reads ``environment.shape_class`` and ``environment.user_classes`` when a test starts, so both are set in
the ``init`` listener, before the headless start or the web UI's first swarm):

* **users**: ``environment.user_classes`` becomes the scenario's classes only (so every other user class is
  excluded) and each class gets the scenario's ``weight`` / ``fixed_count``; the originals are restored when the
  web UI switches back to "no scenario". Workers keep every class (the master dispatches by name).
* **shape**: ``environment.shape_class`` becomes a :class:`scenarios.shapes.ScenarioShape` built from the scenario's
  spec, its time scaled by ``--scenario-duration`` and its users and spawn rates by ``--scenario-scale``; ``-u``/``-r``
  are then ignored (the shape decides) and the run ends when the shape does. No shape class sits in the locustfile's
  namespace, so runs without ``--scenario`` are untouched.
* **thresholds**: :func:`scenarios.compose.compose` makes one profile of the scenario's thresholds and the SLA
  profile's (``--sla-config`` / ``--sla-profile``, or the scenario's own profile when that is ``local``) and hands it
  to the SLA engine (``environment.sla.reconfigure``), with one log line per profile line it left out and why.
* **faults** (``--inject-faults``): see :mod:`scenarios.faults`; refused (exit 2) unless the target is the bundled
  backend on loopback; cleared at test stop and at quit, always.
* **web UI**: ``--scenario`` is a drop-down in the start form; a ``before_request`` hook on ``/swarm`` activates the
  picked scenario (or restores the plain run) before Locust starts the swarm, composing its thresholds with the SLA
  profile the form names; every start is judged afresh (the SLA engine starts a new state at each test start). A
  start waits until the previous test's ``stop()`` has returned (users, shape worker, ``test_stop`` listeners).

The concerns live in their own modules: :mod:`scenarios.options` (the options), :mod:`scenarios.activation`
(a scenario onto the environment), :mod:`scenarios.sla_handoff` (the composition hand-off),
:mod:`scenarios.fault_handoff` (faults), :mod:`scenarios.staging` (the staging guard), :mod:`scenarios.steps` (in-flight
steps, latency curve), :mod:`scenarios.webui_hook` (the ``/swarm`` hook) and :mod:`scenarios.run_state` (the state);
this module holds the listeners.

User errors (unknown scenario, missing user class, fault injection against another host) exit with code 2 at start.
"""

from __future__ import annotations

import logging
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from config.errors import exit_usage
from scenarios.activation import activate, apply_user_mix
from scenarios.options import parse_seconds, register_options
from scenarios.run_state import ScenarioError, ScenarioState, scenario_block, scenario_state
from scenarios.sla_handoff import composed_profile, hand_to_sla, tell_sla
from scenarios.staging import REHEARSE_NET_ENV, not_staging, staging_problems
from scenarios.steps import INFLIGHT_MESSAGE, finish_curve, on_worker_inflight
from scenarios.webui_hook import install_web_ui_hook

__all__ = [
    "REHEARSE_NET_ENV", "ScenarioError", "ScenarioState", "activate", "apply_user_mix", "composed_profile",
    "not_staging", "parse_seconds", "register_options", "scenario_block", "staging_problems",
]

logger = logging.getLogger(__name__)

_late_registered = False


@events.init_command_line_parser.add_listener
def _register_late_init(parser: Any) -> None:
    """Add :func:`_on_init_late` to ``init`` when the parser is built, i.e. after every locustfile import."""
    global _late_registered
    if not _late_registered:
        events.init.add_listener(_on_init_late)
        _late_registered = True


# ---------------------------------------------------------------------------------------------------------------
# Listeners


def _on_init_late(environment: Environment, **_kwargs: Any) -> None:
    """Runs after every other plugin's ``init`` listener (registered when the parser is built, i.e. after all
    locustfile imports): the scenario's user mix wins over per-class defaults such as ``--redis-probe-users``, and
    the SLA engine, set up by then, gets the scenario's thresholds."""
    options = environment.parsed_options
    scenario_name = getattr(options, "scenario", "") if options is not None else ""
    if scenario_name:
        apply_user_mix(environment)
        if not isinstance(environment.runner, WorkerRunner):
            hand_to_sla(environment, scenario_state(environment))  # the SLA engine's own init listener has run now
            tell_sla(environment, scenario_state(environment))


@events.init.add_listener
def _on_init(environment: Environment, runner: Any = None, web_ui: Any = None, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None or not hasattr(options, "scenario"):
        return
    state = scenario_state(environment)
    if options.scenario:
        try:
            activate(environment, options.scenario)
        except ScenarioError as e:
            exit_usage(e, logger=logger)
        if getattr(options, "num_users", None) or getattr(options, "spawn_rate", None):
            logger.warning("Scenario %s: its load shape sets the users; -u/--users and -r/--spawn-rate are ignored "
                           "(--scenario-scale multiplies the shape's users)", options.scenario)
        if getattr(options, "class_picker", False):
            logger.warning("--class-picker: the web UI's user/shape picks replace those of scenario %s",
                           options.scenario)
    elif (options.inject_faults or options.inject_tolerated_faults) and options.headless:
        exit_usage(ScenarioError("--inject-faults needs --scenario NAME (the faults belong to a scenario; see "
                                 "--list-scenarios)"), logger=logger)
    if isinstance(runner, WorkerRunner):
        runner.register_message(INFLIGHT_MESSAGE, on_worker_inflight)
    if web_ui is not None:
        install_web_ui_hook(environment, web_ui, state)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    state = scenario_state(environment)
    if state.scenario is None or isinstance(environment.runner, WorkerRunner):
        return
    if state.scheduler is not None:
        state.scheduler.start()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kwargs: Any) -> None:
    state = scenario_state(environment)
    if isinstance(environment.runner, WorkerRunner):
        return
    if state.scheduler is not None:
        state.scheduler.stop()
    if state.scenario is not None and state.step_marks:
        finish_curve(environment, state)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    # quitting listeners fire in reverse order: the SLA engine (registered later) has written its reports already
    state = scenario_state(environment)
    if state.scheduler is not None and not isinstance(environment.runner, WorkerRunner):
        state.scheduler.stop()
        state.scheduler = None

