"""Cleanup check at the end of a chat run: the backend left no orphan agent runs behind (``--cleanup-check``).

After the users have stopped (``test_stop``, in the process where the chat users ran: a local run, or each worker),
one read-only PostgreSQL session asks the backend's store about the runs of *this run's own threads* (the thread ids
its chat users sent messages on, :mod:`users.run_threads`): how many of them are still ``status = 'running'``. Every
connection of the run is closed by then, so no run of it can still be working; a backend must close a run it stopped
(a graceful timeout's error frame, a client gone away) instead of leaving it ``running``. The check polls every
0.5 s until none is left, for at most ``min(--ws-reply-timeout, 10 s)`` (the backend may close runs in the
background); what is still ``running`` then is an orphan.

It is recorded as one ``BACKEND orphan runs`` sample whose value (``response_time``) is the number of orphans, a
failure when it is not 0 (``max < 1`` judges it; scenario ``graceful-timeout-vs-hang`` turns the check on and requires
the sample). The store is the bundled backend's schema (``contract.schema``: table ``runs`` with ``thread_id`` and
``status``), read at ``--pg-dsn`` when that is given, or at the default DSN when the target (``--host``) is on this
machine (the bundled backend). When the store cannot be read (no ``--pg-dsn`` for a remote target, no such table, no
connection) or the backend stored no run under the run's threads, the log says ``cleanup not checked: <why>`` and no
sample is recorded: a required threshold then fails as "no samples", never passes.

Usage: ``--cleanup-check`` (or scenario ``graceful-timeout-vs-hang``), with ``--pg-dsn`` against a remote backend.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from config.errors import SuiteError
from config.options import add_option
from contract.schema import PG_DSN
from users import run_threads
from users.probe_base import redact_url
from users.probe_options import is_loopback_host

logger = logging.getLogger(__name__)

__all__ = ["METRIC", "ORPHAN_SQL", "check_dsn", "orphan_failure", "settle_seconds"]

BACKEND = "BACKEND"
ORPHANS = "orphan runs"
METRIC = f"{BACKEND} {ORPHANS}"
SETTLE_CAP_S = 10.0
POLL_S = 0.5
STATEMENT_TIMEOUT_MS = 5000
ORPHAN_SQL = "SELECT count(*) FILTER (WHERE status = 'running'), count(*) FROM runs WHERE thread_id = ANY(%s)"
"""(runs still running, runs stored) among the given thread ids."""


class OrphanRuns(SuiteError):
    """Runs of this test's threads left ``running`` after every connection closed."""

    def __repr__(self) -> str:
        return str(self)


class NotChecked(SuiteError):
    """The store cannot be read (the reason is the message)."""


# -- pure -----------------------------------------------------------------------------------------------------------
def check_dsn(pg_dsn: str, host: str | None) -> tuple[str | None, str]:
    """(DSN to read, "") or (None, why not): ``--pg-dsn`` when given, the default one for a target on loopback."""
    if pg_dsn and pg_dsn != PG_DSN:
        return pg_dsn, ""
    target = urllib.parse.urlsplit(host or "").hostname or ""
    if target and is_loopback_host(target):
        return PG_DSN, ""
    return None, (f"the target {host or '(no --host)'} is not on this machine and no --pg-dsn names its database")


def settle_seconds(reply_timeout: float) -> float:
    """How long the check waits for runs to be closed after the stop: the reply deadline, at most 10 s."""
    return max(POLL_S, min(float(reply_timeout), SETTLE_CAP_S))


def orphan_failure(running: int, settle_s: float) -> OrphanRuns | None:
    """The sample's failure for ``running`` orphans (None: clean)."""
    if running <= 0:
        return None
    return OrphanRuns(f"orphan runs: {running} run(s) of this test's threads still 'running' {settle_s:g} s after "
                      "its connections closed")


