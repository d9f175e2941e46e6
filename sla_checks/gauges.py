"""Non-request time series (CPU, memory, Redis memory, lock waits ...) kept for reports and attribution.

Contract for every producer (resource monitor, probes): call ``record_gauge(environment, name, value)``.
Names are ``"<source>:<what>"``, e.g. ``"locust:cpu_percent"``, ``"target:rss_mb"``, ``"redis:used_memory_mb"``.
The SLA plugin owns storage, windowing and shipping to the master; this function must stay cheap.
"""

from __future__ import annotations

import time
from typing import Any


def record_gauge(environment: Any, name: str, value: float, timestamp: float | None = None) -> None:
    """Record one gauge reading (wall-clock ``timestamp``, default now) on ``environment``."""
    store = getattr(environment, "sla_gauges", None)
    if store is None:
        store = []
        environment.sla_gauges = store
    store.append((time.time() if timestamp is None else timestamp, name, float(value)))
