"""PostgreSQL tier (asyncpg pool): threads, messages, runs and the thread-history query of ``contract.schema``.

Every message-level call has one deadline (``timeout_ms``) covering pool acquire and all its statements; asyncpg
cancels a statement server-side when its share of the deadline runs out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from contract.schema import PG_OBJECT_EXISTS, PG_QUERIES, PG_SCHEMA, schema_object_name
from reference_backend.tiers import TierError, TierTimeout, reraise_if_cancelled

log = logging.getLogger(__name__)

Q = PG_QUERIES

SESSION_REBUILD_SQL = (
    "SELECT (SELECT count(*) FROM messages WHERE user_id = $1 AND role = 'user') AS messages, "
    "(SELECT id FROM threads WHERE user_id = $1 ORDER BY updated_at DESC LIMIT 1) AS last_thread_id, "
    "(SELECT id FROM runs WHERE user_id = $1 ORDER BY started_at DESC LIMIT 1) AS last_run_id"
)
"""The cache fallback: the session Redis keeps for a user (message count, last thread, last run), rebuilt from the
rows it summarises. ``messages`` has no index on ``user_id``, so the count reads the whole table: the work the
session cache saves on every message."""


async def ensure_schema(conn: asyncpg.Connection) -> int:
    """Create what is missing of PG_SCHEMA; returns the number of statements run.

    Each statement runs only when its object is missing: ``CREATE INDEX IF NOT EXISTS`` takes a SHARE lock on its
    table even when the index exists, which blocks (and can deadlock with) the writes of running backends.
    """
    ran = 0
    for stmt in PG_SCHEMA:
        name = schema_object_name(stmt)
        if name and await conn.fetchval(PG_OBJECT_EXISTS, name):
            continue
        async with conn.transaction():
            # Serialise concurrent creation by several backends on the shared database.
            await conn.execute("SELECT pg_advisory_xact_lock(724242)")
            await conn.execute(stmt)
        ran += 1
    return ran


class ThreadOwnershipError(Exception):
    """The thread exists and belongs to another user."""


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """Pool reset hook. asyncpg still rolls back an open transaction on release; the backend sets no session state
    (no SET, LISTEN, advisory or cursor state), so the default reset query (``RESET ALL; UNLISTEN *; ...``), an extra
    round trip per release, is skipped."""


class _Op:
    """Name of the statement in progress, for the error message when the transaction's deadline fires."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class PostgresTier:
    def __init__(self, dsn: str, pool_size: int, timeout_ms: float, work_ms: float = 0.0) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self.timeout_ms = timeout_ms
        self.work_ms = work_ms  # pg_sleep in begin_message: how long each message holds its connection
        self._waiting_since: list[float] = []  # time.monotonic() of each caller waiting for a pooled connection
        self.acquire_timeouts = 0  # callers whose deadline ran out while still waiting (since start)
        self.pool: asyncpg.Pool | None = None
        self.schema_ready = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Create the pool and the schema; safe to call again after a failure."""
        async with self._lock:
            if self.pool is None:
                self.pool = await asyncpg.create_pool(
                    self.dsn, min_size=0, max_size=self.pool_size, timeout=self.timeout_ms / 1000.0,
                    command_timeout=None, max_inactive_connection_lifetime=60.0, reset=_no_session_reset,
                )
            if not self.schema_ready:
                async with self.pool.acquire(timeout=self.timeout_ms / 1000.0) as conn:
                    await ensure_schema(conn)
                self.schema_ready = True

    def _require_pool(self, operation: str) -> asyncpg.Pool:
        if self.pool is None:
            raise TierError("postgres", operation, "not connected yet")
        return self.pool

    async def _with_conn(self, operation: str, fn):  # noqa: ANN001
        """Run ``fn(conn, op)`` on a pooled connection; one deadline covers pool acquire and every statement
        (``asyncio.timeout``: no task per statement; asyncpg cancels a running statement server-side)."""
        pool = self._require_pool(operation)
        op = _Op("pool acquire")
        conn = None
        try:
            async with asyncio.timeout(self.timeout_ms / 1000.0):
                since = time.monotonic()
                self._waiting_since.append(since)
                try:
                    conn = await pool.acquire()
                finally:
                    self._waiting_since.remove(since)
                reraise_if_cancelled()
                op.name = operation
                result = await fn(conn, op)
            reraise_if_cancelled()
            return result
        except TimeoutError:
            if conn is None:
                self.acquire_timeouts += 1
            raise TierTimeout("postgres", op.name, self.timeout_ms) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
            what = "connect" if conn is None else op.name
            raise TierError("postgres", what, f"{type(e).__name__}: {str(e)[:200]}") from None
        finally:
            if conn is not None:
                try:
                    await asyncio.wait_for(pool.release(conn), 5.0)
                except Exception:  # noqa: BLE001 - a broken connection is dropped by the pool
                    conn.terminate()

    async def begin_message(self, *, thread_id: str, user_id: str, content: str, run_id: str,
                            history_limit: int) -> list[dict[str, Any]]:
        """Upsert the thread (refusing another user's), read its history, store the message, open the run."""

        async def go(conn: asyncpg.Connection, op: _Op) -> list[dict[str, Any]]:
            async with conn.transaction():
                op.name = "thread upsert"
                owner = await conn.fetchval(Q["thread upsert"], thread_id, user_id, content[:60])
                if owner != user_id:
                    raise ThreadOwnershipError(thread_id)
                op.name = "thread history"
                rows = await conn.fetch(Q["thread history"], thread_id, history_limit)
                op.name = "message insert"
                await conn.fetchval(Q["message insert"], thread_id, user_id, "user", content)
                op.name = "run insert"
                await conn.execute(Q["run insert"], run_id, thread_id, user_id)
                if self.work_ms > 0:
                    op.name = "message work"
                    await conn.execute("SELECT pg_sleep($1)", self.work_ms / 1000.0)
            return [dict(r) for r in rows]

        return await self._with_conn("begin message", go)

    async def complete_message(self, *, thread_id: str, user_id: str, response: str, run_id: str, status: str,
                               duration_ms: float) -> None:
        async def go(conn: asyncpg.Connection, op: _Op) -> None:
            async with conn.transaction():
                op.name = "message insert"
                await conn.fetchval(Q["message insert"], thread_id, user_id, "assistant", response)
                op.name = "run complete"
                await conn.execute(Q["run complete"], status, duration_ms, run_id)
                # counts both messages of the exchange (the upsert at the start already bumped updated_at)
                op.name = "thread update"
                await conn.execute(Q["thread update"], 2, thread_id)

        await self._with_conn("complete message", go)

    async def rebuild_session(self, user_id: str,
                              write_back: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> dict[str, Any]:
        """The user's session as the Redis cache would hold it, from PostgreSQL (:data:`SESSION_REBUILD_SQL`), then
        ``write_back(session)`` (the cache refill) before the pooled connection is released: the rebuild and the
        refill are one unit of work, so while Redis is slow each fallback holds a PostgreSQL connection for as long
        as the refill waits, and the pool queues (the Redis -> PostgreSQL cascade of docs/scenarios.md)."""

        async def go(conn: asyncpg.Connection, op: _Op) -> dict[str, Any]:
            row = await conn.fetchrow(SESSION_REBUILD_SQL, user_id)
            session = {k: v for k, v in dict(row or {}).items() if v is not None}
            if write_back is not None:
                op.name = "session rebuild (cache refill)"
                await write_back(session)
            return session

        return await self._with_conn("session rebuild", go)

    async def fail_run(self, run_id: str, status: str, duration_ms: float) -> None:
        async def go(conn: asyncpg.Connection, op: _Op) -> None:
            await conn.execute(Q["run complete"], status, duration_ms, run_id)

        await self._with_conn("run complete", go)

    async def check(self) -> None:
        if self.pool is None or not self.schema_ready:
            try:
                await asyncio.wait_for(self.start(), self.timeout_ms / 1000.0)
            except TimeoutError:
                raise TierTimeout("postgres", "connect", self.timeout_ms) from None
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                raise TierError("postgres", "connect", f"{type(e).__name__}: {str(e)[:200]}") from None

        async def go(conn: asyncpg.Connection, op: _Op) -> None:
            await conn.fetchval("SELECT 1")

        await self._with_conn("select 1", go)

    def stats(self) -> dict[str, float]:
        """The pool's state for ``/health``: connections open / at most, in use, callers waiting and the longest
        wait in progress (ms), acquire timeouts since start."""
        pool = self.pool
        size = pool.get_size() if pool is not None else 0
        idle = pool.get_idle_size() if pool is not None else 0
        waiting = self._waiting_since
        oldest_ms = round((time.monotonic() - min(waiting)) * 1000.0, 1) if waiting else 0.0
        return {"size": size, "max": self.pool_size, "in_use": size - idle, "waiting": len(waiting),
                "wait_ms": oldest_ms, "acquire_timeouts": self.acquire_timeouts}

    async def close(self) -> None:
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), 5.0)
            except Exception:  # noqa: BLE001
                self.pool.terminate()
