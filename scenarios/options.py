"""The scenario plugin's options (``--scenario``, ``--list-scenarios``, ``--scenario-*``, ``--inject-*faults``,
``--target-admin-token``) and the parsing of ``--scenario-duration`` and ``--scenario-scale``.

Importing this module registers the options (:mod:`scenarios.plugin` imports it first)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events

from config.durations import DURATION_FORMS, parse_duration
from config.options import add_option
from config.validate import bounded
from scenarios.registry import SCENARIOS, Scenario
from scenarios.run_state import ScenarioError
from scenarios.shapes import MAX_SCALE

__all__ = ["parse_seconds", "register_options", "scale_option", "time_scale"]


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


@events.init_command_line_parser.add_listener
def register_options(parser: Any) -> None:
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


def time_scale(scenario: Scenario, duration_text: str) -> float:
    """``--scenario-duration`` as a factor on the scenario's own duration (empty: 1); ScenarioError otherwise."""
    if not duration_text:
        return 1.0
    try:
        return parse_seconds(duration_text) / scenario.duration_s
    except ValueError as e:
        raise ScenarioError(f"--scenario-duration: {e}") from None


def scale_option(options: Any) -> float:
    """``--scenario-scale`` as a number > 0 (empty: 1); ScenarioError naming the option otherwise."""
    value = getattr(options, "scenario_scale", None)
    if value is None or value == "":
        return 1.0
    return bounded("--scenario-scale", value, low=0, high=MAX_SCALE, low_open=True,
                   hint="1 runs the scenario's own users, 4 four times them, 0.5 half", error=ScenarioError)
