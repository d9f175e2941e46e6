"""Storage schema, message-flow queries, Redis key shapes and the services' default addresses.

Shared contract: the reference backend (``reference_backend/``) runs these statements, and the infrastructure probes
(``users/``) run the very same ones so that a probe's ``PG thread history`` sample measures what a chat message pays;
the metric name of each named query is ``PG <key>`` / ``CH query <key>`` (:data:`PG_QUERIES`, :func:`ch_queries`).
SQL here must work on PostgreSQL >= 12 and on ClickHouse 18.16 (Debian's) as well as current ClickHouse.

PostgreSQL statements use asyncpg's ``$n`` placeholders, numbered in order of appearance; ``to_pyformat`` turns them
into psycopg's ``%s``.
"""

from __future__ import annotations

import re

# Where the backend keeps its data by default, and so where the probes look for it by default.
REDIS_URL = "redis://127.0.0.1:6379/0"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
CLICKHOUSE_URL = "http://127.0.0.1:8123"

PG_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS threads (
        id          text PRIMARY KEY,
        user_id     text NOT NULL,
        title       text NOT NULL DEFAULT '',
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now(),
        message_count integer NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS threads_user_idx ON threads (user_id, updated_at DESC)",
    """CREATE TABLE IF NOT EXISTS messages (
        id          bigserial PRIMARY KEY,
        thread_id   text NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        user_id     text NOT NULL,
        role        text NOT NULL,
        content     text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX IF NOT EXISTS messages_thread_idx ON messages (thread_id, created_at DESC)",
    """CREATE TABLE IF NOT EXISTS runs (
        id            text PRIMARY KEY,
        thread_id     text NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        user_id       text NOT NULL,
        status        text NOT NULL,
        started_at    timestamptz NOT NULL DEFAULT now(),
        completed_at  timestamptz,
        duration_ms   double precision
    )""",
    "CREATE INDEX IF NOT EXISTS runs_thread_idx ON runs (thread_id)",
)

# Named message-flow queries: the metric name of each is ``PG <key>``.
PG_QUERIES: dict[str, str] = {
    # Create the thread on first use; only its owner may write to it (the backend checks the returned user_id).
    "thread upsert": (
        "INSERT INTO threads (id, user_id, title) VALUES ($1, $2, $3) "
        "ON CONFLICT (id) DO UPDATE SET updated_at = now() RETURNING user_id"
    ),
    "message insert": "INSERT INTO messages (thread_id, user_id, role, content) VALUES ($1, $2, $3, $4) RETURNING id",
    "thread history": (
        "SELECT role, content, created_at FROM messages WHERE thread_id = $1 ORDER BY created_at DESC LIMIT $2"
    ),
    "thread update": "UPDATE threads SET updated_at = now(), message_count = message_count + $1 WHERE id = $2",
    "run insert": "INSERT INTO runs (id, thread_id, user_id, status) VALUES ($1, $2, $3, 'running')",
    "run complete": (
        "UPDATE runs SET status = $1, completed_at = now(), duration_ms = $2 WHERE id = $3"
    ),
}

CH_DATABASE = "agentchat"
CH_TABLE = "agent_state_history"


def ch_schema(database: str = CH_DATABASE) -> tuple[str, ...]:
    """The ClickHouse DDL with the agent-event table in ``database`` (the probes' ``--clickhouse-database``)."""
    return (
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"""CREATE TABLE IF NOT EXISTS {database}.{CH_TABLE} (
        event_date  Date,
        ts          DateTime,
        ts_ms       UInt16,
        run_id      String,
        thread_id   String,
        user_id     String,
        agent_name  String,
        event_type  String,
        tool_name   String,
        duration_ms Float64
    ) ENGINE = MergeTree() PARTITION BY toYYYYMM(event_date) ORDER BY (event_date, user_id, ts)""",
    )


CH_SCHEMA: tuple[str, ...] = ch_schema()

CH_COLUMNS: tuple[str, ...] = (
    "event_date", "ts", "ts_ms", "run_id", "thread_id", "user_id", "agent_name", "event_type", "tool_name",
    "duration_ms",
)

# Named analytics queries: the metric name of each is ``CH query <key>``.
def ch_queries(database: str = CH_DATABASE) -> dict[str, str]:
    """The named analytics queries (all reads) against the agent-event table in ``database``."""
    return {
        "agent stage summary": (
            f"SELECT agent_name, event_type, count() AS n, avg(duration_ms) AS avg_ms "
            f"FROM {database}.{CH_TABLE} WHERE event_date >= today() - 1 AND ts >= now() - 300 "
            f"GROUP BY agent_name, event_type ORDER BY agent_name, event_type"
        ),
    }


CH_QUERIES: dict[str, str] = ch_queries()

# Redis key shapes used by the backend (probes use the same shapes).
REDIS_AGENT_STATE_KEY = "agent_state:{run_id}"
REDIS_SESSION_KEY = "session:{user_id}"
REDIS_RATE_KEY = "ratelimit:{user_id}:{second}"

_PLACEHOLDER = re.compile(r"\$(\d+)")
_OBJECT_NAME = re.compile(r"IF NOT EXISTS\s+(\w+)", re.I)

# Ask this (with the object's name as its one parameter) before running a PG_SCHEMA statement: a
# ``CREATE INDEX IF NOT EXISTS`` takes a SHARE lock on its table even when the index exists, which blocks the writes
# of running backends (and waits behind any lock fault).
PG_OBJECT_EXISTS = "SELECT to_regclass($1) IS NOT NULL"


def schema_object_name(stmt: str) -> str | None:
    """The table or index a ``CREATE ... IF NOT EXISTS name`` statement creates (None for other statements)."""
    m = _OBJECT_NAME.search(stmt)
    return m.group(1) if m else None


def to_pyformat(sql: str) -> str:
    """Turn asyncpg ``$1 .. $n`` placeholders (each used once, in order) into psycopg ``%s``."""
    numbers = [int(n) for n in _PLACEHOLDER.findall(sql)]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"placeholders must be $1..$n in order, each once; got {numbers} in {sql!r}")
    return _PLACEHOLDER.sub("%s", sql)
