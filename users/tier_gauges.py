"""Server-side tier gauges: the master reads the data stores' own statistics every few seconds and records them.

On the master (or the single process of a local run; workers never read), between ``test_start`` and
``test_stop``/``quitting``, one greenlet per tier reads every ``--tier-gauges-interval`` seconds (default 5, 0 = off)
and records what :mod:`users.tier_readings` makes of the answer through ``sla_checks.gauges.record_gauge``, so the
readings show in the report's gauges and in attribution's gauge correlation like the generator's CPU:

* Redis: ``INFO`` (memory, clients, ops/s, blocked clients, evictions);
* PostgreSQL: one statement over ``pg_stat_activity`` (sessions by state), ``pg_stat_database`` (commit and rollback
  rates, new deadlocks), ``pg_locks`` (locks not granted) and ``max_connections``, in a read-only session of its own
  (``application_name`` ``locust-tier-gauges``, ``statement_timeout`` set);
* ClickHouse: ``system.metrics`` and ``system.events`` in one GET (a GET is read-only on ClickHouse's HTTP interface);
* the target: the first path of ``--health-paths`` (``/health``), when its body is JSON with numbers.

Which tiers: those in ``--probes`` whose probe user runs in this run, and those whose URL option was set away from
the bundled default (``--redis-url``, ``--pg-dsn``, ``--clickhouse-url``, ``--health-url``) even when their probe does
not run. Every reading has a deadline (the drivers' timeouts and a ``gevent.Timeout`` around the whole reading, at
most 5 s); psycopg and redis-py wait cooperatively under gevent as in the probes. A tier whose first reading fails
logs one warning naming it (password hidden) and its reader stops; a tier that fails after it has answered logs one
warning per episode and is read again at the next interval. Reading never fails the run and never holds it up.

Usage::

    TierGauges(environment).register()   # done for every run by this module's init listener
"""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from config.errors import SuiteError
from sla_checks.gauges import record_gauge
from users.probe_base import redact_url
from users.probe_options import (
    TIER_URL_OPTION,
    ProbeConfig,
    clickhouse_request,
    probe_config,
    selected_probe_tiers,
)
from users.tier_readings import (
    CH_READING_SQL,
    PG_READING_SQL,
    Deltas,
    backend_gauges,
    clickhouse_gauges,
    pg_gauges,
    redis_gauges,
)

logger = logging.getLogger(__name__)

__all__ = ["TierGauges", "TierReader", "gauge_tiers"]

MAX_READ_S = 5.0
"""Longest one reading may take (less when the interval is shorter, never under 1 s)."""
_URL_FIELD = {"redis": "redis_url", "pg": "pg_dsn", "clickhouse": "clickhouse_url", "health": "health_url"}


class TierReadTimeout(SuiteError):
    """A tier reading passed its deadline."""


def gauge_tiers(environment: Environment, cfg: ProbeConfig) -> list[str]:
    """The tiers read this run: in ``--probes``, and probed by a user of this run or given a URL of their own."""
    probed = set(selected_probe_tiers(environment, cfg))
    defaults = ProbeConfig.__dataclass_fields__
    options = environment.parsed_options
    chosen = []
    for tier, field in _URL_FIELD.items():
        if tier not in cfg.probes:
            continue
        if tier == "health":
            explicit = bool(getattr(options, "health_url", "")) if options is not None else False
        else:
            explicit = getattr(cfg, field) != defaults[field].default
        if tier in probed or explicit:
            chosen.append(tier)
    return chosen


class TierReader:
    """One tier's reading: ``read()`` returns gauges (or raises), ``reset()`` drops its connection."""

    def __init__(self, tier: str, where: str, read: Callable[[], dict[str, float]],
                 reset: Callable[[], None] = lambda: None) -> None:
        self.tier = tier
        self.where = where
        """The tier's address with any password hidden (for the log)."""
        self.read = read
        self.reset = reset


def redis_reader(cfg: ProbeConfig, timeout: float) -> TierReader:
    import redis

    from users.redis_probe import connection_kwargs

    kwargs = connection_kwargs(cfg)
    kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    pool = redis.ConnectionPool(max_connections=1, **kwargs)
    client = redis.Redis(connection_pool=pool)

    def read() -> dict[str, float]:
        return redis_gauges(client.info())

    return TierReader("redis", redact_url(cfg.redis_url), read, pool.disconnect)


def pg_reader(cfg: ProbeConfig, timeout: float) -> TierReader:
    import psycopg

    from users.postgres_probe import _ensure_cooperative

    _ensure_cooperative()
    deltas = Deltas()
    conn: list[Any] = []

    def connect() -> Any:
        c = psycopg.connect(cfg.pg_dsn, autocommit=True, connect_timeout=max(2, round(timeout)),
                            application_name="locust-tier-gauges")
        ms = int(timeout * 1000)
        c.execute(f"SET statement_timeout = {ms}; SET lock_timeout = {ms}; "  # type: ignore[arg-type]
                  "SET default_transaction_read_only = on")
        return c

    def read() -> dict[str, float]:
        if not conn:
            conn.append(connect())
        row = conn[0].execute(PG_READING_SQL).fetchone()
        if row is None:
            raise LookupError("pg_stat_database has no row for the current database")
        return pg_gauges(tuple(row), deltas, time.monotonic())

    def reset() -> None:
        while conn:
            try:
                conn.pop().close()
            except Exception:  # noqa: BLE001  (closing a broken session)
                pass

    return TierReader("pg", redact_url(cfg.pg_dsn), read, reset)


