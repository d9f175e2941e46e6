"""The SLA plugin's options: the ``--sla-*`` declarations and their parsing and checks at start (profile, window,
warm-up, evaluation interval, exit codes, report paths, baseline, ``-u``); a bad value raises ``ConfigError`` /
``BaselineError`` (exit 2 from :mod:`sla_checks.plugin`'s ``init`` listener).

Importing this module registers the options (:mod:`sla_checks.plugin` imports it)."""

from __future__ import annotations

import os
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from config.options import add_option
from config.validate import bounded
from sla_checks import prometheus_server  # noqa: F401  (first: --prometheus-* lead the group in --list-options)
from sla_checks.baseline import Baseline, load_baseline
from sla_checks.profiles import ConfigError, Profile, load_profile, parse_duration

__all__ = [
    "DEFAULT_EVAL_INTERVAL_S", "DEFAULT_EXIT_CODE", "DEFAULT_INCONCLUSIVE_EXIT_CODE", "REPORT_OPTIONS",
    "baseline_option", "check_report_paths", "check_users", "eval_interval_option", "inconclusive_code_option",
    "load_from_options", "opt", "report_path_problem", "unset", "warmup_option", "window_option",
]

DEFAULT_EXIT_CODE = 3
DEFAULT_INCONCLUSIVE_EXIT_CODE = 4
DEFAULT_EVAL_INTERVAL_S = Profile.eval_interval_s


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    def add(name: str, **kwargs: Any) -> None:
        add_option(parser, name, group="SLA verdict and reports", **kwargs)

    add("--sla-profile", default="local", web_ui=True,
        help="SLA threshold profile: config/<name>.toml (local, ci, staging, soak). Default: {default}.")
    add("--sla-config", default="", web_ui=True,
        help="Threshold file (TOML) to use instead of a profile from config/.")
    add("--sla-exit-code", type=int, default=DEFAULT_EXIT_CODE,
        help="Process exit code when an SLA threshold fails (default {default}, 1..255).")
    add("--sla-inconclusive-exit-code", type=int, default=DEFAULT_INCONCLUSIVE_EXIT_CODE,
        help="Process exit code when nothing failed but nothing was measured: no user ran, or no threshold was "
             "judged on a metric with samples (default {default}, 1..255).")
    add("--sla-window", default="", web_ui=True,
        help="Also judge every threshold per window of this many seconds (soak). Empty (default): the profile's "
             "window_s; 0: no windows, whatever the profile says.")
    add("--sla-warmup", default="", web_ui=True,
        help="Keep the samples of the run's first seconds out of the verdict (e.g. 30s: connection set-up and "
             "spawn spikes); they still show in the stats and the report. Empty = the profile's warmup_s (none).")
    add("--sla-eval-interval", default="",
        help="Live evaluation period in seconds (abort_on_fail, web UI), more than 0. Empty (default): the "
             f"profile's eval_interval_s ({DEFAULT_EVAL_INTERVAL_S:g} unless it sets one).")
    add("--sla-report-json", default="", help="Write the SLA report as JSON to this path at the end.")
    add("--sla-report-junit", default="",
        help="Write the SLA verdict as JUnit XML (one testcase per threshold and failing window).")
    add("--sla-report-html", default="", help="Write the SLA report as one self-contained HTML file.")
    add("--sla-baseline", default="", web_ui=True,
        help="A previous run's JSON report (--sla-report-json) to judge this run against: the profile's regression "
             "lines (p(95) <= baseline * 1.10); without any, p95 and p99 may rise by a tenth + 5 ms and rps fall by "
             "a tenth on the metrics the thresholds judge. A line crossed with 0.95 confidence fails the run (exit "
             "3). Empty (default): no baseline.")
    add("--sla-off", action="store_true", default=False,
        help="Disable SLA evaluation (no verdict, no SLA exit code, no SLA reports).")


def opt(options: Any, name: str, default: Any) -> Any:
    """``options.<name>``, else ``default`` (also without parsed options)."""
    return getattr(options, name, default) if options is not None else default


def unset(value: Any) -> bool:
    """An option left empty: the profile's value applies."""
    return value is None or (isinstance(value, str) and not value.strip())


def window_option(options: Any) -> float | None:
    """--sla-window: None when empty (the profile's window_s), else whole seconds (0: no windows); ConfigError."""
    value = opt(options, "sla_window", None)
    if unset(value):
        return None
    return bounded("--sla-window", value, low=0, high=7 * 86400, integer=True, unit="seconds",
                   hint="e.g. 300; 0 = no windows; empty = the profile's window_s", error=ConfigError)


