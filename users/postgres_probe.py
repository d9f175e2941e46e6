"""PostgresProbeUser: the backend's message-flow queries, timed in the same run and stats as the chat users.

Samples (request_type ``PG``): ``connect`` (a fresh connection), ``pool acquire`` (wait for a connection of the
process's bounded pool; fails with "no connection free within N s" instead of hanging), the named queries of
``contract/schema.py`` (``thread upsert``, ``message insert``, ``thread history``, ``thread update``, ``run insert``,
``run complete``), ``commit`` (COMMIT of a transaction that updates rows shared by every probe user) and
``lock stats``; ``schema`` only once, as a failure, when tables it needs are missing (see below). Gauges: ``pg:lock_waiters`` and ``pg:lock_wait_max_ms`` (sessions waiting for a lock, from
``pg_locks``/``pg_stat_activity``), ``pg_probe:pool_in_use``, ``pg_probe:pool_size``.

gevent: psycopg 3 picks its wait function when imported; with gevent's ``select`` patched (locust imports first) it
uses ``wait_poll`` on the patched ``select`` and yields to other greenlets while the server works. If psycopg was
imported before the patching it would use its C ``wait_c`` and block the whole process, and its connect would wait
on the unpatched selector it bound at import; ``_ensure_cooperative`` switches both in that case (and says so).

Someone else's database: missing tables are created only when ``--probe-create-schema`` allows it (``auto``: the DSN
is on loopback, i.e. the bundled backend's). Otherwise the first user of the process logs one error naming the
tables, the DSN (password hidden) and the option, fires one failed ``PG schema`` sample with that text, and the
table-bound operations do not run at all: their thresholds say "no data" (a required one fails as "no samples"),
instead of a failure per attempt that would blame PostgreSQL for a schema mismatch. ``--probe-read-only`` runs only
``connect``, ``pool acquire``, ``thread history`` (on the probe's own thread id: no rows, same index lookup) and
``lock stats``, in sessions with ``default_transaction_read_only`` on, so the server itself refuses any write.

``--pg-isolation-weight N`` adds the isolation-level task (:mod:`users.pg_isolation`): a read-modify-write of one hot
row of the probe's own table under each isolation level in turn, sampled as ``PG txn <level>`` with retries, and
``PG serialization failure`` / ``PG deadlock`` per failed attempt; it runs with a query file too (its own table).

``--pg-queries FILE`` (:mod:`users.query_files`): the file's statements replace the named queries and the contended
transaction, the next by weight per task, sampled as ``PG query <name>``; no schema check, no rows of the probe's
own. Reads run with ``default_transaction_read_only`` on, a ``write = true`` query with it off (switched per session
outside the sample); a failure carries the server's SQLSTATE and message.
"""

from __future__ import annotations

import logging
import os
import random
import selectors
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import psycopg
import psycopg.waiting
from locust import User, between, task
from locust.env import Environment

from config.errors import SuiteError
from contract.schema import PG_OBJECT_EXISTS, PG_QUERIES, PG_SCHEMA, schema_object_name, to_pyformat
from sla_checks.gauges import record_gauge
from users.pg_isolation import LevelCycle, isolation_gate, run_isolation_txn, with_isolation_weight
from users.probe_base import ProbeFailure, SchemaGate, fire, redact_url, skip_write_task, timed
from users.probe_options import ProbeConfig, probe_config, schema_missing_message
from users.query_files import ProbeQuery

logger = logging.getLogger(__name__)

SQL: dict[str, str] = {name: to_pyformat(sql) for name, sql in PG_QUERIES.items()}

LOCK_STATS_SQL = (
    "SELECT count(*), coalesce(max(extract(epoch FROM clock_timestamp() - a.query_start)) * 1000, 0) "
    "FROM pg_stat_activity a WHERE a.wait_event_type = 'Lock' AND a.datname = current_database() "
    "AND a.pid IN (SELECT pid FROM pg_locks WHERE NOT granted)"
)

SHARED_THREADS = 4
"""Rows every probe user updates in its transaction task (contention on purpose)."""
TABLES: tuple[str, ...] = ("threads", "messages", "runs")
"""Tables the full probe reads and writes."""
READ_ONLY_TABLES: tuple[str, ...] = ("messages",)
"""Tables ``--probe-read-only`` reads (``thread history``)."""
TABLE_BOUND: tuple[str, ...] = (*PG_QUERIES, "commit")
"""Operations that need the tables (the rest, connect / pool acquire / lock stats, need none)."""


