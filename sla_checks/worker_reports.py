"""Workers' final reports: the runner-level part of getting every sample of a run's last seconds judged.

* worker: a second ``stop()`` waits for the one under way (:func:`serialize_stops`); a worker that quits by itself
  stops its users and sends its final report before Locust's ``quit`` (:func:`send_final_report`);
* master: when the run ends for good, every connected worker is asked to quit and waited for, so its final report
  arrives before the verdict (:func:`collect_final_reports`).
"""

from __future__ import annotations

import logging
import time

import gevent
import gevent.lock
from locust.exception import RPCError
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

__all__ = ["FINAL_REPORT_GRACE_S", "collect_final_reports", "send_final_report", "serialize_stops"]

logger = logging.getLogger("sla_checks.plugin")  # the plugin's log lines keep its name

FINAL_REPORT_GRACE_S = 5.0
"""How long past ``--stop-timeout`` the master waits for a quitting worker's final report (and a worker's second
``stop()`` for the one under way)."""


def collect_final_reports(runner: MasterRunner, stop_timeout: float | None) -> tuple[set[str], float]:
    """Ask every worker still connected to quit and wait until each has (``quit`` follows its final report), at most
    ``stop_timeout`` + :data:`FINAL_REPORT_GRACE_S`: the workers that did not (none: ``set()``) and that limit.

    Locust's ``MasterRunner.quit()`` fires ``test_stop`` before it sends the same ``quit`` and then waits only
    0.5 s; a worker stops its users first (within ``--stop-timeout``), so its final report comes later."""
    waiting = {c.id for c in runner.clients.values() if c.state != STATE_MISSING}
    if not waiting:
        return set(), 0.0
    for client_id in waiting:
        runner.send_message("quit", client_id=client_id)
    limit = float(stop_timeout or 0.0) + FINAL_REPORT_GRACE_S
    deadline = time.monotonic() + limit
    while waiting and time.monotonic() < deadline:
        gevent.sleep(0.05)
        waiting = {i for i in waiting if i in runner.clients and runner.clients[i].state != STATE_MISSING}
    return waiting, limit


def send_final_report(runner: WorkerRunner) -> None:
    """Stop the worker's users (within ``--stop-timeout``) and send one report with every sample left."""
    runner.stop()
    try:
        runner._send_stats()  # report_to_master: Locust's stats and the SLA plugin's payload
    except RPCError as e:
        logger.warning("SLA: the final report to the master failed (%s); its samples are lost", e)


def serialize_stops(runner: WorkerRunner) -> None:
    """Let a second ``stop()`` on the worker wait until the one under way has ended, then return (state stopped).

    When the master's ``quit`` arrives while the worker stops its users for its own quit (Ctrl-C to both), Locust
    runs ``stop()`` again at once; it asks users that are not stopping yet to stop a second time, and the user
    raises "Tried to stop User in an unexpected state: stopping". The wait is bounded: the first stop ends within
    ``--stop-timeout`` (Locust kills the users still running then)."""
    stop = runner.stop
    lock = gevent.lock.Semaphore()

    def serialized_stop() -> None:
        acquired = lock.acquire(timeout=float(runner.environment.stop_timeout or 0.0) + FINAL_REPORT_GRACE_S)
        try:
            stop()
        finally:
            if acquired:
                lock.release()

    runner.stop = serialized_stop  # type: ignore[method-assign]
