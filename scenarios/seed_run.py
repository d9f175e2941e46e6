"""How one seed test runs as a Locust subprocess, and how its SLA report becomes a pytest outcome (pure: no I/O).

:mod:`scenarios.pytest_plugin` turns every seed test of the catalogue (:data:`scenarios.registry.SEED_PLAN`) into a
pytest test; this module holds what that needs apart from pytest and processes: the Locust command line of a
scenario run (:func:`locust_argv`), ``--seed-option KEY=VALUE`` → Locust arguments (:func:`option_args`), the run's
deadline (:func:`deadline_s`), the assertion text naming the failing thresholds (:func:`verdict_problem`) and the
JUnit properties of a report (:func:`report_properties`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scenarios.registry import Scenario

__all__ = ["DEADLINE_SLACK_S", "deadline_s", "locust_argv", "option_args", "report_properties", "verdict_problem"]

DEADLINE_SLACK_S = 120.0
"""Seconds a scenario run may take beyond its own length (start-up, stop timeout, report) before it is killed."""
_KEY = re.compile(r"^[a-z][a-z0-9]*([-_][a-z0-9]+)*$")


def option_args(items: Iterable[str]) -> list[str]:
    """``--seed-option`` values → Locust arguments: ``ws_think_time=0.5`` → ``--ws-think-time 0.5``, ``KEY`` alone →
    the flag ``--KEY``. ``ValueError`` naming the bad item otherwise."""
    out: list[str] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not _KEY.match(key):
            raise ValueError(
                f"--seed-option {item!r}: expected KEY=VALUE with a Locust option name as KEY "
                "(e.g. ws-think-time=0.5 or sla_warmup=1s), or KEY alone for a flag (e.g. inject-faults)"
            )
        out.append("--" + key.replace("_", "-"))
        if sep:
            out.append(value)
    return out


def locust_argv(
    *,
    python: str,
    locustfile: str,
    host: str,
    scenario: str,
    report_json: str,
    duration: str = "",
    profile: str = "",
    options: Sequence[str] = (),
) -> list[str]:
    """The headless Locust run of ``scenario`` against ``host``, writing its SLA report to ``report_json``.

    ``duration`` (``--scenario-duration``) shortens or stretches the scenario, ``profile`` is ``--sla-profile``,
    ``options`` more Locust arguments (from :func:`option_args`), last so that they win."""
    argv = [python, "-m", "locust", "-f", locustfile, "--headless", "--only-summary", "--host", host,
            "--scenario", scenario, "--sla-report-json", report_json]
    if duration:
        argv += ["--scenario-duration", duration]
    if profile:
        argv += ["--sla-profile", profile]
    return argv + list(options)


def deadline_s(scenario: Scenario, duration_s: float | None) -> float:
    """Wall seconds after which the run is killed: its length (``duration_s``, else the scenario's) plus slack."""
    return (duration_s if duration_s is not None else scenario.duration_s) + DEADLINE_SLACK_S


def _value(t: Mapping[str, Any]) -> str:
    value = t.get("value")
    shown = "no data" if value is None else f"{value:g}" if isinstance(value, int | float) else str(value)
    return f"{shown} ({t.get('samples', 0)} samples)"


def _threshold_line(t: Mapping[str, Any]) -> str:
    return f"{t.get('metric')} {t.get('expression')} = {_value(t)}"


def verdict_problem(report: Mapping[str, Any] | None, returncode: int | None, *, scenario: str, log: str) -> str | None:
    """None when the run passed (exit 0, verdict ``pass``); else one text for the assertion: the verdict and exit
    code, each failing threshold with its value, the verdict's reasons, and where the log is."""
    verdict = (report or {}).get("verdict")
    if returncode == 0 and verdict == "pass":
        return None
    if returncode is None:
        head = f"scenario {scenario}: killed after its deadline, no verdict"
    elif report is None:
        head = f"scenario {scenario}: exit {returncode}, no SLA report written (a usage error or a crash)"
    else:
        head = f"scenario {scenario}: verdict {verdict} (exit {returncode}), expected pass"
    lines = [head]
    thresholds = (report or {}).get("thresholds") or []
    failing = [f"  FAIL {_threshold_line(t)}" for t in thresholds if t.get("status") == "fail"]
    reasons = (report or {}).get("verdict_reasons") or []
    if failing:  # the failing thresholds say it already; the other reasons (abort, lost worker ...) stay
        reasons = [r for r in reasons if not str(r).startswith("SLA FAILED: ")]
    lines += failing + [f"  reason: {r}" for r in reasons]
    lines.append(f"  log: {log}")
    return "\n".join(lines)


def report_properties(report: Mapping[str, Any] | None, *, scenario: str, phase: int,
                      returncode: int | None, report_path: str) -> list[tuple[str, str]]:
    """JUnit ``<property>`` pairs of one run: scenario, phase, verdict, exit code, one per judged threshold
    (``threshold <metric> <expression>`` → ``<status> <value> (<n> samples)``), the report's path and the
    whole SLA report as compact JSON (``sla_report``)."""
    props = [("scenario", scenario), ("phase", f"phase{phase}"),
             ("verdict", str((report or {}).get("verdict", "none"))),
             ("exit_code", "killed" if returncode is None else str(returncode)), ("sla_report_path", report_path)]
    for t in (report or {}).get("thresholds") or []:
        judged = f"{t.get('status')} {_value(t)}" if t.get("value") is not None else \
            f"{t.get('status')} ({t.get('samples', 0)} samples)"
        props.append((f"threshold {t.get('metric')} {t.get('expression')}", judged))
    if report is not None:
        props.append(("sla_report", json.dumps(report, separators=(",", ":"), sort_keys=True, default=str)))
    return props
