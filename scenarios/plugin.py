"""Locust hooks for named scenarios: ``--scenario NAME``, ``--list-scenarios``, ``--inject-faults`` ...

Importing this module (``locustfile.py`` does) registers the options and listeners. How a scenario takes over a run
(Locust 2.47 reads ``environment.shape_class`` and ``environment.user_classes`` when a test starts, so both are set in
the ``init`` listener, before the headless start or the web UI's first swarm):

* **users**: ``environment.user_classes`` becomes the scenario's classes only (so every other user class is
  excluded) and each class gets the scenario's ``weight`` / ``fixed_count``; the originals are restored when the
  web UI switches back to "no scenario". Workers keep every class (the master dispatches by name).
* **shape**: ``environment.shape_class`` becomes a :class:`scenarios.shapes.ScenarioShape` built from the scenario's
  spec, scaled by ``--scenario-duration``; ``-u``/``-r`` are then ignored (the shape decides) and the run ends when
  the shape does. No shape class sits in the locustfile's namespace, so runs without ``--scenario`` are untouched.
* **thresholds**: the scenario's thresholds, merged with the SLA profile's (``extend``) or alone (``replace``), are
  written to a generated profile file handed to the SLA engine as ``--sla-config``.
* **faults** (``--inject-faults``): see :mod:`scenarios.faults`; refused (exit 2) unless the target is the bundled
  backend on loopback; cleared at test stop and at quit, always.
* **web UI**: ``--scenario`` is a drop-down in the start form; a ``before_request`` hook on ``/swarm`` activates the
  picked scenario (or restores the plain run) before Locust starts the swarm.

User errors (unknown scenario, missing user class, fault injection against another host) exit with code 2 at start.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from scenarios.faults import (
    FaultScheduler,
    FaultTargetError,
    admin_base_url,
    check_local_backend,
    fault_timeline,
)
from scenarios.registry import SCENARIOS, Scenario, get_scenario
from scenarios.shapes import ScenarioShape, Step, Stepped, build_shape

__all__ = ["ScenarioState", "activate", "parse_seconds", "profile_toml", "register_options", "staging_problems"]

logger = logging.getLogger(__name__)

SCENARIO_EXIT_CODE_USAGE = 2
INFLIGHT_MESSAGE = "scenario_inflight"


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
    arg_group = parser.add_argument_group(
        "Scenarios", "Named load scenarios of the seed test plan (users, load shape, thresholds, paired faults)"
    )

    class _Group:
        """An argument group that also takes Locust's web-UI keywords (only its parser's add_argument does)."""

        @staticmethod
        def add_argument(*args: Any, include_in_web_ui: bool = True, is_secret: bool = False, **kwargs: Any) -> Any:
            action = arg_group.add_argument(*args, **kwargs)
            action.include_in_web_ui = include_in_web_ui
            action.is_secret = is_secret
            action.is_required = False
            action.is_multiple = False
            return action

    group = _Group()
    group.add_argument(
        "--scenario",
        default="",
        choices=["", *SCENARIOS],
        metavar="NAME",
        env_var="LOCUST_SCENARIO",
        include_in_web_ui=True,
        help="Run this named scenario: its users, load shape, duration and thresholds (see --list-scenarios). "
        "Empty: a plain Locust run with -u/-r/-t.",
    )
    group.add_argument(
        "--list-scenarios",
        action=_ListScenariosAction,
        include_in_web_ui=False,
        help="Print every scenario with one line each and exit.",
    )
    group.add_argument(
        "--scenario-duration",
        default="",
        metavar="SECONDS",
        env_var="LOCUST_SCENARIO_DURATION",
        include_in_web_ui=True,
        help="Run the scenario in this wall time instead of its default (e.g. 10, 90s, 2m, 1h): every phase of the "
        "load shape and of the fault schedule is rescaled together; thresholds and fault intensities are not.",
    )
    group.add_argument(
        "--inject-faults",
        action="store_true",
        default=False,
        env_var="LOCUST_INJECT_FAULTS",
        include_in_web_ui=True,
        help="Apply the scenario's paired target.faults faults on its schedule (bundled local backend only; "
        "refused against any other host). The scenario's thresholds must then fail (exit 3).",
    )
    group.add_argument(
        "--inject-tolerated-faults",
        action="store_true",
        default=False,
        env_var="LOCUST_INJECT_TOLERATED_FAULTS",
        include_in_web_ui=True,
        help="Apply the scenario's tolerated faults (legitimate delays it must survive, e.g. slow agent replies "
        "for the heartbeat scenario): its thresholds must still pass.",
    )
    group.add_argument(
        "--scenario-target-url",
        default="",
        metavar="URL",
        env_var="LOCUST_SCENARIO_TARGET_URL",
        include_in_web_ui=False,
        help="HTTP base of the bundled backend for fault injection (default: derived from --host, ws→http).",
    )
    group.add_argument(
        "--target-admin-token",
        default="",
        metavar="TOKEN",
        env_var="LOCUST_TARGET_ADMIN_TOKEN",
        # not in the web UI: Locust writes a web-UI option's value into the page (is_secret only masks the input)
        include_in_web_ui=False,
        is_secret=True,
        help="Admin token of the bundled backend's /admin/faults API (default: the TARGET_ADMIN_TOKEN env var).",
    )
    group.add_argument(
        "--scenario-curve-csv",
        default="",
        metavar="PATH",
        env_var="LOCUST_SCENARIO_CURVE_CSV",
        include_in_web_ui=False,
        help="Stepped scenarios: write the per-step latency curve (users, in-flight, count, p50, p95, max) here.",
    )


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers


def parse_seconds(text: str) -> float:
    """``"10"``, ``"10.5"``, ``"90s"``, ``"2m"``, ``"1h"``, ``"1h30m"`` → seconds (> 0); ValueError otherwise."""
    s = str(text).strip().lower()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", s):
        value = float(s)
    else:
        parts = re.fullmatch(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+(?:\.[0-9]+)?)s)?", s)
        if not s or parts is None:
            raise ValueError(f"{text!r} is not a duration; use seconds (10, 10.5) or 90s, 2m, 1h, 1h30m")
        h, m, sec = parts.groups()
        value = int(h or 0) * 3600 + int(m or 0) * 60 + float(sec or 0)
    if value <= 0:
        raise ValueError(f"{text!r}: the duration must be more than 0 s")
    return value


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def profile_toml(
    scenario: Scenario,
    base_thresholds: list[Any],
    base_window_s: float = 0.0,
    base_eval_interval_s: float = 5.0,
    base_warmup_s: float = 0.0,
) -> str:
    """The SLA profile (config/ TOML format) judging ``scenario``.

    ``base_thresholds`` are the profile's ``ThresholdSpec`` objects (``metric``, ``expression``, ``description``,
    ``abort_on_fail``, ``delay_abort_eval_s``, ``required``). In ``extend`` mode a metric the scenario lists replaces
    the profile's thresholds of that exact metric (the profiles' own ``extends`` rule); in ``replace`` mode only the
    scenario's thresholds remain.
    """
    own: dict[str, list[dict[str, Any]]] = {}
    for t in scenario.thresholds:
        own.setdefault(t.metric, []).append(
            {"expression": t.expr, "description": t.description, "abort_on_fail": t.abort_on_fail}
        )
    merged: dict[str, list[dict[str, Any]]] = {}
    if scenario.threshold_mode == "extend":
        for spec in base_thresholds:
            if spec.metric in own:
                continue
            merged.setdefault(spec.metric, []).append(
                {
                    "expression": str(spec.expression),
                    "description": spec.description,
                    "abort_on_fail": bool(spec.abort_on_fail),
                    "delay_abort_eval": float(spec.delay_abort_eval_s),
                    "required": bool(spec.required),
                }
            )
    for metric, items in own.items():
        merged.setdefault(metric, []).extend(items)
    window = scenario.sla_window_s if scenario.sla_window_s is not None else base_window_s
    lines = [
        f"# Generated for scenario {scenario.name!r} ({scenario.threshold_mode} mode) by scenarios/plugin.py",
        f"description = {_toml_str('scenario ' + scenario.name + ': ' + scenario.summary)}",
        f"eval_interval_s = {float(base_eval_interval_s)!r}",
    ]
    if window:
        lines.append(f"window_s = {float(window)!r}")
    if base_warmup_s:
        lines.append(f"warmup_s = {float(base_warmup_s)!r}")
    for metric, items in merged.items():
        for item in items:
            lines.append("")
            lines.append(f"[[thresholds.{_toml_str(metric)}]]")
            for key, value in item.items():
                if isinstance(value, bool):
                    lines.append(f"{key} = {'true' if value else 'false'}")
                elif isinstance(value, float):
                    lines.append(f"{key} = {value!r}")
                elif value != "":
                    lines.append(f"{key} = {_toml_str(str(value))}")
    return "\n".join(lines) + "\n"


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
    """What the plugin keeps on ``environment.scenario_state``."""

    scenario: Scenario | None = None
    time_scale: float = 1.0
    shape: ScenarioShape | None = None
    original_user_classes: list[type] = field(default_factory=list)
    original_attrs: dict[type, tuple[int, int]] = field(default_factory=dict)
    scheduler: FaultScheduler | None = None
    generated_profile: str | None = None
    curve: list[CurvePoint] = field(default_factory=list)
    _step_marks: list[tuple[int, Step | None, dict[int, int], int, int, float]] = field(default_factory=list)


class ScenarioError(Exception):
    """A user error activating a scenario (exit code 2 at start)."""


def _state(environment: Any) -> ScenarioState:
    state = getattr(environment, "scenario_state", None)
    if state is None:
        state = ScenarioState()
        environment.scenario_state = state
    return state


def _available_classes(environment: Any, state: ScenarioState) -> dict[str, type]:
    classes = dict(environment.available_user_classes or {})
    for cls in state.original_user_classes:
        classes.setdefault(cls.__name__, cls)
    return classes


def _restore_users(environment: Any, state: ScenarioState) -> None:
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


def _fault_base_url(environment: Any) -> str:
    options = environment.parsed_options
    url = getattr(options, "scenario_target_url", "") or environment.host or getattr(options, "host", "") or ""
    if not url:
        raise FaultTargetError(
            "Fault injection needs the backend's address: set --host ws://127.0.0.1:PORT/ws or --scenario-target-url"
        )
    return admin_base_url(url)


def _wanted_faults(scenario: Scenario, options: Any) -> list[Any]:
    faults = []
    if getattr(options, "inject_faults", False):
        faults.extend(scenario.faults)
    if getattr(options, "inject_tolerated_faults", False):
        faults.extend(scenario.tolerated_faults)
    return faults


def _prepare_faults(environment: Any, state: ScenarioState) -> None:
    """Check the target and build the scheduler (raises FaultTargetError / ScenarioError)."""
    from target.faults import FaultsClient

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
    state.scheduler = FaultScheduler(client, fault_timeline(faults, state.time_scale))
    for planned in state.scheduler.plan:
        logger.info("Scenario %s will inject %s", scenario.name, planned.describe())


def _sla_handoff(environment: Any, state: ScenarioState) -> None:
    """Write the scenario's SLA profile and point ``--sla-config`` at it (when the SLA engine is loaded)."""
    scenario = state.scenario
    assert scenario is not None
    options = environment.parsed_options
    if not hasattr(options, "sla_config") and not hasattr(options, "sla_profile"):
        logger.warning("The SLA engine is not loaded: scenario %s runs without its thresholds", scenario.name)
        return
    from config.loader import ConfigError, load_profile

    user_config = getattr(options, "sla_config", "") or ""
    if state.generated_profile and user_config == state.generated_profile:
        user_config = ""  # our own file from a previous activation (web UI)
    profile_name = getattr(options, "sla_profile", "") or ""
    if scenario.sla_profile and profile_name in ("", "local"):
        profile_name = scenario.sla_profile
    try:
        if user_config:
            base = load_profile(path=user_config)
        else:
            base = load_profile(profile_name or "local")
    except ConfigError as e:
        raise ScenarioError(str(e)) from None
    text = profile_toml(scenario, base.thresholds, base.window_s, base.eval_interval_s, base.warmup_s)
    if state.generated_profile:
        shutil.rmtree(os.path.dirname(state.generated_profile), ignore_errors=True)
    directory = tempfile.mkdtemp(prefix=f"scenario-{scenario.name}-")
    path = os.path.join(directory, f"{scenario.name}.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    try:
        generated = load_profile(path=path)  # validate what we hand over
    except ConfigError as e:  # pragma: no cover - a catalogue bug, caught by the unit tests
        raise ScenarioError(f"scenario {scenario.name}: generated SLA profile is invalid: {e}") from None
    state.generated_profile = path
    options.sla_config = path
    if scenario.sla_window_s and hasattr(options, "sla_window") and not options.sla_window:
        # the window shrinks with the run (whole seconds, as --sla-window wants)
        options.sla_window = float(max(1, round(scenario.sla_window_s * state.time_scale)))
    sla = getattr(environment, "sla", None)
    if sla is not None and hasattr(sla, "reconfigure"):
        # the SLA engine was set up already (web UI picks the scenario at swarm time): give it the new thresholds
        sla.reconfigure(generated, float(options.sla_window) if options.sla_window else None)
    logger.info(
        "Scenario %s: thresholds (%s mode, base %s) in %s",
        scenario.name,
        scenario.threshold_mode,
        user_config or profile_name or "local",
        path,
    )


def _set_inflight(environment: Any, inflight: int) -> None:
    """Messages in flight per chat user from now on (the chat users read the shared settings every round)."""
    options = environment.parsed_options
    if options is not None and hasattr(options, "ws_inflight"):
        options.ws_inflight = inflight
    settings = getattr(environment, "chat_settings", None)
    if settings is not None and hasattr(settings, "inflight"):
        settings.inflight = inflight


def _on_worker_inflight(environment: Any, msg: Any, **_kwargs: Any) -> None:
    _set_inflight(environment, int(msg.data))


def _sla_restore(environment: Any, state: ScenarioState) -> None:
    """Back to a plain run (web UI): the SLA engine judges with --sla-profile again, not the scenario's file."""
    options = environment.parsed_options
    if not state.generated_profile or getattr(options, "sla_config", "") != state.generated_profile:
        return
    options.sla_config = ""
    sla = getattr(environment, "sla", None)
    if sla is not None and hasattr(sla, "reconfigure"):
        from config.loader import load_profile

        sla.reconfigure(load_profile(getattr(options, "sla_profile", "") or "local"))


def _on_step(environment: Any, state: ScenarioState, index: int, step: Step | None) -> None:
    if step is not None and step.inflight is not None:
        _set_inflight(environment, step.inflight)
        if isinstance(environment.runner, MasterRunner):
            environment.runner.send_message(INFLIGHT_MESSAGE, step.inflight)
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


def _finish_curve(environment: Any, state: ScenarioState) -> None:
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


def apply_user_mix(environment: Any) -> None:
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


def staging_problems(scenario: Scenario, options: Any, host: str | None, env: dict[str, str]) -> list[str]:
    """What a ``--sla-profile staging`` run of ``scenario`` is missing (pure; [] = ready).

    Staging takes the target URL, the token file and every probed tier's URL from the command line, ``LOCUST_*``
    env vars or ``locust.conf``; a tier left at its local default (loopback) would silently probe this machine.
    """
    from scenarios.faults import is_loopback_host

    def no_dns(name: str) -> list[str]:
        return ["127.0.0.1"] if name.lower() in ("localhost", "localhost.localdomain") else []

    problems = []
    classes = set(scenario.user_classes)
    if classes & set(_CHAT_CLASSES) or "HealthCheckUser" in classes:
        if not host:
            problems.append("no target: set host = wss://... in locust.conf, LOCUST_HOST or --host")
        elif is_loopback_host(urllib.parse.urlsplit(host).hostname or "", resolve=no_dns):
            problems.append(f"--host {host} is this machine, not staging: set host in locust.conf / LOCUST_HOST")
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
        if not url or is_loopback_host(hostname, resolve=no_dns):
            problems.append(
                f"{cls} would probe this machine ({option} is {'unset' if not url else 'a loopback address'}): "
                f"set {option.lstrip('-')} in locust.conf or {env_var}"
            )
    return problems


def activate(environment: Any, name: str) -> ScenarioState:
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
        scenario.shape,
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
    logger.info(
        "Scenario %s: %s; users %s; %s shape for %.1f s%s",
        scenario.name,
        scenario.summary,
        ", ".join(
            f"{m.user_class}{' x' + str(m.fixed_count) if m.fixed_count else ' w' + str(m.weight)}"
            for m in scenario.users
        ),
        scenario.shape.kind,
        state.shape.wall_duration_s,
        f" (time scale {state.time_scale:.3g})" if state.time_scale != 1.0 else "",
    )
    return state


# ---------------------------------------------------------------------------------------------------------------
# Listeners


def _exit_usage(message: str) -> None:
    logger.error("%s", message)
    sys.stderr.flush()
    sys.exit(SCENARIO_EXIT_CODE_USAGE)


def _on_init_late(environment: Any, **_kwargs: Any) -> None:
    """Runs after every other plugin's ``init`` listener (registered when the parser is built, i.e. after all
    locustfile imports): the scenario's user mix wins over per-class defaults such as ``--redis-probe-users``."""
    options = environment.parsed_options
    if options is not None and getattr(options, "scenario", ""):
        apply_user_mix(environment)


@events.init.add_listener
def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None or not hasattr(options, "scenario"):
        return
    state = _state(environment)
    if options.scenario:
        try:
            activate(environment, options.scenario)
        except ScenarioError as e:
            _exit_usage(str(e))
        if getattr(options, "num_users", None) or getattr(options, "spawn_rate", None):
            logger.warning("Scenario %s: its load shape sets the users; -u/--users and -r/--spawn-rate are ignored",
                           options.scenario)
        if getattr(options, "class_picker", False):
            logger.warning("--class-picker: the web UI's user/shape picks replace those of scenario %s",
                           options.scenario)
    elif (options.inject_faults or options.inject_tolerated_faults) and options.headless:
        _exit_usage("--inject-faults needs --scenario NAME (the faults belong to a scenario; see --list-scenarios)")
    if isinstance(runner, WorkerRunner):
        runner.register_message(INFLIGHT_MESSAGE, _on_worker_inflight)
    if web_ui is not None:
        _install_web_ui_hook(environment, web_ui, state)


def _install_web_ui_hook(environment: Any, web_ui: Any, state: ScenarioState) -> None:
    from flask import jsonify, request

    @web_ui.app.before_request
    def _scenario_from_form() -> Any:
        if request.method != "POST" or not request.path.endswith("/swarm"):
            return None
        if environment.runner is not None and environment.runner.state in ("spawning", "running"):
            return None  # editing a running test: keep its scenario
        options = environment.parsed_options
        name = request.form.get("scenario", options.scenario or "")
        for flag in ("inject_faults", "inject_tolerated_faults"):
            if flag in request.form:
                setattr(options, flag, request.form.get(flag) == "true")
        if "scenario_duration" in request.form:
            options.scenario_duration = request.form.get("scenario_duration", "")
        options.scenario = name
        try:
            activate(environment, name)
        except ScenarioError as e:
            logger.error("%s", e)
            return jsonify({"success": False, "message": str(e), "host": environment.host})
        return None


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kwargs: Any) -> None:
    state = _state(environment)
    if state.scenario is None or isinstance(environment.runner, WorkerRunner):
        return
    if state.scheduler is not None:
        state.scheduler.start()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kwargs: Any) -> None:
    state = _state(environment)
    if isinstance(environment.runner, WorkerRunner):
        return
    if state.scheduler is not None:
        state.scheduler.stop()
    if state.scenario is not None and state._step_marks:
        _finish_curve(environment, state)


@events.quitting.add_listener
def _on_quitting(environment: Any, **_kwargs: Any) -> None:
    # quitting listeners fire in reverse order: the SLA engine (registered later) has written its reports already
    state = _state(environment)
    if state.scheduler is not None and not isinstance(environment.runner, WorkerRunner):
        state.scheduler.stop()
        state.scheduler = None
    if state.generated_profile:
        shutil.rmtree(os.path.dirname(state.generated_profile), ignore_errors=True)
        state.generated_profile = None
