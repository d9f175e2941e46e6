"""Pure parts of users/probe_options.py: --probes parsing, health URL derivation, validation, user counts."""

from __future__ import annotations

import argparse

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust import User
from locust.env import Environment

from users.probe_options import (
    DEFAULT_HEALTH_URL,
    ProbeConfig,
    ProbeConfigError,
    apply_user_counts,
    derive_health_url,
    parse_probes,
    selected_probe_tiers,
)

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis,pg", {"redis", "pg"}),
        ("Redis, postgres ,ch", {"redis", "pg", "clickhouse"}),
        ("all", {"redis", "pg", "clickhouse", "health"}),
        ("none", set()),
        ("", set()),
        ("http", {"health"}),
    ],
)
def test_parse_probes_valid_lists_give_tiers(text: str, expected: set[str]) -> None:
    assert parse_probes(text) == expected


def test_parse_probes_unknown_tier_names_it_and_the_choices() -> None:
    with pytest.raises(ProbeConfigError, match=r"--probes has unknown tier\(s\) 'mongo'.*redis, pg, clickhouse"):
        parse_probes("redis,mongo")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("ws://127.0.0.1:9000/ws", "http://127.0.0.1:9000"),
        ("wss://chat.example.com/api/v1/websocket", "https://chat.example.com"),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
        ("ws://user:tok@h:1/ws", "http://h:1"),
        (None, DEFAULT_HEALTH_URL),
        ("", DEFAULT_HEALTH_URL),
        ("tcp://h:1", DEFAULT_HEALTH_URL),
    ],
)
def test_derive_health_url_maps_ws_to_http(host: str | None, expected: str) -> None:
    assert derive_health_url(host) == expected


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"redis_url": "http://:pw@h:6379"}, r"--redis-url 'http://:\*\*\*@h:6379' has scheme 'http'"),
        ({"redis_url": "redis://:pw@h:xx/0"}, r"--redis-url .* is not a valid URL"),
        ({"pg_dsn": "mysql://u:pw@h/db"}, r"--pg-dsn 'mysql://u:\*\*\*@h/db' has scheme 'mysql'"),
        ({"pg_dsn": "just-a-word"}, r"--pg-dsn 'just-a-word' is neither"),
        ({"clickhouse_url": "tcp://h:9000"}, r"--clickhouse-url .* has scheme 'tcp'"),
        ({"health_url": "ws://h:1"}, r"--health-url .* has scheme 'ws'"),
        ({"pg_pool_size": 0}, r"--pg-pool-size has value 0: expected a whole number 1 to 1000"),
        ({"redis_probe_users": -1}, r"--redis-probe-users has value -1: .* 0 switches that probe off"),
        ({"pg_pool_timeout": 0}, r"--pg-pool-timeout has value 0: expected a finite number > 0"),
    ],
)
def test_probe_config_bad_values_name_option_and_hide_password(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ProbeConfigError, match=pattern) as info:
        ProbeConfig(**kwargs)
    assert "pw@" not in str(info.value)


def test_probe_config_from_options_derives_health_and_probes() -> None:
    ns = argparse.Namespace(host="ws://127.0.0.1:9999/ws", probes="redis", health_url="", redis_url="redis://h:1/2",
                            pg_pool_size=3)
    cfg = ProbeConfig.from_options(ns)
    assert cfg.health_url == "http://127.0.0.1:9999"
    assert cfg.probes == {"redis"}
    assert cfg.redis_url == "redis://h:1/2" and cfg.pg_pool_size == 3
    assert cfg.users_for("redis") == 1 and cfg.users_for("pg") == 0


class RedisProbeUser(User):  # same names as the real classes: selection is by class name
    fixed_count = 1


class PostgresProbeUser(User):
    fixed_count = 1


class ChatLikeUser(User):
    weight = 10


class _Env:
    def __init__(self, classes: list[type[User]]) -> None:
        self.user_classes = list(classes)


def test_apply_user_counts_sets_fixed_count_and_drops_switched_off() -> None:
    env = _Env([ChatLikeUser, RedisProbeUser, PostgresProbeUser])
    cfg = ProbeConfig(probes=frozenset({"redis", "pg"}), redis_probe_users=3, pg_probe_users=0)
    assert selected_probe_tiers(env, cfg) == ["redis"]
    apply_user_counts(env, cfg)
    assert env.user_classes == [ChatLikeUser, RedisProbeUser]
    assert RedisProbeUser.fixed_count == 3


def test_apply_user_counts_probes_none_keeps_only_non_probe_users() -> None:
    env = _Env([ChatLikeUser, RedisProbeUser])
    apply_user_counts(env, ProbeConfig(probes=frozenset()))
    assert env.user_classes == [ChatLikeUser]


def test_apply_user_counts_only_switched_off_probes_is_an_error() -> None:
    env = _Env([RedisProbeUser, PostgresProbeUser])
    with pytest.raises(ProbeConfigError, match=r"every selected user class \(RedisProbeUser, PostgresProbeUser\)"):
        apply_user_counts(env, ProbeConfig(probes=frozenset({"clickhouse"})))


