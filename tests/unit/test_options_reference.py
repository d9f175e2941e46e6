"""The options reference's pure part: which options are the suite's, their group, default and flags, rendering."""

from __future__ import annotations

import argparse

import pytest

from config.options_reference import (
    OTHER,
    default_text,
    group_of,
    render_markdown,
    render_text,
    suite_options,
)


class FakeLocustParser(argparse.ArgumentParser):
    """argparse with Locust's extra keywords, as ``LocustArgumentParser`` takes them."""

    def add_argument(self, *args, include_in_web_ui=True, is_secret=False, env_var=None, **kwargs):  # type: ignore[override]
        action = super().add_argument(*args, **kwargs)
        action.include_in_web_ui = include_in_web_ui
        action.is_secret = is_secret
        action.env_var = env_var
        return action


def parser() -> FakeLocustParser:
    p = FakeLocustParser(add_help=True)
    p.add_argument("-u", "--users", type=int, default=1, env_var="LOCUST_USERS")  # "Locust's own"
    p.add_argument("--sla-profile", default="local", env_var="LOCUST_SLA_PROFILE",
                   help="SLA threshold profile. More text here.")
    p.add_argument("--ws-reply-timeout", type=float, default=30.0, env_var="LOCUST_WS_REPLY_TIMEOUT",
                   help="seconds until 'timeout' (default %(default)s)")
    p.add_argument("--redis-url", default="redis://:hunter2@db:6379/0", is_secret=True, include_in_web_ui=False,
                   env_var="LOCUST_REDIS_URL", help="Redis probed")
    p.add_argument("--jwt-secret", default="s3cr3t-default", is_secret=True, include_in_web_ui=False, help="secret")
    p.add_argument("--hidden-thing", help=argparse.SUPPRESS)
    group = p.add_argument_group("My plugin")
    group.add_argument("--my-knob", action="store_true", default=False, help="a knob | with a pipe")
    return p


LOCUST_OWN = {"-h", "--help", "-u", "--users"}


def test_suite_options_leave_out_locust_options_and_suppressed_help() -> None:
    names = [d.option for d in suite_options(parser(), LOCUST_OWN)]
    assert names == ["--ws-reply-timeout", "--jwt-secret", "--redis-url", "--sla-profile", "--my-knob"]


def test_suite_options_carry_env_var_default_kind_and_flags() -> None:
    docs = {d.option: d for d in suite_options(parser(), LOCUST_OWN)}
    reply = docs["--ws-reply-timeout"]
    assert (reply.env_var, reply.default, reply.kind, reply.web_ui, reply.secret) == (
        "LOCUST_WS_REPLY_TIMEOUT", "30", "number", True, False)
    assert reply.help == "seconds until 'timeout' (default 30.0)"
    assert docs["--my-knob"].default == "off" and docs["--my-knob"].kind == "flag"
    assert docs["--my-knob"].group == "My plugin"
    assert docs["--sla-profile"].summary == "SLA threshold profile."


def test_a_secret_default_is_never_shown() -> None:
    docs = {d.option: d for d in suite_options(parser(), LOCUST_OWN)}
    assert docs["--redis-url"].default == "redis://:***@db:6379/0"
    assert docs["--jwt-secret"].default == "***"
    text = render_text(list(docs.values())) + render_markdown(list(docs.values()))
    assert "hunter2" not in text and "s3cr3t-default" not in text


def test_a_secret_url_without_password_is_shown() -> None:
    action = argparse.ArgumentParser().add_argument("--x", default="redis://127.0.0.1:6379/0")
    assert default_text(action, secret=True) == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(("option", "group"), [
    ("--ws-path", "Chat users"), ("--jwt-ttl", "Chat users"), ("--token-file", "Chat users"),
    ("--probes", "Infrastructure probes"), ("--pg-dsn", "Infrastructure probes"),
    ("--probe-read-only", "Infrastructure probes"), ("--sla-window", "SLA verdict and reports"),
    ("--scenario", "Scenarios"), ("--scenario-scale", "Scenarios"), ("--inject-faults", "Scenarios"),
    ("--gc-freeze", "Load generator"), ("--something-else", OTHER),
])
def test_group_of_follows_the_option_prefix(option: str, group: str) -> None:
    assert group_of(option, "options") == group


def test_renderings_list_every_option_with_its_env_var() -> None:
    docs = suite_options(parser(), LOCUST_OWN)
    text, md = render_text(docs), render_markdown(docs)
    assert "  --ws-reply-timeout  (LOCUST_WS_REPLY_TIMEOUT; default 30) [web UI]" in text
    assert "| `--ws-reply-timeout` | `LOCUST_WS_REPLY_TIMEOUT` | `30` | number | yes |" in md
    assert "a knob \\| with a pipe" in md
    assert md.index("## Chat users") < md.index("## Infrastructure probes") < md.index("## My plugin")
