"""Where a chat connection's success samples go: one ``events.request.fire`` per sample, or straight to the listeners.

A chat round trip makes five success samples (four agent events and ``agent_completed``). Through
``events.request.fire`` each costs a keyword-argument call per listener, a copy of the listener list, Locust's
``on_request`` wrapper and the SLA plugin's (≈ 4.4 µs a sample with the two, issue 17). When every listener on the
environment's ``events.request`` is one this module knows how to feed, :meth:`SampleSink.success` hands the sample
to them directly:

* Locust's own request-stats listener (the runner's ``on_request``): what its ``stats.log_request(...)`` does — the
  total and the name's ``StatsEntry.log``, inlined (:func:`log_entry`), so the counts, response-time buckets,
  min/max and per-second rates are the ones a ``fire`` gives;
* a listener whose object offers ``record_success(request_type, name, response_time, wall, stages, intended_ms)``
  (the SLA plugin, :meth:`sla_checks.plugin.SlaPlugin.record_success`): the same record its ``on_request`` makes of
  a success whose ``context`` holds at most ``stages`` and ``intended_ms`` (the open model's ``agent_completed``);
  if it also offers ``record_successes(request_type, samples, wall)``, several samples go to it in one call.

A message's samples that arrive together (its events and ``agent_completed`` in one read, the common case) go in one
:meth:`SampleSink.successes` call: one listener check, one clock read and one call per listener for all of them.

Any other listener (one of your own, a plug-in's) makes :meth:`SampleSink.success` answer ``False`` and the caller
fires as always, so that listener sees every sample with its full ``context``. The listener list is compared on every
sample, so adding or removing one mid-run takes effect at the next sample. Failures, and every sample other than the
per-message successes, always go through ``fire``.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from locust import log as locust_log
from locust import stats as locust_stats
from locust.env import Environment

from sla_checks.state import state_of

Sample = tuple[str, float, "Mapping[str, float] | None", "float | None"]
"""One success sample: (name, response time in ms, stage gaps or None, latency from the intended send or None)."""

_RUNNER_LISTENER = ("locust.runners", "Runner.__init__.<locals>.on_request")
"""Locust's request-stats listener (module, qualified name): it calls ``environment.stats.log_request``."""


class SampleSink:
    """One per environment (:meth:`of`); every chat connection of the process shares it."""

    __slots__ = ("environment", "_hook", "_seen", "_direct", "_stats", "_recorders")

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self._hook = environment.events.request
        self._seen: list[Any] | None = None
        self._direct = False
        self._stats = False
        self._recorders: tuple[Any, ...] = ()

    @classmethod
    def of(cls, environment: Environment) -> SampleSink:
        state = state_of(environment)
        sink = state.chat_sample_sink
        if not isinstance(sink, SampleSink):
            sink = state.chat_sample_sink = cls(environment)
        return sink

    @property
    def direct(self) -> bool:
        """Whether successes go straight to the listeners now (every listener is a known one)."""
        return self._current()

    def _current(self) -> bool:
        handlers = getattr(self._hook, "_handlers", None)
        if handlers != self._seen:
            if handlers is None:  # a Locust without the listener list: always fire
                return False
            self._resolve(handlers)
        return self._direct

    def _resolve(self, handlers: list[Any]) -> None:
        self._seen = list(handlers)
        stats = False
        recorders: list[Any] = []
        for handler in handlers:
            if (getattr(handler, "__module__", None), getattr(handler, "__qualname__", None)) == _RUNNER_LISTENER:
                if stats:  # two runners' listeners on one environment: not a case to second-guess
                    break
                stats = True
                continue
            owner = getattr(handler, "__self__", None)
            record = getattr(owner, "record_success", None)
            if getattr(handler, "__name__", None) == "on_request" and callable(record):
                batch = getattr(owner, "record_successes", None)
                recorders.append(batch if callable(batch) else _one_by_one(record))
                continue
            break  # a listener of somebody else's: it must see each sample through fire
        else:
            self._direct, self._stats, self._recorders = True, stats, tuple(recorders)
            return
        self._direct, self._stats, self._recorders = False, False, ()

    def success(self, request_type: str, name: str, response_time: float,
                stages: Mapping[str, float] | None = None, intended_ms: float | None = None) -> bool:
        """Record one success sample directly; ``False`` (nothing recorded: fire it) when some listener is not a
        known one. ``stages`` and ``intended_ms``: what the sample's ``context`` would carry under those keys."""
        return self.successes(request_type, ((name, response_time, stages, intended_ms),))

    def successes(self, request_type: str, samples: Sequence[Sample]) -> bool:
        """Record ``samples`` directly, in order, all at one time; ``False`` (nothing recorded: fire each) when
        some listener is not a known one."""
        if not self._current():
            return False
        try:
            wall = time.time()
            if self._stats:
                stats = self.environment.stats
                total, entries = stats.total, stats.entries
                t = int(wall)
                # Locust's bucket, read each time (Locust lets it be replaced at run time), once for both entries
                bucket = locust_stats.bucket_response_time
                tens = bucket is _LOCUST_BUCKET
                keyed = []
                for name, response_time, _stages, _intended in samples:
                    key = bucket_tens(response_time) if tens else bucket(response_time)
                    keyed.append((response_time, key))
                    log_entry(entries[(name, request_type)], response_time, key, wall, t)
                log_entries(total, keyed, wall, t)
            for record in self._recorders:
                record(request_type, samples, wall)
        except Exception:  # as EventHook.fire: a listener's bug is logged, the user goes on
            logging.error("Uncaught exception in event handler: \n%s", traceback.format_exc())
            locust_log.unhandled_greenlet_exception = True
        return True


