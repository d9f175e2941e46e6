"""The one options layer: every suite option declared the same way, the web UI's start form, one duration parser,
one error root with one usage-error exit."""

from __future__ import annotations

import ast
import importlib
import logging
import pkgutil
from pathlib import Path
from typing import Any

import pytest

import config.options
from config.durations import parse_duration
from config.errors import SuiteError, UsageError, exit_usage
from config.options import WEB_UI_FORM, add_option, env_var_of

ROOT = Path(__file__).resolve().parents[2]
SUITE_PACKAGES = ("config", "users", "tasks", "sla_checks", "scenarios")
"""The load generator's packages (the reference backend and ``contract/``, which it shares, are a separate program)."""
USAGE_ERRORS = (
    "AuthConfigError", "ChatConfigError", "ConfigError", "ExpressionError", "FaultTargetError", "ProbeConfigError",
    "ProtocolConfigError", "ScenarioError", "ScheduleError", "UnknownScenarioError",
)
"""The exceptions a bad option or file raises: each ends the run before any load with exit code 2."""


# --------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(("value", "seconds"), [
    (10, 10.0), (10.5, 10.5), (0, 0.0), ("10", 10.0), ("10.5", 10.5), ("0", 0.0),
    ("500ms", 0.5), ("10s", 10.0), ("90s", 90.0), ("2m", 120.0), ("1h", 3600.0),  # the profile files' forms
    ("1h30m", 5400.0), ("1m30s", 90.0), ("2m500ms", 120.5), ("1.5h", 5400.0),  # the scenario option's and more
    (" 10 s ", 10.0), ("2M", 120.0), ("1h 30m", 5400.0),
])
def test_one_duration_parser_takes_both_forms_and_plain_seconds(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "m", "ms", "ten", "5x", "-5", "30m1h", "1hh", "1e3", "nan", None, True,
                                   float("nan"), float("inf"), -1])
