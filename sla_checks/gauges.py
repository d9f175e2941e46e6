"""Non-request time series (CPU, memory, Redis memory, lock waits ...) kept for reports and attribution.

Contract for every producer (resource monitor, probes): call ``record_gauge(environment, name, value)``.
Names are ``"<source>:<what>"``, e.g. ``"locust:cpu_percent"``, ``"target:rss_mb"``, ``"redis:used_memory_mb"``.

The SLA plugin (``state_of(environment).sla``) stores each reading in the current time bucket, ships it to the master with the
worker report like the samples, and the report shows it per window (``windows[].gauges``: avg, max, last) and as a
series (``gauges``: ``[[unix_ts, value], ...]``). Before the plugin is attached (or with ``--sla-off``) readings wait
in a bounded list in the environment's state (:class:`~sla_checks.state.SuiteState` ``pending_gauges``). This function stays cheap: an append.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sla_checks.state import state_of

if TYPE_CHECKING:
    from locust.env import Environment

__all__ = ["record_gauge", "MAX_PENDING"]

MAX_PENDING = 10_000


def record_gauge(environment: Environment, name: str, value: float, timestamp: float | None = None) -> None:
    """Record one gauge reading (wall-clock ``timestamp``, default now) on ``environment``."""
    ts = time.time() if timestamp is None else timestamp
    state = state_of(environment)
    if state.sla is not None:
        state.sla.record_gauge(name, float(value), ts)
        return
    store = state.pending_gauges
    if len(store) >= MAX_PENDING:
        del store[: MAX_PENDING // 2]
    store.append((ts, name, float(value)))
