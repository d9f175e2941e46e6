"""Open-model arrivals (``--ws-arrival-rate``): when each message is *intended* to be sent. Pure, clock injected.

A closed-model user sends its next message only after the previous reply, so when the server stalls it stops
sending, and the stall shows up in one sample instead of in every message that should have been sent meanwhile
(coordinated omission). In the open model messages are due on a fixed schedule regardless of replies; the chat
client records each message's latency from the actual send *and* from its intended send time, and how far behind
schedule the generator fell (``WS generator lag``).

Schedule forms::

    ArrivalSchedule.parse("20")            # 20 messages/s from the start
    ArrivalSchedule.parse("0:5,60:50")     # ramp linearly from 5/s at t=0 s to 50/s at t=60 s, then stay at 50/s

Usage::

    scheduler = ArrivalScheduler(ArrivalSchedule.parse("20"), start=now)
    for intended_at in scheduler.due(now):   # every arrival whose intended time has come
        send(intended_at)                    # lag = now - intended_at
    sleep(scheduler.next_at() - now)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from config.errors import UsageError

MAX_RATE = 10_000.0
"""Messages/s above which a schedule is refused: one Locust process keeps about that pace; at a higher one its
generator is still handing out due messages long after ``-t`` has ended the run."""
MAX_RAMP_S = 7 * 86400.0
"""The latest ramp point, in seconds since the start."""


class ScheduleError(UsageError, ValueError):
    """A rate/ramp text is malformed; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class ArrivalSchedule:
    """Piecewise-linear rate (messages/s) over seconds since the start; constant before the first and after the
    last point."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ScheduleError("no rate given")
        last_t = -math.inf
        for t, r in self.points:
            if not (math.isfinite(t) and math.isfinite(r)) or t < 0 or r < 0:
                raise ScheduleError(f"point {t:g}:{r:g} must have time >= 0 and rate >= 0")
            if r > MAX_RATE:
                raise ScheduleError(f"{r:g} messages/s is above the limit of {MAX_RATE:g}/s (the generator cannot "
                                    f"keep such a schedule and overruns -t); give a total rate up to {MAX_RATE:g}")
            if t > MAX_RAMP_S:
                raise ScheduleError(f"ramp point at {t:g} s is past {MAX_RAMP_S:g} s (7 days); give seconds "
                                    "since the start, e.g. '0:5,60:50'")
            if t <= last_t:
                raise ScheduleError("ramp times must increase, e.g. '0:5,60:50'")
            last_t = t
        if all(r == 0 for _, r in self.points):
            raise ScheduleError("the rate is 0 everywhere; give a rate > 0")

    @classmethod
    def parse(cls, text: str) -> ArrivalSchedule:
        text = text.strip()
        try:
            if ":" not in text:
                return cls(((0.0, float(text)),))
            points = []
            for part in text.split(","):
                t, _, r = part.partition(":")
                points.append((float(t), float(r)))
            return cls(tuple(points))
        except ValueError as exc:
            if isinstance(exc, ScheduleError):
                raise
            raise ScheduleError(
                "write a rate in messages/s (e.g. '20') or a ramp of seconds:rate points (e.g. '0:5,60:50')"
            ) from None

    def scaled(self, factor: float) -> ArrivalSchedule:
        """The same shape at ``factor`` times the rate (a worker's share of a distributed total)."""
        if not (math.isfinite(factor) and factor > 0):
            raise ScheduleError(f"scale factor must be > 0, got {factor!r}")
        return ArrivalSchedule(tuple((t, r * factor) for t, r in self.points))

    def rate_at(self, t: float) -> float:
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (t0, r0), (t1, r1) in zip(pts, pts[1:], strict=False):
            if t <= t1:
                return r0 + (r1 - r0) * (t - t0) / (t1 - t0)
        return pts[-1][1]

    def count_until(self, t: float) -> float:
        """Expected arrivals in [0, t] (the integral of the rate)."""
        pts = self.points
        total = 0.0
        first_t, first_r = pts[0]
        if t <= first_t:
            return first_r * t
        total += first_r * first_t
        for (t0, r0), (t1, r1) in zip(pts, pts[1:], strict=False):
            end = min(t, t1)
            r_end = r0 + (r1 - r0) * (end - t0) / (t1 - t0)
            total += (r0 + r_end) / 2 * (end - t0)
            if t <= t1:
                return total
        return total + pts[-1][1] * (t - pts[-1][0])

    def time_of(self, k: float) -> float:
        """Seconds since the start at which the ``k``-th arrival is due (``count_until(t) == k``); ``inf`` if
        never."""
        pts = self.points
        first_t, first_r = pts[0]
        done = first_r * first_t
        if k <= done:
            return k / first_r if first_r > 0 else first_t
        for (t0, r0), (t1, r1) in zip(pts, pts[1:], strict=False):
            seg = (r0 + r1) / 2 * (t1 - t0)
            if k <= done + seg:
                need = k - done
                slope = (r1 - r0) / (t1 - t0)
                if abs(slope) < 1e-12:
                    return t0 + need / r0
                disc = max(r0 * r0 + 2 * slope * need, 0.0)
                return t0 + (-r0 + math.sqrt(disc)) / slope
            done += seg
        last_t, last_r = pts[-1]
        if last_r <= 0:
            return math.inf
        return last_t + (k - done) / last_r


class ArrivalScheduler:
    """Hands out intended send times (absolute, in the injected clock's seconds) as they come due."""

    __slots__ = ("schedule", "start", "sent")

    def __init__(self, schedule: ArrivalSchedule, start: float) -> None:
        self.schedule = schedule
        self.start = start
        self.sent = 0

    def next_at(self) -> float:
        """Absolute intended time of the next arrival (``inf`` when the schedule ends)."""
        return self.start + self.schedule.time_of(self.sent + 1)

    def due(self, now: float, limit: int = 10_000) -> list[float]:
        """Intended times ``<= now`` not handed out yet (oldest first, at most ``limit``)."""
        out: list[float] = []
        while len(out) < limit:
            at = self.next_at()
            if at > now:
                break
            out.append(at)
            self.sent += 1
        return out