def test_one_duration_parser_refuses_what_is_not_a_duration(value: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_both_callers_use_it_each_with_its_own_rule_on_zero() -> None:
    from scenarios.options import parse_seconds
    from sla_checks import profiles

    assert profiles.parse_duration is parse_duration
    assert profiles.parse_duration("0s") == 0.0  # a warm-up of 0 is none
    assert parse_seconds("1h30m") == parse_seconds("90m") == 5400.0
    assert parse_seconds("500ms") == 0.5  # the profile files' form now works for --scenario-duration too
    with pytest.raises(ValueError, match="more than 0 s"):
        parse_seconds("0")  # a scenario cannot run in 0 s
    with pytest.raises(ValueError, match="not a duration; use seconds"):
        parse_seconds("soon")


# --------------------------------------------------------------------------------------------- declarations


def _suite_parser() -> tuple[Any, set[str]]:
    import locust  # noqa: F401
    from locust.argument_parser import get_empty_argument_parser, get_parser, setup_parser_arguments

    import locustfile  # noqa: F401  (registers every option listener)

    own = get_empty_argument_parser(add_help=True, default_config_files=[])
    setup_parser_arguments(own)
    return get_parser(default_config_files=[]), {s for a in own._actions for s in a.option_strings}


def test_the_web_ui_form_offers_exactly_the_per_run_options() -> None:
    from locust.argument_parser import ui_extra_args_dict

    _suite_parser()
    form = set(ui_extra_args_dict([]))
    assert form == set(WEB_UI_FORM), (sorted(form - set(WEB_UI_FORM)), sorted(set(WEB_UI_FORM) - form))
    for dest in WEB_UI_FORM:  # the list is written down where the options are declared
        assert "--" + dest.replace("_", "-") in (config.options.__doc__ or ""), dest


def test_every_suite_option_is_declared_one_way() -> None:
    parser, locust_own = _suite_parser()
    suite = [a for a in parser._actions if a.option_strings and not set(a.option_strings) <= locust_own]
    assert len(suite) > 60
    for action in suite:
        name = action.option_strings[0]
        assert getattr(action, "suite_group", None), f"{name} is not declared with config.options.add_option"
        expected_env = None if name in ("--list-scenarios", "--list-options") else env_var_of(name)  # print, exit
        assert action.env_var == expected_env, name
        assert not (action.is_secret and action.include_in_web_ui), f"{name}: a secret in the web UI's page"


def test_defaults_come_from_the_settings_dataclasses() -> None:
    from users.probe_options import ProbeConfig
    from users.ws_options import ChatSettings

    parser, _ = _suite_parser()
    defaults = {a.dest: a.default for a in parser._actions}
    chat, probe = ChatSettings(), ProbeConfig()
    for dest, value in (("ws_reply_timeout", chat.reply_timeout), ("ws_inflight", chat.inflight),
                        ("ws_max_frame_bytes", chat.max_frame), ("ws_login_path", chat.login_path),
                        ("redis_url", probe.redis_url), ("pg_pool_timeout", probe.pg_pool_timeout),
                        ("probe_create_schema", probe.probe_create_schema)):
        assert defaults[dest] == value, dest
    help_of = {a.dest: a.help for a in parser._actions}
    assert "(default 30)" in help_of["ws_reply_timeout"] and "{default}" not in help_of["ws_reply_timeout"]


def test_add_option_refuses_a_secret_in_the_web_ui_and_an_unknown_group() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    with pytest.raises(ValueError, match="secret"):
        add_option(parser, "--x-token", group="Chat users", default="", help="h", secret=True, web_ui=True)
    with pytest.raises(ValueError, match="unknown option group"):
        add_option(parser, "--x-y", group="Misc", default="", help="h")


# --------------------------------------------------------------------------------------------- errors


def _suite_modules() -> list[Any]:
    modules = []
    for package in SUITE_PACKAGES:
        pkg = importlib.import_module(package)
        modules.append(pkg)
        for info in pkgutil.walk_packages(pkg.__path__, package + "."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue
            modules.append(importlib.import_module(info.name))
    return modules


def test_every_exception_of_the_suite_derives_from_suite_error() -> None:
    classes = {
        obj
        for module in _suite_modules()
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == module.__name__
    }
    assert len(classes) >= 15
    outside = sorted(f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, SuiteError))
    assert not outside, f"exceptions without the suite's root (config.errors.SuiteError): {outside}"
    names = [c.__name__ for c in classes]
    assert len(names) == len(set(names)), "two exception classes of the same name"
    by_name = {c.__name__: c for c in classes}
    for name in USAGE_ERRORS:
        assert issubclass(by_name[name], UsageError), name
    for c in classes:
        if c.__name__.endswith("ConfigError"):
            assert issubclass(c, UsageError), c


def test_exit_usage_logs_one_line_and_exits_2(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("users.ws_options")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as info:
        exit_usage(UsageError("--ws-inflight has value 0: expected a whole number 1 to 1000"), prefix="Bad chat option",
                   logger=log)
    assert info.value.code == 2
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("users.ws_options", "Bad chat option: --ws-inflight has value 0: expected a whole number 1 to 1000")]


def test_no_other_place_exits_with_2() -> None:
    """Every "log, then exit 2" goes through config.errors.exit_usage."""
    sites = []
    for package in SUITE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "config" / "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "exit"
                        and node.args and not (isinstance(node.args[0], ast.Constant)
                                               and node.args[0].value in (0, None))
                        and "main" not in ast.unparse(node.args[0])):
                    sites.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not sites, sites


# --------------------------------------------------------------------------------------------- explicit "unset"


def test_sla_window_0_means_no_windows_for_a_handed_over_profile_too(caplog: pytest.LogCaptureFixture) -> None:
    import argparse

    from locust.env import Environment
    from locust.event import Events

    from sla_checks.plugin import SlaPlugin
    from sla_checks.profiles import load_profile

    env = Environment(events=Events())
    env.create_local_runner()
    env.parsed_options = argparse.Namespace(sla_profile="local", sla_config="", sla_window="0", sla_warmup="",
                                            sla_eval_interval="", sla_exit_code=3)
    plugin = SlaPlugin.register(env, None, eval_interval_s=60)
    soak = load_profile("soak")
    plugin.reconfigure(soak)  # what a scenario hands over: a profile with 300 s windows
    assert plugin.window_s == 0.0, "--sla-window 0: no windows, whatever the profile says"
    env.parsed_options.sla_window = 0.0  # a number (LOCUST_SLA_WINDOW=0 through a type=float parser, a test)
    plugin.reconfigure(soak)
    assert plugin.window_s == 0.0
    env.parsed_options.sla_window = ""
    plugin.reconfigure(soak)
    assert plugin.window_s == soak.window_s == 300.0, "unset: the profile's window_s"
    env.parsed_options.sla_window = "60"
    plugin.reconfigure(soak)
    assert plugin.window_s == 60.0
    env.parsed_options.sla_window = "soon"  # a bad value from the web UI's form: logged, the profile's applies
    with caplog.at_level(logging.ERROR):
        plugin.reconfigure(soak)
    assert plugin.window_s == 300.0 and "--sla-window has value 'soon'" in caplog.text
