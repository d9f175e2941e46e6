"""One way to declare a suite option: :func:`add_option`.

Every module that adds ``--`` options to Locust's parser (chat users, probes, SLA, scenarios, the generator) declares
each one with :func:`add_option`, which gives it, in one call:

* its env var: ``--ws-reply-timeout`` reads ``LOCUST_WS_REPLY_TIMEOUT`` (and a ``locust.conf`` line, as every
  Locust option does);
* its default, passed in by the caller from the one place that holds it (the module's settings dataclass where one
  exists, e.g. ``ChatSettings().reply_timeout``); ``{default}`` in the help text is replaced by it, so the help
  cannot drift from the value;
* ``secret``: Locust masks the value (``is_secret``); a secret option is never offered in the web UI, where Locust
  writes an option's value into the page;
* ``web_ui``: offered in the web UI's start form;
* its group (:data:`GROUP_TITLES`: ``Chat users``, ``Infrastructure probes``, ``SLA verdict and reports``,
  ``Scenarios``, ``Load generator``), an ``argparse`` group of that title; the action's ``suite_group`` says it too.

The web UI's start form offers only what a person sets per run (:data:`WEB_UI_FORM`, checked by a unit test against
the parser):

* ``--scenario``, ``--scenario-duration``, ``--scenario-scale``: which scenario, how long, how many users;
* ``--inject-faults``, ``--inject-tolerated-faults``: the scenario's paired faults;
* ``--sla-profile``, ``--sla-config``, ``--sla-window``, ``--sla-warmup``, ``--sla-baseline``: what the run is
  judged with (and against);
* ``--ws-think-time``, ``--ws-inflight``, ``--ws-arrival-rate``: the offered load of the chat users;
* ``--probe-read-only``: whether the probes may write this run.

Everything else (endpoints, credentials, timeouts, pool sizes, report paths, exit codes) belongs to the deployment
and is set on the command line, in ``locust.conf`` or as ``LOCUST_*`` env vars.

Pure: needs only the parser object (no import of Locust's runners).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, cast

__all__ = ["GROUP_TITLES", "WEB_UI_FORM", "add_option", "env_var_of", "suite_actions"]

WEB_UI_FORM: tuple[str, ...] = (
    "scenario",
    "scenario_duration",
    "scenario_scale",
    "inject_faults",
    "inject_tolerated_faults",
    "sla_profile",
    "sla_config",
    "sla_window",
    "sla_warmup",
    "sla_baseline",
    "ws_think_time",
    "ws_inflight",
    "ws_arrival_rate",
    "probe_read_only",
)
"""The options (``dest`` names) the web UI's start form offers: the ones a person sets per run."""

GROUP_TITLES: dict[str, str] = {
    "Chat users": "WebSocket chat users: target path, timeouts, load model, credentials",
    "Infrastructure probes": "Which tiers are probed, their URLs, pools and timeouts",
    "SLA verdict and reports": "Threshold profile, windows, warm-up, reports, exit codes",
    "Scenarios": "Named load scenarios (users, load shape, thresholds, paired faults)",
    "Load generator": "The load generator process itself",
}
"""Option groups (the titles of :mod:`config.options_reference`), with one line each."""


def env_var_of(name: str) -> str:
    """``--ws-reply-timeout`` → ``LOCUST_WS_REPLY_TIMEOUT``."""
    return "LOCUST_" + name.lstrip("-").upper().replace("-", "_")


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def _group(parser: Any, title: str) -> Any:
    """The argument group ``title`` of ``parser``, created on first use."""
    if title not in GROUP_TITLES:
        raise ValueError(f"unknown option group {title!r}; expected one of {', '.join(GROUP_TITLES)}")
    for group in getattr(parser, "_action_groups", []):
        if group.title == title:
            return group
    return parser.add_argument_group(title, GROUP_TITLES[title])


def add_option(
    parser: Any,
    name: str,
    *,
    group: str,
    default: Any,
    help: str,  # noqa: A002  (argparse's keyword)
    type: Callable[[str], Any] | None = None,  # noqa: A002  (argparse's keyword)
    action: str | type[argparse.Action] | None = None,
    choices: Any = None,
    metavar: str | None = None,
    secret: bool = False,
    web_ui: bool = False,
    env: bool = True,
) -> argparse.Action:
    """Declare the suite option ``name`` on Locust's ``parser`` (see the module docstring); returns its action.

    ``env=False``: no env var (an action that exits at parse time, such as ``--list-scenarios``)."""
    if not name.startswith("--"):
        raise ValueError(f"option {name!r} must start with '--'")
    if secret and web_ui:
        raise ValueError(f"{name} is secret: Locust would write its value into the web UI's page")
    kwargs: dict[str, Any] = {"default": default, "help": help.replace("{default}", _shown(default))}
    if env:
        kwargs["env_var"] = env_var_of(name)
    for key, value in (("type", type), ("action", action), ("choices", choices), ("metavar", metavar)):
        if value is not None:
            kwargs[key] = value
    act: Any = _group(parser, group).add_argument(name, **kwargs)
    # Locust's own parser sets these in its add_argument only; an argument group needs them set here
    act.include_in_web_ui = web_ui
    act.is_secret = secret
    act.is_required = False
    act.is_multiple = False
    act.suite_group = group
    return cast(argparse.Action, act)


def suite_actions(parser: Any) -> list[argparse.Action]:
    """The suite's options on ``parser`` (declared with :func:`add_option`), in declaration order."""
    return [a for a in parser._actions if getattr(a, "suite_group", None)]
