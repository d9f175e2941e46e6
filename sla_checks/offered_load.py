"""What the offered load lets a run reach (pure): the message-rate cap of the chat users' load model.

A closed-model chat user sends ``inflight`` messages, waits for their replies, thinks, and starts again, so N users
send at most ``N × inflight / (think + reply)`` messages per second (Little's law), however fast the backend could
go; with instant replies at most ``N × inflight / think``. A login→send→receive user (``FLOW``) adds
``N / (think + flow time)``. In the open model (``--ws-arrival-rate``) the schedule is the cap, and a generator that
falls behind it (``WS generator lag``) offers less.

When an ``rps >= X`` line fails and that cap is below X (or the cap is within ~10 % of X and the run delivered what
its load offered), the load, not the backend, kept the run under its limit: :meth:`RpsCap.caps`.

Usage::

    load = OfferedLoad(chat_users=10, peak_users=10, chat_concurrency=10, think_s=1.0)
    cap = rps_cap(load, "WS agent_completed", reply_ms=450.0)   # cap.cap == 6.9 msg/s
    if cap is not None and cap.caps(limit=10.0, measured=6.8):
        print(cap.describe(limit=10.0))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["OfferedLoad", "RpsCap", "rps_cap", "time_average", "CHAT_METRIC", "FLOW_METRIC", "LAG_METRIC"]

CHAT_METRIC = "WS agent_completed"
FLOW_METRIC = "FLOW login→send→receive"
LAG_METRIC = "WS generator lag"
NEAR = 0.1
"""Relative margin: a cap within 10 % of the limit, a measured rate within 10 % of the cap."""
FIT = 0.5
"""A measured rate more than 50 % above the cap contradicts the model (a user class with its own, shorter wait time).
Short runs do beat the cap a little: a user's first message goes out without a think time before it."""
LAG_BEHIND_MS = 1000.0
"""Open model: a generator lag p95 from which the generator counts as behind its schedule."""


@dataclass(frozen=True)
class OfferedLoad:
    """The load a run offered over its judged span (time averages of the runner's user counts)."""

    chat_users: float = 0.0
    """Closed- or open-model chat users (``ChatUser`` and subclasses) running, on average."""
    flow_users: float = 0.0
    """Login→send→receive users (``ChatFlowUser``) running, on average."""
    peak_users: int = 0
    """Most chat + flow users seen running at once."""
    chat_concurrency: float = 0.0
    """Average of chat users × ``--ws-inflight`` (a stepped scenario changes both)."""
    think_s: float = 1.0
    """``--ws-think-time``: the closed model's pause between rounds."""
    arrival_rate: float | None = None
    """Open model: the ``--ws-arrival-rate`` schedule's mean rate over the judged span (messages/s); None: closed."""

    @property
    def inflight(self) -> float:
        return self.chat_concurrency / self.chat_users if self.chat_users > 0 else 1.0


@dataclass(frozen=True)
class RpsCap:
    """The most messages per second a run's load could produce for one metric."""

    model: str
    """``"closed"`` or ``"open"``."""
    cap: float
    """msg/s the load reaches at the measured reply time (closed) or its schedule (open)."""
    instant_cap: float | None
    """Closed model: the cap with instant replies (None: no think time, so no bound without the backend)."""
    users: float
    peak_users: int
    think_s: float
    reply_s: float | None
    inflight: float
    arrival_rate: float | None = None
    lag_p95_ms: float | None = None

    def caps(self, limit: float, measured: float | None) -> bool:
        """Whether the offered load explains a failing ``rps >= limit``: its cap is below the limit, or within
        ~10 % of it while the run delivered (nearly) all of it. A measured rate far above the cap means the model
        does not describe this run (:data:`FIT`): then False."""
        if measured is not None and measured > self.cap * (1 + FIT) + 1e-9:
            return False
        if self.cap < limit:
            return True
        return self.cap <= limit * (1 + NEAR) and measured is not None and measured >= self.cap * (1 - NEAR)

    def load_alone(self, limit: float, measured: float | None) -> bool:
        """Whether the load alone explains it: faster replies would not reach the limit either, and the run
        delivered (nearly) what its load offered (else the backend's failures or pauses count too)."""
        if not self.caps(limit, measured):
            return False
        if measured is None or measured < self.cap * (1 - NEAR):
            return False
        if self.model == "open":
            return True
        return self.instant_cap is not None and self.instant_cap < limit * (1 + NEAR)

    def generator_behind(self) -> bool:
        """Open model: the generator sent late (lag p95 >= 1 s), so it offered less than its schedule."""
        return self.model == "open" and self.lag_p95_ms is not None and self.lag_p95_ms >= LAG_BEHIND_MS

    def lag_text(self) -> str:
        return (
            f"the load generator fell behind its schedule (WS generator lag p95 {self.lag_p95_ms or 0.0:.0f} ms), "
            "so it offered less than the arrival rate: add workers or give them more CPU"
        )

    def describe(self, limit: float, measured: float | None = None) -> str:
        """``the offered load caps throughput at 6.9 msg/s (10 users, think ~1 s, reply ~0.45 s): raise users or
        lower think time``, with what faster replies would allow and how much of the cap the run delivered."""
        if self.model == "open":
            text = (
                f"the offered load caps throughput at {_num(self.cap)} msg/s (--ws-arrival-rate schedule, "
                f"{_num(self.users)} users): raise the arrival rate"
            )
        else:
            who = f"{_num(self.users)} users"
            if abs(self.inflight - 1.0) > 0.05:
                who += f" × {_num(self.inflight)} in flight"
            reply = "n/a" if self.reply_s is None else f"~{_num(self.reply_s)} s"
            text = (
                f"the offered load caps throughput at {_num(self.cap)} msg/s ({who}, think ~{_num(self.think_s)} s, "
                f"reply {reply}): raise users or lower think time"
            )
            if self.instant_cap is None or self.instant_cap >= limit * (1 + NEAR):
                bound = "no bound" if self.instant_cap is None else f"{_num(self.instant_cap)} msg/s"
                text += f", or make replies faster (instant replies would allow {bound})"
        if measured is not None and measured < self.cap * (1 - NEAR):
            text += f"; the run delivered {_num(measured)} msg/s of it"
        if self.generator_behind():
            text += "; " + self.lag_text()
        return text

    def to_dict(self, limit: float, measured: float | None) -> dict[str, Any]:
        return {
            "model": self.model,
            "cap_rps": round(self.cap, 3),
            "instant_cap_rps": None if self.instant_cap is None else round(self.instant_cap, 3),
            "users": round(self.users, 2),
            "peak_users": self.peak_users,
            "inflight": round(self.inflight, 2),
            "think_s": round(self.think_s, 3),
            "reply_s": None if self.reply_s is None else round(self.reply_s, 3),
            "arrival_rate": None if self.arrival_rate is None else round(self.arrival_rate, 3),
            "generator_lag_p95_ms": None if self.lag_p95_ms is None else round(self.lag_p95_ms, 1),
            "caps": self.caps(limit, measured),
        }


