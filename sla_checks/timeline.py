"""The report's time series and distribution, pure: what the HTML report and the SLA tab chart over time.

* :func:`build_timeline` groups the store's time buckets into at most ``MAX_POINTS`` points over the run and gives,
  per point, the request and failure rates, the users running, the chat reply's p50/p95/p99 and the value of every
  threshold judged on that point's samples alone (``timeline`` of the report, docs/report-schema.md);
* :func:`latency_distribution` bins the judged samples of the chat reply on log-spaced whole-millisecond edges, every
  latency limit of its thresholds being an edge (so the count on each side of a limit is exact);
* :func:`fault_rows` lists the faults injected into the target, cut at the run's end.

A report is built every second or two while a run goes (the web UI's tab), so the merged points and their threshold
values are cached per store and rebuilt only when one of their buckets changed (``Store.versions``).
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sla_checks.engine import CHAT_METRIC, Bucket, Engine, Store
from sla_checks.evaluate import ThresholdResult, ThresholdSpec, evaluate, matching_metrics
from sla_checks.histogram import Histogram

__all__ = ["MAX_POINTS", "build_timeline", "fault_rows", "latency_distribution", "latency_limits", "timeline_metric"]

MAX_POINTS = 120
"""Most points of a time series: a 4-hour soak is charted at 2-minute points, a 1-minute run at its bucket width."""
DISTRIBUTION_BINS = 40
_QS = (50.0, 95.0, 99.0)
_LIMIT_STATS = ("p", "avg", "med", "max", "min")

_Cached = tuple[int, Bucket, dict[tuple[int, str], float | None], float]
_CACHE: weakref.WeakKeyDictionary[Store, tuple[tuple[int, int, float], dict[int, _Cached]]] = (
    weakref.WeakKeyDictionary()
)


def _num(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timeline_metric(metrics: Sequence[str]) -> str | None:
    """The metric whose latency is charted over time: the chat reply, else the first WS / FLOW metric."""
    if CHAT_METRIC in metrics:
        return CHAT_METRIC
    return next((m for m in sorted(metrics) if m.split(" ", 1)[0] in ("WS", "FLOW")), None)


def _users_at(series: Sequence[tuple[float, int]], lo: float, hi: float) -> int | None:
    """The most users running during ``[lo, hi)`` of a step series (None: no reading yet)."""
    if not series:
        return None
    times = [t for t, _ in series]
    first = bisect_right(times, lo) - 1
    last = max(bisect_left(times, hi), first + 1)
    values = [n for _, n in series[max(first, 0):last]]
    if first < 0 and not values:
        return None
    return max(values) if values else None


def build_timeline(engine: Engine, now: float, results: Sequence[ThresholdResult]) -> dict[str, Any] | None:
    """The run as at most :data:`MAX_POINTS` points in time (None before any sample).

    ``t`` is each point's middle in seconds from the test start (``t0``); rates are per second over the part of the
    point inside the run; ``thresholds`` holds, in the order of ``results`` (the report's thresholds), each one's
    value judged on that point's samples alone (None: no sample of its metric in the point)."""
    store = engine.store
    if not store.buckets:
        return None
    res = store.resolution_s
    first_bucket = min(store.buckets)
    start = engine.started_at if engine.started_at is not None else store.bucket_start(first_bucket)
    end = max(engine.ended_at if engine.ended_at is not None else now, start)
    first = min(int(math.floor(start / res + 1e-9)), first_bucket)
    last = max(max(store.buckets), int(math.ceil(end / res - 1e-9)) - 1)
    per = max(1, math.ceil((last - first + 1) / MAX_POINTS))
    step = per * res
    groups: dict[int, list[int]] = {}
    for idx in store.buckets:
        groups.setdefault((idx - first) // per, []).append(idx)
    cached = _CACHE.get(store)
    if cached is None or cached[0] != (per, first, res):  # a new grid: the points of the old one do not fit
        cached = _CACHE[store] = ((per, first, res), {})
    cache = cached[1]
    latency_metric = timeline_metric([m for m, d in store.total().metrics.items() if d.count])
    keys = [(id(r.spec), r.metric) for r in results]
    specs: list[ThresholdSpec] = list(engine.specs)
    t: list[float | None] = []
    requests: list[float | None] = []
    failures: list[float | None] = []
    users: list[int | None] = []
    latency: dict[str, list[float | None]] = {"count": [], "p50": [], "p95": [], "p99": []}
    values: list[list[float | None]] = [[] for _ in results]
    for point in range((last - first) // per + 1):
        p_start = (first + point * per) * res
        lo = max(p_start, start)
        hi = max(min(p_start + step, end), lo)
        span = max(hi - lo, min(step, 1.0))
        members = groups.get(point, [])
        version = max((store.versions.get(i, 0) for i in members), default=0)
        hit = cache.get(point)
        if hit is not None and hit[0] == version and hit[3] == span:
            bucket, judged = hit[1], hit[2]
        else:
            bucket = Bucket.merged(store.buckets[i] for i in members)
            judged = {
                (id(r.spec), r.metric): r.value
                for r in evaluate(specs, bucket.metrics, span, judge_no_data=False)
            }
            cache[point] = (version, bucket, judged, span)
        count = sum(m.count for m in bucket.metrics.values())
        failed = sum(m.failures for m in bucket.metrics.values())
        t.append(_num((lo + hi) / 2 - start, 2))
        requests.append(_num(count / span))
        failures.append(_num(failed / span))
        users.append(_users_at(engine.users, lo, hi))
        data = bucket.metrics.get(latency_metric) if latency_metric else None
        hist = data.hist if data is not None else Histogram()
        ps = hist.percentiles(_QS)
        latency["count"].append(hist.count)
        for q in _QS:
            latency[f"p{int(q)}"].append(_num(ps[q]))
        for i, key in enumerate(keys):
            values[i].append(_num(judged.get(key)))
    return {
        "t0": _num(start),
        "step_s": _num(step),
        "t": t,
        "requests_per_s": requests,
        "failures_per_s": failures,
        "users": users,
        "latency": None if latency_metric is None else {"metric": latency_metric, **latency},
        "thresholds": [
            {"metric": r.metric, "expression": str(r.spec.expression), "values": v}
            for r, v in zip(results, values, strict=True)
        ],
    }


def latency_limits(specs: Sequence[ThresholdSpec], metric: str) -> list[tuple[str, float]]:
    """``(expression, limit ms)`` of every latency limit ``metric`` is judged by: upper-bound ``p(..)``, ``avg``,
    ``med``, ``max``, ``min`` lines and the ``T`` of ``within(T)`` (globs matching it included)."""
    out: list[tuple[str, float]] = []
    for spec in specs:
        if not matching_metrics(spec.metric, (metric,)):
            continue
        e = spec.expression
        if e.stat in _LIMIT_STATS and e.op in ("<", "<="):
            out.append((str(e), e.limit))
        elif e.stat == "within" and e.arg is not None:
            out.append((str(e), e.arg))
    return out


def _edges(low: float, high: float, limits: Sequence[float], bins: int) -> list[float]:
    """Whole-millisecond, log-spaced edges from just below ``low`` to ``high``, each limit in range an edge."""
    lo = max(math.floor(low) - 1, 0)
    hi = max(math.ceil(high), lo + 1)
    base = max(lo, 1)
    ratio = (hi / base) ** (1 / bins) if hi > base else 1.0
    edges = {float(lo), float(hi)}
    edges.update(float(round(base * ratio**k)) for k in range(1, bins))
    edges.update(float(v) for v in limits if lo < v < hi)
    return sorted(e for e in edges if lo <= e <= hi)


def latency_distribution(engine: Engine, results: Sequence[ThresholdResult]) -> dict[str, Any] | None:
    """The judged samples of the charted latency metric (:func:`timeline_metric`) per bin, with its limits (None:
    no such metric). ``counts[i]`` holds the samples in ``(edges_ms[i], edges_ms[i + 1]]``, exact for whole-ms edges
    (:meth:`Histogram.count_le`)."""
    metrics = engine.store.judged().metrics
    metric = timeline_metric([m for m, d in metrics.items() if d.count])
    if metric is None:
        return None
    hist = metrics[metric].hist
    limits = latency_limits(engine.specs, metric)
    edges = _edges(hist.min, hist.max, [v for _, v in limits], DISTRIBUTION_BINS)
    below = [hist.count_le(e) for e in edges]
    status = {str(r.spec.expression): r.status for r in results if r.metric == metric}
    ps = hist.percentiles(_QS)
    return {
        "metric": metric,
        "count": hist.count,
        "edges_ms": edges,
        "counts": [b - a for a, b in zip(below, below[1:], strict=False)],
        "percentiles": {f"p{int(q)}": _num(ps[q]) for q in _QS},
        "limits": [{"expression": text, "ms": _num(ms), "status": status.get(text)} for text, ms in limits],
    }


def fault_rows(engine: Engine, now: float) -> list[dict[str, Any]]:
    """The faults injected during the run, each cut at the run's end (or ``now`` while it runs); ``start_s`` /
    ``end_s`` are seconds from the test start."""
    if not engine.faults:
        return []
    t0 = engine.started_at if engine.started_at is not None else min(f.start for f in engine.faults)
    until = engine.ended_at if engine.ended_at is not None else now
    rows = []
    for fault in engine.faults:
        end = max(min(fault.end, until), fault.start)
        rows.append(
            {
                "kind": fault.kind,
                "detail": fault.detail,
                "start": _iso(fault.start),
                "end": _iso(end),
                "start_ts": _num(fault.start),
                "end_ts": _num(end),
                "start_s": _num(fault.start - t0, 2),
                "end_s": _num(end - t0, 2),
                "error": fault.error,
            }
        )
    return rows
