"""The rehearsal's pure parts: the staging guard's rehearsal exception, and scripts/rehearse's option and
HAProxy runtime-API parsing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from scenarios.registry import SCENARIOS
from scenarios.staging import not_staging, staging_problems

REPO = Path(__file__).resolve().parents[2]


def _rehearse() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rehearse_script", REPO / "scripts" / "rehearse.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["rehearse_script"] = module
    spec.loader.exec_module(module)
    return module


class Options:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


REHEARSAL = {"REHEARSE_NET": "198.18.0.0/30"}


@pytest.mark.parametrize(
    "host, env, refused",
    [
        ("127.0.0.1", {}, True),
        ("127.0.0.1", {"REHEARSE_NET": "127.0.0.0/8"}, True),  # loopback stays refused whatever the env says
        ("localhost", REHEARSAL, True),
        ("198.18.0.2", {}, True),  # the benchmarking range is no staging address ...
        ("198.18.0.2", REHEARSAL, False),  # ... except the rehearsal's own network
        ("198.19.0.2", REHEARSAL, True),
        ("198.18.0.2", {"REHEARSE_NET": "not a network"}, True),
        ("198.18.0.2", {"REHEARSE_NET": "0.0.0.0/0"}, True),  # wider than the benchmarking range: ignored
        ("10.0.0.5", {}, False),
        ("chat.staging.example", {}, False),
    ],
)
def test_not_staging_accepts_only_the_rehearsal_network(host: str, env: dict[str, str], refused: bool) -> None:
    assert (not_staging(host, env) is not None) is refused


def test_staging_guard_accepts_a_rehearsal_and_names_scripts_rehearse_otherwise() -> None:
    ns = "198.18.0.2"
    options = Options(users_file="/tmp/users.csv", redis_url=f"redis://{ns}:6379/0",
                      pg_dsn=f"postgresql://postgres@{ns}:5432/test", clickhouse_url=f"http://{ns}:8123",
                      health_url="")
    assert staging_problems(SCENARIOS["soak"], options, f"wss://{ns}/ws", REHEARSAL) == []
    problems = staging_problems(SCENARIOS["soak"], options, "ws://127.0.0.1:8765/ws", REHEARSAL)
    assert len(problems) == 1 and "this machine" in problems[0] and "scripts/rehearse" in problems[0]
    problems = staging_problems(SCENARIOS["soak"], options, f"wss://{ns}/ws", {})
    assert len(problems) == 4 and all("scripts/rehearse" in p for p in problems), problems


def test_show_sess_parsing_finds_the_old_sessions_of_the_frontend() -> None:
    r = _rehearse()
    out = (
        "0x55aa01: proto=tcpv4 src=127.0.0.1:4000 fe=wss be=app srv=app ts=00 epoch=0 age=1m2s calls=3 rate=0\n"
        "0x55aa02: proto=tcpv4 src=127.0.0.1:4001 fe=wss be=app srv=app ts=00 epoch=0 age=59s calls=3 rate=0\n"
        "0x55aa03: proto=tcpv4 src=127.0.0.1:4002 fe=redis be=redis_svc srv=redis ts=00 age=2h calls=3\n"
        "0x55aa04: proto=unix_stream src=unix:1 fe=GLOBAL be=<NONE> srv=<none> ts=00 age=0s calls=1\n"
    )
    assert r.old_sessions(out, "wss", 60) == ["0x55aa01"]
    assert r.session_age_s("1d2h3m4s") == 93784 and r.session_age_s("") is None


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--length", "soon"], "--length 'soon'"),
        (["--length", "0"], "more than 0"),
        (["--fault", "meteor"], "--fault 'meteor'"),
        (["--latency", "5ms", "--jitter", "9ms"], "--jitter"),
        (["--length", "1m", "--fault-at", "2m"], "--fault-at"),
        (["--fault-ms", "lots"], "--fault-ms"),
    ],
)
def test_bad_options_name_the_option(argv: list[str], needle: str) -> None:
    r = _rehearse()
    with pytest.raises(r.UsageError, match=needle.replace("(", r"\(")):
        r.parse_options(argv)


def test_options_pass_through_and_max_age_default() -> None:
    r = _rehearse()
    o = r.parse_options(["--length", "90s", "--latency", "10", "--", "--sla-warmup", "5s"])
    assert o.length_s == 90 and o.latency_ms == 10 and o.locust_args == ["--sla-warmup", "5s"]
    assert r.ws_max_age_arg("auto", 60, supported=True) == "50"
    assert r.ws_max_age_arg("auto", 20, supported=True) == "15"
    assert r.ws_max_age_arg("1m", 90, supported=True) == "60"
    assert r.ws_max_age_arg("auto", 60, supported=False) is None
    assert r.ws_max_age_arg("off", 60, supported=True) is None