def rps_cap(
    load: OfferedLoad,
    metric: str,
    reply_ms: float | None,
    flow_ms: float | None = None,
    lag_p95_ms: float | None = None,
) -> RpsCap | None:
    """The cap of ``metric``'s rate under ``load`` (None: a metric the chat load model does not produce).

    ``reply_ms`` is the metric's measured mean (every sample: a failed message holds its user as long), ``flow_ms``
    the ``FLOW`` metric's (a flow user's round when the metric is the chat one; default ``reply_ms``)."""
    think = max(load.think_s, 0.0)
    if metric == FLOW_METRIC:
        if load.flow_users <= 0:
            return None
        return _closed(load.flow_users, load.flow_users, 0.0, think, reply_ms, None, load.peak_users, 1.0)
    if metric != CHAT_METRIC:
        return None
    flow_round = flow_ms if flow_ms is not None else reply_ms
    if load.arrival_rate is not None:
        flow_part = _rate(load.flow_users, think, flow_round)
        users = load.chat_users + load.flow_users
        return RpsCap("open", load.arrival_rate + flow_part, None, users, load.peak_users, think,
                      None if reply_ms is None else reply_ms / 1000.0, 1.0, load.arrival_rate, lag_p95_ms)
    if load.chat_users + load.flow_users <= 0:
        return None
    return _closed(load.chat_users + load.flow_users, load.chat_concurrency, load.flow_users, think, reply_ms,
                   flow_round, load.peak_users, load.inflight)


def _closed(users: float, concurrency: float, flow_users: float, think: float, reply_ms: float | None,
            flow_ms: float | None, peak: int, inflight: float) -> RpsCap:
    """Closed model: ``concurrency`` message slots cycling through think + reply, plus ``flow_users`` flow rounds."""
    cap = _rate(concurrency, think, reply_ms) + _rate(flow_users, think, flow_ms)
    instant = (concurrency + flow_users) / think if think > 0 else None
    return RpsCap("closed", cap, instant, users, peak, think, None if reply_ms is None else reply_ms / 1000.0,
                  inflight)


def _rate(slots: float, think_s: float, round_ms: float | None) -> float:
    cycle = think_s + (round_ms or 0.0) / 1000.0
    if slots <= 0:
        return 0.0
    return slots / cycle if cycle > 0 else float("inf")


def time_average(samples: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """Time-weighted mean over ``[start, end]`` of a step series ``[(t, value)]`` (each value holds until the next
    sample; the last until ``end``; before the first sample: the first value). None without samples or span."""
    pts = sorted(samples)
    if not pts or end <= start:
        return None
    total = 0.0
    for i, (t, value) in enumerate(pts):
        lo = start if i == 0 else max(t, start)
        hi = min(pts[i + 1][0], end) if i + 1 < len(pts) else end
        if hi > lo:
            total += value * (hi - lo)
    return total / (end - start)


def _num(v: float) -> str:
    """A figure as a person writes it: 6.9, 10, 0.45."""
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}".removesuffix(".0")
    return f"{v:.2g}" if v < 1 else f"{v:.1f}".removesuffix(".0")
