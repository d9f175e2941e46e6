"""The web UI's ``/swarm`` hook: a ``before_request`` handler that activates the scenario the start form picks (or
restores the plain run) before Locust starts the swarm, composing its thresholds with the SLA profile and load options
the form names; a start waits until the previous test's ``stop()`` has returned (users, shape worker, ``test_stop``
listeners)."""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.env import Environment

from scenarios.activation import activate
from scenarios.run_state import ScenarioError, ScenarioState

__all__ = ["STOP_WAIT_GRACE_S", "install_web_ui_hook"]

logger = logging.getLogger("scenarios.plugin")  # the plugin's log lines keep its name

STOP_WAIT_GRACE_S = 10.0
"""How long past ``--stop-timeout`` a web-UI start waits for the previous test's stop to end before it is refused."""

_FORM_OPTIONS_COMPOSED = (
    "sla_profile", "sla_config", "sla_window", "sla_warmup", "ws_think_time", "ws_inflight", "ws_arrival_rate",
    "scenario_scale", "probe_read_only",
)


def _take_form_options(options: Any, form: Any, keys: tuple[str, ...]) -> None:
    """Copy ``keys`` from the start form into ``options`` as Locust's ``/swarm`` does (keeping each option's type);
    a value that does not convert is left to Locust's own handling."""
    for key in keys:
        if key not in form or not hasattr(options, key):
            continue
        current, value = getattr(options, key), form.get(key, "")
        try:
            if isinstance(current, bool):
                setattr(options, key, value == "true")
            elif current is None or isinstance(current, str):
                setattr(options, key, value)
            else:
                setattr(options, key, type(current)(value))
        except (TypeError, ValueError):
            continue


def _track_stops(runner: Any, state: ScenarioState) -> None:
    """Count the runner's ``stop()`` calls under way in ``state.stops_under_way`` (every caller: the Stop button, a
    shape that ended, the SLA engine's abort, quit)."""
    stop = runner.stop

    def tracked_stop(*args: Any, **kwargs: Any) -> Any:
        state.stops_under_way += 1
        try:
            return stop(*args, **kwargs)
        finally:
            state.stops_under_way -= 1

    runner.stop = tracked_stop


def _await_stopped(environment: Environment, state: ScenarioState) -> bool:
    """Wait (gevent; at most ``--stop-timeout`` + :data:`STOP_WAIT_GRACE_S`) until no ``stop()`` of the runner is
    under way; False when one still is.

    A test started while the previous one stops would be activated in the middle of that stop. After a shape test
    ends, Locust reports the runner ``stopped`` (and the SLA engine has judged the end) before its shape worker and
    the remaining ``test_stop`` listeners are done, and until then ignores a shape start ("Editing is disabled"):
    the start is lost while the tab still shows the previous verdict. During the users' stop (``cleanup``) it
    starts the new test with the new scenario's user classes swapped in under the stop, which then fails
    (KeyError) before its ``test_stop``: the previous test is never judged to its end and the runner stays
    ``ready``."""
    limit = float(environment.stop_timeout or 0.0) + STOP_WAIT_GRACE_S
    deadline = time.monotonic() + limit
    while state.stops_under_way > 0 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    return state.stops_under_way == 0


def _starting_shape(runner: Any) -> bool:
    """A shape test has been started and its worker has not run its first step yet (the runner still ``ready``)."""
    worker = getattr(runner, "shape_greenlet", None)
    return worker is not None and not worker.dead and runner.state not in ("stopped", "cleanup", "stopping")


def install_web_ui_hook(environment: Environment, web_ui: Any, state: ScenarioState) -> None:
    from flask import jsonify, request

    if environment.runner is not None:
        _track_stops(environment.runner, state)

    @web_ui.app.before_request
    def _scenario_from_form() -> Any:
        if request.method != "POST" or not request.path.endswith("/swarm"):
            return None
        if not _await_stopped(environment, state):
            message = (f"The previous test is still stopping after {environment.stop_timeout or 0:g} s + "
                       f"{STOP_WAIT_GRACE_S:g} s; start again when it has stopped")
            logger.error("%s", message)
            return jsonify({"success": False, "message": message, "host": environment.host})
        runner = environment.runner
        if runner is not None and (runner.state in ("spawning", "running") or _starting_shape(runner)):
            return None  # editing a running (or starting) test: keep its scenario
        options = environment.parsed_options
        assert options is not None  # a web UI runs from the command line
        name = request.form.get("scenario", options.scenario or "")
        for flag in ("inject_faults", "inject_tolerated_faults"):
            if flag in request.form:
                setattr(options, flag, request.form.get(flag) == "true")
        if "scenario_duration" in request.form:
            options.scenario_duration = request.form.get("scenario_duration", "")
        if "scenario_scale" in request.form:
            options.scenario_scale = request.form.get("scenario_scale", "")  # checked by activate()
        # Locust copies the form into the options only after this hook: the thresholds are composed with the
        # SLA profile and load options this start asks for, not the previous start's
        _take_form_options(options, request.form, _FORM_OPTIONS_COMPOSED)
        options.scenario = name
        try:
            activate(environment, name)
        except ScenarioError as e:
            logger.error("%s", e)
            return jsonify({"success": False, "message": str(e), "host": environment.host})
        return None