# -- I/O ------------------------------------------------------------------------------------------------------------
def _connect(dsn: str) -> Any:
    import psycopg

    from users.postgres_probe import _ensure_cooperative

    _ensure_cooperative()
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5, application_name="locust-cleanup-check")
    conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}; "  # type: ignore[arg-type]
                 f"SET lock_timeout = {STATEMENT_TIMEOUT_MS}; SET default_transaction_read_only = on")
    return conn


def count_runs(conn: Any, thread_ids: list[str]) -> tuple[int, int]:
    row = conn.execute(ORPHAN_SQL, (thread_ids,)).fetchone()
    return int(row[0] or 0), int(row[1] or 0)


def check(environment: Environment, thread_ids: list[str], dsn: str, settle_s: float) -> tuple[int, int]:
    """(orphans, runs stored) after waiting up to ``settle_s`` for the running ones to be closed."""
    import psycopg

    try:
        with gevent.Timeout(settle_s + 15.0, NotChecked(f"no answer within {settle_s + 15.0:g} s")):
            conn = _connect(dsn)
            try:
                give_up = time.monotonic() + settle_s
                running, total = count_runs(conn, thread_ids)
                while running and time.monotonic() < give_up:
                    gevent.sleep(POLL_S)
                    running, total = count_runs(conn, thread_ids)
                return running, total
            finally:
                conn.close()
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())[:300].replace(dsn, redact_url(dsn))
        raise NotChecked(f"{redact_url(dsn)}: {type(exc).__name__}: {text}") from None


def run_check(environment: Environment) -> int | None:
    """The check of this process's threads: the number of orphans recorded, or None (not checked: logged why)."""
    options = environment.parsed_options
    thread_ids = run_threads.threads()
    if not thread_ids:
        logger.warning("Cleanup not checked: no chat message was sent in this process")
        return None
    dsn, why = check_dsn(str(getattr(options, "pg_dsn", "") or ""), environment.host)
    if dsn is None:
        logger.warning("Cleanup not checked: %s (give --pg-dsn to read the backend's runs)", why)
        return None
    settle_s = settle_seconds(float(getattr(options, "ws_reply_timeout", SETTLE_CAP_S) or SETTLE_CAP_S))
    started = time.perf_counter()
    try:
        running, total = check(environment, thread_ids, dsn, settle_s)
    except NotChecked as exc:
        logger.warning("Cleanup not checked: cannot read the backend's runs: %s", exc)
        return None
    if total == 0:
        logger.warning("Cleanup not checked: the backend stored no run under this test's %d thread id(s) at %s "
                       "(another schema, or it names threads its own way)", len(thread_ids), redact_url(dsn))
        return None
    failure = orphan_failure(running, settle_s)
    environment.events.request.fire(request_type=BACKEND, name=ORPHANS, response_time=float(running),
                                    response_length=0, exception=failure, context={})
    more = f" (only the first {len(thread_ids)} threads kept)" if run_threads.overflowed() else ""
    log = logger.error if running else logger.info
    log("Cleanup check: %d orphan run(s) of %d stored for this test's %d thread(s)%s, read in %.1f s", running,
        total, len(thread_ids), more, time.perf_counter() - started)
    return running


# -- hooks ----------------------------------------------------------------------------------------------------------
@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    add_option(parser, "--cleanup-check", group="Chat users", default=False, action="store_true",
               help="After the users stop, count the agent runs of this run's threads the backend left 'running' "
                    "(read-only, in its PostgreSQL: --pg-dsn, or the bundled backend's on loopback) as the sample "
                    "'BACKEND orphan runs' (value = orphans; scenario graceful-timeout-vs-hang turns it on)")


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kw: Any) -> None:
    run_threads.clear()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kw: Any) -> None:
    # registered at import, so it runs before the SLA engine's test_stop listener (added at init) closes the run
    options = environment.parsed_options
    if options is None or not getattr(options, "cleanup_check", False):
        return
    if isinstance(environment.runner, MasterRunner):
        logger.info("Cleanup check: runs on the workers, where the chat users' threads are known")
        return
    run_check(environment)
