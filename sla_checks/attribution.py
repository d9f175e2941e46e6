"""Root-cause attribution for a failing chat threshold (pure).

When a ``WS``/``FLOW`` threshold fails, which tier made it slow? The run's time buckets (2 s by default) are split
into *bad* buckets (those where the failing metric itself breaks the threshold, counting failed samples as over any
latency limit, since a message that failed fast with ``DEPENDENCY_TIMEOUT`` is no fast reply; when no single bucket
breaks it, those above the run's median p95) and *baseline* buckets (the rest). For every tier metric (request type ``PG`` ->
postgres, ``REDIS`` -> redis, ``CH`` -> clickhouse, ``HTTP ready:<tier>`` -> that tier) we compare its p95 in the
bad buckets (widened by one bucket each side: a probe sample and a chat sample stuck behind the same stall finish a
moment apart) with its p95 in the baseline buckets:

* ``score`` = share of the chat metric's p95 increase (bad vs baseline) matched by the tier's p95 increase, capped
  at 1. Without baseline buckets (the whole run was bad) the increases are measured over the thresholds instead:
  the chat metric's excess over its limit and the tier's excess over its own threshold;
* ``within_sla`` = the tier's p95 in the bad buckets meets its own ``p(..)`` threshold (when it has one);
* ``correlation`` = Pearson correlation of the tier's and the chat metric's p95 over all buckets (>= 3 buckets).

Resource gauges (``record_gauge``: ``locust:cpu_percent``, ``target:rss_mb`` ...) are correlated the same way: each
gauge's mean reading per bucket against the chat metric's p95 per bucket, Pearson r over the buckets that have both,
reported only from :data:`MIN_GAUGE_WINDOWS` such buckets on (fewer: ``correlation`` null, the count says why). A
gauge is named as moving with the failure only by its *detrended* r (``detrended_correlation``: the correlation of
both series' residuals after removing a straight-line time trend from each), when that is strong and significant:
memory that only grows over the run correlates with any latency that rises late in it, yet says nothing about the
fault. It says whether a resource moved with the latency in time, not that it caused it; it does not change the
tier ranking.

An ``rps >= X`` line that fails is first held against what the offered load could reach
(:mod:`sla_checks.offered_load`, given the run's user counts and think time): when the load caps the rate below the
limit, the summary says so instead of blaming a tier or the backend. Without any tier sample in the run the summary
says that no tier was measured, not that the backend is slow.

A failed reply whose error text names a tier (``error DEPENDENCY_TIMEOUT: postgres thread history timed out``; see
:func:`tier_named_in`) is evidence too: the share of the bad buckets' failures that name a tier raises its score
(``failures_naming`` counts them), and a tier named by at least half of them is over its SLA. Under a fault that lasts
the whole run there are no baseline buckets, so the latency comparison alone cannot tell a slow tier from a slow
agent; the backend's own words can. A named tier with no samples of its own gets an entry with ``p95`` null.

A tier *coincides* with the failure when its score is >= 0.25, or it breaks its own SLA while rising. Tiers are
ranked by score, then correlation; ``chain`` orders the tiers that went bad by onset instead (cause before effect,
:mod:`sla_checks.cascade`), named in the summary (``chain: redis → postgres``) when two or more did. The slowest stage is the gap of the five-event timeline
(``agent_started→agent_thinking`` ...) whose p95 grew most between baseline and bad buckets.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sla_checks.cascade import cascade_chain, failure_start, reference_buckets
from sla_checks.engine import DISCONNECT_METRIC, Bucket
from sla_checks.evaluate import (
    MetricData,
    ThresholdResult,
    ThresholdSpec,
    matching_metrics,
    statistic,
)
from sla_checks.expressions import Expression, parse_expression, unit_of
from sla_checks.formatting import format_ms, format_value
from sla_checks.histogram import Histogram
from sla_checks.offered_load import FLOW_METRIC, LAG_METRIC, OfferedLoad, RpsCap, rps_cap
from sla_checks.tiers import ATTRIBUTED_TYPES, TIER_LABELS, tier_named_in, tier_of

__all__ = [
    "attribute",
    "gauge_correlations",
    "tier_of",
    "tier_named_in",
    "TIER_LABELS",
    "ATTRIBUTED_TYPES",
    "COINCIDE_SCORE",
    "MIN_GAUGE_WINDOWS",
]

COINCIDE_SCORE = 0.25
MIN_GAUGE_WINDOWS = 5
"""Buckets with both a chat p95 and a gauge reading needed before a gauge's correlation is reported."""
STRONG_CORRELATION = 0.5
"""|detrended r| from which a gauge is named in the summary line (when also significant, see :func:`_significant`)."""
MATERIAL_CHANGE = 0.05
"""Least relative change of a gauge's mean between the failing buckets and the others for it to be named."""
_T_CRITICAL = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23,
               12: 2.18, 15: 2.13, 20: 2.09, 30: 2.04}