def clickhouse_reader(cfg: ProbeConfig, timeout: float) -> TierReader:
    deltas = Deltas()

    def read() -> dict[str, float]:
        text = clickhouse_request(cfg.clickhouse_url, CH_READING_SQL, timeout=timeout).decode("utf-8", "replace")
        return clickhouse_gauges(text, deltas, time.monotonic())

    return TierReader("clickhouse", redact_url(cfg.clickhouse_url), read)


def health_reader(cfg: ProbeConfig, timeout: float) -> TierReader:
    url = cfg.health_url.rstrip("/") + cfg.health_paths[0]

    def read() -> dict[str, float]:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return backend_gauges(resp.read(1 << 20))

    return TierReader("health", redact_url(url), read)


_READERS: dict[str, Callable[[ProbeConfig, float], TierReader]] = {
    "redis": redis_reader, "pg": pg_reader, "clickhouse": clickhouse_reader, "health": health_reader,
}


def _reason(exc: BaseException, where: str) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.replace(where, redact_url(where))[:300]


class TierGauges:
    """Reads the run's tiers every ``interval`` s on the master (module docstring); one greenlet per tier."""

    def __init__(self, environment: Environment, interval: float | None = None,
                 readers: list[TierReader] | None = None) -> None:
        self.environment = environment
        self.interval = interval
        """Seconds between readings; None: ``--tier-gauges-interval`` at each test start."""
        self._given = readers
        self.readers: list[TierReader] = []
        self._greenlets: list[gevent.Greenlet] = []

    def _deadline(self, interval: float) -> float:
        return max(1.0, min(MAX_READ_S, interval))

    def read_once(self, reader: TierReader, deadline: float) -> dict[str, float]:
        """One reading of ``reader`` within ``deadline`` s, recorded as gauges; raises on failure."""
        with gevent.Timeout(deadline, TierReadTimeout(f"no answer within {deadline:g} s")):
            values = reader.read()
        ts = time.time()
        for name, value in values.items():
            record_gauge(self.environment, name, value, ts)
        return values

    def _run(self, reader: TierReader, interval: float) -> None:
        deadline = self._deadline(interval)
        answered = failing = False
        while True:
            started = time.monotonic()
            try:
                values = self.read_once(reader, deadline)
            except Exception as exc:  # noqa: BLE001  (a reading never takes the run down)
                reader.reset()
                reason = _reason(exc, reader.where)
                if not answered:
                    option = TIER_URL_OPTION.get(reader.tier, ("--" + reader.tier, ""))[0]
                    logger.warning("Tier gauges: cannot read %s at %s (%s); no %s gauges this run (fix %s, or switch "
                                   "the readings off with --tier-gauges-interval 0)", reader.tier, reader.where,
                                   reason, reader.tier, option)
                    return
                if not failing:
                    logger.warning("Tier gauges: reading %s at %s failed (%s); trying again every %g s",
                                   reader.tier, reader.where, reason, interval)
                failing = True
            else:
                if failing:
                    logger.info("Tier gauges: %s answers again", reader.tier)
                if not answered and not values:
                    logger.info("Tier gauges: %s at %s gave no numbers; not read again this run", reader.tier,
                                reader.where)
                    return
                answered, failing = True, False
            gevent.sleep(max(0.0, interval - (time.monotonic() - started)))

    def start(self) -> None:
        """Start the readers (not on a worker, not with an interval of 0)."""
        self.stop()
        if isinstance(self.environment.runner, WorkerRunner):
            return
        cfg = probe_config(self.environment)
        interval = cfg.tier_gauges_interval if self.interval is None else self.interval
        if interval <= 0:
            return
        if self._given is not None:
            self.readers = list(self._given)
        else:
            deadline = self._deadline(interval)
            self.readers = [_READERS[t](cfg, deadline) for t in gauge_tiers(self.environment, cfg)]
        if self.readers:
            logger.info("Tier gauges every %g s: %s", interval, ", ".join(r.tier for r in self.readers))
        self._greenlets = [gevent.spawn(self._run, r, interval) for r in self.readers]

    def stop(self) -> None:
        greenlets, self._greenlets = self._greenlets, []
        if greenlets:
            gevent.killall(greenlets, block=True, timeout=5)
        for reader in self.readers:
            try:
                reader.reset()
            except Exception:  # noqa: BLE001  (closing at the end of a run)
                logger.debug("tier gauges: closing %s failed", reader.tier, exc_info=True)

    def register(self) -> TierGauges:
        """Start on ``test_start``, stop on ``test_stop`` and ``quitting``."""
        ev = self.environment.events
        ev.test_start.add_listener(lambda **_kw: self.start())
        ev.test_stop.add_listener(lambda **_kw: self.stop())
        ev.quitting.add_listener(lambda **_kw: self.stop())
        return self


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    if environment.parsed_options is not None:  # a real run (tests build TierGauges themselves)
        TierGauges(environment).register()