@pytest.mark.parametrize("dsn", ["host=h password=s3cret extra", "postgresql://u:s3cret@h/db?bogus_param=1"])
def test_probe_config_unparseable_dsn_is_refused_without_secret(dsn: str) -> None:
    with pytest.raises(ProbeConfigError, match=r"--pg-dsn .* is not a valid libpq DSN") as info:
        ProbeConfig(pg_dsn=dsn)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "pg", "clickhouse"),
    [
        ({}, True, True),  # the bundled backend's services on this machine
        ({"pg_dsn": "host=/var/run/postgresql dbname=test"}, True, True),
        ({"pg_dsn": "postgresql://u@[::1]:5432/x", "clickhouse_url": "http://localhost:8123"}, True, True),
        ({"pg_dsn": "postgresql://u@pg.staging.internal/chat", "clickhouse_url": "https://ch.staging:8443"},
         False, False),
        ({"pg_dsn": "host=127.0.0.1,10.0.0.7 dbname=x"}, False, True),  # any remote host: not local
        ({"probe_create_schema": "on", "pg_dsn": "postgresql://u@pg.staging.internal/chat"}, True, True),
        ({"probe_create_schema": "OFF"}, False, False),
        ({"probe_read_only": True, "probe_create_schema": "on"}, False, False),  # read-only: no DDL either
    ],
)
def test_creates_schema_auto_only_on_loopback(kwargs: dict, pg: bool, clickhouse: bool) -> None:
    cfg = ProbeConfig(**kwargs)
    assert (cfg.creates_schema("pg")[0], cfg.creates_schema("clickhouse")[0]) == (pg, clickhouse)


def test_creates_schema_auto_follows_pghost_when_the_dsn_names_no_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "pg.staging.internal")
    assert ProbeConfig(pg_dsn="dbname=chat user=loadtest").creates_schema("pg")[0] is False


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"probe_create_schema": "maybe"}, r"--probe-create-schema 'maybe' is not one of auto, on, off"),
        ({"clickhouse_database": "x; DROP"}, r"--clickhouse-database 'x; DROP' is not a plain identifier"),
    ],
)
def test_probe_safety_options_bad_values_name_the_option(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ProbeConfigError, match=pattern):
        ProbeConfig(**kwargs)


def test_probe_safety_options_from_cli_and_env_and_read_only_in_web_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    from locust.argument_parser import parse_options, ui_extra_args_dict

    monkeypatch.setenv("LOCUST_PROBE_CREATE_SCHEMA", "off")
    options = parse_options(["--probe-read-only"])
    cfg = ProbeConfig.from_options(options)
    assert (cfg.probe_read_only, cfg.probe_create_schema) == (True, "off")
    monkeypatch.delenv("LOCUST_PROBE_CREATE_SCHEMA")
    ui = ui_extra_args_dict([])
    assert ui["probe_read_only"]["default_value"] is False
    assert "probe_create_schema" not in ui, "a deployment setting, not a per-run choice: not in the start form"
    assert "pg_dsn" not in ui, "read-once options stay out of the web UI"


def test_probe_config_takes_web_ui_edits_of_the_live_options() -> None:
    from users.probe_options import probe_config

    options = argparse.Namespace(probe_read_only=False, probe_create_schema="auto", host=None)
    env = Environment(parsed_options=options)
    assert probe_config(env).probe_read_only is False
    options.probe_read_only, options.probe_create_schema = True, "off"  # what the web UI's start form does
    cfg = probe_config(env)
    assert (cfg.probe_read_only, cfg.probe_create_schema) == (True, "off")
    options.probe_create_schema = "bogus"  # refused, logged, the last good value kept
    assert probe_config(env).probe_create_schema == "off"


def test_redis_connect_weight_sets_the_share_of_fresh_connections() -> None:
    from users.redis_probe import RedisProbeUser, with_connect_weight

    base = RedisProbeUser.tasks
    assert base.count(RedisProbeUser.connect) == 1 and len(base) == 11  # connect 1, SET 3, GET 4, MGET 2, large 1
    tasks = with_connect_weight(base, 10)
    assert tasks.count(RedisProbeUser.connect) == 10 and len(tasks) == 20
    assert [t for t in tasks if t is not RedisProbeUser.connect] == [t for t in base if t is not RedisProbeUser.connect]
    assert RedisProbeUser.connect not in with_connect_weight(base, 0)
    with pytest.raises(ProbeConfigError, match="--redis-connect-weight has value -1"):
        ProbeConfig(redis_connect_weight=-1)


def test_redis_connect_latency_scenario_raises_the_connect_weight() -> None:
    from scenarios.registry import get_scenario

    assert dict(get_scenario("redis-connect-latency").options)["redis_connect_weight"] == 10