"""Two-sided 95 % critical values of Student's t by degrees of freedom (beyond 30: 1.96)."""
DESIGN_LIMIT_MS = {"PG": 200.0, "REDIS": 50.0, "CH": 1000.0, "HTTP": 1000.0}
"""The seed plan's per-tier SLAs (p95, ms; docs/sla.md, attribution), the yardstick for a tier metric that has neither a threshold in the profile
nor samples outside the bad buckets (a probe that started late, a run that was slow from the start)."""
FAILING_RATIO = 0.2
"""A tier metric failing at least this share of its calls in the bad buckets (and more than in the baseline) counts
as rising too: a Redis refusing writes (OOM) fails chat messages fast without any latency rise."""


def _p95(d: MetricData | Histogram | None) -> float | None:
    if d is None:
        return None
    h = d.hist if isinstance(d, MetricData) else d
    return h.percentile(95) if h.count else None


def _merge_metric(buckets: Sequence[Bucket], metric: str) -> MetricData | None:
    parts = [b.metrics[metric] for b in buckets if metric in b.metrics]
    return MetricData.merged(parts) if parts else None


def _merge_stage(buckets: Sequence[Bucket], stage: str) -> Histogram | None:
    parts = [b.stages[stage] for b in buckets if stage in b.stages]
    return Histogram.merged(parts) if parts else None


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / math.sqrt(sxx * syy)


def _detrend(ts: Sequence[float], ys: Sequence[float]) -> list[float]:
    """``ys`` less its least-squares straight line over ``ts``."""
    n = len(ts)
    mt, my = sum(ts) / n, sum(ys) / n
    stt = sum((t - mt) ** 2 for t in ts)
    slope = sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / stt if stt > 0 else 0.0
    return [y - my - slope * (t - mt) for t, y in zip(ts, ys, strict=True)]


