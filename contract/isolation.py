"""The PostgreSQL probe's isolation-level scratch table: one hot row every probe transaction reads and writes.

Shared by the probe (``users.pg_isolation``, psycopg: ``%s`` placeholders via :func:`contract.schema.to_pyformat`) and
the reference backend's ``pg-hot-row`` fault (asyncpg: ``$n``), which plays a concurrent writer on the same row. The
table is the probe's own, apart from the backend's ``threads``/``messages``/``runs``: nothing of the backend reads it.
"""

from __future__ import annotations

ISOLATION_TABLE = "probe_isolation"
"""The probe's scratch table (in the probe's database, ``--pg-dsn``)."""

ISOLATION_DDL = (
    "CREATE TABLE IF NOT EXISTS probe_isolation ("
    "key text PRIMARY KEY, value bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now())"
)
HOT_KEY = "hot"
"""The contended row: every probe user (and the ``pg-hot-row`` fault) read-modify-writes this one."""

ISOLATION_SEED_ROW = "INSERT INTO probe_isolation (key) VALUES ($1) ON CONFLICT (key) DO NOTHING"
ISOLATION_READ = "SELECT value FROM probe_isolation WHERE key = $1"
ISOLATION_WRITE = "UPDATE probe_isolation SET value = $1, updated_at = now() WHERE key = $2"
"""The write of the read-modify-write: the value the transaction read, plus one (computed by the client)."""
HOT_ROW_BUMP = "UPDATE probe_isolation SET value = value + 1, updated_at = now() WHERE key = $1"
"""The ``pg-hot-row`` fault's write (it holds the row lock until it commits)."""

ISOLATION_LEVELS: dict[str, str] = {
    "read_committed": "READ COMMITTED",
    "repeatable_read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}
"""Metric suffix (``PG txn <suffix>``) → the SQL isolation level."""

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
RETRYABLE_SQLSTATES: dict[str, str] = {SERIALIZATION_FAILURE: "serialization failure", DEADLOCK_DETECTED: "deadlock"}
"""SQLSTATEs a transaction is retried on → the metric of their own failed sample (``PG serialization failure``,
``PG deadlock``)."""