_LOCUST_BUCKET = locust_stats.bucket_response_time


def _one_by_one(record: Callable[..., Any]) -> Callable[[str, Sequence[Sample], float], None]:
    """``record_successes`` for a recorder with ``record_success`` only."""
    def record_successes(request_type: str, samples: Sequence[Sample], wall: float) -> None:
        for name, response_time, stages, intended_ms in samples:
            record(request_type, name, response_time, wall, stages, intended_ms)
    return record_successes


def bucket_tens(response_time: float) -> int:
    """``locust.stats.bucket_response_time(response_time)``, the same key, without ``round(x, -1)`` (which formats
    the float to round it: ≈ 0.9 µs, 7 times per open-model round trip whose latencies all lie in 100–1000 ms).
    From 100 to 1000 ms: the exact distance to the lower ten decides, a tie going to the even ten, as ``round``
    does on the float's exact value (``tests/unit/test_sample_sink.py`` compares the two); below 100 ms Locust's own
    ``round(x)``, without the call; anything else: Locust's."""
    if response_time < 100.0:
        return round(response_time)
    if response_time < 1000.0:
        base = int(response_time) // 10 * 10
        rest = response_time - base  # exact: both below 1000, the same binary exponent or less
        if rest > 5.0 or (rest == 5.0 and base % 20 == 10):
            base += 10
        return base
    return _LOCUST_BUCKET(response_time)


def log_entry(entry: Any, response_time: float, key: int, wall: float, t: int) -> None:
    """``StatsEntry.log(response_time, 0)`` at ``wall`` (``t = int(wall)``), inlined: the same fields the same way
    (Locust 2.47; ``tests/unit/test_sample_sink.py`` compares the two field by field, so a Locust that changes
    them fails there). ``key``: ``locust.stats.bucket_response_time(response_time)``, the caller's, so that one
    sample rounds once for the total and its name (rounding to 10 ms is ≈ 2 % of an open-model round trip)."""
    if entry.use_response_times_cache:
        last = entry.last_request_timestamp
        if last and t > int(last):
            entry._cache_response_times(t - 1)
    entry.num_requests += 1
    entry.num_reqs_per_sec[t] += 1
    entry.last_request_timestamp = wall
    entry.total_response_time += response_time
    low = entry.min_response_time
    if low is None or response_time < low:
        entry.min_response_time = response_time
    if response_time > entry.max_response_time:
        entry.max_response_time = response_time
    entry.response_times[key] += 1


def log_entries(entry: Any, keyed: Sequence[tuple[float, int]], wall: float, t: int) -> None:
    """:func:`log_entry` of each ``(response_time, key)`` of ``keyed`` in turn, all at ``wall``: the same fields to
    the same values (the sum in the same order), for the ``Aggregated`` entry that takes every sample of a batch."""
    if not keyed:
        return
    if entry.use_response_times_cache:
        last = entry.last_request_timestamp
        if last and t > int(last):
            entry._cache_response_times(t - 1)
    n = len(keyed)
    entry.num_requests += n
    entry.num_reqs_per_sec[t] += n
    entry.last_request_timestamp = wall
    total = entry.total_response_time
    low = entry.min_response_time
    high = entry.max_response_time
    counts = entry.response_times
    for response_time, key in keyed:
        total += response_time
        if low is None or response_time < low:
            low = response_time
        if response_time > high:
            high = response_time
        counts[key] += 1
    entry.total_response_time = total
    entry.min_response_time = low
    entry.max_response_time = high


__all__ = ["Sample", "SampleSink", "bucket_tens", "log_entries", "log_entry"]