def _detrended_r(ts: Sequence[float], xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson r of ``xs`` and ``ys`` after removing each one's straight-line trend over ``ts`` (None: fewer than 4
    points, or a series that is a straight line in time, whose residue is rounding noise)."""
    if len(ts) < 4:
        return None
    rx, ry = _detrend(ts, xs), _detrend(ts, ys)
    for raw, res in ((xs, rx), (ys, ry)):
        m = sum(raw) / len(raw)
        spread = sum((v - m) ** 2 for v in raw)
        if sum(v * v for v in res) <= 1e-9 * spread + 1e-12:
            return None
    return _pearson(rx, ry)


def _change(ts: Sequence[float], ys: Sequence[float], bad: Collection[float]) -> float | None:
    """Change of the mean reading in the ``bad`` buckets against the others, relative to the larger of the two
    means (so within -1..1, and defined when one side is 0); None when either side has no reading."""
    bad_set = {round(t, 6) for t in bad}
    inside = [y for t, y in zip(ts, ys, strict=True) if round(t, 6) in bad_set]
    outside = [y for t, y in zip(ts, ys, strict=True) if round(t, 6) not in bad_set]
    if not inside or not outside:
        return None
    m_in, m_out = sum(inside) / len(inside), sum(outside) / len(outside)
    scale = max(abs(m_out), abs(m_in))
    return (m_in - m_out) / scale if scale > 0 else 0.0


def _significant(r: float, n: int) -> bool:
    """Whether a partial correlation ``r`` over ``n`` points (time held out: ``n - 3`` degrees of freedom) differs
    from 0 at the 5 % level: with 6 windows |r| must reach 0.88, with 20 about 0.45."""
    dof = n - 3
    if dof < 1:
        return False
    if abs(r) >= 1.0:
        return True
    crit = next((c for d, c in sorted(_T_CRITICAL.items()) if d >= dof), 1.96)
    return abs(r) * math.sqrt(dof / (1.0 - r * r)) >= crit


def gauge_correlations(
    latency: Sequence[tuple[float, float]],
    gauges: Mapping[str, Sequence[Sequence[float]]],
    bucket_s: float,
    min_windows: int = MIN_GAUGE_WINDOWS,
    bad: Collection[float] = (),
) -> list[dict[str, Any]]:
    """Pearson r of each gauge's per-bucket mean reading with the per-bucket latency.

    ``latency`` is ``[(bucket start, p95 ms)]``, ``gauges`` ``{name: [[unix_ts, value], ...]}`` (readings in
    ``[start, start + bucket_s)`` belong to that bucket). One row per gauge, strongest detrended |r| first (gauges
    without one last): ``{"gauge", "windows", "correlation", "detrended_correlation", "moves_with"}``; the
    correlations are None below ``min_windows`` buckets with both values, or when a series is flat (after removing
    its time trend, for the detrended one). ``moves_with``: the detrended |r| is >= :data:`STRONG_CORRELATION` and
    significant, i.e. the gauge moved with the latency beyond what both share by drifting over the run, and (given
    ``bad``, the starts of the failing buckets) its mean there differs from its mean in the other buckets by at
    least :data:`MATERIAL_CHANGE` (``change_pct``): a 0.3 MB step of a 72 MB process is no resource story.
    """
    latency = sorted(latency)
    starts = [start for start, _ in latency]
    rows: list[dict[str, Any]] = []
    for name, series in gauges.items():
        per_bucket: dict[int, list[float]] = {}
        for at, value in ((float(p[0]), float(p[1])) for p in series):
            i = bisect_right(starts, at) - 1
            if i >= 0 and at < starts[i] + bucket_s:
                per_bucket.setdefault(i, []).append(value)
        ts: list[float] = []
        xs: list[float] = []
        ys: list[float] = []
        for i, (start, ms) in enumerate(latency):
            readings = per_bucket.get(i)
            if readings:
                ts.append(start)
                xs.append(ms)
                ys.append(sum(readings) / len(readings))
        r = _pearson(xs, ys) if len(xs) >= max(3, min_windows) else None
        rd = _detrended_r(ts, xs, ys) if r is not None else None
        change = _change(ts, ys, bad)
        strong = rd is not None and abs(rd) >= STRONG_CORRELATION and _significant(rd, len(xs))
        rows.append({
            "gauge": name,
            "windows": len(xs),
            "correlation": None if r is None else round(r, 3),
            "detrended_correlation": None if rd is None else round(rd, 3),
            "change_pct": None if change is None else round(100.0 * change, 1),
            "moves_with": strong and (change is None or abs(change) >= MATERIAL_CHANGE),
        })
    rows.sort(key=lambda g: (
        g["detrended_correlation"] is None,
        -abs(g["detrended_correlation"] or 0.0),
        g["correlation"] is None,
        -abs(g["correlation"] or 0.0),
        g["gauge"],
    ))
    return rows


def _tier_threshold(metric: str, specs: Sequence[ThresholdSpec]) -> ThresholdSpec | None:
    """The percentile threshold that applies to ``metric`` (exact beats glob; p(95) preferred)."""
    cands = [s for s in specs if s.expression.stat == "p" and matching_metrics(s.metric, [metric])]
    if not cands:
        return None
    cands.sort(key=lambda s: (s.is_glob, abs((s.expression.arg or 0) - 95)))
    return cands[0]


def _bucket_breaks(expr: Expression, d: MetricData) -> bool:
    """Whether one bucket's samples break ``expr``, counting failed samples as over any latency limit (a failed
    message is not a fast reply, even when its error came back quickly)."""
    n = d.count
    if n == 0 or expr.stat in ("rps", "count"):
        return False
    if expr.is_latency and expr.op in ("<", "<="):
        limit = expr.limit if expr.op == "<=" else expr.limit - 1e-6
        ok = d.hist.count_le(limit) - d.fails.count_le(limit)
        if expr.stat == "p":
            return ok < math.ceil((expr.arg or 0.0) / 100.0 * n - 1e-9)
        if expr.stat == "max":
            return ok < n
        if d.failures * 2 > n:
            return True
    v = statistic(expr, d, 1.0)
    return v is not None and not expr.holds(v)


def _rel(value: float, limit: float) -> str:
    return ">" if value > limit else ("<" if value < limit else "=")


def _metric_label(metric: str) -> str:
    rtype, _, name = metric.partition(" ")
    return f'{rtype} "{name}"'


def attribute(
    failing: ThresholdResult,
    buckets: Sequence[tuple[float, Bucket]],
    specs: Sequence[ThresholdSpec],
    gauges: Mapping[str, Sequence[Sequence[float]]] | None = None,
    bucket_s: float | None = None,
    load: OfferedLoad | None = None,
) -> dict[str, Any]:
    """Attribution record for one failing threshold (see the module docstring and the report schema).

    ``gauges`` (the store's ``{name: [[unix_ts, value], ...]}``) and ``bucket_s`` (the buckets' width; by default
    the smallest gap between bucket starts) add the per-gauge correlation with the failing metric's p95. ``load``
    (the run's offered load) lets a failing ``rps`` lower limit be held against what that load could reach
    (``offered_load`` in the record: :meth:`~sla_checks.offered_load.RpsCap.to_dict`).
    """
    expr = failing.spec.expression
    target = failing.metric
    series = [
        (i, t, b) for i, (t, b) in enumerate(buckets) if target in b.metrics and b.metrics[target].count
    ]
    idx_all = [i for i, _, _ in series]
    bad = {i for i, _, b in series if _bucket_breaks(expr, b.metrics[target])}
    if not bad and len(series) >= 2:
        p95s = sorted(_p95(b.metrics[target]) or 0.0 for _, _, b in series)
        median = p95s[len(p95s) // 2]
        bad = {i for i, _, b in series if (_p95(b.metrics[target]) or 0.0) > median}
    if not bad:
        bad = set(idx_all)
    base = [i for i in idx_all if i not in bad]
    widened = {j for i in bad for j in (i - 1, i, i + 1) if 0 <= j < len(buckets)}
    base_tier = [i for i in range(len(buckets)) if i not in widened]

    bad_b = [buckets[i][1] for i in sorted(bad)]
    base_b = [buckets[i][1] for i in base]
    t_bad = _p95(_merge_metric(bad_b, target))
    t_base = _p95(_merge_metric(base_b, target)) if base_b else None
    limit = expr.limit if expr.is_latency else None
    if t_bad is not None and t_base is not None and t_bad > t_base + 1.0:
        t_rise = t_bad - t_base
    elif t_bad is not None and limit is not None and t_bad > limit:
        t_rise = t_bad - limit
    else:
        # the bad buckets are bad by failures rather than by latency (errors come back fast): scale by the limit
        t_rise = limit if limit else (t_bad or 0.0)

    # per-bucket target p95 for correlation
    target_by_idx = {i: _p95(b.metrics[target]) for i, _, b in series}

    tier_metrics = sorted({m for _, b in buckets for m in b.metrics if tier_of(m) and b.metrics[m].count})
    per_tier: dict[str, dict[str, Any]] = {}
    for m in tier_metrics:
        tier = tier_of(m) or ""
        bad_d = _merge_metric([buckets[i][1] for i in sorted(widened)], m)
        k_bad = _p95(bad_d)
        if k_bad is None:
            continue
        base_d = _merge_metric([buckets[i][1] for i in base_tier], m) if base_tier else None
        k_base = _p95(base_d)
        f_bad = bad_d.failures / bad_d.count if bad_d is not None and bad_d.count else 0.0
        f_base = base_d.failures / base_d.count if base_d is not None and base_d.count else 0.0
        f_rise = f_bad - f_base if f_bad >= FAILING_RATIO else 0.0
        spec = _tier_threshold(m, specs)
        within = spec.expression.holds(k_bad) if spec else None
        design_limit = DESIGN_LIMIT_MS.get(m.partition(" ")[0])
        if k_base is not None:
            k_rise = k_bad - k_base
        elif spec is not None:
            k_rise = k_bad - spec.expression.limit
        elif design_limit is not None:
            k_rise = max(0.0, k_bad - design_limit)
            within = k_bad < design_limit
        else:
            k_rise = 0.0
        score = max(0.0, min(1.0, k_rise / t_rise)) if t_rise > 0 else 0.0
        score = max(score, min(1.0, f_rise))  # a tier that fails fast (refused writes) explains errors too
        xs, ys = [], []
        for i, tv in target_by_idx.items():
            d = buckets[i][1].metrics.get(m)
            kv = _p95(d)
            if tv is not None and kv is not None:
                xs.append(tv)
                ys.append(kv)
        corr = _pearson(xs, ys)
        if within is None:
            within = not (k_rise > max(20.0, (k_base or 0.0)))
        if f_rise > 0:
            within = False
        entry = {
            "tier": tier,
            "metric": m,
            "p95": k_bad,
            "baseline_p95": k_base,
            "threshold": str(spec.expression) if spec else None,
            "within_sla": bool(within),
            "score": round(score, 3),
            "correlation": None if corr is None else round(corr, 3),
            "rise_ms": round(k_rise, 1),
            "fail_ratio": round(f_bad, 3),
            "baseline_fail_ratio": round(f_base, 3),
            "failures_naming": 0,
        }
        best = per_tier.get(tier)
        key = (entry["score"], -1 if corr is None else corr, not within, k_rise + 1000.0 * f_rise)
        if best is None or key > best["_key"]:
            entry["_key"] = key
            per_tier[tier] = entry
    _add_named_evidence(per_tier, target, [buckets[i][1] for i in sorted(bad)])
    tiers = sorted(per_tier.values(), key=lambda e: e["_key"], reverse=True)
    for e in tiers:
        del e["_key"]

    # stages of the five-event timeline
    stage_names = sorted({s for _, b in buckets for s in b.stages})
    slowest, slowest_growth = None, -math.inf
    stage_rows = []
    for s in stage_names:
        s_bad = _p95(_merge_stage(bad_b, s))
        if s_bad is None:
            continue
        s_base = _p95(_merge_stage(base_b, s)) if base_b else None
        growth = s_bad - (s_base if s_base is not None else 0.0)
        stage_rows.append({"stage": s, "p95": s_bad, "baseline_p95": s_base, "growth_ms": round(growth, 1)})
        if growth > slowest_growth:
            slowest, slowest_growth = s, growth

    coinciding = [
        e
        for e in tiers
        if e["score"] >= COINCIDE_SCORE
        or (not e["within_sla"] and (e["rise_ms"] > 0 or e["fail_ratio"] > e["baseline_fail_ratio"]))
    ]
    value = failing.value
    unit = unit_of(expr, target)
    head = f"{target} {expr.lhs} {format_value(value, unit, missing='no data')}"
    if value is not None:
        head += f" {_rel(value, expr.limit)} {format_value(expr.limit, unit)}"
    cap = _rps_cap(expr, target, [b for _, b in buckets], load)
    clauses = []
    tail: list[str] = []
    if cap is not None and cap.caps(expr.limit, value):
        clauses.append(cap.describe(expr.limit, value))
    elif cap is not None and cap.generator_behind():
        clauses.append(cap.lag_text())
    load_alone = cap is not None and cap.load_alone(expr.limit, value)
    # a failing WS/FLOW line whose windows hold dropped connections was failed by the drops when no tier coincides
    drops = _merge_metric([buckets[i][1] for i in sorted(widened)], DISCONNECT_METRIC)
    dropped = drops.count if drops is not None and target.partition(" ")[0] in ATTRIBUTED_TYPES else 0
    if dropped and not coinciding and not load_alone:
        lead = "no tier's latency rose, but " if per_tier else "no tier was measured; "
        clauses.append(
            f"{lead}{dropped} connection(s) dropped in the same windows ({DISCONNECT_METRIC}), failing what was in "
            "flight on them: whatever ended them (a load balancer's lifetime or idle timeout, a proxy, the "
            "backend's process) is the cause; their error text says how they ended"
        )
    elif not load_alone:
        clauses.append(_tier_clause(coinciding, per_tier))
        if dropped:
            tail.append(f"{dropped} connection(s) dropped in the same windows ({DISCONNECT_METRIC})")
    ok_tiers = [
        TIER_LABELS.get(e["tier"], e["tier"]) for e in tiers if e not in coinciding and e["within_sla"]
    ]
    others = [t for t in TIER_LABELS if t not in per_tier]
    if ok_tiers and not load_alone:
        tail.append(f"{', '.join(ok_tiers)} within SLA")
    if others and coinciding:  # else the tier clause names what was not measured (or the load is the cause)
        tail.append(f"no samples from {', '.join(TIER_LABELS[t] for t in others)}")
    if slowest is not None and not load_alone:
        tail.append(f"slowest stage: {slowest}")
    gauge_rows: list[dict[str, Any]] = []
    if gauges:
        width = bucket_s or min(
            (b[0] - a[0] for a, b in zip(buckets, buckets[1:], strict=False) if b[0] > a[0]), default=2.0
        )
        latency = [(buckets[i][0], v) for i, v in target_by_idx.items() if v is not None]
        gauge_rows = gauge_correlations(latency, gauges, width, bad=[buckets[i][0] for i in bad])
        strong = [g for g in gauge_rows if g["moves_with"]]
        if strong and not load_alone:
            tail.append(
                "moves with "
                + ", ".join(
                    f"{g['gauge']} (r {g['detrended_correlation']:+.2f} detrended, {g['windows']} windows)"
                    for g in strong[:3]
                )
            )
    start = failure_start(bad)
    chain = cascade_chain(buckets, specs, reference_buckets(buckets, specs, len(buckets) if start is None else start))
    if chain is not None and len(chain["order"]) >= 2 and not load_alone:
        tail.append(f"chain: {chain['text']}")
    summary = head + " — " + "; ".join(clauses + tail)
    return {
        "metric": target,
        "expression": str(expr),
        "summary": summary,
        "tiers": tiers,
        "slowest_stage": slowest,
        "stages": stage_rows,
        "bad_windows": [buckets[i][0] for i in sorted(bad)],
        "baseline_p95": t_base,
        "bad_p95": t_bad,
        "gauges": gauge_rows,
        "offered_load": None if cap is None else cap.to_dict(expr.limit, value),
        "chain": chain,
    }


def _add_named_evidence(per_tier: dict[str, dict[str, Any]], target: str, bad: Sequence[Bucket]) -> None:
    """Fold the failed samples of ``target`` in the bad buckets whose error text names a tier into that tier's entry
    (``failures_naming``): the named share of those failures raises its score, and a tier named by at least half of
    them is over its SLA. A named tier with no samples of its own gets an entry of its own."""
    failures = sum(b.metrics[target].failures for b in bad if target in b.metrics)
    named: dict[str, int] = {}
    for b in bad:
        for tier, n in b.named.get(target, {}).items():
            named[tier] = named.get(tier, 0) + n
    if not failures:
        return
    for tier, n in named.items():
        share = min(1.0, n / failures)
        entry = per_tier.get(tier)
        if entry is None:
            entry = per_tier[tier] = {
                "tier": tier, "metric": f"{target} errors", "p95": None, "baseline_p95": None, "threshold": None,
                "within_sla": True, "score": 0.0, "correlation": None, "rise_ms": 0.0, "fail_ratio": 0.0,
                "baseline_fail_ratio": 0.0, "_key": (0.0, -1, False, 0.0),
            }
        entry["failures_naming"] = n
        entry["score"] = round(max(entry["score"], share), 3)
        if share >= 0.5:
            entry["within_sla"] = False
        _, corr, _, rise = entry["_key"]
        entry["_key"] = (entry["score"], corr, not entry["within_sla"], rise)


def _tier_clause(coinciding: Sequence[dict[str, Any]], per_tier: Mapping[str, Any]) -> str:
    """The summary's tier clause: which tiers coincide; else that none was measured, or that none of the measured
    ones rose (naming the agent, or an unmeasured tier, as what is left)."""
    if coinciding:
        cs = []
        for e in coinciding:
            thr = ""
            if e["threshold"]:
                thr = f" (threshold {_fmt_num(_tier_limit(e['threshold']))})"
            what = f"p95 {format_ms(e['p95'], missing='n/a')}{thr}"
            if e["fail_ratio"] >= FAILING_RATIO and e["fail_ratio"] > e["baseline_fail_ratio"]:
                what = (
                    f"failing {100 * e['fail_ratio']:.0f}% of calls (baseline {100 * e['baseline_fail_ratio']:.0f}%), "
                    + what
                )
            if e["correlation"] is not None and e["correlation"] < 0:  # near the failure, but not with it
                what += f", though it did not rise with the chat latency bucket by bucket (r {e['correlation']:+.2f})"
            if e.get("failures_naming"):
                label = TIER_LABELS.get(e["tier"], e["tier"])
                named = f"{label}, named in the error of {e['failures_naming']} failed replies"
                over = e["p95"] is not None and e["threshold"] and e["p95"] > _tier_limit(e["threshold"])
                cs.append(f"{named}; {_metric_label(e['metric'])} {what}" if over else named)
                continue
            cs.append(f"{_metric_label(e['metric'])} {what}")
        return "coincides with " + ", ".join(cs)
    if not per_tier:
        return (
            "no tier was measured (no PG, REDIS, CH or HTTP ready:<tier> samples), so which tier is slow cannot be "
            "told: run the probe users (PostgresProbeUser, RedisProbeUser, ClickHouseProbeUser, HealthCheckUser) too"
        )
    unmeasured = [TIER_LABELS[t] for t in TIER_LABELS if t not in per_tier]
    if unmeasured:
        return (
            "no measured tier's latency rose in the same windows (the agent itself, or an unmeasured tier: "
            f"{', '.join(unmeasured)}, is slow)"
        )
    return "no tier's latency rose in the same windows (the backend/agent itself is slow)"


def _rps_cap(expr: Expression, target: str, buckets: Sequence[Bucket], load: OfferedLoad | None) -> RpsCap | None:
    """For a lower limit on ``rps``: what the offered ``load`` could reach, from the measured mean reply (every
    sample of ``target``), flow round and generator lag over ``buckets``; None for other lines or without facts."""
    if load is None or expr.stat != "rps" or expr.op not in (">", ">="):
        return None
    reply = _merge_metric(buckets, target)
    flow = _merge_metric(buckets, FLOW_METRIC)
    lag = _merge_metric(buckets, LAG_METRIC)
    return rps_cap(
        load,
        target,
        reply.hist.mean if reply is not None else None,
        flow.hist.mean if flow is not None else None,
        _p95(lag),
    )


def _tier_limit(expression_text: str) -> float:
    return parse_expression(expression_text).limit


def _fmt_num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
