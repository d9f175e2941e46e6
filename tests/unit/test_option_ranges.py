"""Numeric options out of range (NaN, infinity, absurd, negative) are refused with one line naming the option, the
value and the accepted range; unreadable files and report paths likewise (no Locust process here: the end-to-end
cases are in tests/reliability/test_bad_config.py)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from config.arrival import MAX_RATE, ArrivalSchedule, ScheduleError
from config.validate import bounded
from sla_checks.profiles import ConfigError, load_profile
from sla_checks.state import state_of
from users.auth import AuthConfigError, read_token_file, read_users_file
from users.probe_options import ProbeConfig, ProbeConfigError
from users.ws_options import ChatConfigError, settings_from_options

pytestmark = pytest.mark.timeout(30)
SECRET = "option-ranges-secret-0123456789-abcdefghijkl"
BINARY = bytes(range(256)) * 4


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "1e400", "abc", None, 0.0, -1, 3601])
def test_bounded_refuses_non_finite_and_out_of_range_naming_option_and_value(value) -> None:
    with pytest.raises(ValueError) as info:
        bounded("--opt", value, low=0, high=3600, low_open=True, unit="seconds", hint="default 10")
    text = str(info.value)
    assert text.startswith("--opt has value ") and "> 0 and <= 3600 seconds; default 10" in text
    assert "\n" not in text


@pytest.mark.parametrize(("value", "expected"), [(0.001, 0.001), (3600, 3600.0), ("2.5", 2.5)])
def test_bounded_returns_values_in_range_as_float(value, expected) -> None:
    assert bounded("--opt", value, low=0, high=3600, low_open=True) == expected


def test_bounded_integer_refuses_fractions_and_keeps_the_error_class() -> None:
    assert bounded("--n", 7, low=1, high=10, integer=True) == 7
    with pytest.raises(ConfigError, match="--n has value 2.5: expected a whole number 1 to 10"):
        bounded("--n", 2.5, low=1, high=10, integer=True, error=ConfigError)


CHAT_FLOATS = ["ws_connect_timeout", "ws_reply_timeout", "ws_hang_after", "ws_heartbeat_interval",
               "ws_heartbeat_timeout", "ws_think_time", "ws_reconnect_max_backoff", "jwt_ttl"]


@pytest.mark.parametrize("dest", CHAT_FLOATS)
@pytest.mark.parametrize("value", [math.nan, math.inf, 1e9, -1.0])
def test_every_float_chat_option_refuses_nan_inf_and_absurd_values(dest: str, value: float) -> None:
    option = "--" + dest.replace("_", "-")
    with pytest.raises(ChatConfigError) as info:
        settings_from_options(SimpleNamespace(jwt_secret=SECRET, **{dest: value}), "ws://h:1")
    assert str(info.value).startswith(f"{option} has value {value:g}: expected a finite number")


@pytest.mark.parametrize(("dest", "value"), [("ws_inflight", 0), ("ws_inflight", 10**6), ("ws_heartbeat_misses", 0),
                                             ("ws_max_frame_bytes", 100), ("ws_max_frame_bytes", 1 << 40),
                                             ("jwt_users", 0)])
def test_whole_number_chat_options_have_a_range(dest: str, value: int) -> None:
    with pytest.raises(ChatConfigError, match=f"--{dest.replace('_', '-')} has value {value}: expected a whole"):
        settings_from_options(SimpleNamespace(jwt_secret=SECRET, **{dest: value}), "ws://h:1")


def test_zero_keeps_its_meaning_where_it_has_one() -> None:
    s = settings_from_options(SimpleNamespace(jwt_secret=SECRET, ws_heartbeat_interval=0.0, ws_think_time=0.0),
                              "ws://h:1")
    assert s.heartbeat_interval == 0 and s.think_time == 0


@pytest.mark.parametrize("text", ["1e12", "0:5,60:1e5", "nan", "inf", "0:5,1e9:50"])
def test_arrival_rate_refuses_absurd_rates_and_ramps(text: str) -> None:
    with pytest.raises(ScheduleError):
        ArrivalSchedule.parse(text)
    with pytest.raises(ChatConfigError, match=f"--ws-arrival-rate has value '{text}'"):
        settings_from_options(SimpleNamespace(jwt_secret=SECRET, ws_arrival_rate=text), "ws://h:1")


def test_arrival_rate_up_to_the_limit_is_accepted() -> None:
    assert ArrivalSchedule.parse(f"{MAX_RATE:g}").rate_at(0) == MAX_RATE


@pytest.mark.parametrize(("field", "value"), [("redis_timeout", math.nan), ("pg_statement_timeout", math.inf),
                                              ("health_timeout", 1e6), ("redis_large_value_kb", 10**9),
                                              ("pg_probe_users", 10**6), ("clickhouse_batch_size", 10**9)])
def test_probe_options_refuse_nan_inf_and_absurd_values(field: str, value: float) -> None:
    with pytest.raises(ProbeConfigError, match=f"--{field.replace('_', '-')} has value "):
        ProbeConfig(**{field: value})  # type: ignore[arg-type]  # (a number of the wrong kind on purpose)


def test_binary_token_users_and_sla_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(BINARY)
    with pytest.raises(AuthConfigError, match="--token-file .* is not UTF-8 text"):
        read_token_file(str(path))
    with pytest.raises(AuthConfigError, match="--users-file .* is not UTF-8 text"):
        read_users_file(str(path))
    with pytest.raises(ConfigError, match="SLA config file .* is not UTF-8 text"):
        load_profile(path=str(path))


def test_token_with_control_characters_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_bytes(b"eyJhbGciOiJIUzI1NiJ9.secretpart\x00\x01\n")
    with pytest.raises(AuthConfigError, match="token #1 holds control or non-ASCII characters") as info:
        read_token_file(str(path))
    assert "secretpart" not in str(info.value)


def _sla_opts(**kw):
    base = {"sla_profile": "local", "sla_config": "", "sla_window": "", "sla_eval_interval": "",
            "sla_exit_code": 3, "sla_warmup": ""}
    return SimpleNamespace(**(base | kw))


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"sla_exit_code": 0}, "--sla-exit-code has value 0: expected a whole number 1 to 255; default 3; 0 would make"),
    ({"sla_exit_code": 256}, "--sla-exit-code has value 256"),
    ({"sla_window": math.nan}, "--sla-window has value nan"),
    ({"sla_window": math.inf}, "--sla-window has value inf"),
    ({"sla_window": 2.5}, "--sla-window has value 2.5: expected a whole number"),
    ({"sla_eval_interval": math.nan}, "--sla-eval-interval has value nan"),
    ({"sla_eval_interval": -1.0}, "--sla-eval-interval has value -1"),
    ({"sla_eval_interval": 0.0}, "--sla-eval-interval has value 0: expected a finite number > 0 and <= 3600 seconds; "
                                 "empty = the profile's"),
    ({"sla_eval_interval": "soon"}, "--sla-eval-interval has value 'soon'"),
    ({"sla_window": "-1"}, "--sla-window has value '-1': expected a whole number 0 to 604800 seconds; e.g. 300; "
                           "0 = no windows; empty = the profile's window_s"),
])
def test_sla_numeric_options_are_range_checked(kw: dict, fragment: str) -> None:
    from sla_checks.plugin_options import load_from_options

    with pytest.raises(ConfigError) as info:
        load_from_options(_sla_opts(**kw))
    assert fragment in str(info.value)


@pytest.mark.parametrize(("window", "eval_interval", "expected"), [
    ("", "", (300.0, 15.0)),  # unset: the soak profile's window_s and eval_interval_s
    (None, None, (300.0, 15.0)),
    ("0", "", (0.0, 15.0)),  # 0: no windows, even with the soak profile
    (0.0, 2.0, (0.0, 2.0)),
    ("60", "0.5", (60.0, 0.5)),
])
def test_sla_window_and_eval_interval_unset_take_the_profiles_and_window_0_means_none(
        window: object, eval_interval: object, expected: tuple[float, float]) -> None:
    from sla_checks.plugin_options import load_from_options

    profile, window_s, interval_s, _code, _warmup = load_from_options(
        _sla_opts(sla_profile="soak", sla_window=window, sla_eval_interval=eval_interval))
    assert (profile.window_s, profile.eval_interval_s) == (300.0, 15.0), "the soak profile's own values"
    assert (window_s, interval_s) == expected


def test_report_paths_are_checked_before_the_run(tmp_path: Path) -> None:
    from sla_checks.plugin_options import check_report_paths, report_path_problem

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert report_path_problem(str(tmp_path / "new" / "deeper" / "sla.json")) is None  # created when written
    assert report_path_problem(str(tmp_path)) == "is a directory"
    assert "is a file, not a directory" in (report_path_problem(str(a_file / "sla.xml")) or "")
    with pytest.raises(ConfigError, match="--sla-report-junit .*file.txt/sla.xml.*: .* is a file, not a directory"):
        check_report_paths(SimpleNamespace(sla_report_json="", sla_report_junit=str(a_file / "sla.xml")))


def test_first_cpu_reading_waits_for_a_measurable_interval() -> None:
    from locust.env import Environment

    from users.resources import ResourceMonitor

    now = [100.0]
    env = Environment()
    monitor = ResourceMonitor(env, interval=2.0, clock=lambda: now[0])
    now[0] += 0.002  # test_start follows the last init listener within milliseconds
    first = monitor.sample_once()
    assert "locust:cpu_percent" not in first and first["locust:rss_mb"] > 0
    now[0] += 2.0
    # psutil divides by the real time since its last reading, not by this clock: let a real 0.2 s pass, or one
    # 10 ms CPU tick landing between two readings a fraction of a millisecond apart reads as ~3,000 % (CI did)
    time.sleep(0.2)
    assert 0 <= monitor.sample_once()["locust:cpu_percent"] < 1000
    names = [name for _ts, name, _v in state_of(env).pending_gauges]
    assert names.count("locust:cpu_percent") == 1
