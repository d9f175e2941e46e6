"""Options of the infrastructure probes, their validation, and the start-up connectivity check.

Importing this module registers the ``--probes``, ``--redis-*``, ``--pg-*``, ``--clickhouse-*`` and ``--health-*``
options (each also as a ``LOCUST_*`` env var) and an ``init`` listener that, on every runner (master, worker,
local):

1. applies the per-probe user counts (``--redis-probe-users N`` → ``RedisProbeUser.fixed_count = N``) and drops the
   probe users of switched-off tiers (``--probes``, or a count of 0) from the run;
2. checks that every tier whose probe is on answers, and otherwise logs one clear error naming the URL (password
   hidden) and the option to fix, and exits with code 2 (Locust's usage-error convention) before the test starts.
   The check only reads (``PING``, ``SELECT 1``): tables are the probe users' business (``--probe-create-schema``).

Two options are read again when the probe users start, so an edit between web-UI runs applies: ``--probe-read-only``
(reads only; a field of the web UI's start form) and ``--probe-create-schema`` (``auto``: create missing tables only on
a loopback tier, i.e. the bundled backend's services; ``on``; ``off``).

Also here: ``--pg-queries`` / ``--clickhouse-queries`` (query files, loaded and checked by :mod:`users.query_files`
when the settings are built; a ``write = true`` query under ``--probe-read-only`` is refused at init),
``--health-paths`` and ``--tier-gauges-interval`` (:mod:`users.tier_gauges`).
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events
from locust.env import Environment

from config.errors import UsageError, exit_usage
from config.options import add_option
from config.validate import bounded
from contract.schema import CH_DATABASE, CLICKHOUSE_URL, PG_DSN, REDIS_URL
from sla_checks.state import state_of
from users.probe_base import ProbeFailure, redact_url
from users.query_files import QueryFile, QueryFileError, load_query_file, refuse_writes

logger = logging.getLogger(__name__)

TIERS: tuple[str, ...] = ("redis", "pg", "clickhouse", "health")
_TIER_ALIASES: dict[str, str] = {
    "redis": "redis",
    "pg": "pg", "postgres": "pg", "postgresql": "pg",
    "ch": "clickhouse", "clickhouse": "clickhouse",
    "health": "health", "http": "health",
}
# Which option to fix, and which env var, per tier (used in error messages).
TIER_URL_OPTION: dict[str, tuple[str, str]] = {
    "redis": ("--redis-url", "LOCUST_REDIS_URL"),
    "pg": ("--pg-dsn", "LOCUST_PG_DSN"),
    "clickhouse": ("--clickhouse-url", "LOCUST_CLICKHOUSE_URL"),
    "health": ("--health-url", "LOCUST_HEALTH_URL"),
}
TIER_USER_CLASS: dict[str, str] = {
    "redis": "RedisProbeUser",
    "pg": "PostgresProbeUser",
    "clickhouse": "ClickHouseProbeUser",
    "health": "HealthCheckUser",
}
DEFAULT_HEALTH_URL = "http://127.0.0.1:8765"
DEFAULT_HEALTH_PATHS: tuple[str, ...] = ("/health", "/health/ready")
MAX_HEALTH_PATHS = 20
CREATE_SCHEMA_CHOICES: tuple[str, ...] = ("auto", "on", "off")
LIVE_FIELDS: tuple[str, ...] = ("probe_read_only", "probe_create_schema", "redis_connect_weight",
                               "pg_isolation_weight")
"""Fields re-read from ``parsed_options`` when a probe user starts (web-UI edits apply to the next run)."""
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COUNT_LIMITS: dict[str, tuple[int, int, str]] = {
    "redis_pool_size": (1, 1000, ""),
    "pg_pool_size": (1, 1000, ""),
    "redis_large_value_kb": (1, 512 * 1024, "Redis keeps values up to 512 MiB"),
    "clickhouse_batch_size": (1, 1_000_000, ""),
    "redis_probe_users": (0, 1000, "0 switches that probe off"),
    "pg_probe_users": (0, 1000, "0 switches that probe off"),
    "clickhouse_probe_users": (0, 1000, "0 switches that probe off"),
    "health_probe_users": (0, 1000, "0 switches that probe off"),
    "redis_connect_weight": (0, 1000, "0 = no fresh-connection task"),
    "pg_isolation_weight": (0, 1000, "0 = no isolation-level transactions"),
}
"""Whole-number probe options: (lowest, highest, what to say beside the range)."""


class ProbeConfigError(UsageError, ValueError):
    """A probe option has a bad value; the text names the option, the value (password hidden) and the fix."""


def parse_probes(text: str) -> frozenset[str]:
    """``"redis,pg"`` → ``{"redis", "pg"}``; ``"all"`` → every tier; ``"none"``/``""`` → none. Aliases: postgres,
    postgresql (pg), ch (clickhouse), http (health)."""
    words = [w.strip().lower() for w in text.replace(" ", ",").split(",") if w.strip()]
    if not words or words == ["none"]:
        return frozenset()
    if words == ["all"]:
        return frozenset(TIERS)
    bad = [w for w in words if w not in _TIER_ALIASES]
    if bad:
        raise ProbeConfigError(
            f"--probes has unknown tier(s) {', '.join(repr(b) for b in bad)} in {text!r}; "
            f"use a comma-separated list of {', '.join(TIERS)} (or 'all' / 'none')"
        )
    return frozenset(_TIER_ALIASES[w] for w in words)


def derive_health_url(host: str | None) -> str:
    """The target's HTTP base URL from Locust's ``--host`` (``ws://h:p/ws`` → ``http://h:p``), else the default."""
    if not host:
        return DEFAULT_HEALTH_URL
    parts = urlsplit(host)
    scheme = {"ws": "http", "wss": "https", "http": "http", "https": "https"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        return DEFAULT_HEALTH_URL
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((scheme, netloc, "", "", ""))


def parse_health_paths(text: str) -> tuple[str, ...]:
    """``"/health,/health/ready"`` → ``("/health", "/health/ready")``; each path starts with ``/``, no blanks inside,
    no repeats."""
    paths = tuple(p.strip() for p in str(text).split(",") if p.strip())
    fix = "give comma-separated paths starting with '/', e.g. /health,/health/ready (the default)"
    if not paths:
        raise ProbeConfigError(f"--health-paths {text!r} names no path; {fix}")
    bad = [p for p in paths if not p.startswith("/") or any(c.isspace() or ord(c) < 32 for c in p)]
    if bad:
        raise ProbeConfigError(f"--health-paths {text!r}: {bad[0]!r} is not a path; {fix}")
    if len(set(paths)) != len(paths):
        twice = next(p for p in paths if paths.count(p) > 1)
        raise ProbeConfigError(f"--health-paths {text!r} names {twice!r} twice; {fix}")
    if len(paths) > MAX_HEALTH_PATHS:
        raise ProbeConfigError(f"--health-paths {text!r} names {len(paths)} paths, at most {MAX_HEALTH_PATHS}")
    return paths


def _load_queries(option: str, path: str, dialect: Any) -> QueryFile | None:
    if not path:
        return None
    try:
        return load_query_file(path, option, dialect)
    except QueryFileError as exc:
        raise ProbeConfigError(str(exc)) from None


def _check_url(option: str, url: str, schemes: tuple[str, ...]) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ProbeConfigError(f"{option} {redact_url(url)!r} is not a valid URL ({exc}); "
                               f"expected e.g. {schemes[0]}://127.0.0.1:PORT") from None
    if parts.scheme.lower() not in schemes:
        raise ProbeConfigError(
            f"{option} {redact_url(url)!r} has scheme {parts.scheme or '(none)'!r}; expected one of "
            f"{', '.join(s + '://' for s in schemes)}"
        )
    if not parts.hostname and parts.scheme != "unix":
        raise ProbeConfigError(f"{option} {redact_url(url)!r} has no host; expected e.g. {schemes[0]}://127.0.0.1:PORT")


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost``, 127.0.0.0/8, ``::1`` and Unix sockets (a path or no host at all)."""
    if not host or host.startswith("/") or host.startswith("@"):
        return True
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pg_dsn_is_loopback(dsn: str) -> bool:
    """Whether every host of a libpq DSN (URL or ``key=value``; ``hostaddr`` wins) is on this machine."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    # libpq falls back to PGHOSTADDR / PGHOST when the DSN names no host
    host = params.get("hostaddr") or params.get("host") or os.environ.get("PGHOSTADDR") or os.environ.get("PGHOST")
    hosts = str(host or "").split(",")
    return all(is_loopback_host(h.strip()) for h in hosts)


def _check_dsn_parses(dsn: str) -> None:
    """libpq must be able to parse the DSN; its complaint is kept without quoted fragments (they may be secret)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        detail = re.sub(r'"[^"]*"', '"…"', " ".join(str(exc).split()))
        raise ProbeConfigError(
            f"--pg-dsn {redact_url(dsn)!r} is not a valid libpq DSN ({detail}); "
            "expected e.g. postgresql://postgres@127.0.0.1:5432/test or 'host=127.0.0.1 dbname=test user=postgres'"
        ) from None


@dataclass
class ProbeConfig:
    """Validated probe settings (from Locust's parsed options, or built directly in tests)."""

    probes: frozenset[str] = frozenset(TIERS)
    redis_url: str = REDIS_URL  # where the reference backend keeps its data by default
    redis_pool_size: int = 4
    redis_pool_timeout: float = 5.0
    redis_timeout: float = 10.0
    redis_large_value_kb: int = 256
    redis_probe_users: int = 1
    redis_connect_weight: int = 1
    pg_dsn: str = PG_DSN
    pg_pool_size: int = 2
    pg_pool_timeout: float = 5.0
    pg_connect_timeout: float = 5.0
    pg_statement_timeout: float = 15.0
    pg_probe_users: int = 1
    pg_isolation_weight: int = 0
    """Weight of PostgresProbeUser's isolation-level task (users.pg_isolation); 0 = off."""
    clickhouse_url: str = CLICKHOUSE_URL
    clickhouse_database: str = CH_DATABASE
    clickhouse_batch_size: int = 100
    clickhouse_timeout: float = 15.0
    clickhouse_probe_users: int = 1
    health_url: str = DEFAULT_HEALTH_URL
    health_paths: tuple[str, ...] = DEFAULT_HEALTH_PATHS
    health_timeout: float = 10.0
    health_probe_users: int = 1
    probe_read_only: bool = False
    probe_create_schema: str = "auto"
    pg_queries: str = ""
    """Path of the PG probe's query file (``--pg-queries``); '' = the bundled backend's statements."""
    clickhouse_queries: str = ""
    """Path of the ClickHouse probe's query file (``--clickhouse-queries``); '' = the bundled backend's query."""
    tier_gauges_interval: float = 5.0
    """Seconds between server-side tier gauge readings on the master (0 = off)."""
    pg_query_file: QueryFile | None = field(default=None, init=False, compare=False, repr=False)
    """``pg_queries`` loaded and checked (None without a file)."""
    clickhouse_query_file: QueryFile | None = field(default=None, init=False, compare=False, repr=False)
    """``clickhouse_queries`` loaded and checked (None without a file)."""

    def __post_init__(self) -> None:
        if isinstance(self.health_paths, str):
            self.health_paths = parse_health_paths(self.health_paths)
        bounded("--tier-gauges-interval", self.tier_gauges_interval, low=0, high=3600, unit="seconds",
                hint="0 = off, default 5", error=ProbeConfigError)
        self.pg_query_file = _load_queries("--pg-queries", self.pg_queries, "pg")
        self.clickhouse_query_file = _load_queries("--clickhouse-queries", self.clickhouse_queries, "ch")
        self.probe_create_schema = str(self.probe_create_schema).strip().lower()
        if self.probe_create_schema not in CREATE_SCHEMA_CHOICES:
            raise ProbeConfigError(
                f"--probe-create-schema {self.probe_create_schema!r} is not one of {', '.join(CREATE_SCHEMA_CHOICES)} "
                "(auto: create missing tables only when the tier is on loopback, i.e. the bundled backend's)"
            )
        if not _IDENTIFIER.match(self.clickhouse_database):
            raise ProbeConfigError(f"--clickhouse-database {self.clickhouse_database!r} is not a plain identifier; "
                                   "expected e.g. agentchat")
        _check_url("--redis-url", self.redis_url, ("redis", "rediss", "unix"))
        if "://" in self.pg_dsn:
            _check_url("--pg-dsn", self.pg_dsn, ("postgresql", "postgres"))
        elif "=" not in self.pg_dsn:
            raise ProbeConfigError(
                f"--pg-dsn {redact_url(self.pg_dsn)!r} is neither a postgresql:// URL nor a 'key=value' conninfo; "
                "expected e.g. postgresql://postgres@127.0.0.1:5432/test"
            )
        _check_dsn_parses(self.pg_dsn)
        _check_url("--clickhouse-url", self.clickhouse_url, ("http", "https"))
        _check_url("--health-url", self.health_url, ("http", "https"))
        for f in fields(self):
            if not f.init:
                continue
            option = "--" + f.name.replace("_", "-")
            if f.name.endswith("_timeout"):
                bounded(option, getattr(self, f.name), low=0, high=3600, low_open=True, unit="seconds",
                        hint=f"default {f.default:g}", error=ProbeConfigError)
            elif f.name in _COUNT_LIMITS:
                low, high, hint = _COUNT_LIMITS[f.name]
                bounded(option, getattr(self, f.name), low=low, high=high, integer=True,
                        hint=hint or f"default {f.default}", error=ProbeConfigError)

    @classmethod
    def from_options(cls, options: Any) -> ProbeConfig:
        """Build from Locust's ``parsed_options`` (attributes missing there keep their defaults)."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "probes" or not f.init:
                continue
            value = getattr(options, f.name, None)
            if value is not None and value != "":
                kwargs[f.name] = value
        probes = parse_probes(getattr(options, "probes", None) or "all")
        if getattr(options, "health_url", None) in (None, ""):
            kwargs["health_url"] = derive_health_url(getattr(options, "host", None))
        return cls(probes=probes, **kwargs)

    def creates_schema(self, tier: str) -> tuple[bool, str]:
        """Whether the probe of ``tier`` (``pg``, ``clickhouse``) may create missing tables, and why, in words that
        name the option (for the log line that explains a missing table)."""
        if self.probe_read_only:
            return False, "--probe-read-only is on (no writes, no DDL)"
        if self.probe_create_schema != "auto":
            return self.probe_create_schema == "on", f"--probe-create-schema is {self.probe_create_schema}"
        local = (pg_dsn_is_loopback(self.pg_dsn) if tier == "pg"
                 else is_loopback_host(urlsplit(self.clickhouse_url).hostname))
        return local, f"--probe-create-schema is auto and {tier} is {'' if local else 'not '}on loopback"

    def refuse_read_only_writes(self) -> None:
        """With ``--probe-read-only``: raise :class:`ProbeConfigError` naming the first query of a query file
        declared ``write = true`` (checked at start; the web UI's later switch only skips such queries)."""
        if not self.probe_read_only:
            return
        for qf in (self.pg_query_file, self.clickhouse_query_file):
            if qf is not None:
                try:
                    refuse_writes(qf)
                except QueryFileError as exc:
                    raise ProbeConfigError(str(exc)) from None

    def users_for(self, tier: str) -> int:
        """How many probe users of ``tier`` run (0 when switched off)."""
        if tier not in self.probes:
            return 0
        return int(getattr(self, f"{tier}_probe_users"))


def schema_missing_message(cfg: ProbeConfig, tier: str, missing: list[str], stopped: list[str]) -> str:
    """The one start-up error of a probe whose tables are missing: the table(s), the tier, why they were not created
    (naming the option) and the fixes."""
    where, option = {
        "pg": (redact_url(cfg.pg_dsn), "--pg-dsn"),
        "clickhouse": (f"{redact_url(cfg.clickhouse_url)} database {cfg.clickhouse_database}",
                       "--clickhouse-url / --clickhouse-database"),
    }[tier]
    _create, why = cfg.creates_schema(tier)
    fix = ("drop --probe-read-only to let --probe-create-schema on create it" if cfg.probe_read_only
           else "pass --probe-create-schema on (env LOCUST_PROBE_CREATE_SCHEMA=on) to create it")
    return (
        f"{TIER_USER_CLASS[tier]}: table {', '.join(missing)} missing in {where} (tier {tier}); not created because "
        f"{why}. Not run: {', '.join(stopped)} (their thresholds report 'no data'). Fix {option} to point at the "
        f"backend's database, {fix}, or switch this probe off with --{tier}-probe-users 0"
    )


def probe_config(environment: Environment) -> ProbeConfig:
    """The run's probe settings: ``state_of(environment).probe_config`` if set, else from ``parsed_options``, else
    defaults."""
    state = state_of(environment)
    cfg = state.probe_config
    options = environment.parsed_options
    if not isinstance(cfg, ProbeConfig):
        cfg = ProbeConfig.from_options(options) if options is not None else ProbeConfig()
        state.probe_config = cfg
    elif options is not None:  # the web UI may have changed the live options since init
        live = {f: getattr(options, f) for f in LIVE_FIELDS if getattr(options, f, None) not in (None, "")}
        if any(getattr(cfg, f) != v for f, v in live.items()):
            try:
                cfg = state.probe_config = replace(cfg, **live)
            except ProbeConfigError as exc:
                logger.error("Bad probe option from the web UI, kept %s: %s",
                             ", ".join(f"{f}={getattr(cfg, f)!r}" for f in live), exc)
    return cfg


_DEFAULTS = ProbeConfig
"""The probe options' defaults: the fields of :class:`ProbeConfig` (the one place they live)."""


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    # Read once at init (start-up connectivity check, user counts): not offered in the web UI, where an edit would
    # silently not apply. Passwords in URLs are marked secret all the same.
    def add(name: str, **kwargs: Any) -> None:
        add_option(parser, name, group="Infrastructure probes", **kwargs)

    add("--probes", type=str, default=",".join(TIERS),
        help="Tiers probed when their probe user is selected: comma-separated redis, pg, clickhouse, "
             "health, or 'all'/'none' (default: all)")
    add("--redis-url", type=str, default=_DEFAULTS.redis_url, secret=True,
        help="Redis probed by RedisProbeUser, e.g. redis://:PASSWORD@host:6379/0")
    add("--redis-pool-size", type=int, default=_DEFAULTS.redis_pool_size,
        help="Connections in the Redis probes' shared pool")
    add("--redis-pool-timeout", type=float, default=_DEFAULTS.redis_pool_timeout,
        help="Seconds to wait for a free pooled Redis connection")
    add("--redis-timeout", type=float, default=_DEFAULTS.redis_timeout,
        help="Socket (connect and command) timeout in seconds")
    add("--redis-large-value-kb", type=int, default=_DEFAULTS.redis_large_value_kb,
        help="Size of the large-value writes (KiB)")
    add("--redis-probe-users", type=int, default=_DEFAULTS.redis_probe_users,
        help="RedisProbeUser instances (fixed count; 0 = off)")
    add("--redis-connect-weight", type=int, default=_DEFAULTS.redis_connect_weight,
        help="Weight of RedisProbeUser's fresh-connection task (REDIS connect) next to its commands (SET 3, GET 4, "
             "MGET 2, large write 1); raise it to study connection latency (scenario redis-connect-latency: 10)")
    add("--pg-dsn", type=str, default=_DEFAULTS.pg_dsn, secret=True,
        help="PostgreSQL probed by PostgresProbeUser (URL or key=value conninfo)")
    add("--pg-pool-size", type=int, default=_DEFAULTS.pg_pool_size, help="Connections in the PG probes' bounded pool")
    add("--pg-pool-timeout", type=float, default=_DEFAULTS.pg_pool_timeout,
        help="Seconds to wait for a pooled PG connection before 'PG pool acquire' fails")
    add("--pg-connect-timeout", type=float, default=_DEFAULTS.pg_connect_timeout,
        help="PG connect timeout in seconds")
    add("--pg-statement-timeout", type=float, default=_DEFAULTS.pg_statement_timeout,
        help="PG statement_timeout and lock_timeout of probe sessions, seconds")
    add("--pg-probe-users", type=int, default=_DEFAULTS.pg_probe_users,
        help="PostgresProbeUser instances (fixed count; 0 = off)")
    add("--pg-isolation-weight", type=int, default=_DEFAULTS.pg_isolation_weight,
        help="Weight of PostgresProbeUser's isolation-level task (a read-modify-write of one hot row of its own "
             "table probe_isolation under READ COMMITTED / REPEATABLE READ / SERIALIZABLE, with retries: 'PG txn "
             "<level>', 'PG serialization failure', 'PG deadlock') next to its others (connect 1, message flow 6, "
             "commit 2); 0 = off (scenario pg-isolation-levels: 60)")
    add("--clickhouse-url", type=str, default=_DEFAULTS.clickhouse_url, secret=True,
        help="ClickHouse HTTP interface, e.g. http://USER:PASSWORD@host:8123")
    add("--clickhouse-database", type=str, default=_DEFAULTS.clickhouse_database,
        help="ClickHouse database holding the agent-event table (agent_state_history)")
    add("--clickhouse-batch-size", type=int, default=_DEFAULTS.clickhouse_batch_size,
        help="Agent-event rows per 'CH insert'")
    add("--clickhouse-timeout", type=float, default=_DEFAULTS.clickhouse_timeout,
        help="ClickHouse HTTP timeout in seconds")
    add("--clickhouse-probe-users", type=int, default=_DEFAULTS.clickhouse_probe_users,
        help="ClickHouseProbeUser instances (fixed count; 0 = off)")
    add("--health-url", type=str, default="",
        help=f"Target's HTTP base URL for /health (default: --host with ws→http, else {DEFAULT_HEALTH_URL})")
    add("--health-paths", type=str, default=",".join(DEFAULT_HEALTH_PATHS),
        help="Paths HealthCheckUser polls in turn, comma-separated (each its own 'HTTP <path>' metric; a JSON body "
             "with per-tier readings also gives 'HTTP ready:<tier>'); the first one is the start-up check's")
    add("--health-timeout", type=float, default=_DEFAULTS.health_timeout,
        help="Health check HTTP timeout in seconds")
    add("--health-probe-users", type=int, default=_DEFAULTS.health_probe_users,
        help="HealthCheckUser instances (fixed count; 0 = off)")
    # Read again when the probe users start (LIVE_FIELDS): --probe-read-only is in the start form, a per-run choice.
    add("--probe-read-only", action="store_true", default=_DEFAULTS.probe_read_only, web_ui=True,
        help="Probes only read: Redis GET/MGET/INFO, PG SELECTs in read-only sessions, ClickHouse SELECTs; no "
             "INSERT/UPDATE/SET/DEL and no DDL (their thresholds report 'no data')")
    add("--pg-queries", type=str, default="", metavar="FILE",
        help="TOML file of PostgresProbeUser's statements, one [queries.NAME] table each (sql, optional params, "
             "weight, write), sampled as 'PG query NAME', instead of the bundled backend's (docs/probes.md)")
    add("--clickhouse-queries", type=str, default="", metavar="FILE",
        help="TOML file of ClickHouseProbeUser's statements, one [queries.NAME] table each, sampled as "
             "'CH query NAME', instead of the bundled backend's insert and query (docs/probes.md)")
    add("--tier-gauges-interval", type=float, default=_DEFAULTS.tier_gauges_interval,
        help="Seconds between the master's server-side readings of the probed tiers (Redis INFO, pg_stat_activity, "
             "pg_stat_database, pg_locks, ClickHouse system.metrics/events, the target's /health payload), "
             "recorded as gauges; 0 = off")
    add("--probe-create-schema", type=str, choices=CREATE_SCHEMA_CHOICES, default=_DEFAULTS.probe_create_schema,
        help="Create the backend's tables (PG) / database and table (ClickHouse) when missing: auto = only when "
             "that tier is on loopback (the bundled backend), on, off. Without it a missing table stops the "
             "operations that need it, with one 'PG schema' / 'CH schema' failure naming it")


# ---------------------------------------------------------------- connectivity checks (run once, at init)

def check_redis(cfg: ProbeConfig) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.connection import parse_url
    from redis.retry import Retry

    kwargs = parse_url(cfg.redis_url)
    connection_class = kwargs.pop("connection_class", redis.Connection)
    timeout = min(cfg.redis_timeout, 5.0)
    conn = connection_class(**kwargs, retry=Retry(NoBackoff(), 0), socket_connect_timeout=timeout,
                            socket_timeout=timeout)
    try:
        conn.connect()
        conn.send_command("PING")
        conn.read_response()
    finally:
        conn.disconnect()


def check_pg(cfg: ProbeConfig) -> None:
    import psycopg

    with psycopg.connect(cfg.pg_dsn, connect_timeout=max(1, round(min(cfg.pg_connect_timeout, 5.0))),
                         autocommit=True) as conn:
        # bounded like every other start-up check: a table lock held elsewhere must not stall the start
        ms = int(min(cfg.pg_statement_timeout, 5.0) * 1000)
        conn.execute(f"SET statement_timeout = {ms}; SET lock_timeout = {ms}")  # type: ignore[arg-type]
        conn.execute("SELECT 1")


def clickhouse_request(url: str, query: str, body: bytes | None = None, timeout: float = 5.0) -> bytes:
    """One blocking-looking (gevent-cooperative when patched) ClickHouse HTTP call; used for checks and setup."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    req = urllib.request.Request(base.rstrip("/") + "/?query=" + quote(query), data=body,
                                 method="POST" if body is not None else "GET")
    if parts.username:
        token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read()


def check_clickhouse(cfg: ProbeConfig) -> None:
    clickhouse_request(cfg.clickhouse_url, "SELECT 1", timeout=min(cfg.clickhouse_timeout, 5.0))


def check_health(cfg: ProbeConfig) -> None:
    path = cfg.health_paths[0]
    with urllib.request.urlopen(cfg.health_url.rstrip("/") + path, timeout=min(cfg.health_timeout, 5.0)) as r:
        if r.status != 200:
            raise ProbeFailure(f"GET {path} answered {r.status}")


_CHECKS = {"redis": check_redis, "pg": check_pg, "clickhouse": check_clickhouse, "health": check_health}
_TIER_URL_FIELD = {"redis": "redis_url", "pg": "pg_dsn", "clickhouse": "clickhouse_url", "health": "health_url"}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def check_tiers(cfg: ProbeConfig, tiers: list[str]) -> list[str]:
    """Check each tier in ``tiers``; return one error message per unreachable tier (empty when all answer)."""
    errors = []
    for tier in tiers:
        url = getattr(cfg, _TIER_URL_FIELD[tier])
        option, env_var = TIER_URL_OPTION[tier]
        start = time.perf_counter()
        try:
            _CHECKS[tier](cfg)
        except ProbeConfigError as exc:
            errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001  (any failure means unreachable; say why)
            reason = _describe(exc).replace(url, redact_url(url))
            errors.append(
                f"{TIER_USER_CLASS[tier]}: cannot reach {redact_url(url)} ({reason}). Fix {option} "
                f"(env {env_var}), start the service, or switch this probe off with "
                f"--{tier}-probe-users 0 / --probes without {tier}"
            )
        else:
            logger.debug("probe check %s ok in %.1f ms", tier, (time.perf_counter() - start) * 1000)
    return errors


def selected_probe_tiers(environment: Environment, cfg: ProbeConfig) -> list[str]:
    """Tiers whose probe user is part of this run (selected user class and switched on)."""
    names = {cls.__name__ for cls in getattr(environment, "user_classes", [])}
    return [t for t in TIERS if TIER_USER_CLASS[t] in names and cfg.users_for(t) > 0]


def apply_user_counts(environment: Environment, cfg: ProbeConfig) -> None:
    """Set each probe class's ``fixed_count`` from the options; drop switched-off probe classes from the run."""
    classes = getattr(environment, "user_classes", None)
    if classes is None:
        return
    keep = []
    for cls in classes:
        tier = next((t for t, n in TIER_USER_CLASS.items() if n == cls.__name__), None)
        if tier is None:
            keep.append(cls)
            continue
        count = cfg.users_for(tier)
        if count > 0:
            cls.fixed_count = count
            keep.append(cls)
        else:
            logger.info("%s switched off (--probes / --%s-probe-users)", cls.__name__, tier)
    if classes and not keep:
        raise ProbeConfigError(
            f"every selected user class ({', '.join(c.__name__ for c in classes)}) is a switched-off probe, so "
            "nothing would run; switch one on (--probes, --*-probe-users) or select other user classes"
        )
    classes[:] = keep


def apply_ca_file(options: Any, environ: Any = os.environ) -> str | None:
    """``--ws-ca-file`` for the probes' TLS too: handed to them as ``SSL_CERT_FILE`` (Python's ssl: rediss://,
    https:// ClickHouse and health URLs) and ``PGSSLROOTCERT`` (libpq: ``sslmode=verify-ca``/``verify-full``), each
    unless already set. Returns the CA file applied, if any."""
    ca_file = str(getattr(options, "ws_ca_file", "") or "")
    if not ca_file:
        return None
    environ.setdefault("SSL_CERT_FILE", ca_file)
    environ.setdefault("PGSSLROOTCERT", ca_file)
    return ca_file


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:  # in-process use (tests): nothing to check at init
        return
    apply_ca_file(options)
    try:
        cfg = ProbeConfig.from_options(options)
    except ProbeConfigError as exc:
        exit_usage(exc, prefix="Bad probe option", logger=logger)
    state_of(environment).probe_config = cfg
    tiers = selected_probe_tiers(environment, cfg)
    try:
        cfg.refuse_read_only_writes()
    except ProbeConfigError as exc:
        exit_usage(exc, prefix="Bad probe option", logger=logger)
    try:
        apply_user_counts(environment, cfg)
    except ProbeConfigError as exc:
        exit_usage(exc, prefix="Bad probe option", logger=logger)
    errors = check_tiers(cfg, tiers)
    if errors:
        exit_usage("Probe start-up check failed:\n  " + "\n  ".join(errors), logger=logger)
    if cfg.probe_read_only and cfg.probe_create_schema == "on" and tiers:
        logger.warning("--probe-read-only is on, so --probe-create-schema on is ignored: read-only probes run no DDL")


__all__ = [
    "ProbeConfig", "ProbeConfigError", "TIERS", "apply_user_counts", "check_tiers", "derive_health_url",
    "is_loopback_host", "parse_probes", "pg_dsn_is_loopback", "probe_config", "redact_url", "selected_probe_tiers",
]
