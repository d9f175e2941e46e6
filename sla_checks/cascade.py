"""Cascade order: which tier went bad first, which followed (pure).

A failure that runs through several tiers (Redis slow -> the backend falls back to PostgreSQL -> PostgreSQL's pool
queues -> ...) shows in attribution as several coinciding tiers; the order in which they went bad tells the cause
from its effects. :func:`cascade_chain` finds each tier's *onset*, the first candidate time bucket in which one of
its metrics (``tier_of``: ``REDIS *``, ``PG *``, ``CH *``, ``HTTP ready:<tier>``) went bad, and orders the tiers
by it. A metric is bad in a bucket when

* its p95 there is over its own ``p(..)`` threshold (when it has one) and, when it has baseline samples, at least
  :data:`MIN_RISE_MS` over its baseline p95 (the median of the baseline buckets' p95s: one spiky bucket does not
  move it);
* without a threshold: over its tier's design limit (:data:`DESIGN_LIMIT_MS`, the seed plan's per-tier p95) and, with
  a baseline, at least :data:`RISE_FACTOR` times its baseline p95 and :data:`MIN_RISE_MS` over it;
* or at least :data:`FAILING_RATIO` of its calls there fail, more than in the baseline.

A tier's onset is the first candidate bucket where one of its metrics is bad *and* the tier is bad again within its
next :data:`PERSIST_BUCKETS` buckets that have samples of it (a lone spike is no onset; near the end of the run, with
fewer such buckets left, for instance when the fault ends there, the bucket itself is enough). The baseline is given by the caller; :func:`reference_buckets` picks the buckets before the
failure in which no tier was over its limit (attribution uses it), so a tier that went bad before the chat metric
broke (Redis slow while replies still made their SLA) has its onset there. The candidates are the buckets from the
first baseline bucket on that are not baseline: the run's start-up before it (spawn, first connections) is neither.
Tiers whose onset falls into the same bucket are *simultaneous*: the chain text joins them with ``+``
(``redis → postgres + clickhouse``), since a bucket cannot order what happened inside it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sla_checks.engine import Bucket
from sla_checks.evaluate import MetricData, ThresholdSpec, matching_metrics
from sla_checks.tiers import tier_of

__all__ = ["cascade_chain", "chain_text", "failure_start", "reference_buckets", "tier_onsets", "MIN_RISE_MS", "RISE_FACTOR", "FAILING_RATIO"]

MIN_RISE_MS = 20.0
"""Least rise of a bucket's p95 over the metric's baseline p95 for the bucket to count as bad (noise floor)."""
RISE_FACTOR = 2.0
"""Without a threshold of its own, a metric is bad in a bucket whose p95 is this many times its baseline p95."""
FAILING_RATIO = 0.2
"""Share of failed calls in a bucket from which a tier metric counts as bad there (when more than in the baseline)."""
DESIGN_LIMIT_MS = {"postgres": 200.0, "redis": 50.0, "clickhouse": 1000.0}
"""The seed plan's per-tier p95 limits (docs/sla.md), for a tier metric without a ``p(..)`` threshold of its own
(``HTTP ready:postgres``: PostgreSQL as the backend sees it, judged by PostgreSQL's limit)."""
PERSIST_BUCKETS = 2
"""An onset must be followed by another bad bucket of the tier among its next this many buckets with samples (when
the run has that many left)."""


def _p95(d: MetricData | None) -> float | None:
    return d.hist.percentile(95) if d is not None and d.hist.count else None


def _limit(metric: str, specs: Sequence[ThresholdSpec]) -> float | None:
    """The limit of the ``p(..)`` threshold that applies to ``metric`` (exact beats glob, p(95) preferred)."""
    cands = [s for s in specs if s.expression.stat == "p" and matching_metrics(s.metric, [metric])]
    if not cands:
        return None
    cands.sort(key=lambda s: (s.is_glob, abs((s.expression.arg or 0) - 95)))
    return cands[0].expression.limit


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def _bad(d: MetricData, base: MetricData | None, b95: float | None, limit: float | None, design: float | None) -> bool:
    """Whether ``d`` (one bucket of a metric) is bad against its baseline (``base``: the merged baseline samples,
    for the fail ratio; ``b95``: the median of the baseline buckets' p95s, robust to one spiky bucket)."""
    p95 = _p95(d)
    fails = d.failures / d.count if d.count else 0.0
    base_fails = base.failures / base.count if base is not None and base.count else 0.0
    if fails >= FAILING_RATIO and fails > base_fails:
        return True
    if p95 is None:
        return False
    if limit is not None:
        return p95 > limit and (b95 is None or p95 >= b95 + MIN_RISE_MS)
    if design is not None and p95 <= design:
        return False
    return b95 is None or p95 >= max(RISE_FACTOR * b95, b95 + MIN_RISE_MS)


def _per_bucket(
    buckets: Sequence[tuple[float, Bucket]], specs: Sequence[ThresholdSpec], baseline: Collection[int]
) -> dict[str, list[list[tuple[str, float | None]] | None]]:
    """For every tier, per bucket: the tier's bad metrics there (``[(metric, p95)]``, [] when all are fine), or None
    when the tier has no sample in that bucket."""
    base_set = {i for i in baseline if 0 <= i < len(buckets)}
    metrics = sorted({m for _, b in buckets for m, d in b.metrics.items() if d.count and tier_of(m)})
    out: dict[str, list[list[tuple[str, float | None]] | None]] = {}
    for m in metrics:
        tier = tier_of(m) or ""
        rows = out.setdefault(tier, [None] * len(buckets))
        parts = [buckets[i][1].metrics[m] for i in sorted(base_set) if m in buckets[i][1].metrics]
        base = MetricData.merged(parts) if parts else None
        if base is not None and not base.count:
            base = None
        b95 = _median([p for p in (_p95(d) for d in parts) if p is not None])
        limit = _limit(m, specs)
        design = DESIGN_LIMIT_MS.get(tier)
        for i, (_, b) in enumerate(buckets):
            d = b.metrics.get(m)
            if d is None or not d.count:
                continue
            row = rows[i]
            if row is None:
                row = rows[i] = []
            if _bad(d, base, b95, limit, design):
                row.append((m, _p95(d)))
    return out


def reference_buckets(
    buckets: Sequence[tuple[float, Bucket]], specs: Sequence[ThresholdSpec], before: int
) -> list[int]:
    """The buckets before index ``before`` (the failure's first bad bucket) in which no tier metric is over its own
    ``p(..)`` threshold (or, without one, its design limit) nor failing :data:`FAILING_RATIO` of its calls: what
    each tier looked like before anything went wrong, the baseline :func:`cascade_chain` measures onsets against."""
    status = _per_bucket(buckets[: max(0, before)], specs, ())
    return [i for i in range(max(0, min(before, len(buckets)))) if not any(rows[i] for rows in status.values())]


def tier_onsets(
    buckets: Sequence[tuple[float, Bucket]],
    specs: Sequence[ThresholdSpec],
    baseline: Collection[int],
) -> dict[str, dict[str, Any]]:
    """Each tier's onset: ``{tier: {"tier", "index", "start", "metric", "p95", "baseline_p95", "limit"}}`` for the
    first candidate bucket (see the module docstring; indices into ``buckets``) where one of the tier's metrics is
    bad and stays so; tiers that never go bad are left out. The bad metric with the highest p95 there names the
    onset."""
    base_set = {i for i in baseline if 0 <= i < len(buckets)}
    first = min(base_set, default=0)
    onsets: dict[str, dict[str, Any]] = {}
    for tier, rows in _per_bucket(buckets, specs, base_set).items():
        for i, row in enumerate(rows):
            if i < first or i in base_set or not row:
                continue
            later = [r for r in rows[i + 1 :] if r is not None][:PERSIST_BUCKETS]
            if len(later) == PERSIST_BUCKETS and not any(later):
                continue
            metric, p95 = max(row, key=lambda mp: (mp[1] or 0.0, mp[0]))
            parts = [buckets[j][1].metrics[metric] for j in sorted(base_set) if metric in buckets[j][1].metrics]
            base95 = _median([p for p in (_p95(d) for d in parts) if p is not None])
            onsets[tier] = {
                "tier": tier,
                "index": i,
                "start": buckets[i][0],
                "metric": metric,
                "p95": p95,
                "baseline_p95": base95,
                "limit": _limit(metric, specs),
            }
            break
    return onsets


def failure_start(bad: Collection[int]) -> int | None:
    """Where the failure begins among the ``bad`` bucket indices: the first one that starts two bad buckets in a row
    (a lone bad bucket earlier, such as the spawn's first slow replies, is not the failure), else the first one;
    None without bad buckets."""
    if not bad:
        return None
    s = set(bad)
    return next((i for i in sorted(s) if i + 1 in s), min(s))


def cascade_chain(
    buckets: Sequence[tuple[float, Bucket]],
    specs: Sequence[ThresholdSpec],
    baseline: Collection[int],
) -> dict[str, Any] | None:
    """The tiers in order of onset: ``{"order": [tier, ...], "text": "redis → postgres", "tiers": [onset rows]}``
    (rows as :func:`tier_onsets`, each with ``after_s``: seconds after the first onset); None when no tier went bad.
    Tiers of the same onset bucket keep a stable order (by name) and are joined with ``+`` in ``text``."""
    onsets = tier_onsets(buckets, specs, baseline)
    if not onsets:
        return None
    rows = sorted(onsets.values(), key=lambda r: (r["index"], r["tier"]))
    first = rows[0]["start"]
    for r in rows:
        r["after_s"] = round(r["start"] - first, 3)
    return {"order": [r["tier"] for r in rows], "text": chain_text(rows), "tiers": rows}


def chain_text(rows: Sequence[dict[str, Any]]) -> str:
    """``redis → postgres + clickhouse`` from onset rows in order (same ``index``: joined with ``+``)."""
    groups: list[list[str]] = []
    last: int | None = None
    for r in rows:
        if last is not None and r["index"] == last:
            groups[-1].append(str(r["tier"]))
        else:
            groups.append([str(r["tier"])])
        last = r["index"]
    return " → ".join(" + ".join(g) for g in groups)