def _ensure_cooperative() -> None:
    """Make psycopg wait through gevent when gevent has patched ``select`` (see the module docstring)."""
    waiting = psycopg.waiting
    if not waiting._is_select_patched():
        return
    if getattr(waiting, "wait_c", None) is not None and waiting.wait is waiting.wait_c:
        logger.warning("psycopg was imported before gevent patching; switching it to its cooperative wait_poll")
        waiting.wait = waiting.wait_poll
    # connect() waits in wait_conn() on the DefaultSelector bound when psycopg was imported: unpatched (epoll) when
    # that was before gevent's patching, and then a connect to a silent server froze every greenlet of the process
    # for its whole connect_timeout
    if getattr(waiting, "DefaultSelector", None) is not selectors.DefaultSelector:
        setattr(waiting, "DefaultSelector", selectors.DefaultSelector)  # noqa: B010  (a class: mypy refuses the assignment)


_ensure_cooperative()

C = TypeVar("C")


class PoolTimeout(SuiteError):
    """No pooled connection became free within the acquire timeout."""


class BoundedPool(Generic[C]):
    """A small bounded connection pool with an acquire timeout; gevent-safe (``threading`` is patched by Locust).

    ``connect()`` makes a connection; ``is_reusable(conn)`` says whether a returned one may be kept. Connections are
    made lazily, up to ``size``; ``acquire`` waits at most ``timeout`` s, then raises ``PoolTimeout`` naming the pool.
    """

    def __init__(self, connect: Callable[[], C], size: int, timeout: float, *,
                 is_reusable: Callable[[C], bool] = lambda c: True, close: Callable[[C], None] = lambda c: None,
                 name: str = "pool") -> None:
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        self._connect = connect
        self._is_reusable = is_reusable
        self._close = close
        self.size = size
        self.timeout = timeout
        self.name = name
        self._slots = threading.BoundedSemaphore(size)
        self._idle: deque[C] = deque()
        self.in_use = 0

    def acquire(self, timeout: float | None = None) -> C:
        wait = self.timeout if timeout is None else timeout
        if not self._slots.acquire(timeout=wait):
            raise PoolTimeout(
                f"{self.name}: no connection free within {wait:g} s (pool size {self.size}, {self.in_use} in use)"
            )
        try:
            conn = self._idle.pop() if self._idle else self._connect()
        except BaseException:
            self._slots.release()
            raise
        self.in_use += 1
        return conn

    def release(self, conn: C, *, broken: bool = False) -> None:
        self.in_use -= 1
        try:
            if broken or not self._is_reusable(conn):
                self._close(conn)
            else:
                self._idle.append(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        while self._idle:
            self._close(self._idle.pop())


_read_only_sessions: weakref.WeakKeyDictionary[psycopg.Connection[Any], bool] = weakref.WeakKeyDictionary()
"""Whether each probe session has ``default_transaction_read_only`` on (set at connect, switched per query file
query)."""


def sessions_read_only(cfg: ProbeConfig) -> bool:
    """Whether new probe sessions start read-only: with ``--probe-read-only``, or with a query file (its reads run
    read-only; a ``write = true`` query switches its session for itself)."""
    return cfg.probe_read_only or cfg.pg_query_file is not None


def connect_pg(cfg: ProbeConfig) -> psycopg.Connection[Any]:
    """A fresh autocommit connection with connect_timeout, statement_timeout and lock_timeout set (nothing hangs)."""
    conn = psycopg.connect(cfg.pg_dsn, autocommit=True, connect_timeout=max(1, round(cfg.pg_connect_timeout)))
    try:
        ms = int(cfg.pg_statement_timeout * 1000)
        conn.execute(f"SET statement_timeout = {ms}; SET lock_timeout = {ms}")  # type: ignore[arg-type]
        read_only = sessions_read_only(cfg)
        if read_only:  # the server refuses writes and DDL in these sessions, whatever the probe sends
            conn.execute("SET default_transaction_read_only = on")
        _read_only_sessions[conn] = read_only
    except BaseException:
        conn.close()
        raise
    return conn


def set_session_read_only(conn: psycopg.Connection[Any], read_only: bool) -> None:
    """Switch ``default_transaction_read_only`` of a probe session when it differs (one round trip, outside any
    sample)."""
    if _read_only_sessions.get(conn) is read_only:
        return
    conn.execute("SET default_transaction_read_only = on" if read_only else "SET default_transaction_read_only = off")
    _read_only_sessions[conn] = read_only


def pg_error_text(exc: BaseException, dsn: str) -> str:
    """A failed query's text: the server's SQLSTATE and primary message (no statement echo, no parameters), else the
    driver's first line with the DSN's password hidden."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if primary:
        return f"{diag.sqlstate or type(exc).__name__}: {primary}"[:300]  # type: ignore[union-attr]
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{type(exc).__name__}: {first.replace(dsn, redact_url(dsn))}"[:300]


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the backend's tables if missing (idempotent; a concurrent creator's race is ignored)."""
    for stmt in PG_SCHEMA:
        name = schema_object_name(stmt)
        if name and conn.execute(to_pyformat(PG_OBJECT_EXISTS), (name,)).fetchone()[0]:  # type: ignore[index]
            continue  # CREATE INDEX IF NOT EXISTS would lock the table even when the index exists
        try:
            conn.execute(stmt)  # type: ignore[arg-type]
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject):
            pass


