"""Pure parts of users/probe_options.py: --probes parsing, health URL derivation, validation, user counts."""

from __future__ import annotations

import argparse

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust import User

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
        ({"pg_pool_size": 0}, r"--pg-pool-size must be >= 1, got 0"),
        ({"redis_probe_users": -1}, r"--redis-probe-users must be >= 0"),
        ({"pg_pool_timeout": 0}, r"--pg-pool-timeout must be > 0 seconds"),
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
