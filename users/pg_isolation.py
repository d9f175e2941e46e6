"""PostgresProbeUser's isolation-level task: a read-modify-write of one hot row under each isolation level.

One transaction: ``BEGIN ISOLATION LEVEL <level> READ WRITE``, read the hot row's value, write it back plus one,
``COMMIT`` (the row is ``contract.isolation``'s, in the probe's own scratch table ``probe_isolation``, apart from the
backend's tables). Every probe user (and every worker) writes the same row, so concurrent transactions conflict for
real: READ COMMITTED waits for the row lock and goes on; REPEATABLE READ and SERIALIZABLE fail with SQLSTATE 40001
when another transaction committed the row after their snapshot.

Samples (request type ``PG``):

- ``txn read_committed`` / ``txn repeatable_read`` / ``txn serializable``: one per transaction, from the first
  BEGIN to the COMMIT that went through, retries and their back-off included. It fails only when every one of its
  ``MAX_ATTEMPTS`` attempts failed, or on an error that is not retried (the server's SQLSTATE and message).
- ``serialization failure`` (40001) and ``deadlock`` (40P01): one failed sample per attempt that hit one (its time
  is that attempt's), its text ``40001 serialization failure under <level> (retried | gave up after 3 attempts):
  <server message>``, so Locust's failures table counts them per level and says how many were retried.

The bounded retry: at most ``MAX_ATTEMPTS`` attempts, a random back-off of ``BACKOFF_MS`` × the attempt number
between them. One row cannot deadlock against itself: a ``deadlock`` sample means other writers of the database
(staging's) took part.

The scratch table is created when missing only where ``--probe-create-schema`` allows it (``auto``: a loopback DSN);
otherwise one failed ``PG schema`` sample names it, and the task does not run. ``--probe-read-only`` skips the task.
psycopg waits cooperatively under gevent (``users.postgres_probe`` makes sure of it when it is imported).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import psycopg
from locust.env import Environment

from contract.isolation import (
    HOT_KEY,
    ISOLATION_DDL,
    ISOLATION_LEVELS,
    ISOLATION_READ,
    ISOLATION_SEED_ROW,
    ISOLATION_TABLE,
    ISOLATION_WRITE,
    RETRYABLE_SQLSTATES,
)
from contract.schema import PG_OBJECT_EXISTS, to_pyformat
from users.probe_base import ProbeFailure, SchemaGate, fire
from users.probe_options import ProbeConfig, schema_missing_message

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Attempts per transaction (the first and two retries)."""
BACKOFF_MS: tuple[float, float] = (5.0, 20.0)
"""Random back-off range before a retry, multiplied by the attempt number that failed."""
LEVELS: tuple[str, ...] = tuple(ISOLATION_LEVELS)
TXN_METRICS: tuple[str, ...] = tuple(f"txn {level}" for level in LEVELS)
"""The ``PG`` names this task samples, besides ``serialization failure`` and ``deadlock``."""
METRICS: tuple[str, ...] = (*TXN_METRICS, *RETRYABLE_SQLSTATES.values())

_READ = to_pyformat(ISOLATION_READ)
_WRITE = to_pyformat(ISOLATION_WRITE)
_SEED = to_pyformat(ISOLATION_SEED_ROW)
_EXISTS = to_pyformat(PG_OBJECT_EXISTS)


def sqlstate_of(exc: BaseException) -> str | None:
    """The server's SQLSTATE of a psycopg error (None for a client-side one)."""
    diag = getattr(exc, "diag", None)
    return getattr(exc, "sqlstate", None) or getattr(diag, "sqlstate", None)