_schema_gate = SchemaGate("PG", logger)


def missing_tables(conn: psycopg.Connection[Any], tables: tuple[str, ...]) -> list[str]:
    """Those of ``tables`` not visible on the connection's search_path."""
    exists = to_pyformat(PG_OBJECT_EXISTS)
    return [t for t in tables if not conn.execute(exists, (t,)).fetchone()[0]]  # type: ignore[index]


def schema_gate(conn: psycopg.Connection[Any], cfg: ProbeConfig, environment: Environment) -> list[str]:
    """The tables this probe needs that are missing; checked once per process, DSN and mode.

    Creates them first when ``--probe-create-schema`` allows it. The call that finds tables missing logs the one error
    and fires the one failed ``PG schema`` sample; later calls just return the cached answer. A psycopg error (the
    check could not run) propagates and nothing is cached.
    """
    create, _why = cfg.creates_schema("pg")

    def create_tables() -> None:
        try:
            ensure_schema(conn)  # skips existing objects (CREATE INDEX IF NOT EXISTS would lock the table)
        except psycopg.errors.InsufficientPrivilege as exc:  # the check below says what is missing
            logger.warning("PG probe: could not create the schema: %s", " ".join(str(exc).split()))

    stopped = ["thread history"] if cfg.probe_read_only else list(TABLE_BOUND)
    return _schema_gate.check(
        (cfg.pg_dsn, cfg.probe_read_only, create), environment,
        find_missing=lambda: missing_tables(conn, READ_ONLY_TABLES if cfg.probe_read_only else TABLES),
        describe=lambda missing: schema_missing_message(cfg, "pg", missing, [f"PG {n}" for n in stopped]),
        create=create_tables if create else None,
    )


def forget_schema_checks() -> None:
    """Check the tables again at the next start (tests)."""
    _schema_gate.forget()


def _reusable(conn: psycopg.Connection[Any]) -> bool:
    return not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


_pools: dict[tuple[Any, ...], BoundedPool[psycopg.Connection[Any]]] = {}
_pools_lock = threading.Lock()


def shared_pool(cfg: ProbeConfig) -> BoundedPool[psycopg.Connection[Any]]:
    """The process's bounded PG pool for these settings (shared by all PostgresProbeUsers)."""
    key = (cfg.pg_dsn, cfg.pg_pool_size, cfg.pg_pool_timeout, cfg.pg_connect_timeout, cfg.pg_statement_timeout,
           sessions_read_only(cfg))
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = BoundedPool(lambda: connect_pg(cfg), cfg.pg_pool_size, cfg.pg_pool_timeout,
                                             is_reusable=_reusable, close=lambda c: c.close(), name="PG probe pool")
        return pool


