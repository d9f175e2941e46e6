"""The SLA engine's state, pure and clock-injected: sample collection, time buckets, windows, live evaluation.

Data flow::

    events.request ──> Collector.record()          (every process; hot path: a dict lookup + list.append)
                         │ drain() every few seconds (worker: inside Locust's report_to_master payload)
                         v
                       Store.absorb(payload)        (master / local runner only: merge per time bucket, sum counts)
                         │
                         v
                       Engine.evaluate(now) / Engine.report(now)   -> verdict, abort decision, report dict

Samples are bucketed by wall-clock time (``time.time()``), epoch-aligned, 1 s wide on the collector; the store keeps
coarser buckets (2 s by default, ``window / n`` with a soak window) and coarsens by whole factors when a long run
grows past ``MAX_BUCKETS``, so any worker's buckets fall exactly into one store bucket. Windows (``--sla-window``)
are whole numbers of store buckets counted from the bucket holding the test start.

An SLA warm-up (``warmup_s``: ``--sla-warmup``, a profile's ``warmup_s``) keeps the samples of the run's first seconds
out of the verdict: the store merges only buckets starting at or after ``Store.judge_from`` (the test start plus the
warm-up, rounded up to a whole collector bucket) into the judged total, and judged windows start there. Those samples
still reach Locust's own stats and the report's time series, and the report counts them.

Besides samples and gauges, a collector keeps run-total counts of things that are not samples (``Collector.count``:
messages abandoned at the stop, protocol anomalies per kind; names in :mod:`sla_checks.counters`); they ride in the
same payload and the store sums them over every process (``Store.counts``). The chat messages still in flight when
their users were stopped ride along with their ages (``Collector.in_flight`` -> ``Store.in_flight``); after the stop
the engine judges them (``Engine.settle_in_flight``): a message that waited past the longest latency limit of
``WS agent_completed`` is a failed sample of that age, a younger one stays "in flight at stop".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sla_checks.count_names import ANOMALY_PREFIX, CHAT_SENT
from sla_checks.evaluate import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    MetricData,
    ThresholdResult,
    ThresholdSpec,
    closest_metrics,
    evaluate,
    has_evidence,
    matching_metrics,
)
from sla_checks.histogram import Histogram

__all__ = [
    "Collector",
    "Store",
    "Bucket",
    "Engine",
    "FaultMark",
    "store_resolution",
    "in_flight_limit_ms",
    "MAX_BUCKETS",
]

COLLECTOR_RESOLUTION_S = 1.0
MAX_BUCKETS = 240
MAX_GAUGE_POINTS = 4000
CHAT_METRIC = "WS agent_completed"
DISCONNECT_METRIC = "WS disconnect"
"""Connections lost with messages in flight, or not as a planned reconnect (``users.ws_client``)."""
_ceil = math.ceil
NON_FINITE = ANOMALY_PREFIX + "non-finite latency"
"""The count of success samples whose response time or stage gap was no finite number (left out of the histograms)."""


class Bucket:
    """Everything recorded in one time bucket: metrics (``"TYPE name"`` -> MetricData), stage gap histograms, and
    ``named``: how many failed samples of a metric named a tier in their error text (``"TYPE name"`` -> tier ->
    count; e.g. ``DEPENDENCY_TIMEOUT: postgres thread history timed out``), evidence for the attribution."""

    __slots__ = ("metrics", "stages", "named")

    def __init__(self) -> None:
        self.metrics: dict[str, MetricData] = {}
        self.stages: dict[str, Histogram] = {}
        self.named: dict[str, dict[str, int]] = {}

    def merge(self, other: Bucket) -> Bucket:
        for k, m in other.metrics.items():
            mine = self.metrics.get(k)
            if mine is None:
                self.metrics[k] = m.copy()
            else:
                mine.merge(m)
        for k, h in other.stages.items():
            mine_h = self.stages.get(k)
            if mine_h is None:
                self.stages[k] = h.copy()
            else:
                mine_h.merge(h)
        for k, tiers in other.named.items():
            mine_n = self.named.setdefault(k, {})
            for tier, n in tiers.items():
                mine_n[tier] = mine_n.get(tier, 0) + n
        return self

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "m": {k: m.to_dict() for k, m in self.metrics.items()},
            "s": {k: h.to_dict() for k, h in self.stages.items()},
        }
        if self.named:
            d["n"] = {k: dict(v) for k, v in self.named.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Bucket:
        b = cls()
        b.metrics = {k: MetricData.from_dict(v) for k, v in d.get("m", {}).items()}
        b.stages = {k: Histogram.from_dict(v) for k, v in d.get("s", {}).items()}
        named = d.get("n")
        if isinstance(named, Mapping):
            b.named = {
                str(k): {str(t): int(n) for t, n in v.items() if isinstance(n, int)}
                for k, v in named.items() if isinstance(v, Mapping)
            }
        return b

    @classmethod
    def merged(cls, buckets: Iterable[Bucket]) -> Bucket:
        out = cls()
        for b in buckets:
            out.merge(b)
        return out


class Collector:
    """Per-process sample sink; ``drain()`` hands everything recorded since the last drain to the store."""

    def __init__(self, resolution_s: float = COLLECTOR_RESOLUTION_S) -> None:
        self.resolution_s = resolution_s
        self._pending: dict[int, Bucket] = {}
        self._gauges: list[tuple[float, str, float]] = []
        self._counts: dict[str, int] = {}
        self._in_flight: list[tuple[float, float, float]] = []
        self.samples = 0
        # The hot path: a success's response time is appended to its metric's list of the current bucket (the
        # bucket of the last sample's second), found by type then name, so a sample costs no "TYPE name" string,
        # no bucket lookup and no histogram update; a message's stage gaps wait as the message's mapping. _fold()
        # adds them to the bucket's histograms (Histogram.record_list: the same buckets, counts, min, max and sum
        # as a record() of each, in C loops) when the samples move to another bucket and at drain(), the only
        # reader of the buckets, so at most one second's samples wait.
        self._cur_idx: int | None = None
        self._cur: Bucket = Bucket()
        self._cur_values: dict[str, dict[str, list[float]]] = {}
        self._unfolded: list[tuple[Histogram, list[float]]] = []
        self._stage_rows: list[Mapping[str, float]] = []

    def record(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        failed: bool,
        now: float,
        stages: Mapping[str, float] | None = None,
        tier: str | None = None,
    ) -> None:
        """One sample; ``tier``: the tier a failed sample's error text names (see :attr:`Bucket.named`)."""
        if response_time is None:
            return
        self.record_success(request_type, name, response_time, now, stages)
        if failed:
            key = f"{request_type} {name}"
            self._cur.metrics[key].fails.record(response_time)
            if tier is not None:
                named = self._cur.named.setdefault(key, {})
                named[tier] = named.get(tier, 0) + 1

    def record_success(self, request_type: str, name: str, response_time: float, now: float,
                       stages: Mapping[str, float] | None = None) -> None:
        """A sample, as a success (what :meth:`record` adds for a failure comes after). A response time that is no
        finite number raises here, as :meth:`Histogram.record` does, and is not recorded."""
        _ceil(response_time)  # ValueError / OverflowError / TypeError: the listener's error, as before the buffer
        self.record_successes(request_type, ((name, response_time, stages, None),), now, name)

    def record_successes(self, request_type: str, samples: Sequence[tuple[str, float, Any, Any]], now: float,
                         staged: str | None) -> None:
        """Successes at ``now``, each (name, response time, stages, anything): the stage gaps of the samples named
        ``staged`` only. Called directly, a message's samples at once, by the chat connections' success path
        (:mod:`users.sample_sink`), whose response times are clock differences; a non-finite one (which would
        only come from a bug) is left out at the fold and counted as the anomaly ``non-finite latency``."""
        by_name = self._cur_values.get(request_type) if int(now // self.resolution_s) == self._cur_idx else None
        for name, response_time, stages, _ in samples:
            values = by_name.get(name) if by_name is not None else None
            if values is None:  # another second, or this metric's first sample in it
                values = self._values(request_type, name, now)
                by_name = self._cur_values[request_type]
            values.append(response_time)
            if stages and name == staged:
                self._stage_rows.append(stages)
        self.samples += len(samples)

    def _values(self, request_type: str, name: str, now: float) -> list[float]:
        """The list of ``"TYPE name"``'s response times waiting in ``now``'s bucket; makes that bucket the current
        one (folding the one before)."""
        idx = int(now // self.resolution_s)
        if idx != self._cur_idx:
            self._fold()
            b = self._pending.get(idx)
            if b is None:
                b = self._pending[idx] = Bucket()
            self._cur_idx, self._cur, self._cur_values = idx, b, {}
        else:
            b = self._cur
        by_name = self._cur_values.get(request_type)
        if by_name is None:
            by_name = self._cur_values[request_type] = {}
        key = f"{request_type} {name}"
        m = b.metrics.get(key)
        if m is None:
            m = b.metrics[key] = MetricData()
        values: list[float] = []
        self._unfolded.append((m.hist, values))
        by_name[name] = values
        return values

    def _fold(self) -> None:
        """Add the current bucket's waiting response times and stage gaps to its histograms; the next sample starts
        a new list (a folded list must take no more samples: they would never reach the histogram)."""
        skipped = 0
        for hist, values in self._unfolded:
            skipped += hist.record_list(values)
        self._unfolded = []
        self._cur_values = {}
        rows = self._stage_rows
        if rows:
            by_gap: defaultdict[str, list[float]] = defaultdict(list)
            for stages in rows:
                for gap, ms in stages.items():
                    by_gap[gap].append(ms)
            hists = self._cur.stages
            for gap, gap_values in by_gap.items():
                h = hists.get(gap)
                if h is not None:
                    skipped += h.record_list(gap_values)
                    continue
                h = Histogram()
                skipped += h.record_list(gap_values)  # what is no number is left out, as before the buffer
                if h.count:
                    hists[gap] = h
            self._stage_rows = []
        if skipped:
            self.count(NON_FINITE, skipped)

    def record_gauge(self, name: str, value: float, timestamp: float) -> None:
        if len(self._gauges) >= MAX_GAUGE_POINTS * 4:  # nobody drains (should not happen): keep the newest
            del self._gauges[: len(self._gauges) // 2]
        self._gauges.append((timestamp, name, value))

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the run-total count ``name`` (not a sample: not judged, reported as is)."""
        self._counts[name] = self._counts.get(name, 0) + n

    def in_flight(self, messages: Iterable[tuple[float, float]], at: float) -> None:
        """Messages cut off by a user's stop at ``at`` (wall clock), each ``(age_ms, deadline_ms)``: judged by the
        master at the final verdict (:meth:`Engine.settle_in_flight`)."""
        self._in_flight.extend((at, float(age), float(deadline)) for age, deadline in messages)

    def drain(self) -> dict[str, Any] | None:
        """Serialisable payload of everything since the last drain (None when empty)."""
        self._fold()
        if not self._pending and not self._gauges and not self._counts and not self._in_flight:
            return None
        payload: dict[str, Any] = {
            "r": self.resolution_s,
            "b": [[idx * self.resolution_s, b.to_dict()] for idx, b in self._pending.items()],
            "g": [list(g) for g in self._gauges],
        }
        if self._counts:
            payload["c"] = self._counts
        if self._in_flight:
            payload["i"] = [list(m) for m in self._in_flight]
        self._pending = {}
        self._cur_idx, self._cur, self._cur_values = None, Bucket(), {}
        self._gauges = []
        self._counts = {}
        self._in_flight = []
        return payload


_LIMIT_STATS = ("p", "max", "avg", "med")


def in_flight_limit_ms(specs: Iterable[ThresholdSpec], metric: str = CHAT_METRIC) -> float | None:
    """The longest latency limit ``metric`` is judged by: the largest limit of its upper-bound ``p(..)``, ``max``,
    ``avg``, ``med`` thresholds and of its ``within(T)`` arguments (globs matching it included); None without one."""
    limits: list[float] = []
    for spec in specs:
        if not matching_metrics(spec.metric, (metric,)):
            continue
        e = spec.expression
        if e.stat in _LIMIT_STATS and e.op in ("<", "<="):
            limits.append(e.limit)
        elif e.stat == "within" and e.arg is not None:
            limits.append(e.arg)
    return max(limits) if limits else None


def store_resolution(window_s: float) -> float:
    """Store bucket width: 2 s, or with a window the largest whole divisor of it <= max(2, window / 10)."""
    if window_s <= 0:
        return 2.0
    w = int(round(window_s))
    limit = max(2, w // 10)
    return float(max(d for d in range(1, limit + 1) if w % d == 0))


class Store:
    """Master-side merged time buckets and gauge series."""

    def __init__(
        self, resolution_s: float = 2.0, window_s: float = 0.0, max_buckets: int = MAX_BUCKETS
    ) -> None:
        self.resolution_s = resolution_s
        self.window_s = window_s
        self.max_buckets = max_buckets
        self.buckets: dict[int, Bucket] = {}
        self.gauges: dict[str, list[list[float]]] = {}
        self.counts: dict[str, int] = {}
        """Run totals of :meth:`Collector.count` over every process."""
        self.in_flight: list[tuple[float, float, float]] = []
        """Chat messages in flight at their user's stop, over every process: ``(stop time, age ms, deadline ms)``;
        the first ``in_flight_settled`` of them are already judged (:meth:`Engine.settle_in_flight`)."""
        self.in_flight_settled = 0
        self.sources: set[str] = set()
        self._total = Bucket()
        self.judge_from: float | None = None
        """Start of the judged samples (the end of the warm-up); None: every sample is judged."""
        self._judged = self._total
        self.version = 0
        """Bumped on every change; ``versions[idx]`` is the version of bucket ``idx``'s last change."""
        self.versions: dict[int, int] = {}

    def absorb(self, payload: Mapping[str, Any] | None, source: str = "local") -> None:
        if not payload:
            return
        self.sources.add(source)
        for start, bd in payload.get("b", ()):
            self.add(float(start), Bucket.from_dict(bd))
        for ts, name, value in payload.get("g", ()):
            series = self.gauges.setdefault(str(name), [])
            series.append([float(ts), float(value)])
            if len(series) > MAX_GAUGE_POINTS:
                series.sort()
                del series[::2]  # halve the density of a long series, keep its span
        for name, n in payload.get("c", {}).items():
            self.counts[str(name)] = self.counts.get(str(name), 0) + int(n)
        for at, age, deadline in payload.get("i", ()):
            self.in_flight.append((float(at), float(age), float(deadline)))
        while len(self.buckets) > self.max_buckets and self._coarsen():
            pass

    def _coarsen(self) -> bool:
        """Merge buckets by a whole factor (keeping soak windows whole); False when it cannot coarsen further."""
        res = self.resolution_s
        if self.window_s > 0:
            ratio = round(self.window_s / res)
            if ratio <= 1:
                return False
            factor = 2 if ratio % 2 == 0 else ratio
        else:
            factor = 2
        merged: dict[int, Bucket] = {}
        versions: dict[int, int] = {}
        for idx, b in self.buckets.items():
            nidx = idx // factor
            if nidx in merged:
                merged[nidx].merge(b)
            else:
                merged[nidx] = b
            versions[nidx] = max(versions.get(nidx, 0), self.versions.get(idx, 0))
        self.buckets = merged
        self.versions = versions
        self.version += 1
        self.resolution_s = res * factor
        return True

    def add(self, start: float, bucket: Bucket) -> None:
        """Merge ``bucket`` (samples from ``start`` on, one collector/store bucket long) into the store."""
        idx = int(math.floor(start / self.resolution_s + 1e-9))
        self._total.merge(bucket)
        if self._judged is not self._total and start >= self.judge_from - 1e-9:  # type: ignore[operator]
            self._judged.merge(bucket)
        mine = self.buckets.get(idx)
        if mine is None:
            self.buckets[idx] = bucket
        else:
            mine.merge(bucket)
        self.version += 1
        self.versions[idx] = self.version

    def bucket_start(self, idx: int) -> float:
        return idx * self.resolution_s

    def sorted_buckets(self) -> list[tuple[float, Bucket]]:
        return [(self.bucket_start(i), self.buckets[i]) for i in sorted(self.buckets)]

    def total(self) -> Bucket:
        """All samples of the run (kept up to date on every ``add``; read-only for callers)."""
        return self._total

    def judged(self) -> Bucket:
        """The samples the verdict is about: all of them, or those from ``judge_from`` on (read-only for callers)."""
        return self._judged

    def set_judge_from(self, t: float | None) -> None:
        """Judge only samples in buckets starting at or after ``t`` (None: all); buckets already held are re-sorted."""
        self.judge_from = t
        if t is None:
            self._judged = self._total
            return
        self._judged = Bucket.merged(b for start, b in self.sorted_buckets() if start >= t - 1e-9)


@dataclass
class Window:
    index: int
    start: float
    end: float
    bucket: Bucket
    judged: bool = True
    results: list[ThresholdResult] = field(default_factory=list)

    @property
    def failed(self) -> list[ThresholdResult]:
        return [r for r in self.results if r.status == FAIL]


@dataclass(frozen=True)
class FaultMark:
    """A fault injected into the target during the run (``kind`` as the fault API names it), active from ``start``
    until ``end`` (wall clock; the planned end: the report cuts it at the run's end)."""

    kind: str
    start: float
    end: float
    detail: str = ""
    """Its intensity and parameters as text (``2500 ms``, ``table=messages``); empty when it has none."""
    error: str | None = None
    """Why applying it failed (then it was not active), else None."""


@dataclass
class Abort:
    threshold: str
    reason: str
    at: float


class Engine:
    """Pure SLA state for one run: thresholds, store, start/end, abort decision. Clock passed in as ``now``."""

    def __init__(
        self,
        specs: list[ThresholdSpec],
        *,
        window_s: float = 0.0,
        profile: str = "",
        config_file: str = "",
        exit_code: int = 3,
        warmup_s: float = 0.0,
        inconclusive_exit_code: int = 4,
    ) -> None:
        self.specs = specs
        self.window_s = float(window_s or 0.0)
        self.warmup_s = max(float(warmup_s or 0.0), 0.0)
        self.profile = profile
        self.config_file = config_file
        self.exit_code = exit_code
        self.inconclusive_exit_code = inconclusive_exit_code
        self.peak_users: int | None = None
        """Most users running at once during the run (all workers); None: not tracked (no runner)."""
        self.scenario: dict[str, Any] | None = None
        """The run's scenario (name, ``--scenario-scale``, peak users of its shape ...); None: a plain run."""
        self.store = Store(store_resolution(self.window_s), self.window_s)
        self.collector = Collector()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.aborted: Abort | None = None
        self.workers = 0
        self.lost_workers: set[str] = set()
        self.notes: list[str] = []
        self.faults: list[FaultMark] = []
        """Faults injected into the target during the run (:meth:`record_fault`), in the order they were applied."""
        self.users: list[tuple[float, int]] = []
        """Users running (all workers) whenever the count changed: ``(unix time, users)`` (:meth:`note_users`)."""
        self.failed_at_stop = 0
        """Chat messages in flight at the stop that had waited past :func:`in_flight_limit_ms`: failed samples."""
        self.in_flight_at_stop = 0
        """Chat messages in flight at the stop that had not (yet) waited that long: counted, not judged."""
        self._window_cache: dict[tuple[Any, ...], dict[int, tuple[int, Bucket, Any, float]]] = {}

    # --- lifecycle --------------------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        if self.started_at is None:
            self.started_at = now
            if self.warmup_s > 0:
                res = self.collector.resolution_s  # a collector bucket is judged whole or not at all
                self.store.set_judge_from(math.ceil((now + self.warmup_s) / res - 1e-9) * res)

    def stop(self, now: float) -> None:
        if self.ended_at is None:
            self.ended_at = now

    def record_fault(self, fault: FaultMark) -> None:
        """Note a fault injected into the target (the report lists it and shades its span on every time chart)."""
        self.faults.append(fault)

    def note_users(self, now: float, users: int) -> None:
        """Note the users running at ``now`` (kept when the count changed: a step series)."""
        if not self.users or self.users[-1][1] != users:
            self.users.append((now, int(users)))
            if len(self.users) > MAX_GAUGE_POINTS:
                del self.users[1::2]  # halve a long ramp's density, keep its span

    def flush_local(self) -> None:
        """Move this process's own samples into the store (master / local runner)."""
        self.store.absorb(self.collector.drain(), "local")

    def duration(self, now: float) -> float:
        start = self._start_or(now)
        end = self.ended_at if self.ended_at is not None else now
        return max(end - start, 0.0)

    def judged_duration(self, now: float) -> float:
        """The span the verdict covers: the run, less the warm-up."""
        if self.store.judge_from is None:
            return self.duration(now)
        end = self.ended_at if self.ended_at is not None else now
        return max(end - self.store.judge_from, 0.0)

    def warmup_samples(self) -> int:
        """Samples kept out of the verdict by the warm-up."""
        judged = self.store.judged()
        total = self.store.total()
        if judged is total:
            return 0
        return sum(m.count for m in total.metrics.values()) - sum(m.count for m in judged.metrics.values())

    def _start_or(self, now: float) -> float:
        if self.started_at is not None:
            return self.started_at
        if self.store.buckets:
            return self.store.bucket_start(min(self.store.buckets))
        return now

    # --- evaluation -------------------------------------------------------------------------------------------
    def settle_in_flight(self) -> None:
        """After the stop, judge the chat messages that were in flight at it and are not judged yet.

        One that had waited longer than the longest latency limit of ``WS agent_completed``
        (:func:`in_flight_limit_ms`; without such a threshold, its own reply deadline) becomes a failed
        ``WS agent_completed`` sample of its age, at its stop time (so ``max < 3000`` fails on a server that never
        answers); a younger one stays "in flight at stop" (``in_flight_at_stop``), counted and not judged."""
        store = self.store
        if self.ended_at is None or store.in_flight_settled >= len(store.in_flight):
            return
        pending = store.in_flight[store.in_flight_settled:]
        store.in_flight_settled = len(store.in_flight)
        limit = in_flight_limit_ms(self.specs)
        res = self.collector.resolution_s
        buckets: dict[int, Bucket] = {}
        for at, age_ms, deadline_ms in pending:
            if age_ms > (deadline_ms if limit is None else limit):
                bucket = buckets.setdefault(int(at // res), Bucket())
                bucket.metrics.setdefault(CHAT_METRIC, MetricData()).record(age_ms, True)
                self.failed_at_stop += 1
            else:
                self.in_flight_at_stop += 1
        for idx, bucket in sorted(buckets.items()):
            store.add(idx * res, bucket)

    def evaluate(self, now: float) -> list[ThresholdResult]:
        """Every threshold over the whole run so far (failed windows filled in when windows are judged); after the
        stop, with the messages in flight at it settled (:meth:`settle_in_flight`)."""
        self.settle_in_flight()
        results = evaluate(self.specs, self.store.judged().metrics, self.judged_duration(now))
        if self.window_s > 0:
            by_key: dict[tuple[int, str], list[int]] = {}
            for w in self.windows(now):
                for r in w.failed:
                    by_key.setdefault((id(r.spec), r.metric), []).append(w.index)
            for r in results:
                r.failed_windows = by_key.get((id(r.spec), r.metric), [])
        return results

    def windows(self, now: float, window_s: float | None = None) -> list[Window]:
        """Consecutive windows from the test start; judged (``window_s`` > 0 from the config) when complete
        enough (>= half a window long); ``window_s`` given explicitly is for display only."""
        judge = window_s is None and self.window_s > 0
        wlen = self.window_s if window_s is None else window_s
        if wlen <= 0 or not self.store.buckets:
            return []
        res = self.store.resolution_s
        per = max(1, int(round(wlen / res)))
        wlen = per * res
        first_idx = int(math.floor(self._start_or(now) / res + 1e-9))
        first_idx = min(first_idx, min(self.store.buckets))
        if judge and self.store.judge_from is not None:  # judged windows begin where the warm-up ends
            first_idx = int(math.ceil(self.store.judge_from / res - 1e-9))
        end_t = self.ended_at if self.ended_at is not None else now
        groups: dict[int, list[int]] = {}
        for idx in self.store.buckets:
            if idx >= first_idx:
                groups.setdefault((idx - first_idx) // per, []).append(idx)
        # merged windows (and the results of complete ones) are cached until one of their buckets changes
        key = (per, first_idx, res, judge)
        cache = self._window_cache.setdefault(key, {})
        if len(self._window_cache) > 4:
            self._window_cache = {key: cache}
        versions = self.store.versions
        out = []
        # windows run to the end of the test: a silent stretch shows as windows without samples
        last_wi = max(max(groups, default=0), int(max(end_t - first_idx * res, 0.0) // wlen - 1e-9) if end_t else 0)
        for wi in range(0, last_wi + 1):
            start = (first_idx + wi * per) * res
            end = min(start + wlen, max(end_t, start))
            span = max(end - start, 0.0)
            members = groups.get(wi, ())
            version = max((versions.get(i, 0) for i in members), default=0)
            hit = cache.get(wi)
            if hit is not None and hit[0] == version:
                bucket, cached_results, cached_span = hit[1], hit[2], hit[3]
            else:
                bucket = Bucket.merged(self.store.buckets[i] for i in members)
                cached_results, cached_span = None, None
            w = Window(wi, start, start + wlen, bucket)
            if judge:
                w.judged = span >= wlen / 2
                if w.judged:
                    if cached_results is not None and cached_span == min(span, wlen):
                        w.results = cached_results
                    else:
                        w.results = evaluate(self.specs, bucket.metrics, min(span, wlen), judge_no_data=False)
            else:
                w.judged = False
            cache[wi] = (version, bucket, w.results if w.judged else None, min(span, wlen))
            out.append(w)
        return out

    def display_window_s(self, now: float) -> float:
        """Window length for reports: the soak window, else one giving ~<= 60 points over the run."""
        if self.window_s > 0:
            return self.window_s
        res = self.store.resolution_s
        span = self.duration(now) or res
        return res * max(1, math.ceil(span / res / 60))

    def check_abort(self, results: Iterable[ThresholdResult], now: float) -> Abort | None:
        """The first ``abort_on_fail`` threshold failing after its ``delay_abort_eval`` grace period, if any."""
        if self.aborted is not None:
            return self.aborted
        elapsed = now - self._start_or(now)
        for r in results:
            if r.spec.abort_on_fail and r.status == FAIL and r.value is not None:
                if elapsed >= r.spec.delay_abort_eval_s:
                    self.aborted = Abort(r.name, f"{r.describe()} (abort_on_fail after {elapsed:.0f} s)", now)
                    return self.aborted
        return None

    def verdict(self, results: Iterable[ThresholdResult]) -> tuple[str, list[str]]:
        """``("pass"|"fail"|"inconclusive", reasons)``: fail beats inconclusive beats pass.

        Inconclusive: nothing failed, but there is no evidence: the run never had a user (``peak_users`` 0) or no
        threshold was judged on a metric that had samples."""
        results = list(results)
        reasons = []
        for r in results:
            if r.status == FAIL:
                reasons.append(f"SLA FAILED: {r.describe()}")
            elif r.failed_windows:
                ws = ", ".join(str(i) for i in r.failed_windows)
                reasons.append(f"SLA FAILED: {r.name} in window(s) {ws}")
        if (self.ended_at is not None and self.store.judge_from is not None  # live, the warm-up may still run
                and not any(m.count for m in self.store.judged().metrics.values())):
            if any(m.count for m in self.store.total().metrics.values()):
                reasons.append(
                    f"the SLA warm-up ({self.warmup_s:g} s) covered every sample, so nothing was judged: "
                    "shorten --sla-warmup or lengthen the run"
                )
        if self.aborted is not None:
            reasons.append(f"run aborted: {self.aborted.reason}")
        if self.lost_workers:
            reasons.append(
                f"{len(self.lost_workers)} worker(s) lost during the run: their load and samples are missing"
            )
        if reasons:
            return FAIL, reasons
        reasons = self.no_evidence_reasons(results)
        return (INCONCLUSIVE if reasons else PASS), reasons

    def no_evidence_reasons(self, results: list[ThresholdResult]) -> list[str]:
        """Why the run measured nothing the thresholds judge (empty when it did): what happened, what to do."""
        if self.peak_users == 0:
            return [
                "SLA INCONCLUSIVE: the run never had a user (peak 0 users), so nothing was measured: "
                "start at least one user (-u 1 or more, or a scenario)"
            ]
        unanswered = self._unanswered_chat_reason(results)
        if unanswered:
            return [unanswered]
        if has_evidence(results):
            return []
        produced = sorted(m for m, d in self.store.total().metrics.items() if d.count)
        if not produced:
            return [
                "SLA INCONCLUSIVE: the run recorded no samples at all, so no threshold was judged: check that the "
                "user classes ran (the log above), the host, and that the run is long enough for a request to end"
            ]
        judged_on = sorted({r.spec.metric for r in results})
        shown = ", ".join(produced[:8]) + (f" and {len(produced) - 8} more" if len(produced) > 8 else "")
        return [
            f"SLA INCONCLUSIVE: no threshold was judged on a metric that had samples: the thresholds name "
            f"{', '.join(judged_on) or 'nothing'}; the run produced {shown}: add thresholds for what the run "
            "measures, or run the user classes the thresholds are about"
        ]

    def _unanswered_chat_reason(self, results: list[ThresholdResult]) -> str | None:
        """Chat messages were sent and thresholds judge the chat reply, but no reply (nor failure) was judged: the
        other metrics' samples (connects, probes) are no evidence about the reply SLA, so the run cannot pass."""
        sent = int(self.store.counts.get(CHAT_SENT, 0))
        chat_lines = [r for r in results if r.metric == CHAT_METRIC or r.spec.metric == CHAT_METRIC]
        if not sent or not chat_lines or any(r.samples for r in chat_lines):
            return None
        return (
            f"SLA INCONCLUSIVE: {sent} chat message(s) were sent but none was answered or failed within the judged "
            f"span (still in flight at the stop, younger than the longest {CHAT_METRIC} limit): lengthen the run "
            "(-t / --scenario-duration) or shorten --sla-warmup"
        )

    def did_you_mean(self, result: ThresholdResult) -> list[str]:
        """For a threshold that got no samples: the closest metrics the run produced (a typo, a renamed request)."""
        if result.samples or result.value is not None:
            return []
        produced = [m for m, d in self.store.total().metrics.items() if d.count]
        return closest_metrics(result.spec.metric, produced)
