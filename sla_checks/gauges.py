"""Non-request time series (CPU, memory, Redis memory, lock waits ...) kept for reports and attribution.

Contract for every producer (resource monitor, probes): call ``record_gauge(environment, name, value)``.
Names are ``"<source>:<what>"``, e.g. ``"locust:cpu_percent"``, ``"target:rss_mb"``, ``"redis:used_memory_mb"``.

The SLA plugin (``environment.sla``) stores each reading in the current time bucket, ships it to the master with the
worker report like the samples, and the report shows it per window (``windows[].gauges``: avg, max, last) and as a
series (``gauges``: ``[[unix_ts, value], ...]``). Before the plugin is attached (or with ``--sla-off``) readings wait
in a bounded list on the environment. This function stays cheap: an append.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["record_gauge", "MAX_PENDING"]

MAX_PENDING = 10_000


def record_gauge(environment: Any, name: str, value: float, timestamp: float | None = None) -> None:
    """Record one gauge reading (wall-clock ``timestamp``, default now) on ``environment``."""
    ts = time.time() if timestamp is None else timestamp
    plugin = getattr(environment, "sla", None)
    if plugin is not None:
        plugin.record_gauge(name, float(value), ts)
        return
    store = getattr(environment, "sla_gauges", None)
    if store is None:
        store = []
        environment.sla_gauges = store
    if len(store) >= MAX_PENDING:
        del store[: MAX_PENDING // 2]
    store.append((ts, name, float(value)))
