"""Run-total counts of things that are not samples, and the chat messages still in flight at the stop.

Contract for every producer: call ``count(environment, name, n)``. Known names:

* :data:`CHAT_SENT` — chat messages sent (every process), so the report can state
  sent = completed + failed + in flight at stop. Report field ``messages.sent``.
* :data:`CHAT_NOT_SENT` — open model: messages whose time came but that no connected user could send within the
  reply deadline (each is also a failed ``WS agent_completed`` sample). Report field ``messages.not_sent``.
* :data:`ABANDONED_AT_STOP` — chat messages still in flight when their user was stopped. Report field
  ``abandoned_at_stop``.
* :data:`ANOMALY_PREFIX` + kind — protocol anomalies of the chat client (``malformed json``, ``unknown id``,
  ``late frame``, ``duplicate completed`` ... see :data:`tasks.timeline.ANOMALIES`), each also a failed
  ``WS protocol anomaly`` sample that thresholds judge. Report field ``anomalies``.
* :data:`RECONNECT_PREFIX` + cause — planned reconnects of the chat client by cause (``close 1001``, ``eof``,
  ``max age`` ...), each also a successful ``WS reconnect`` sample. Report field ``reconnects``.

A message in flight at the stop is also handed over with its age: ``in_flight_at_stop(environment, [(age_ms,
deadline_ms), ...])``. The master judges it at the final verdict (:meth:`sla_checks.engine.Engine.settle_in_flight`):
one that has waited longer than the longest latency limit of ``WS agent_completed`` fails as a sample at its age.

The SLA plugin (``state_of(environment).sla``) adds each count / in-flight message to its collector, which ships it to the
master with the worker report like the samples; the master sums every process's counts (:attr:`Store.counts
<sla_checks.engine.Store.counts>`) and gathers the in-flight messages (:attr:`Store.in_flight
<sla_checks.engine.Store.in_flight>`). Before the plugin is attached (or with ``--sla-off``) they wait in the
environment's state (:class:`~sla_checks.state.SuiteState` ``pending_counts``, ``pending_in_flight``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from sla_checks.count_names import (
    ABANDONED_AT_STOP,
    ANOMALY_PREFIX,
    CHAT_NOT_SENT,
    CHAT_SENT,
    RECONNECT_PREFIX,
)
from sla_checks.state import state_of

if TYPE_CHECKING:
    from locust.env import Environment

__all__ = [
    "count",
    "in_flight_at_stop",
    "ABANDONED_AT_STOP",
    "ANOMALY_PREFIX",
    "CHAT_SENT",
    "CHAT_NOT_SENT",
    "RECONNECT_PREFIX",
    "abandoned_at_stop",
    "anomalies",
    "reconnects",
]



def count(environment: Environment, name: str, n: int = 1) -> None:
    """Add ``n`` to the run-total count ``name`` of ``environment``'s run."""
    if not n:
        return
    state = state_of(environment)
    if state.sla is not None:
        state.sla.engine.collector.count(name, n)
        return
    state.pending_counts[name] = state.pending_counts.get(name, 0) + n


def in_flight_at_stop(environment: Environment, messages: Iterable[tuple[float, float]], at: float | None = None) -> int:
    """Hand over messages cut off by a user's stop at ``at`` (wall clock, default now), each as
    ``(age_ms, deadline_ms)``; also counts them as :data:`ABANDONED_AT_STOP`. Returns how many."""
    entries = [(float(age), float(deadline)) for age, deadline in messages]
    if not entries:
        return 0
    at = time.time() if at is None else at
    count(environment, ABANDONED_AT_STOP, len(entries))
    state = state_of(environment)
    if state.sla is not None:
        state.sla.engine.collector.in_flight(entries, at)
        return len(entries)
    state.pending_in_flight.extend((at, age, deadline) for age, deadline in entries)
    return len(entries)


def abandoned_at_stop(counts: Mapping[str, int]) -> int:
    """Messages in flight at the stop (judged or not), from merged counts."""
    return int(counts.get(ABANDONED_AT_STOP, 0))


def anomalies(counts: Mapping[str, int]) -> dict[str, int]:
    """Protocol anomalies per kind (sorted by kind), from merged counts."""
    n = len(ANOMALY_PREFIX)
    return {k[n:]: int(v) for k, v in sorted(counts.items()) if k.startswith(ANOMALY_PREFIX) and v}


def reconnects(counts: Mapping[str, int]) -> dict[str, int]:
    """Planned reconnects per cause (sorted by cause), from merged counts."""
    n = len(RECONNECT_PREFIX)
    return {k[n:]: int(v) for k, v in sorted(counts.items()) if k.startswith(RECONNECT_PREFIX) and v}
