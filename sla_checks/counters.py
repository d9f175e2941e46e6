"""Run-total counts of things that are not samples, so the SLA report accounts for them (never judged).

Contract for every producer: call ``count(environment, name, n)``. Known names:

* :data:`ABANDONED_AT_STOP` — chat messages still in flight when their user was stopped (the run ended before
  their reply; no sample was recorded for them). Report field ``abandoned_at_stop``.
* :data:`ANOMALY_PREFIX` + kind — protocol anomalies of the chat client (``malformed json``, ``unknown id``,
  ``late frame``, ``duplicate completed`` ... see :data:`tasks.timeline.ANOMALIES`). Report field ``anomalies``.

The SLA plugin (``environment.sla``) adds each count to its collector, which ships it to the master with the worker
report like the samples; the master sums every process's counts (:attr:`sla_checks.engine.Store.counts`). Before
the plugin is attached (or with ``--sla-off``) counts wait in a dict on the environment (``sla_counts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["count", "ABANDONED_AT_STOP", "ANOMALY_PREFIX", "abandoned_at_stop", "anomalies"]

ABANDONED_AT_STOP = "chat:abandoned at stop"
ANOMALY_PREFIX = "chat anomaly:"


def count(environment: Any, name: str, n: int = 1) -> None:
    """Add ``n`` to the run-total count ``name`` on ``environment``."""
    if not n:
        return
    plugin = getattr(environment, "sla", None)
    if plugin is not None:
        plugin.engine.collector.count(name, n)
        return
    pending = getattr(environment, "sla_counts", None)
    if pending is None:
        pending = {}
        environment.sla_counts = pending
    pending[name] = pending.get(name, 0) + n


def abandoned_at_stop(counts: Mapping[str, int]) -> int:
    """Messages abandoned at the stop, from merged counts."""
    return int(counts.get(ABANDONED_AT_STOP, 0))


def anomalies(counts: Mapping[str, int]) -> dict[str, int]:
    """Protocol anomalies per kind (sorted by kind), from merged counts."""
    n = len(ANOMALY_PREFIX)
    return {k[n:]: int(v) for k, v in sorted(counts.items()) if k.startswith(ANOMALY_PREFIX) and v}
