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


def test_each_slot_has_its_own_namespace_veth_and_network_that_the_staging_guard_accepts() -> None:
    r = _rehearse()
    slots = [r.Slot(i) for i in range(r.SLOTS)]
    for attr in ("ns", "host_if", "ns_if", "net", "ns_addr", "state_file"):
        assert len({getattr(s, attr) for s in slots}) == r.SLOTS, attr
    assert all(len(s.host_if) <= 15 and len(s.ns_if) <= 15 for s in slots)  # the kernel's interface name limit
    last = slots[-1]
    options = Options(users_file="/tmp/u.csv", redis_url=f"redis://{last.ns_addr}:6379/0",
                      pg_dsn=f"postgresql://postgres@{last.ns_addr}:5432/test",
                      clickhouse_url=f"http://{last.ns_addr}:8123", health_url="")
    assert staging_problems(SCENARIOS["soak"], options, f"wss://{last.ns_addr}/ws", {"REHEARSE_NET": last.net}) == []
    # another slot's network does not open this one's address
    assert staging_problems(SCENARIOS["soak"], options, f"wss://{last.ns_addr}/ws", {"REHEARSE_NET": slots[0].net})
    cfg = r.haproxy_config(slot=last, backend_port=8000, crt=Path("/x.pem"), stats_sock=Path("/s"), idle_s=60,
                           relay=False)
    assert f"bind {last.ns_addr}:443 namespace {last.ns} ssl" in cfg and "server app 127.0.0.1:8000" in cfg


def test_the_relay_holds_the_clients_first_bytes_for_the_handshake_round_trip() -> None:
    r = _rehearse()
    import netdelay

    class Fixed:
        def uniform(self, a: float, b: float) -> float:
            return 0.0

    up = netdelay.Delay(0.010, 0.002, Fixed(), handshake=True)  # type: ignore[arg-type]
    assert up.due(100.0) == pytest.approx(100.030)  # SYN, SYN-ACK, then the bytes themselves: three one-way delays
    assert up.due(100.001) == pytest.approx(100.030)  # never before the chunk ahead of it
    assert up.due(101.0) == pytest.approx(101.010)
    assert netdelay.Delay(0.010, 0.0, Fixed()).due(5.0) == pytest.approx(5.010)  # 2nd direction: no handshake
    assert r  # the script puts scripts/ on the path


def test_the_tap_keeps_only_completed_rows_of_the_event_table_inserts() -> None:
    _rehearse()
    import rehearse_tap

    table = "agentchat.agent_state_history"
    assert rehearse_tap.is_event_insert(f"INSERT INTO {table} (a, b) FORMAT JSONEachRow", table)
    assert not rehearse_tap.is_event_insert(f"SELECT count() FROM {table}", table)
    assert not rehearse_tap.is_event_insert("INSERT INTO probe.agent_state_history FORMAT JSONEachRow", table)
    body = (b'{"ts": "2026-01-02 03:04:05", "ts_ms": 250, "event_type": "agent_started", "duration_ms": 1.5}\n'
            b'{"ts": "2026-01-02 03:04:05", "ts_ms": 750, "event_type": "agent_completed", "duration_ms": 480.25}\n'
            b'not json "agent_completed"\n')
    [(t, ms)] = rehearse_tap.completed_rows(body)
    assert ms == 480.25 and t == pytest.approx(1767323045.75)


def test_cut_messages_lists_the_failures_a_close_caused_with_their_close_text(tmp_path: Path) -> None:
    r = _rehearse()
    f = tmp_path / "locust_failures.csv"
    f.write_text(
        "Method,Name,Error,Occurrences,First Seen,Last Seen\n"
        "WS,agent_completed,error DISCONNECTED: connection closed by the server without a close frame "
        "(1006 abnormal closure),14,2026-12-06T22:12:06Z,2026-12-06T22:12:27Z\n"
        "WS,agent_completed,timeout after 30000 ms,2,,\n"
        "WS,disconnect,disconnect: closed by the server (1011 internal error),3,,\n")
    cut = r.cut_messages(f)
    assert [(c["name"], c["count"]) for c in cut] == [("WS agent_completed", 14), ("WS disconnect", 3)]
    assert "1006" in cut[0]["error"] and cut[0]["first_seen"] == "2026-12-06T22:12:06Z"
    assert r.cut_messages(tmp_path / "missing.csv") == []
    assert r.p50([3.2, 1.0, 2.5]) == 3.0  # the report's histogram: nearest rank, the 1 ms bucket above
