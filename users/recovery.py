"""Recovery after a demand drop: how long until a chat user's replies are back within the reply SLA.

When a scenario lowers the load (a :class:`scenarios.shapes.Stepped` step with fewer messages in flight per user),
:func:`scenarios.steps.set_inflight` notes the moment in ``ChatSettings.demand_dropped_at`` (``time.monotonic()`` of
that process: the master's or, by message, each worker's). From then on each chat user's :class:`RecoveryWatch`
looks at its replies: the first one that was *sent after the drop*, completed without error and within
:data:`REPLY_SLA_MS` ends its recovery, and its ``WS recovery`` sample is the time from the drop to that reply's end
(ms). One sample per user and drop: ``WS recovery`` ``max < 5000`` means every user had replies within SLA again
within 5 s of the demand falling. A reply sent before the drop never counts (it may still be queued behind the peak's
backlog: that is what recovery measures), nor does a failed or slow one after it.

Pure: no I/O, times passed in.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["RECOVERY_NAME", "REPLY_SLA_MS", "RecoveryWatch"]

RECOVERY_NAME = "recovery"
"""The sample's name: request type ``WS``, so the metric is ``WS recovery`` (docs/protocol.md)."""
REPLY_SLA_MS = 2000.0
"""A reply within this many ms from its send is back within the seed plan's 2 s reply SLA."""


class RecoveryWatch:
    """One chat user's recovery after each demand drop (see the module docstring)."""

    def __init__(self, sla_ms: float = REPLY_SLA_MS) -> None:
        self.sla_ms = sla_ms
        self._done_for: float | None = None  # the drop this user already recovered from

    def observe(self, dropped_at: float | None, sent_at: float, replies: Iterable[tuple[bool, float]]) -> float | None:
        """``replies``: ``(ok, latency_ms)`` of messages all sent at ``sent_at`` (one closed-model round). Returns the
        recovery in ms when this round ends the user's recovery from the drop at ``dropped_at``, else None."""
        if dropped_at is None or dropped_at == self._done_for or sent_at < dropped_at:
            return None
        good = [latency for ok, latency in replies if ok and latency <= self.sla_ms]
        if not good:
            return None
        self._done_for = dropped_at
        return max(0.0, (sent_at + min(good) / 1000.0 - dropped_at) * 1000.0)
