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

User errors (unknown scenario, missing user class, fault injection against another host) exit with code 2 at start.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import os
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import User, events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from config.durations import DURATION_FORMS, parse_duration
from config.errors import UsageError, exit_usage
from config.options import add_option
from config.validate import bounded
from scenarios.compose import Composition, compose
from scenarios.faults import (
    FaultScheduler,
    FaultTargetError,
    PlannedFault,
    admin_base_url,
    check_local_backend,
    fault_timeline,
)
from scenarios.registry import SCENARIOS, Scenario, get_scenario
from scenarios.shapes import MAX_SCALE, ScenarioShape, Step, Stepped, build_shape
from sla_checks.state import state_of

__all__ = [
    "REHEARSE_NET_ENV", "ScenarioState", "activate", "composed_profile", "not_staging", "parse_seconds",
    "register_options", "staging_problems",
]

logger = logging.getLogger(__name__)

INFLIGHT_MESSAGE = "scenario_inflight"
STOP_WAIT_GRACE_S = 10.0
"""How long past ``--stop-timeout`` a web-UI start waits for the previous test's stop to end before it is refused."""


class _ListScenariosAction(argparse.Action):
    """``--list-scenarios``: print one line per scenario and exit 0 (at parse time, before any connection)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("nargs", 0)
        kwargs.setdefault("default", False)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        print(f"{'SCENARIO':<28} {'TIME':>4}  {'SHAPE':<8} {'FAULT':<22} WHAT")
        for scenario in SCENARIOS.values():
            print(scenario.one_line())
        print(f"\n{len(SCENARIOS)} scenarios. Run one: locust -f locustfile.py --scenario NAME [--inject-faults]")
        sys.exit(0)


_late_registered = False


@events.init_command_line_parser.add_listener
def register_options(parser: Any) -> None:
    global _late_registered
    if not _late_registered:
        events.init.add_listener(_on_init_late)
        _late_registered = True

    def add(name: str, **kwargs: Any) -> None:
        add_option(parser, name, group="Scenarios", **kwargs)

    add("--scenario", default="", choices=["", *SCENARIOS], metavar="NAME", web_ui=True,
        help="Run this named scenario: its users, load shape, duration and thresholds (see --list-scenarios). "
             "Empty: a plain Locust run with -u/-r/-t.")
    add("--list-scenarios", action=_ListScenariosAction, default=False, env=False,
        help="Print every scenario with one line each and exit.")
    add("--scenario-duration", default="", metavar="SECONDS", web_ui=True,
        help="Run the scenario in this wall time instead of its default (e.g. 10, 90s, 2m, 1h30m): every phase of "
             "the load shape and of the fault schedule is rescaled together; thresholds and fault intensities are "
             "not.")
    add("--scenario-scale", type=float, default=1.0, metavar="FACTOR", web_ui=True,
        help="Multiply the scenario's users and spawn rates by this (e.g. 10: ten times the users at every phase; "
             "0.5: half); fixed-count users (one probe per tier) stay as they are. Default {default}. -u/-r do not "
             "apply to a scenario.")
    add("--inject-faults", action="store_true", default=False, web_ui=True,
        help="Apply the scenario's paired reference_backend.faults faults on its schedule (bundled local backend "
             "only; refused against any other host). The scenario's thresholds must then fail (exit 3).")
    add("--inject-tolerated-faults", action="store_true", default=False, web_ui=True,
        help="Apply the scenario's tolerated faults (legitimate delays it must survive, e.g. slow agent replies "
             "for the heartbeat scenario): its thresholds must still pass.")
    add("--scenario-target-url", default="", metavar="URL",
        help="HTTP base of the bundled backend for fault injection (default: derived from --host, ws→http).")
    add("--target-admin-token", default="", metavar="TOKEN", secret=True,
        help="Admin token of the bundled backend's /admin/faults API (default: the TARGET_ADMIN_TOKEN env var).")
    add("--scenario-curve-csv", default="", metavar="PATH",
        help="Stepped scenarios: write the per-step latency curve (users, in-flight, count, p50, p95, max) here.")


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers


def parse_seconds(text: str) -> float:
    """``"10"``, ``"10.5"``, ``"90s"``, ``"2m"``, ``"1h"``, ``"1h30m"``, ``"500ms"`` → seconds, more than 0
    (:func:`config.durations.parse_duration` with this caller's rule: a scenario cannot run in 0 s); ValueError
    otherwise."""
    try:
        value = parse_duration(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration; use {DURATION_FORMS}") from None
    if value <= 0:
        raise ValueError(f"{text!r}: the duration must be more than 0 s")
    return value


# ---------------------------------------------------------------------------------------------------------------
# Per-process state


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
    _step_marks: list[tuple[int, Step | None, dict[int, int], int, int, float]] = field(default_factory=list)
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


def _state(environment: Environment) -> ScenarioState:
    suite = state_of(environment)
    if not isinstance(suite.scenario, ScenarioState):
        suite.scenario = ScenarioState()
    return suite.scenario


def _available_classes(environment: Environment, state: ScenarioState) -> dict[str, type[User]]:
    classes: dict[str, Any] = dict(environment.available_user_classes or {})  # Locust annotates classes as instances
    for cls in state.original_user_classes:
        classes.setdefault(cls.__name__, cls)
    return classes


def _restore_users(environment: Environment, state: ScenarioState) -> None:
    for cls, (weight, fixed_count) in state.original_attrs.items():
        cls.weight, cls.fixed_count = weight, fixed_count
    if state.original_user_classes:
        environment.user_classes = list(state.original_user_classes)


def _time_scale(scenario: Scenario, duration_text: str) -> float:
    if not duration_text:
        return 1.0
    try:
        return parse_seconds(duration_text) / scenario.duration_s
    except ValueError as e:
        raise ScenarioError(f"--scenario-duration: {e}") from None


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


def _prepare_faults(environment: Environment, state: ScenarioState) -> None:
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
    (``--ws-think-time``, ``--ws-inflight``, ``--ws-arrival-rate``) and ``--scenario-scale`` when present."""
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
    return compose(
        scenario,
        base,
        think_s=_number(getattr(options, "ws_think_time", 1.0), 1.0, allow_zero=True),
        inflight=int(_number(getattr(options, "ws_inflight", 1), 1.0)),
        arrival_rate=_arrival_rate(options, scenario.duration_s * time_scale),
        scale=_number(getattr(options, "scenario_scale", 1.0), 1.0),
        window_s=window,
    )


def _sla_handoff(environment: Environment, state: ScenarioState) -> None:
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
    _hand_to_sla(environment, state)


def _hand_to_sla(environment: Environment, state: ScenarioState) -> None:
    sla = state_of(environment).sla
    if sla is not None and state.composition is not None:
        sla.reconfigure(state.composition.profile)


def _set_inflight(environment: Environment, inflight: int) -> None:
    """Messages in flight per chat user from now on (the chat users read the shared settings every round)."""
    from users.ws_options import ChatSettings  # late: a scenario without chat users does not load them

    options = environment.parsed_options
    if options is not None and hasattr(options, "ws_inflight"):
        options.ws_inflight = inflight
    settings = state_of(environment).chat_settings
    if isinstance(settings, ChatSettings):
        settings.inflight = inflight


def _on_worker_inflight(environment: Environment, msg: Any, **_kwargs: Any) -> None:
    _set_inflight(environment, int(msg.data))


def _sla_restore(environment: Environment, state: ScenarioState) -> None:
    """Back to a plain run (web UI): the SLA engine judges with the --sla-* options again, not the scenario's."""
    if state.composition is None:
        return
    state.composition = None
    sla = state_of(environment).sla
    if sla is not None:
        sla.reconfigure(None)


def _on_step(environment: Environment, state: ScenarioState, index: int, step: Step | None) -> None:
    if step is not None and step.inflight is not None:
        _set_inflight(environment, step.inflight)
        if isinstance(environment.runner, MasterRunner):
            environment.runner.send_message(INFLIGHT_MESSAGE, step.inflight)  # type: ignore[arg-type]  # any msgpack value goes
    entry = environment.runner.stats.entries.get(("agent_completed", "WS")) if environment.runner else None
    snapshot = dict(entry.response_times) if entry else {}
    if state._step_marks and state._step_marks[-1][0] == index:
        state._step_marks.pop()  # the same step again (a master resets the shape's clock when the test starts)
    state._step_marks.append(
        (
            index,
            step,
            snapshot,
            entry.num_requests if entry else 0,
            entry.num_failures if entry else 0,
            entry.max_response_time if entry else 0.0,
        )
    )
    logger.info(
        "Scenario step %d: %s users%s",
        index + 1,
        step.users if step else "?",
        f", {step.inflight} in flight per user" if step and step.inflight else "",
    )


def _finish_curve(environment: Environment, state: ScenarioState) -> None:
    from locust.stats import calculate_response_time_percentile, diff_response_time_dicts

    if not state._step_marks or environment.runner is None:
        return
    entry = environment.runner.stats.entries.get(("agent_completed", "WS"))
    final = (dict(entry.response_times), entry.num_requests, entry.num_failures) if entry else ({}, 0, 0)
    marks = [*state._step_marks, (-1, None, *final, 0.0)]
    curve = []
    for (index, step, before, _n0, f0, _), (_, _, after, _n1, f1, _) in zip(marks, marks[1:], strict=False):
        delta = diff_response_time_dicts(after, before)
        count = sum(delta.values())
        point = CurvePoint(step=index + 1, users=step.users if step else 0, inflight=step.inflight if step else None)
        point.count, point.failures = count, max(0, f1 - f0)
        if count:
            point.p50 = calculate_response_time_percentile(delta, count, 0.5)
            point.p95 = calculate_response_time_percentile(delta, count, 0.95)
            point.max = max(delta)
        curve.append(point)
    state.curve = curve
    state._step_marks = []
    lines = ["Latency curve (WS agent_completed per step; Locust buckets):", "step users inflight count fail p50 p95 max"]
    lines += [
        f"{p.step:>4} {p.users:>5} {p.inflight or '-':>8} {p.count:>5} {p.failures:>4} {p.p50:>5.0f} {p.p95:>5.0f} "
        f"{p.max:>5.0f}"
        for p in curve
    ]
    logger.info("\n".join(lines))
    path = getattr(environment.parsed_options, "scenario_curve_csv", "")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write("step,users,inflight,count,failures,p50_ms,p95_ms,max_ms\n")
            for p in curve:
                f.write(f"{p.step},{p.users},{p.inflight or ''},{p.count},{p.failures},{p.p50},{p.p95},{p.max}\n")


def apply_user_mix(environment: Environment) -> None:
    """Set the scenario's ``weight`` / ``fixed_count`` on its user classes (again after other plugins' init)."""
    state = _state(environment)
    if state.scenario is None:
        return
    available = _available_classes(environment, state)
    for mix in state.scenario.users:
        cls = available[mix.user_class]
        cls.weight, cls.fixed_count = (mix.weight if not mix.fixed_count else 0), mix.fixed_count


# Where a staging run takes each setting from (option dest, Locust option, env var), per user class.
_STAGING_TIER_OPTIONS = {
    "RedisProbeUser": ("redis_url", "--redis-url", "LOCUST_REDIS_URL"),
    "PostgresProbeUser": ("pg_dsn", "--pg-dsn", "LOCUST_PG_DSN"),
    "ClickHouseProbeUser": ("clickhouse_url", "--clickhouse-url", "LOCUST_CLICKHOUSE_URL"),
    "HealthCheckUser": ("health_url", "--health-url", "LOCUST_HEALTH_URL"),
}
_CHAT_CLASSES = ("ChatUser", "ChatFlowUser")


REHEARSE_NET_ENV = "REHEARSE_NET"
"""Names the network of ``scripts/rehearse``'s namespace (e.g. ``198.18.0.0/30``): the only addresses of the
benchmarking range the staging guard accepts."""
_BENCHMARK_NET = ipaddress.IPv4Network("198.18.0.0/15")
_REHEARSE_HINT = "to rehearse a staging run on this machine, use scripts/rehearse (docs/rehearse.md)"


def not_staging(hostname: str, env: dict[str, str]) -> str | None:
    """Why ``hostname`` cannot be staging (pure, no DNS lookup; None: it may be): this machine's loopback, or the
    RFC 2544 benchmarking range 198.18.0.0/15 outside the rehearsal network that ``$REHEARSE_NET`` names."""
    from scenarios.faults import resolves_to_loopback

    def no_dns(name: str) -> list[str]:
        return ["127.0.0.1"] if name.lower() in ("localhost", "localhost.localdomain") else []

    if resolves_to_loopback(hostname, resolve=no_dns):
        return "this machine"
    try:
        address = ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        return None
    if address not in _BENCHMARK_NET:
        return None
    try:
        rehearsal = ipaddress.IPv4Network(env.get(REHEARSE_NET_ENV, "") or "", strict=False)
    except ValueError:
        rehearsal = None
    if rehearsal is not None and rehearsal.subnet_of(_BENCHMARK_NET) and address in rehearsal:
        return None
    return "in the benchmarking range 198.18.0.0/15 but not the rehearsal's network"


def staging_problems(scenario: Scenario, options: Any, host: str | None, env: dict[str, str]) -> list[str]:
    """What a ``--sla-profile staging`` run of ``scenario`` is missing (pure; [] = ready).

    Staging takes the target URL, the token file and every probed tier's URL from the command line, ``LOCUST_*``
    env vars or ``locust.conf``; a tier left at its local default (loopback) would silently probe this machine. The
    one exception is ``scripts/rehearse``: its namespace addresses, named by ``$REHEARSE_NET`` (see
    :func:`not_staging`).
    """
    problems = []
    classes = set(scenario.user_classes)
    if classes & set(_CHAT_CLASSES) or "HealthCheckUser" in classes:
        if not host:
            problems.append("no target: set host = wss://... in locust.conf, LOCUST_HOST or --host")
        elif why := not_staging(urllib.parse.urlsplit(host).hostname or "", env):
            problems.append(f"--host {host} is {why}, not staging: set host in locust.conf / LOCUST_HOST; "
                            f"{_REHEARSE_HINT}")
    if classes & set(_CHAT_CLASSES):
        sources = [getattr(options, k, None) for k in ("token_file", "users_file", "jwt_secret")]
        if not any(sources) and not env.get("JWT_SECRET_KEY"):
            problems.append(
                "no chat credentials: set token-file (one JWT per line) or users-file in locust.conf, or "
                "LOCUST_TOKEN_FILE / LOCUST_USERS_FILE (or JWT_SECRET_KEY to mint tokens)"
            )
    for cls, (dest, option, env_var) in _STAGING_TIER_OPTIONS.items():
        if cls not in classes or dest == "health_url" and not getattr(options, dest, ""):
            continue  # the health probe defaults to the target's own address
        url = getattr(options, dest, "") or ""
        hostname = urllib.parse.urlsplit(url).hostname or ""
        why = "unset" if not url else not_staging(hostname, env)
        if why:
            where = "this machine" if why in ("unset", "this machine") else "no staging tier"
            problems.append(
                f"{cls} would probe {where} ({option} is {'a loopback address' if why == 'this machine' else why}): "
                f"set {option.lstrip('-')} in locust.conf or {env_var}; {_REHEARSE_HINT}"
            )
    return problems


def activate(environment: Environment, name: str) -> ScenarioState:
    """Make ``name`` the scenario of this run (or restore a plain run for ``""``); raises ScenarioError."""
    state = _state(environment)
    options = environment.parsed_options
    runner = environment.runner
    if not state.original_user_classes:
        state.original_user_classes = list(environment.user_classes)
        for cls in _available_classes(environment, state).values():
            state.original_attrs[cls] = (cls.weight, cls.fixed_count)
    _restore_users(environment, state)
    if not name:
        state.scenario, state.shape, state.scheduler = None, None, None
        if isinstance(environment.shape_class, ScenarioShape):
            environment.shape_class = None
        _sla_restore(environment, state)
        _tell_sla(environment, state)
        return state
    try:
        scenario = get_scenario(name)
    except KeyError as e:
        raise ScenarioError(str(e)) from None
    available = _available_classes(environment, state)
    missing = [c for c in scenario.user_classes if c not in available]
    if missing:
        raise ScenarioError(
            f"scenario {scenario.name} needs user class(es) {', '.join(missing)}, which the locustfile does not "
            f"expose (available: {', '.join(sorted(available)) or 'none'}); use -f locustfile.py of this suite"
        )
    state.scenario = scenario
    state.time_scale = _time_scale(scenario, getattr(options, "scenario_duration", "") or "")
    state.scale = _scale(options)
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
    if getattr(options, "sla_profile", "") == "staging":
        problems = staging_problems(scenario, options, environment.host, dict(os.environ))
        if problems:
            raise ScenarioError(
                f"scenario {scenario.name} with --sla-profile staging is not configured:\n  " + "\n  ".join(problems)
            )
    state._step_marks = []
    state.shape = build_shape(
        scenario.shape.scaled(state.scale),
        time_scale=state.time_scale,
        fixed_users=scenario.fixed_users,
        on_step=(lambda index, step: _on_step(environment, state, index, step))
        if isinstance(scenario.shape, Stepped)
        else None,
    )
    state.shape.runner = runner
    environment.shape_class = state.shape
    try:
        _prepare_faults(environment, state)  # first: a refusal exits before any file is written
    except FaultTargetError as e:
        raise ScenarioError(str(e)) from None
    _sla_handoff(environment, state)
    _tell_sla(environment, state)
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


def _scale(options: Any) -> float:
    """``--scenario-scale`` as a number > 0 (empty: 1); ScenarioError naming the option otherwise."""
    value = getattr(options, "scenario_scale", None)
    if value is None or value == "":
        return 1.0
    return bounded("--scenario-scale", value, low=0, high=MAX_SCALE, low_open=True,
                   hint="1 runs the scenario's own users, 4 four times them, 0.5 half", error=ScenarioError)


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


def _tell_sla(environment: Environment, state: ScenarioState) -> None:
    """Hand :func:`scenario_block` to the SLA engine (when it is set up: at init its own listener runs later)."""
    sla = state_of(environment).sla
    if sla is not None:
        sla.scenario = sla.engine.scenario = scenario_block(state)


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
            _hand_to_sla(environment, _state(environment))  # the SLA engine's own init listener has run now
            _tell_sla(environment, _state(environment))


@events.init.add_listener
def _on_init(environment: Environment, runner: Any = None, web_ui: Any = None, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None or not hasattr(options, "scenario"):
        return
    state = _state(environment)
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
        runner.register_message(INFLIGHT_MESSAGE, _on_worker_inflight)
    if web_ui is not None:
        _install_web_ui_hook(environment, web_ui, state)


_FORM_OPTIONS_COMPOSED = (
    "sla_profile", "sla_config", "sla_window", "sla_warmup", "ws_think_time", "ws_inflight", "ws_arrival_rate",
    "scenario_scale",
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


def _install_web_ui_hook(environment: Environment, web_ui: Any, state: ScenarioState) -> None:
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


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    state = _state(environment)
    if state.scenario is None or isinstance(environment.runner, WorkerRunner):
        return
    if state.scheduler is not None:
        state.scheduler.start()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kwargs: Any) -> None:
    state = _state(environment)
    if isinstance(environment.runner, WorkerRunner):
        return
    if state.scheduler is not None:
        state.scheduler.stop()
    if state.scenario is not None and state._step_marks:
        _finish_curve(environment, state)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    # quitting listeners fire in reverse order: the SLA engine (registered later) has written its reports already
    state = _state(environment)
    if state.scheduler is not None and not isinstance(environment.runner, WorkerRunner):
        state.scheduler.stop()
        state.scheduler = None