def eval_interval_option(options: Any) -> float | None:
    """--sla-eval-interval: None when empty (the profile's), else seconds > 0; ConfigError."""
    value = opt(options, "sla_eval_interval", None)
    if unset(value):
        return None
    return bounded("--sla-eval-interval", value, low=0, high=3600, low_open=True, unit="seconds",
                   hint=f"empty = the profile's eval_interval_s (default {DEFAULT_EVAL_INTERVAL_S:g})",
                   error=ConfigError)


def load_from_options(options: Any) -> tuple[Profile, float, float, int, float]:
    """(profile, window_s, eval_interval_s, exit_code, warmup_s) from the parsed options; ConfigError on bad input.
    An empty --sla-window / --sla-eval-interval / --sla-warmup takes the profile's value."""
    cfg = opt(options, "sla_config", "")
    name = opt(options, "sla_profile", "local")
    profile = load_profile(name=None if cfg else name, path=cfg or None)
    window = window_option(options)
    interval = eval_interval_option(options)
    code = int(bounded("--sla-exit-code", opt(options, "sla_exit_code", DEFAULT_EXIT_CODE), low=1, high=255,
                       integer=True, hint=f"default {DEFAULT_EXIT_CODE}; 0 would make a failing run pass",
                       error=ConfigError))
    return (profile, profile.window_s if window is None else window,
            interval or profile.eval_interval_s or DEFAULT_EVAL_INTERVAL_S, code, warmup_option(options, profile))


REPORT_OPTIONS = ("--sla-report-json", "--sla-report-junit", "--sla-report-html")


def report_path_problem(path: str) -> str | None:
    """Why the report file ``path`` could not be written at the end (None: it can): it is a directory, or its
    nearest existing ancestor is not a writable directory (missing directories are created when writing)."""
    if os.path.isdir(path):
        return "is a directory"
    directory = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(directory):
        directory = os.path.dirname(directory)
    if not os.path.isdir(directory):
        return f"{directory!r} is a file, not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory!r} is not writable"
    return None


def check_report_paths(options: Any) -> None:
    """ConfigError naming the first ``--sla-report-*`` path that could not be written: checked at start, not after
    the load ran."""
    for option in REPORT_OPTIONS:
        path = opt(options, option[2:].replace("-", "_"), "") or ""
        problem = report_path_problem(path) if path else None
        if problem:
            raise ConfigError(f"{option} {path!r}: {problem}; give a file path in a writable directory")


def inconclusive_code_option(options: Any) -> int:
    """--sla-inconclusive-exit-code; ConfigError unless 1..255 (0 would let a run that measured nothing pass CI)."""
    code = int(opt(options, "sla_inconclusive_exit_code", DEFAULT_INCONCLUSIVE_EXIT_CODE))
    if not 1 <= code <= 255:
        raise ConfigError(
            f"--sla-inconclusive-exit-code {code}: expected an exit code 1..255 (default 4); 0 would make a run "
            "that measured nothing look like a pass"
        )
    return code


def check_users(environment: Environment) -> str | None:
    """-u/--users on a master or local runner: ConfigError when negative; a warning (returned) when 0 in a headless
    run without a load shape, which runs no user and so measures nothing."""
    options = environment.parsed_options
    users = opt(options, "num_users", None)
    if users is None or isinstance(environment.runner, WorkerRunner):
        return None
    if users < 0:
        raise ConfigError(f"-u/--users {users}: expected a number of users >= 1 (e.g. -u 10)")
    headless = opt(options, "headless", False) or opt(options, "autostart", False)
    if users == 0 and headless and environment.shape_class is None and not opt(options, "scenario", ""):
        code = opt(options, "sla_inconclusive_exit_code", DEFAULT_INCONCLUSIVE_EXIT_CODE)
        return (
            f"-u/--users 0: no user will run, so nothing is measured and the SLA verdict will be INCONCLUSIVE "
            f"(exit code {code}); use -u 1 or more"
        )
    return None


def baseline_option(options: Any) -> Baseline | None:
    """--sla-baseline: the baseline report, None when empty; BaselineError (exit 2) when it cannot be used."""
    path = opt(options, "sla_baseline", "") or ""
    return load_baseline(path) if str(path).strip() else None


def warmup_option(options: Any, profile: Profile) -> float:
    """--sla-warmup when given (also 0), else the profile's ``warmup_s``; ConfigError on a bad value."""
    warmup = opt(options, "sla_warmup", "")
    if warmup in ("", None):
        return profile.warmup_s
    try:
        return parse_duration(warmup)
    except ValueError as e:
        raise ConfigError(f"--sla-warmup {warmup!r}: {e}") from None
