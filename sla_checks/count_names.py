"""Names of the run-total counts (pure: no Locust, no state), shared by the producers (:mod:`sla_checks.counters`)
and the engine and report that read them back from the merged counts."""

from __future__ import annotations

__all__ = ["ABANDONED_AT_STOP", "ANOMALY_PREFIX", "CHAT_SENT", "CHAT_NOT_SENT", "RECONNECT_PREFIX"]

ABANDONED_AT_STOP = "chat:abandoned at stop"
ANOMALY_PREFIX = "chat anomaly:"
CHAT_SENT = "chat:sent"
CHAT_NOT_SENT = "chat:not sent"
RECONNECT_PREFIX = "chat reconnect:"
