"""Configuration of the reference backend: command-line options, each with an environment variable.

Precedence: command-line option > environment variable > default. Bad values exit with code 2 and a message that
names the option, the bad value and the fix (never a traceback, never the value of a secret).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from contract.schema import CLICKHOUSE_URL, PG_DSN, REDIS_URL

AUTH_REJECT_MODES = ("close1008", "http403")


@dataclass(frozen=True)
class Settings:
    """Everything the backend reads at start; one instance per process."""

    host: str = "127.0.0.1"
    port: int = 8765
    jwt_secret: str = field(default="", repr=False)
    jwt_issuer: str = "agent-chat-backend"
    jwt_ttl_s: int = 3600
    admin_token: str = field(default="", repr=False)
    auth_reject_mode: str = "close1008"
    seed_users: int = 100
    seed_password: str = field(default="loadtest-password", repr=False)
    bcrypt_rounds: int = 6
    redis_url: str = REDIS_URL
    pg_dsn: str = PG_DSN
    pg_pool_size: int = 10
    redis_pool_size: int = 64
    clickhouse_url: str = CLICKHOUSE_URL
    redis_timeout_ms: float = 1000.0
    session_budget_ms: float = 0.0
    pg_timeout_ms: float = 2000.0
    pg_work_ms: float = 0.0
    clickhouse_timeout_ms: float = 5000.0
    think_min_ms: float = 300.0
    think_max_ms: float = 600.0
    rate_limit_per_s: int = 20
    max_in_flight: int = 32
    max_connections: int = 10_000
    max_frame_bytes: int = 65536
    history_limit: int = 20
    agent_state_ttl_s: int = 300
    session_ttl_s: int = 3600
    ch_flush_interval_ms: float = 500.0
    ch_batch_rows: int = 5000
    ch_queue_rows: int = 100_000
    log_level: str = "info"
    log_format: str = "json"


class SettingsError(Exception):
    """A bad option value; the message names the option, the value and the fix."""


def _env(name: str, default: object) -> object:
    return os.environ.get(name, default)


def build_parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="python -m reference_backend",
        description="Reference WebSocket agent-chat backend (Redis, PostgreSQL, ClickHouse) with fault injection.",
    )
    add = p.add_argument
    add("--host", default=_env("TARGET_HOST", d.host), help="bind address (env TARGET_HOST; default %(default)s)")
    add("--port", default=_env("TARGET_PORT", d.port), help="TCP port, 0 = any free one (env TARGET_PORT)")
    add("--jwt-secret", default=_env("JWT_SECRET_KEY", ""), help="HS256 secret (env JWT_SECRET_KEY; required)")
    add("--jwt-issuer", default=_env("JWT_ISSUER", d.jwt_issuer), help="token issuer (env JWT_ISSUER)")
    add("--jwt-ttl-s", default=_env("JWT_TTL_S", d.jwt_ttl_s), help="lifetime of issued tokens in s (env JWT_TTL_S)")
    add("--admin-token", default=_env("TARGET_ADMIN_TOKEN", ""),
        help="bearer token of /admin/faults (env TARGET_ADMIN_TOKEN; unset = admin API answers 403)")
    add("--auth-reject-mode", default=_env("TARGET_AUTH_REJECT_MODE", d.auth_reject_mode),
        help="how bad tokens are refused: close1008 (accept, AUTH_FAILED, close 1008) or http403 (at the handshake)"
             " (env TARGET_AUTH_REJECT_MODE)")
    add("--seed-users", default=_env("TARGET_SEED_USERS", d.seed_users),
        help="number of loadtest{i}@example.com users (env TARGET_SEED_USERS)")
    add("--seed-password", default=_env("TARGET_SEED_PASSWORD", d.seed_password),
        help="their password (env TARGET_SEED_PASSWORD)")
    add("--bcrypt-rounds", default=_env("TARGET_BCRYPT_ROUNDS", d.bcrypt_rounds),
        help="bcrypt cost of the seeded password hashes (env TARGET_BCRYPT_ROUNDS)")
    add("--redis-url", default=_env("TARGET_REDIS_URL", d.redis_url), help="Redis URL (env TARGET_REDIS_URL)")
    add("--redis-pool-size", default=_env("TARGET_REDIS_POOL_SIZE", d.redis_pool_size),
        help="Redis connection pool size; callers wait for a free connection (env TARGET_REDIS_POOL_SIZE)")
    add("--pg-dsn", default=_env("TARGET_PG_DSN", d.pg_dsn), help="PostgreSQL DSN (env TARGET_PG_DSN)")
    add("--pg-pool-size", default=_env("TARGET_PG_POOL_SIZE", d.pg_pool_size),
        help="asyncpg pool size (env TARGET_PG_POOL_SIZE)")
    add("--clickhouse-url", default=_env("TARGET_CLICKHOUSE_URL", d.clickhouse_url),
        help="ClickHouse HTTP interface URL (env TARGET_CLICKHOUSE_URL)")
    add("--redis-timeout-ms", default=_env("TARGET_REDIS_TIMEOUT_MS", d.redis_timeout_ms),
        help="per-operation Redis timeout (env TARGET_REDIS_TIMEOUT_MS)")
    add("--session-budget-ms", default=_env("TARGET_SESSION_BUDGET_MS", d.session_budget_ms),
        help="how long a message waits for its Redis session read before rebuilding the session from PostgreSQL "
             "(the cache fallback, e.g. 100); 0 (default) = no fallback: wait for Redis up to --redis-timeout-ms "
             "(env TARGET_SESSION_BUDGET_MS)")
    add("--pg-timeout-ms", default=_env("TARGET_PG_TIMEOUT_MS", d.pg_timeout_ms),
        help="per-message PostgreSQL timeout incl. pool acquire (env TARGET_PG_TIMEOUT_MS)")
    add("--pg-work-ms", default=_env("TARGET_PG_WORK_MS", d.pg_work_ms),
        help="server-side work (pg_sleep) in each message's first transaction, holding its pooled connection that "
             "long: connection demand grows with concurrent messages (env TARGET_PG_WORK_MS)")
    add("--clickhouse-timeout-ms", default=_env("TARGET_CLICKHOUSE_TIMEOUT_MS", d.clickhouse_timeout_ms),
        help="ClickHouse request timeout (env TARGET_CLICKHOUSE_TIMEOUT_MS)")
    add("--think-min-ms", default=_env("TARGET_THINK_MIN_MS", d.think_min_ms),
        help="minimum total agent think time per message (env TARGET_THINK_MIN_MS)")
    add("--think-max-ms", default=_env("TARGET_THINK_MAX_MS", d.think_max_ms),
        help="maximum total agent think time per message (env TARGET_THINK_MAX_MS)")
    add("--rate-limit-per-s", default=_env("TARGET_RATE_LIMIT_PER_S", d.rate_limit_per_s),
        help="user messages per second per user before RATE_LIMITED, 0 = off (env TARGET_RATE_LIMIT_PER_S)")
    add("--max-in-flight", default=_env("TARGET_MAX_IN_FLIGHT", d.max_in_flight),
        help="concurrent messages per connection before RATE_LIMITED (env TARGET_MAX_IN_FLIGHT)")
    add("--max-connections", default=_env("TARGET_MAX_CONNECTIONS", d.max_connections),
        help="concurrent connections + requests before HTTP 503 (env TARGET_MAX_CONNECTIONS)")
    add("--history-limit", default=_env("TARGET_HISTORY_LIMIT", d.history_limit),
        help="rows read by the thread-history query (env TARGET_HISTORY_LIMIT)")
    add("--log-level", default=_env("TARGET_LOG_LEVEL", d.log_level), help="debug|info|warning (env TARGET_LOG_LEVEL)")
    add("--log-format", default=_env("TARGET_LOG_FORMAT", d.log_format), help="json|plain (env TARGET_LOG_FORMAT)")
    return p


def _num(name: str, value: object, kind: type, minimum: float) -> float | int:
    try:
        n = kind(value)
    except (TypeError, ValueError):
        raise SettingsError(
            f"option --{name} has value {value!r}: not a valid {kind.__name__}; pass e.g. --{name} {int(minimum)}"
        ) from None
    if n < minimum:
        raise SettingsError(f"option --{name} has value {value!r}: must be >= {minimum:g}")
    return n


def _int(name: str, value: object, minimum: float) -> int:
    """:func:`_num` of a whole number."""
    return int(_num(name, value, int, minimum))


def settings_from_args(argv: list[str] | None = None) -> Settings:
    """Parse argv (+ environment) into Settings; raises SettingsError on a bad value."""
    a = build_parser().parse_args(argv)
    if not a.jwt_secret:
        raise SettingsError(
            "no JWT secret: set the environment variable JWT_SECRET_KEY or pass --jwt-secret "
            "(e.g. export JWT_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))'))"
        )
    if a.auth_reject_mode not in AUTH_REJECT_MODES:
        raise SettingsError(
            f"option --auth-reject-mode has value {a.auth_reject_mode!r}: use one of {', '.join(AUTH_REJECT_MODES)}"
        )
    if a.log_format not in ("json", "plain"):
        raise SettingsError(f"option --log-format has value {a.log_format!r}: use json or plain")
    if a.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"option --log-level has value {a.log_level!r}: use debug, info, warning or error")
    for url_opt, prefix in (("redis_url", "redis"), ("pg_dsn", "postgres"), ("clickhouse_url", "http")):
        if not str(getattr(a, url_opt)).startswith(prefix):
            raise SettingsError(
                f"option --{url_opt.replace('_', '-')} has value {getattr(a, url_opt)!r}: must start with {prefix}"
            )
    s = Settings(
        host=a.host,
        port=_int("port", a.port, 0),
        jwt_secret=a.jwt_secret,
        jwt_issuer=a.jwt_issuer,
        jwt_ttl_s=_int("jwt-ttl-s", a.jwt_ttl_s, 1),
        admin_token=a.admin_token,
        auth_reject_mode=a.auth_reject_mode,
        seed_users=_int("seed-users", a.seed_users, 0),
        seed_password=a.seed_password,
        bcrypt_rounds=_int("bcrypt-rounds", a.bcrypt_rounds, 4),
        redis_url=a.redis_url,
        pg_dsn=a.pg_dsn,
        pg_pool_size=_int("pg-pool-size", a.pg_pool_size, 1),
        redis_pool_size=_int("redis-pool-size", a.redis_pool_size, 1),
        clickhouse_url=a.clickhouse_url.rstrip("/"),
        redis_timeout_ms=_num("redis-timeout-ms", a.redis_timeout_ms, float, 1),
        session_budget_ms=_num("session-budget-ms", a.session_budget_ms, float, 0),
        pg_timeout_ms=_num("pg-timeout-ms", a.pg_timeout_ms, float, 1),
        pg_work_ms=_num("pg-work-ms", a.pg_work_ms, float, 0),
        clickhouse_timeout_ms=_num("clickhouse-timeout-ms", a.clickhouse_timeout_ms, float, 1),
        think_min_ms=_num("think-min-ms", a.think_min_ms, float, 0),
        think_max_ms=_num("think-max-ms", a.think_max_ms, float, 0),
        rate_limit_per_s=_int("rate-limit-per-s", a.rate_limit_per_s, 0),
        max_in_flight=_int("max-in-flight", a.max_in_flight, 1),
        max_connections=_int("max-connections", a.max_connections, 1),
        history_limit=_int("history-limit", a.history_limit, 1),
        log_level=a.log_level.lower(),
        log_format=a.log_format,
    )
    if s.think_max_ms < s.think_min_ms:
        raise SettingsError(
            f"option --think-max-ms has value {s.think_max_ms:g}: must be >= --think-min-ms ({s.think_min_ms:g})"
        )
    if s.port > 65535:
        raise SettingsError(f"option --port has value {s.port}: must be 0..65535")
    return s


def exit_on_error(message: str) -> None:
    """A user error at start: one line on stderr, exit code 2, no traceback."""
    sys.stderr.write(f"target: error: {message}\n")
    raise SystemExit(2)
