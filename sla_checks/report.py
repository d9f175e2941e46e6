"""SLA reports: the report dict (JSON, schema below), the terminal table and JUnit XML.

The report dict is the one contract between the engine and every renderer (JSON file, terminal, JUnit, the HTML
report of :mod:`sla_checks.report_html` and the live web-UI tab, which polls ``environment.sla.snapshot()``).
Fields may be added; none is renamed or removed. Times: ISO 8601 UTC strings; latencies in ms; ``null`` = no data.

Schema ``ws-agent-loadtest/sla-report/1``::

    {
      "schema": "ws-agent-loadtest/sla-report/1",
      "state": "running" | "finished",          # "running" while the test runs (live snapshots)
      "verdict": "pass" | "fail" | "inconclusive",  # live: the verdict if the run ended now; inconclusive:
                                                # nothing failed, nothing measured (no user, or no threshold
                                                # judged on a metric with samples)
      "verdict_reasons": [str],                 # "SLA FAILED: WS agent_completed p(95) < 2000 was 3120 ms",
                                                # "SLA INCONCLUSIVE: ... : <what to do>", ...
      "exit_code": int,                         # the process exit code this verdict gives (see README)
      "peak_users": int|null,                   # most users running at once (all workers; null: not tracked)
      "scenario": null | {"name": str, "scale": float,  # the --scenario run (null: a plain run); scale:
                          "peak_users": int,      # --scenario-scale; peak_users: the scaled shape's most
                          "shape": str, "duration_s": float},  # users plus fixed-count ones
      "profile": str, "config_file": str,
      "started_at": ISO, "ended_at": ISO|null, "duration_s": float,
      "workers": int,                           # Locust worker processes seen (0 = local runner)
      "workers_lost": int,                      # workers that went missing during the run
      "aborted": null | {"threshold": str, "reason": str, "at": ISO},
      "window_s": float,                        # window length used for "windows"
      "windows_judged": bool,                   # true with --sla-window / a soak profile: thresholds per window
      "bucket_s": float,                        # internal time-bucket width (attribution resolution)
      "samples": int,                           # samples judged (all metrics)
      "warmup_s": float,                        # --sla-warmup / the profile's warmup_s (0: none)
      "warmup_samples": int,                    # samples of the warm-up: not judged, not in "metrics"/"stages"
                                                # (in "windows" unless windows are judged: those start after it)
      "abandoned_at_stop": int,                 # chat messages still in flight when the run stopped (all
                                                # processes) = messages.failed_at_stop + messages.in_flight
      "messages": null | {                      # chat message accounting (null: the run sent no chat message)
          "sent": int,                          # sent = completed + failed + in_flight (+ unaccounted)
          "completed": int, "failed": int,      # WS agent_completed successes / failures of sent messages
          "failed_at_stop": int,                # of "failed": in flight at the stop, waited past the limit
          "in_flight": int,                     # in flight at the stop, younger than the limit: not judged
                                                # (live: in flight now)
          "in_flight_limit_ms": float|null,     # the longest latency limit of WS agent_completed (null: each
                                                # message's reply deadline)
          "not_sent": int,                      # open model: due but never sent (failed samples, not in "sent")
          "unaccounted": int},                  # sent but in none of the above (lost workers); else 0
      "reconnects": {"close 1001": int, ...},  # planned reconnects per cause (all processes), each also a
                                                # successful "WS reconnect" sample: close 1000/1001/1012/1013,
                                                # eof (closed without a close frame), max age (--ws-max-age)
      "anomalies": {"malformed json": int, ...},  # protocol anomalies per kind (all processes), each also a
                                                # failed "WS protocol anomaly" sample: malformed json, invalid
                                                # utf-8, binary frame, unknown id, late frame, duplicate
                                                # completed, order violation, duplicate event ...
      "thresholds": [{
          "metric": "WS agent_completed",       # the concrete metric (a glob's pattern when nothing matched)
          "pattern": "WS agent_completed",      # as configured (may be a glob, e.g. "PG *")
          "expression": "p(95) < 2000",
          "description": str,
          "status": "pass" | "fail" | "no data",
          "value": float|null, "unit": "ms"|"%"|"rps"|"ratio"|"count",
          "limit": float,                       # the expression's right-hand side in the value's unit (2000,
                                                # 95 for within(..) >= 95%, 0.01 for fail_ratio < 0.01)
          "samples": int, "abort_on_fail": bool, "required": bool,
          "failed_windows": [int],              # window indexes where it failed (windows_judged only)
          "source": str,                        # "ci.toml: thresholds.\"WS agent_completed\"[0]"
          "did_you_mean": [str]                 # no samples: the closest metrics the run produced (else [])
      }],
      "metrics": {"WS agent_completed": {"request_type": "WS", "name": "agent_completed", "count": int,
                  "failures": int, "p50": ms, "p90": ms, "p95": ms, "p99": ms, "max": ms, "min": ms, "avg": ms,
                  "rps": float}},               # rps here: all samples / duration (Locust's); the threshold
                                                # statistic rps counts successful samples only
      "windows": [{"index": int, "start": ISO, "end": ISO, "start_ts": unix, "end_ts": unix,
                   "judged": bool,
                   "metrics": {"<metric>": {"count", "failures", "p50", "p95", "p99", "max"}},
                   "stages": {"<gap>": {"count", "p50", "p95", "p99", "max"}},
                   "gauges": {"<gauge>": {"avg", "max", "last"}},
                   "failed": ["<metric> <expr>"]}],
      "drift": {"<metric>": {"p95": [[window index, ms], ...], "first_p95", "last_p95", "max_p95",
                             "change_pct"}},      # windows_judged only: p95 drift over the judged windows
      "stages": {"agent_started→agent_thinking": {"count", "p50", "p95", "p99", "max"}, ...},
      "attribution": [{"metric": str, "expression": str, "summary": str,
                       "tiers": [{"tier": "postgres", "metric": "PG thread history", "p95": ms|null,
                                  "baseline_p95": ms|null, "threshold": str|null, "within_sla": bool,
                                  "score": float, "correlation": float|null, "rise_ms": float,
                                  "fail_ratio": float, "baseline_fail_ratio": float,
                                  "failures_naming": int}],  # failed replies whose error names the tier
                       "slowest_stage": str|null,
                       "chain": {"order": [tier], "text": "redis → postgres",  # tiers by onset (sla_checks.cascade)
                                 "tiers": [{"tier", "index", "start", "after_s", "metric", "p95", "baseline_p95",
                                            "limit"}]}|null,
                       "stages": [{"stage", "p95", "baseline_p95", "growth_ms"}],
                       "bad_p95": ms|null, "baseline_p95": ms|null, "bad_windows": [unix],
                       "gauges": [{"gauge": "target:cpu_percent", "windows": int,  # buckets with both values
                                   "correlation": float|null,  # Pearson r of the gauge's mean per bucket
                                                # with the metric's p95 per bucket (null: < 5 buckets, or flat)
                                   "detrended_correlation": float|null,  # the same after removing each
                                                # series' straight-line time trend (null: a straight line)
                                   "change_pct": float|null,  # its mean in the failing buckets against the
                                                # others, % of the larger (null: no split)
                                   "moves_with": bool}],  # named in the summary: detrended |r| >= 0.5,
                                                # significant, and |change_pct| >= 5 (a gauge that only drifts
                                                # with time is not)
                       "offered_load": null | {  # a failing "rps >=" line: what the offered load could reach
                           "model": "closed" | "open", "cap_rps": float,  # closed: users x inflight /
                                                # (think + mean reply); open: the arrival schedule's mean rate
                           "instant_cap_rps": float|null,  # closed: with instant replies (null: no think time)
                           "users": float, "peak_users": int, "inflight": float,  # chat users (time average
                                                # over the judged span; all workers), messages per round
                           "think_s": float, "reply_s": float|null,  # --ws-think-time; measured mean reply
                           "arrival_rate": float|null, "generator_lag_p95_ms": float|null,  # open model
                           "caps": bool}}],     # true: the load, not the backend, kept the rate under its limit
      "gauges": {"locust:cpu_percent": [[unix_ts, value], ...]},
      "timeline": null | {                      # the run as <= 120 points in time (null: no sample yet); all
                                                # samples, the warm-up's too
          "t0": unix,                           # the test start
          "step_s": float,                      # each point's span: store buckets (2 s) grouped to <= 120 points
          "t": [s],                             # each point's middle, seconds from t0 (its span cut to the run)
          "requests_per_s": [float], "failures_per_s": [float],  # all metrics' samples / failures per second
          "users": [int|null],                  # most users running during the point (all workers)
          "latency": null | {"metric": "WS agent_completed",  # the chat reply (else the first WS/FLOW metric)
                             "count": [int], "p50": [ms|null], "p95": [ms|null], "p99": [ms|null]},
          "thresholds": [{"metric": str, "expression": str,  # in the order of "thresholds" above
                          "values": [float|null]}]},  # the threshold judged on the point's samples alone
                                                # (null: its metric had no sample in the point)
      "distribution": null | {                  # judged samples of timeline.latency's metric per bin
          "metric": str, "count": int,
          "edges_ms": [ms],                     # whole ms, log-spaced; every latency limit below is an edge
          "counts": [int],                      # counts[i]: samples in (edges_ms[i], edges_ms[i+1]] (exact)
          "percentiles": {"p50": ms, "p95": ms, "p99": ms},
          "limits": [{"expression": "p(95) < 2000", "ms": 2000, "status": "fail"}]},  # its latency limits:
                                                # upper-bound p(..)/avg/med/max/min and within(T)'s T
      "faults": [{"kind": "agent-slow", "detail": "2500 ms",  # faults injected into the target (scenario
                  "start": ISO, "end": ISO, "start_ts": unix, "end_ts": unix,  # --inject-faults): sent at
                  "start_s": s, "end_s": s,     # start, planned end cut at the run's end; _s: from the start
                  "error": str|null}],          # why it could not be applied (then it was not active)
      "locust_report": str|null,                # Locust's own --html report of the run, relative to the
                                                # --sla-report-html file (null: none written, e.g. SIGTERM)
      "judged_duration_s": float,               # the span the verdict covers (the run less the warm-up): the
                                                # denominator of the threshold statistic rps
      "histograms": null | {"<metric>": {"h": {"b": [[bucket ms, count], ...], "n": int, "s": sum ms,
                                               "lo": min ms, "hi": max ms},
                                         "f": {...}}},  # the judged samples' exact histogram per metric (bucket k
                                                # holds k-1 < v <= k ms, sla_checks.histogram); "f": the failed
                                                # ones (absent: none). Finished reports only (null while running):
                                                # what --sla-baseline / compare judge a later run against
      "regression": null | {                    # --sla-baseline: the run against a baseline run (null: none)
          "baseline": {"file", "profile", "scenario", "started_at", "verdict", "duration_s"},
          "defaults": bool,                     # true: no regression line configured, the default ones judged
          "confidence_level": 0.95,             # a line fails when beyond it with at least this confidence
          "warnings": [str],                    # another profile or scenario, a failed baseline ...
          "failed": int,
          "lines": [{"metric", "pattern", "expression": "p(95) <= baseline * 1.1 + 5ms", "description",
                     "source", "unit": "ms"|"rps",
                     "status": "pass" | "fail" | "no data" | "no baseline",
                     "old": float|null, "new": float|null, "limit": float|null, "change_pct": float|null,
                     "confidence": float|null,  # 0..1 that the run is beyond the line
                     "beyond_line": bool,       # the new value is beyond the line (a pass: within noise)
                     "samples_old": int, "samples_new": int}]}
    }

An example: ``tests/fixtures/sla_report_example.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import xml.etree.ElementTree as ET
from bisect import bisect_left
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sla_checks.attribution import attribute
from sla_checks.baseline import Gate, describe_row, regression_lines_text, regression_verdict
from sla_checks.counters import CHAT_NOT_SENT, CHAT_SENT, abandoned_at_stop, anomalies, reconnects
from sla_checks.engine import CHAT_METRIC, Bucket, Engine, Window, in_flight_limit_ms
from sla_checks.evaluate import FAIL, INCONCLUSIVE, NO_DATA, PASS, MetricData, ThresholdResult
from sla_checks.expressions import unit_of
from sla_checks.formatting import format_count, format_value
from sla_checks.histogram import Histogram
from sla_checks.offered_load import OfferedLoad
from sla_checks.timeline import build_timeline, fault_rows, latency_distribution

__all__ = [
    "SCHEMA",
    "build_report",
    "render_terminal",
    "render_junit",
    "verdict_exit_code",
    "write_reports",
    "iso",
]

SCHEMA = "ws-agent-loadtest/sla-report/1"
MAX_ATTRIBUTIONS = 6
logger = logging.getLogger(__name__)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _num(v: float | None, nd: int = 3) -> float | None:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return round(float(v), nd)


def _hist_summary(h: Histogram, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, Any]:
    ps = h.percentiles(qs)
    out: dict[str, Any] = {"count": h.count}
    for q in qs:
        out[f"p{int(q)}"] = _num(ps[q])
    out["max"] = _num(h.max) if h.count else None
    return out


def _metric_summary(key: str, m: MetricData, duration_s: float) -> dict[str, Any]:
    rtype, _, name = key.partition(" ")
    h = m.hist
    ps = h.percentiles((50, 90, 95, 99))
    return {
        "request_type": rtype,
        "name": name,
        "count": h.count,
        "failures": m.failures,
        "p50": _num(ps[50]),
        "p90": _num(ps[90]),
        "p95": _num(ps[95]),
        "p99": _num(ps[99]),
        "max": _num(h.max) if h.count else None,
        "min": _num(h.min) if h.count else None,
        "avg": _num(h.mean),
        "rps": _num(h.count / duration_s if duration_s > 0 else None),
    }


def _threshold_row(r: ThresholdResult, engine: Engine) -> dict[str, Any]:
    s = r.spec
    return {
        "metric": r.metric,
        "pattern": s.metric,
        "expression": str(s.expression),
        "description": s.description,
        "status": r.status,
        "value": _num(r.value),
        "unit": unit_of(s.expression, r.metric),
        "limit": _num(s.expression.limit, 6),
        "samples": r.samples,
        "abort_on_fail": s.abort_on_fail,
        "required": s.required,
        "failed_windows": list(r.failed_windows),
        "source": s.source,
        "did_you_mean": engine.did_you_mean(r),
    }


_time_of = itemgetter(0)


def _gauge_window(gauges: dict[str, list[list[float]]], start: float, end: float) -> dict[str, Any]:
    """avg/max/last per gauge over ``start <= t < end``; each series sorted by time (``build_report`` sorts them),
    so a window costs two bisections, not a pass over the whole series (a snapshot has ~60 windows)."""
    out = {}
    for name, series in gauges.items():
        lo = bisect_left(series, start, key=_time_of)
        hi = bisect_left(series, end, lo, key=_time_of)
        vals = [v for _t, v in series[lo:hi]]
        if vals:
            out[name] = {"avg": _num(sum(vals) / len(vals)), "max": _num(max(vals)), "last": _num(vals[-1])}
    return out


_ROW_CACHE: dict[tuple[int, int, float], tuple[Bucket, dict[str, Any]]] = {}


def _bucket_size(b: Bucket) -> int:
    return sum(m.count for m in b.metrics.values()) + sum(h.count for h in b.stages.values())


def _window_row(w: Window, gauges: dict[str, list[list[float]]]) -> dict[str, Any]:
    # an unchanged window is the same Bucket object as last time (the engine's window cache): reuse its summary
    key = (id(w.bucket), w.index, w.start)
    hit = _ROW_CACHE.get(key)
    if hit is not None and hit[0] is w.bucket and hit[1].get("_n") == _bucket_size(w.bucket):
        metrics, stages = hit[1]["metrics"], hit[1]["stages"]
    else:
        metrics = {
            k: {**_hist_summary(m.hist), "failures": m.failures}
            for k, m in sorted(w.bucket.metrics.items())
            if m.count
        }
        stages = {k: _hist_summary(h) for k, h in sorted(w.bucket.stages.items()) if h.count}
        if len(_ROW_CACHE) > 5000:
            _ROW_CACHE.clear()
        _ROW_CACHE[key] = (w.bucket, {"metrics": metrics, "stages": stages, "_n": _bucket_size(w.bucket)})
    return {
        "index": w.index,
        "start": iso(w.start),
        "end": iso(w.end),
        "start_ts": _num(w.start),
        "end_ts": _num(w.end),
        "judged": w.judged,
        "metrics": {k: dict(v) for k, v in metrics.items()},  # copies: the cached summary stays intact
        "stages": {k: dict(v) for k, v in stages.items()},
        "gauges": _gauge_window(gauges, w.start, w.end),
        "failed": [r.name for r in w.failed],
    }


def _drift(windows: list[Window]) -> dict[str, Any]:
    """p95 per judged window for every metric with samples in >= 2 of them: first, last, max, change."""
    series: dict[str, list[tuple[int, float]]] = {}
    for w in windows:
        if not w.judged:
            continue
        for k, m in w.bucket.metrics.items():
            p95 = m.hist.percentile(95) if m.count else None
            if p95 is not None:
                series.setdefault(k, []).append((w.index, p95))
    out = {}
    for k, pts in sorted(series.items()):
        if len(pts) < 2:
            continue
        first, last = pts[0][1], pts[-1][1]
        out[k] = {
            "p95": [[i, _num(v)] for i, v in pts],
            "first_p95": _num(first),
            "last_p95": _num(last),
            "max_p95": _num(max(v for _, v in pts)),
            "change_pct": _num(100.0 * (last - first) / first if first > 0 else None, 1),
        }
    return out


def verdict_exit_code(verdict: str, fail_code: int, inconclusive_code: int, other_exit_code: int) -> int:
    """The process exit code of ``verdict``: a fail or inconclusive verdict replaces Locust's own exit code
    (``--sla-exit-code`` / ``--sla-inconclusive-exit-code``); a pass leaves it (0, or 1 when requests failed)."""
    if verdict == FAIL:
        return fail_code
    if verdict == INCONCLUSIVE:
        return inconclusive_code
    return other_exit_code


def build_report(
    engine: Engine,
    now: float,
    *,
    final: bool = True,
    other_exit_code: int = 0,
    load: OfferedLoad | None = None,
    gate: Gate | None = None,
) -> dict[str, Any]:
    """The report dict for ``engine`` at ``now``.

    ``gate`` (``--sla-baseline``) judges the run's regression lines against a baseline run: the ``regression``
    section, and a failing line fails the verdict.

    ``load`` (the run's offered load, :class:`~sla_checks.load_watch.LoadWatch`) lets the attribution of a failing
    ``rps`` line say when the load, not the backend, capped the rate.

    ``other_exit_code`` is the exit code Locust would use without the SLA verdict (1 when requests failed, per
    ``--exit-code-on-error``); see :func:`verdict_exit_code`.
    """
    results = engine.evaluate(now)
    verdict, reasons = engine.verdict(results)
    duration = engine.judged_duration(now)
    total: Bucket = engine.store.judged()
    regression = None
    if gate is not None:
        regression = gate.judge(total.metrics, duration, results, engine.profile, engine.scenario)
        verdict, reasons = regression_verdict(regression, verdict, reasons)
    finished = final or engine.ended_at is not None
    if engine.window_s > 0:
        windows = engine.windows(now)
    else:
        windows = engine.windows(now, engine.display_window_s(now))
    buckets = engine.store.sorted_buckets()
    if engine.store.judge_from is not None:  # attribution compares judged stretches only (no spawn spike baseline)
        buckets = [(start, b) for start, b in buckets if start >= engine.store.judge_from - 1e-9]
    attributions: list[dict[str, Any]] = []
    seen = set()
    for r in results:
        if r.status != FAIL and not r.failed_windows:
            continue
        if r.value is None or r.metric.split(" ", 1)[0] not in ("WS", "FLOW"):
            continue
        key = (r.metric, str(r.spec.expression))
        if key in seen or len(attributions) >= MAX_ATTRIBUTIONS:
            continue
        seen.add(key)
        try:
            attributions.append(
                attribute(r, buckets, engine.specs, gauges=engine.store.gauges, bucket_s=engine.store.resolution_s,
                          load=load)
            )
        except Exception:  # attribution must never cost the verdict
            logger.exception("SLA attribution failed for %s", r.name)
    for a in attributions:
        for t in a["tiers"]:
            for k in ("p95", "baseline_p95"):
                t[k] = _num(t[k])
        for k in ("bad_p95", "baseline_p95"):
            a[k] = _num(a[k])
    gauges = {k: sorted(v) for k, v in sorted(engine.store.gauges.items())}
    return {
        "schema": SCHEMA,
        "state": "finished" if final or engine.ended_at is not None else "running",
        "verdict": verdict,
        "verdict_reasons": reasons,
        "exit_code": verdict_exit_code(verdict, engine.exit_code, engine.inconclusive_exit_code, other_exit_code),
        "peak_users": engine.peak_users,
        "scenario": engine.scenario,
        "profile": engine.profile,
        "config_file": engine.config_file,
        "started_at": iso(engine.started_at),
        "ended_at": iso(engine.ended_at),
        "duration_s": _num(engine.duration(now)),
        "workers": engine.workers,
        "workers_lost": len(engine.lost_workers),
        "aborted": None
        if engine.aborted is None
        else {
            "threshold": engine.aborted.threshold,
            "reason": engine.aborted.reason,
            "at": iso(engine.aborted.at),
        },
        "window_s": _num(windows[0].end - windows[0].start)
        if windows
        else _num(engine.display_window_s(now)),
        "windows_judged": engine.window_s > 0,
        "bucket_s": engine.store.resolution_s,
        "samples": sum(m.count for m in total.metrics.values()),
        "warmup_s": engine.warmup_s,
        "warmup_samples": engine.warmup_samples(),
        "abandoned_at_stop": abandoned_at_stop(engine.store.counts),
        "messages": chat_messages(engine),
        "reconnects": reconnects(engine.store.counts),
        "anomalies": anomalies(engine.store.counts),
        "thresholds": [_threshold_row(r, engine) for r in results],
        "metrics": {k: _metric_summary(k, m, duration) for k, m in sorted(total.metrics.items()) if m.count},
        "windows": [_window_row(w, gauges) for w in windows],
        "drift": _drift(windows) if engine.window_s > 0 else {},
        "stages": {k: _hist_summary(h) for k, h in sorted(total.stages.items()) if h.count},
        "attribution": attributions,
        "gauges": gauges,
        "judged_duration_s": _num(duration),
        "histograms": {k: m.to_dict() for k, m in sorted(total.metrics.items()) if m.count} if finished else None,
        "regression": regression,
        "timeline": build_timeline(engine, now, results),
        "distribution": latency_distribution(engine, results),
        "faults": fault_rows(engine, now),
        "locust_report": None,
    }


def chat_messages(engine: Engine) -> dict[str, Any] | None:
    """The chat message accounting: sent = completed + failed + in flight (``messages`` of the schema above);
    ``None`` when the run sent no chat message. Counts every sample (the warm-up's too): it is about messages."""
    counts = engine.store.counts
    data = engine.store.total().metrics.get(CHAT_METRIC)
    samples = data.count if data is not None else 0
    failures = data.failures if data is not None else 0
    sent = int(counts.get(CHAT_SENT, 0))
    not_sent = int(counts.get(CHAT_NOT_SENT, 0))
    if not sent and not samples:
        return None
    completed, failed = samples - failures, failures - not_sent
    if engine.ended_at is None:
        in_flight = max(sent - completed - failed, 0)
    else:
        in_flight = engine.in_flight_at_stop
    return {
        "sent": sent,
        "completed": completed,
        "failed": failed,
        "failed_at_stop": engine.failed_at_stop,
        "in_flight": in_flight,
        "in_flight_limit_ms": _num(in_flight_limit_ms(engine.specs)),
        "not_sent": not_sent,
        "unaccounted": sent - completed - failed - in_flight,
    }


def _message_lines(report: dict[str, Any]) -> list[str]:
    """The chat message accounting in words (terminal, JUnit)."""
    m = report.get("messages")
    if not m:
        return []
    limit = m.get("in_flight_limit_ms")
    limit_text = f"{limit:g} ms" if limit is not None else "their reply deadline"
    where = "in flight at stop" if report.get("state") == "finished" else "in flight now"
    line = (f"chat messages: {m['sent']} sent = {m['completed']} completed + {m['failed']} failed + "
            f"{m['in_flight']} {where}")
    if m.get("unaccounted"):
        line += f" + {m['unaccounted']} unaccounted (lost with a worker)"
    lines = [line]
    if m.get("failed_at_stop"):
        lines.append(f"  {m['failed_at_stop']} of the failed were still in flight at the stop after waiting longer "
                     f"than {limit_text} (the longest latency limit of WS agent_completed): judged as failures at "
                     "the time they had waited")
    if m.get("in_flight"):
        lines.append(f"  {m['in_flight']} in flight at stop had waited less than {limit_text}: counted, not judged "
                     "(a longer --stop-timeout lets them finish)")
    if m.get("not_sent"):
        lines.append(f"  {m['not_sent']} more were due but never sent (no connected chat user): failures of "
                     "WS agent_completed, not in 'sent'")
    return lines


# --- renderers --------------------------------------------------------------------------------------------------
_MARK = {PASS: "pass", FAIL: "FAIL", NO_DATA: "no data"}


def _unjudged_notes(report: dict[str, Any]) -> list[str]:
    """What the run saw but did not judge: messages in flight at the stop, thresholds that got no samples (with
    the closest metrics the run produced), protocol anomalies per kind."""
    lines = []
    if report.get("warmup_s"):
        lines.append(
            f"first {report['warmup_s']:g} s were warm-up: {report.get('warmup_samples', 0)} sample(s) not judged"
        )
    lines.extend(_message_lines(report))
    for t in report.get("thresholds") or ():
        if t.get("did_you_mean"):
            guesses = ", ".join(repr(m) for m in t["did_you_mean"])
            lines.append(f"{t['metric']} {t['expression']} got no samples; did you mean {guesses}?")
    reconnect_counts = report.get("reconnects") or {}
    if reconnect_counts:
        causes = ", ".join(f"{k} {n}" for k, n in reconnect_counts.items())
        lines.append(f"planned reconnects (the server closed with nothing in flight, or --ws-max-age): {causes}")
    anomaly_counts = report.get("anomalies") or {}
    if anomaly_counts:
        kinds = ", ".join(f"{k} {n}" for k, n in anomaly_counts.items())
        lines.append(f"protocol anomalies (each a failed WS protocol anomaly sample): {kinds}")
    return lines


def render_terminal(report: dict[str, Any]) -> str:
    """Plain-text table: each threshold, its value, pass/fail; then failing windows, attribution and verdict."""
    rows = [("status", "metric", "threshold", "value", "samples")]
    for t in report["thresholds"]:
        val = format_value(t["value"], t["unit"], missing="no data")
        flags = " (required)" if t["required"] and t["status"] != PASS else ""
        rows.append(
            (
                _MARK.get(t["status"], t["status"]),
                t["metric"],
                t["expression"] + flags,
                val,
                format_count(t["samples"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        f"SLA profile {report['profile']!r} ({report['config_file']}), {report['duration_s']:.0f} s, "
        f"{report['samples']} samples"
    ]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[j]) if j < 4 else c.rjust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    failed_windows = [w for w in report["windows"] if w["failed"]]
    if report["windows_judged"]:
        lines.append("")
        lines.append(
            f"windows of {report['window_s']:.0f} s: {len(report['windows'])}, failing: {len(failed_windows)}"
        )
        judged = {t["metric"] for t in report["thresholds"]}
        for metric, d in report.get("drift", {}).items():
            if metric.split(" ", 1)[0] not in ("WS", "FLOW") or metric not in judged:
                continue
            pts = ", ".join(f"{i}:{format_value(v, 'ms', missing='no data')}" for i, v in d["p95"])
            change = "" if d["change_pct"] is None else f" (first -> last {d['change_pct']:+.0f}%)"
            lines.append(f"  {metric} p95 per window: {pts}{change}")
        for w in failed_windows:
            lines.append(f"  window {w['index']} ({w['start']} .. {w['end']}): {'; '.join(w['failed'])}")
    if report["attribution"]:
        lines.append("")
        lines.append("attribution:")
        for a in report["attribution"]:
            lines.append(f"  {a['summary']}")
    lines.append("")
    lines.extend(_unjudged_notes(report))
    if report["aborted"]:
        lines.append(f"run aborted early: {report['aborted']['reason']}")
    if report["workers_lost"]:
        lines.append(f"workers lost during the run: {report['workers_lost']}")
    regression_text = regression_lines_text(report.get("regression"))
    if regression_text:
        lines.extend(["", *regression_text])
    if report["verdict"] == INCONCLUSIVE:
        lines.extend(report.get("verdict_reasons") or ())
    lines.append(f"SLA verdict: {report['verdict'].upper()} (exit code {report['exit_code']})")
    return "\n".join(lines)


def render_junit(report: dict[str, Any]) -> str:
    """JUnit XML: one testcase per threshold and per failing window (plus one for abort / lost workers, and one
    in error for an inconclusive verdict: the run measured nothing the thresholds judge)."""
    suites = ET.Element("testsuites", name="SLA")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"SLA profile {report['profile']}",
        timestamp=report["started_at"] or "",
        time=f"{report['duration_s'] or 0:.3f}",
    )
    tests = failures = skipped = errors = 0

    def case(classname: str, name: str) -> ET.Element:
        nonlocal tests
        tests += 1
        return ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")

    for t in report["thresholds"]:
        c = case(f"sla.{t['metric'].split(' ', 1)[0]}", f"{t['metric']} {t['expression']}")
        value = format_value(t["value"], t["unit"], missing="no data")
        if t["status"] == FAIL:
            failures += 1
            msg = (
                f"SLA FAILED: {t['metric']} {t['expression']} was {value}"
                if t["value"] is not None
                else f"SLA FAILED: {t['metric']} {t['expression']}: no samples, but required"
            )
            f = ET.SubElement(c, "failure", message=msg, type="SLABreach")
            f.text = "\n".join(
                [t["description"]]
                + [
                    a["summary"]
                    for a in report["attribution"]
                    if a["metric"] == t["metric"] and a["expression"] == t["expression"]
                ]
            )
        elif t["status"] == NO_DATA:
            skipped += 1
            ET.SubElement(c, "skipped", message="no data: the metric got no samples in this run")
        ET.SubElement(c, "system-out").text = f"value: {value}; samples: {format_count(t['samples'])}; {t['description']}"
    for w in report["windows"]:
        for name in w["failed"]:
            c = case("sla.window", f"{name} [window {w['index']} {w['start']} .. {w['end']}]")
            failures += 1
            ET.SubElement(
                c, "failure", message=f"SLA FAILED in window {w['index']}: {name}", type="SLABreach"
            )
    if report["aborted"] or report["workers_lost"]:
        c = case("sla.run", "run completed")
        failures += 1
        msg = (
            f"aborted: {report['aborted']['reason']}"
            if report["aborted"]
            else f"{report['workers_lost']} worker(s) lost"
        )
        ET.SubElement(c, "failure", message=msg, type="SLARun")
    if report["verdict"] == INCONCLUSIVE:
        c = case("sla.run", "run measured what the thresholds judge")
        errors += 1
        reasons = report.get("verdict_reasons") or ["SLA INCONCLUSIVE: no evidence"]
        e = ET.SubElement(c, "error", message=reasons[0], type="SLAInconclusive")
        e.text = "\n".join(reasons)
    for row in (report.get("regression") or {}).get("lines", ()):
        c = case("sla.regression", f"{row['metric']} {row['expression']}")
        if row["status"] == FAIL:
            failures += 1
            ET.SubElement(c, "failure", message=f"SLA REGRESSION: {describe_row(row)}", type="SLARegression")
        elif row["status"] != PASS:
            skipped += 1
            ET.SubElement(c, "skipped", message=describe_row(row))
        ET.SubElement(c, "system-out").text = describe_row(row)
    props = ET.Element("properties")
    ET.SubElement(props, "property", name="abandoned_at_stop", value=str(report.get("abandoned_at_stop") or 0))
    for key, value in (report.get("messages") or {}).items():
        if value is not None:
            ET.SubElement(props, "property", name=f"messages_{key}", value=f"{value:g}")
    for kind, n in (report.get("anomalies") or {}).items():
        ET.SubElement(props, "property", name=f"anomaly: {kind}", value=str(n))
    suite.insert(0, props)
    notes = _unjudged_notes(report)
    if notes:
        ET.SubElement(suite, "system-out").text = "\n".join(notes)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _write(path: str, text: str) -> None:
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_reports(
    report: dict[str, Any],
    json_path: str | None = None,
    junit_path: str | None = None,
    html_path: str | None = None,
) -> list[str]:
    """Write the requested report files; returns the paths written. Errors are logged, never raised."""
    written = []
    jobs: list[tuple[str | None, Any]] = [
        (json_path, lambda: json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"),
        (junit_path, lambda: render_junit(report)),
        (html_path, lambda: _render_html(report)),
    ]
    for path, render in jobs:
        if not path:
            continue
        try:
            text = render()
            if text is None:
                continue
            _write(path, text)
            written.append(path)
        except Exception as e:
            logger.error("SLA report %s could not be written: %s", path, e)
    return written


def _render_html(report: dict[str, Any]) -> str | None:
    try:
        from sla_checks.report_html import render
    except ImportError as e:
        logger.warning("--sla-report-html: the HTML renderer is not available (%s); skipped", e)
        return None
    return render(report)
