"""The staging guard of a scenario run with ``--sla-profile staging`` (pure, no DNS lookup): every address it
would load or probe must be a staging address, not this machine (``scripts/rehearse``'s namespace excepted)."""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Any

from scenarios.registry import Scenario

__all__ = ["REHEARSE_NET_ENV", "not_staging", "staging_problems"]


# Where a staging run takes each setting from (option dest, Locust option, env var), per user class.
_STAGING_TIER_OPTIONS = {
    "RedisProbeUser": ("redis_url", "--redis-url", "LOCUST_REDIS_URL"),
    "PostgresProbeUser": ("pg_dsn", "--pg-dsn", "LOCUST_PG_DSN"),
    "ClickHouseProbeUser": ("clickhouse_url", "--clickhouse-url", "LOCUST_CLICKHOUSE_URL"),
    "HealthCheckUser": ("health_url", "--health-url", "LOCUST_HEALTH_URL"),
}
_CHAT_CLASSES = ("ChatUser", "ChatFlowUser")


REHEARSE_NET_ENV = "REHEARSE_NET"
"""Names the network of ``scripts/rehearse``'s namespace (e.g. ``198.18.0.0/30``): the only addresses of the
benchmarking range the staging guard accepts."""
_BENCHMARK_NET = ipaddress.IPv4Network("198.18.0.0/15")
_REHEARSE_HINT = "to rehearse a staging run on this machine, use scripts/rehearse (docs/rehearse.md)"


def not_staging(hostname: str, env: dict[str, str]) -> str | None:
    """Why ``hostname`` cannot be staging (pure, no DNS lookup; None: it may be): this machine's loopback, or the
    RFC 2544 benchmarking range 198.18.0.0/15 outside the rehearsal network that ``$REHEARSE_NET`` names."""
    from scenarios.faults import resolves_to_loopback

    def no_dns(name: str) -> list[str]:
        return ["127.0.0.1"] if name.lower() in ("localhost", "localhost.localdomain") else []

    if resolves_to_loopback(hostname, resolve=no_dns):
        return "this machine"
    try:
        address = ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        return None
    if address not in _BENCHMARK_NET:
        return None
    try:
        rehearsal = ipaddress.IPv4Network(env.get(REHEARSE_NET_ENV, "") or "", strict=False)
    except ValueError:
        rehearsal = None
    if rehearsal is not None and rehearsal.subnet_of(_BENCHMARK_NET) and address in rehearsal:
        return None
    return "in the benchmarking range 198.18.0.0/15 but not the rehearsal's network"


def staging_problems(scenario: Scenario, options: Any, host: str | None, env: dict[str, str]) -> list[str]:
    """What a ``--sla-profile staging`` run of ``scenario`` is missing (pure; [] = ready).

    Staging takes the target URL, the token file and every probed tier's URL from the command line, ``LOCUST_*``
    env vars or ``locust.conf``; a tier left at its local default (loopback) would silently probe this machine. The
    one exception is ``scripts/rehearse``: its namespace addresses, named by ``$REHEARSE_NET`` (see
    :func:`not_staging`).
    """
    problems = []
    classes = set(scenario.user_classes)
    if classes & set(_CHAT_CLASSES) or "HealthCheckUser" in classes:
        if not host:
            problems.append("no target: set host = wss://... in locust.conf, LOCUST_HOST or --host")
        elif why := not_staging(urllib.parse.urlsplit(host).hostname or "", env):
            problems.append(f"--host {host} is {why}, not staging: set host in locust.conf / LOCUST_HOST; "
                            f"{_REHEARSE_HINT}")
    if classes & set(_CHAT_CLASSES):
        sources = [getattr(options, k, None) for k in ("token_file", "users_file", "jwt_secret")]
        if not any(sources) and not env.get("JWT_SECRET_KEY"):
            problems.append(
                "no chat credentials: set token-file (one JWT per line) or users-file in locust.conf, or "
                "LOCUST_TOKEN_FILE / LOCUST_USERS_FILE (or JWT_SECRET_KEY to mint tokens)"
            )
    for cls, (dest, option, env_var) in _STAGING_TIER_OPTIONS.items():
        if cls not in classes or dest == "health_url" and not getattr(options, dest, ""):
            continue  # the health probe defaults to the target's own address
        url = getattr(options, dest, "") or ""
        hostname = urllib.parse.urlsplit(url).hostname or ""
        why = "unset" if not url else not_staging(hostname, env)
        if why:
            where = "this machine" if why in ("unset", "this machine") else "no staging tier"
            problems.append(
                f"{cls} would probe {where} ({option} is {'a loopback address' if why == 'this machine' else why}): "
                f"set {option.lstrip('-')} in locust.conf or {env_var}; {_REHEARSE_HINT}"
            )
    return problems