def close_pools() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class PostgresProbeUser(User):
    """Probes PostgreSQL: connect, pool acquire, the backend's named queries, a contended transaction, lock waits."""

    fixed_count = 1
    """One per run by default (``--pg-probe-users``)."""
    wait_time = between(0.5, 1.0)
    history_limit: int = 20
    """LIMIT of ``PG thread history`` (what the backend loads per message)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.cfg = probe_config(environment)
        self.pool = shared_pool(self.cfg)
        self.user_id = f"probe-{os.getpid()}"
        self.thread_id = f"probe-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.shared_ids = [f"probe-shared-{i}" for i in range(SHARED_THREADS)]
        self._ready = False
        self._schema_missing: list[str] = []
        """Missing tables: the table-bound operations do not run (see the module docstring)."""
        self._isolation_missing: list[str] | None = None
        """The isolation task's scratch table when missing (None: not checked yet)."""
        self._next_level = LevelCycle()

    # -------------------------------------------------------------- helpers

    @contextmanager
    def lease(self) -> Iterator[psycopg.Connection[Any] | None]:
        """Borrow a pooled connection (sample ``PG pool acquire``); yields None when none came in time."""
        conn = None
        with timed(self.environment, "PG", "pool acquire") as meta:
            conn = self.pool.acquire()
            meta["context"]["pool_size"] = self.pool.size
        if conn is None:
            yield None
            return
        broken = False
        try:
            yield conn
        except BaseException:
            broken = True
            raise
        finally:
            if not broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                broken = True  # a failed statement inside a transaction: do not hand that session on
            self.pool.release(conn, broken=broken)

    def query(self, conn: psycopg.Connection[Any], name: str, params: tuple[Any, ...],
              begin: bool = False) -> list[Any] | None:
        """Run the named query (sample ``PG <name>``; with ``begin``, a BEGIN first, inside the same sample, as a
        driver's implicit transaction start would be); returns its rows, or None when it failed."""
        rows: list[Any] | None = None
        with timed(self.environment, "PG", name) as meta:
            if begin:
                conn.execute("BEGIN")
            cur = conn.execute(SQL[name], params)  # type: ignore[arg-type]
            rows = cur.fetchall() if cur.description else []
            meta["response_length"] = len(rows)
        return rows

    def run_query_file_query(self, conn: psycopg.Connection[Any]) -> None:
        """One query of ``--pg-queries`` by weight, the next in turn (sample ``PG query <name>``; reads only under
        ``--probe-read-only``); a failure carries the server's message."""
        qf = self.cfg.pg_query_file
        query = qf.pick(read_only=self.cfg.probe_read_only) if qf is not None else None
        if query is None:
            return
        self.run_probe_query(conn, query, read_only=self.cfg.probe_read_only or not query.write)

    def run_probe_query(self, conn: psycopg.Connection[Any], query: ProbeQuery, *, read_only: bool = True) -> None:
        """Run ``query`` in a session with ``default_transaction_read_only`` = ``read_only`` (sample
        ``PG query <name>``; the switch, when one is needed, is not timed)."""
        try:
            set_session_read_only(conn, read_only)
        except psycopg.Error as exc:
            fire(self.environment, "PG", query.metric_name, 0.0,
                 exception=ProbeFailure(pg_error_text(exc, self.cfg.pg_dsn)))
            return
        with timed(self.environment, "PG", query.metric_name) as meta:
            try:
                cur = conn.execute(query.sql, query.params)  # type: ignore[arg-type]
                rows = cur.fetchall() if cur.description else []
            except psycopg.Error as exc:
                raise ProbeFailure(pg_error_text(exc, self.cfg.pg_dsn)) from None
            meta["response_length"] = len(rows) if cur.description else max(cur.rowcount, 0)

    def _setup(self, conn: psycopg.Connection[Any]) -> bool:
        """Schema check (once per process), then, unless read-only, this user's thread and the shared rows; nothing
        with a query file (its statements need none of the bundled backend's tables)."""
        if self.cfg.pg_query_file is not None:
            return True
        try:
            self._schema_missing = schema_gate(conn, self.cfg, self.environment)
            if self._schema_missing:
                return False
            if self.cfg.probe_read_only:
                return True
            for sid in self.shared_ids:
                conn.execute(SQL["thread upsert"], (sid, "probe-shared", "probe shared row"))  # type: ignore[arg-type]
        except psycopg.Error as exc:
            logger.warning("PG probe setup failed: %s", exc)
            return False
        return self.query(conn, "thread upsert", (self.thread_id, self.user_id, "probe")) is not None

    def on_start(self) -> None:
        """A connect sample, the schema/rows this user needs, and a first lock-wait reading, whatever the task draw."""
        self.cfg = probe_config(self.environment)  # --probe-read-only / --probe-create-schema as the web UI left them
        self.pool = shared_pool(self.cfg)
        self.tasks = with_isolation_weight(type(self).tasks, PostgresProbeUser.isolation_transaction,
                                           self.cfg.pg_isolation_weight)
        self.connect()
        with self.lease() as conn:
            if conn is not None:
                self._ready = self._setup(conn)
                self.record_lock_stats(conn)

    # -------------------------------------------------------------- tasks

    @task(1)
    def connect(self) -> None:
        """A fresh connection (TCP, startup, auth, session settings), timed apart from the pool."""
        conn = None
        with timed(self.environment, "PG", "connect"):
            conn = connect_pg(self.cfg)
        if conn is not None:
            conn.close()

    @task(6)
    def message_flow(self) -> None:
        """What one chat message costs in PG: history, insert, thread update (each its own sample); read-only: history."""
        if self._schema_missing:
            return
        with self.lease() as conn:
            if conn is None:
                return
            if self.cfg.pg_query_file is not None:
                self.run_query_file_query(conn)
                return
            if not self._ready:
                self._ready = self._setup(conn)
                if not self._ready:
                    return
            self.query(conn, "thread history", (self.thread_id, self.history_limit))
            if self.cfg.probe_read_only:
                return
            self.query(conn, "message insert", (self.thread_id, self.user_id, "user", "probe message " + "x" * 200))
            self.query(conn, "thread update", (1, self.thread_id))

    @task(2)
    def contended_transaction(self) -> None:
        """A transaction updating a row all probe users share, then COMMIT (sample ``PG commit``) and lock stats; with
        ``--pg-queries``, one query of the file and lock stats instead."""
        if self.cfg.pg_query_file is not None:
            with self.lease() as conn:
                if conn is not None:
                    self.run_query_file_query(conn)
                    self.record_lock_stats(conn)
            return
        if self.cfg.probe_read_only:
            skip_write_task()
        if self._schema_missing:
            return
        with self.lease() as conn:
            if conn is None:
                return
            if not self._ready:  # the schema check must come before any statement on the tables
                self._ready = self._setup(conn)
                if not self._ready:
                    return
            shared = random.choice(self.shared_ids)
            run_id = uuid.uuid4().hex
            ok = self.query(conn, "thread update", (1, shared), begin=True) is not None
            ok = ok and self.query(conn, "run insert", (run_id, shared, self.user_id)) is not None
            ok = ok and self.query(conn, "run complete", ("completed", 1.0, run_id)) is not None
            if not ok:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error as exc:
                    logger.debug("rollback failed (connection will be dropped): %s", exc)
                return
            with timed(self.environment, "PG", "commit"):
                conn.execute("COMMIT")
            self.record_lock_stats(conn)

    def isolation_transaction(self) -> None:
        """A read-modify-write of the hot row of the probe's own table under the next isolation level, retried on
        serialization failures and deadlocks (``PG txn <level>``, ``PG serialization failure``, ``PG deadlock``: see
        :mod:`users.pg_isolation`), then lock stats. A task only with ``--pg-isolation-weight`` > 0; skipped under
        ``--probe-read-only``."""
        if self.cfg.probe_read_only:
            skip_write_task()
        if self._isolation_missing:
            return
        with self.lease() as conn:
            if conn is None:
                return
            if self._isolation_missing is None:
                try:
                    self._isolation_missing = isolation_gate(conn, self.cfg, self.environment)
                except psycopg.Error as exc:
                    logger.warning("PG probe: isolation table check failed: %s", exc)
                    return
                if self._isolation_missing:
                    return
            run_isolation_txn(self.environment, conn, self._next_level(),
                              lambda exc: pg_error_text(exc, self.cfg.pg_dsn))
            self.record_lock_stats(conn)

    def record_lock_stats(self, conn: psycopg.Connection[Any]) -> tuple[int, float] | None:
        """Sessions waiting for a lock in this database → gauges ``pg:lock_waiters``, ``pg:lock_wait_max_ms``."""
        result: tuple[int, float] | None = None
        with timed(self.environment, "PG", "lock stats"):
            row = conn.execute(LOCK_STATS_SQL).fetchone()  # type: ignore[arg-type]
            if row is None:
                raise ProbeFailure("lock stats query returned no row")
            result = (int(row[0]), float(row[1]))
        if result is not None:
            record_gauge(self.environment, "pg:lock_waiters", result[0])
            record_gauge(self.environment, "pg:lock_wait_max_ms", result[1])
        record_gauge(self.environment, "pg_probe:pool_in_use", self.pool.in_use)
        record_gauge(self.environment, "pg_probe:pool_size", self.pool.size)
        return result

    def on_stop(self) -> None:
        """Remove this user's own thread (its messages and runs cascade); nothing to remove when it wrote nothing."""
        if self.cfg.probe_read_only or self.cfg.pg_query_file is not None or self._schema_missing or not self._ready:
            return
        try:
            conn = self.pool.acquire(timeout=min(self.pool.timeout, 2.0))
        except (PoolTimeout, psycopg.Error) as exc:
            logger.debug("pg probe cleanup skipped: %s", exc)
            return
        broken = False
        try:
            conn.execute("DELETE FROM threads WHERE id = %s", (self.thread_id,))
        except psycopg.Error as exc:
            broken = True
            logger.debug("pg probe cleanup failed: %s", exc)
        finally:
            self.pool.release(conn, broken=broken)