def backoff_s(attempt: int, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one."""
    return rng(*BACKOFF_MS) * attempt / 1000.0


def with_isolation_weight(tasks: list[Any], task: Any, weight: int) -> list[Any]:
    """``tasks`` (Locust's weighted list: a task repeated per unit of weight) with ``task`` ``weight`` times."""
    return [t for t in tasks if t is not task] + [task] * weight


def retry_text(sqlstate: str, kind: str, level: str, attempt: int, primary: str) -> str:
    """The failed ``PG serialization failure`` / ``PG deadlock`` sample's text (few distinct texts: Locust's failures
    table counts them per level and outcome)."""
    outcome = "retried" if attempt < MAX_ATTEMPTS else f"gave up after {MAX_ATTEMPTS} attempts"
    return f"{sqlstate} {kind} under {level} ({outcome}): {primary}"[:300]


@dataclass
class TxnOutcome:
    """What one transaction of the task did (for tests and logs)."""

    level: str
    attempts: int = 0
    elapsed_ms: float = 0.0
    retryable: list[str] = field(default_factory=list)
    """SQLSTATE of each attempt that failed with a retried error, in order."""
    committed: bool = False
    error: str = ""


def _rollback(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        pass  # the lease drops a session left in a transaction


def attempt_rmw(conn: psycopg.Connection[Any], level: str, key: str = HOT_KEY) -> int:
    """One read-modify-write of ``key`` under ``level`` (a key of ``ISOLATION_LEVELS``), committed; returns the value
    written. A psycopg error propagates after a ROLLBACK."""
    conn.execute(f"BEGIN ISOLATION LEVEL {ISOLATION_LEVELS[level]} READ WRITE")  # type: ignore[arg-type]
    try:
        row = conn.execute(_READ, (key,)).fetchone()  # type: ignore[arg-type]
        value = int(row[0]) + 1 if row is not None else 1
        conn.execute(_WRITE, (value, key))  # type: ignore[arg-type]
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return value


def run_isolation_txn(
    environment: Environment,
    conn: psycopg.Connection[Any],
    level: str,
    error_text: Callable[[BaseException], str],
    *,
    key: str = HOT_KEY,
    sleep: Callable[[float], None] = time.sleep,
) -> TxnOutcome:
    """One transaction with the bounded retry, and its samples (see the module docstring)."""
    outcome = TxnOutcome(level)
    name = f"txn {level}"
    start = time.perf_counter()
    while outcome.attempts < MAX_ATTEMPTS:
        outcome.attempts += 1
        attempt_start = time.perf_counter()
        try:
            attempt_rmw(conn, level, key)
        except psycopg.Error as exc:
            code = sqlstate_of(exc) or ""
            kind = RETRYABLE_SQLSTATES.get(code)
            outcome.elapsed_ms = (time.perf_counter() - start) * 1000.0
            if kind is None:  # not a conflict: the transaction fails as it is
                outcome.error = error_text(exc)
                fire(environment, "PG", name, outcome.elapsed_ms, exception=ProbeFailure(outcome.error),
                     context={"level": level, "attempts": outcome.attempts})
                return outcome
            outcome.retryable.append(code)
            primary = getattr(getattr(exc, "diag", None), "message_primary", None) or type(exc).__name__
            fire(environment, "PG", kind, (time.perf_counter() - attempt_start) * 1000.0,
                 exception=ProbeFailure(retry_text(code, kind, level, outcome.attempts, primary)),
                 context={"level": level, "attempt": outcome.attempts})
            if outcome.attempts < MAX_ATTEMPTS:
                sleep(backoff_s(outcome.attempts))
            continue
        outcome.committed = True
        outcome.elapsed_ms = (time.perf_counter() - start) * 1000.0
        fire(environment, "PG", name, outcome.elapsed_ms,
             context={"level": level, "attempts": outcome.attempts, "retries": outcome.attempts - 1})
        return outcome
    outcome.error = (f"{outcome.retryable[-1]} {RETRYABLE_SQLSTATES[outcome.retryable[-1]]}: {MAX_ATTEMPTS} "
                     f"attempts under {level}, each failed ({', '.join(outcome.retryable)})")
    fire(environment, "PG", name, outcome.elapsed_ms, exception=ProbeFailure(outcome.error),
         context={"level": level, "attempts": outcome.attempts})
    return outcome


class LevelCycle:
    """The isolation level of each next transaction of one user: the three in turn, from a random one."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._next = (rng or random).randrange(len(LEVELS))

    def __call__(self) -> str:
        level = LEVELS[self._next]
        self._next = (self._next + 1) % len(LEVELS)
        return level


# ---------------------------------------------------------------- the scratch table

_gate = SchemaGate("PG", logger)


def _write(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...] = ()) -> None:
    """One statement in a READ WRITE transaction of its own (a query file's sessions default to read-only)."""
    conn.execute("BEGIN READ WRITE")
    try:
        conn.execute(sql, params)  # type: ignore[arg-type]
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def ensure_isolation_table(conn: psycopg.Connection[Any]) -> None:
    """Create the scratch table when missing (a concurrent creator's race is ignored)."""
    if conn.execute(_EXISTS, (ISOLATION_TABLE,)).fetchone()[0]:  # type: ignore[arg-type,index]
        return
    try:
        _write(conn, ISOLATION_DDL)
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject):
        pass


_seeded: set[tuple[str, str]] = set()
_seeded_lock = threading.Lock()


def isolation_gate(conn: psycopg.Connection[Any], cfg: ProbeConfig, environment: Environment) -> list[str]:
    """``[ISOLATION_TABLE]`` when the scratch table is missing and may not be created (one ``PG schema`` failure
    says so, once per process and DSN), else ``[]`` after making sure the hot row exists. A psycopg error propagates
    (the check could not run; nothing cached)."""
    create, _why = cfg.creates_schema("pg")
    missing = _gate.check(
        (cfg.pg_dsn, "isolation", create), environment,
        find_missing=lambda: [] if conn.execute(_EXISTS, (ISOLATION_TABLE,)).fetchone()[0]  # type: ignore[arg-type,index]
        else [ISOLATION_TABLE],
        describe=lambda missing: schema_missing_message(cfg, "pg", missing, [f"PG {m}" for m in TXN_METRICS])
        + " (or drop --pg-isolation-weight)",
        create=(lambda: ensure_isolation_table(conn)) if create else None,
    )
    if missing:
        return missing
    with _seeded_lock:
        seeded = (cfg.pg_dsn, HOT_KEY) in _seeded
    if not seeded:
        _write(conn, _SEED, (HOT_KEY,))
        with _seeded_lock:
            _seeded.add((cfg.pg_dsn, HOT_KEY))
    return []


def forget_isolation_checks() -> None:
    """Check the table and the hot row again at the next start (tests)."""
    _gate.forget()
    with _seeded_lock:
        _seeded.clear()
