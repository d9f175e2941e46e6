"""The SLA engine's state as Prometheus metric families (pure: no server, no clock, no Locust).

:func:`metric_families` reads an :class:`~sla_checks.engine.Engine` (and, once the run has ended, its final verdict)
and returns ``prometheus_client`` metric families; :mod:`sla_checks.prometheus_server` serves them, built afresh on
every scrape, so no sample is counted twice and the hot path (``Collector.record``) is untouched.

Families (``loadtest_`` prefix; labels in braces):

* ``loadtest_response_time_seconds{request_type, name}`` — histogram of every judged sample of every metric
  (``WS agent_completed``, ``WS generator lag``, ``PG connect`` ...), from the engine's exact histograms: a bucket
  edge sits at every latency limit of the profile (``p(95) < 2000`` → ``le="2.0"``, ``within(1500)`` →
  ``le="1.5"``) and at :data:`DEFAULT_LADDER_MS`, and each ``le`` count is exact (the engine's histogram keeps
  integer milliseconds), so ``bucket{le="2.0"} / count`` is the exact share of samples at or under 2 s.
  ``loadtest_response_failures_total{request_type, name}`` counts the failed ones. Both hold the samples the
  verdict judges (after ``--sla-warmup``), as the report's ``metrics``.
* ``loadtest_threshold_value{metric, expression, unit}`` — each threshold's statistic now (the report's
  ``thresholds[].value``, absent while it has no data); ``loadtest_threshold_limit`` its right-hand side;
  ``loadtest_threshold_state`` 0 pass, 1 fail, 2 no data (:data:`STATE_CODES`); ``loadtest_threshold_samples``;
  ``loadtest_threshold_failed_windows`` (windows judged only).
* ``loadtest_verdict{verdict}`` — one-hot over :data:`VERDICTS`: ``idle`` before a test, ``running`` while it
  runs, then ``pass`` / ``fail`` / ``inconclusive``; ``loadtest_live_verdict{verdict}`` the verdict if the run
  ended now; ``loadtest_exit_code`` the exit code the final verdict set.
* ``loadtest_messages_in_flight`` (live: sent, not ended; after the stop: in flight at it),
  ``loadtest_messages_{sent,completed,failed,not_sent}_total``, ``loadtest_messages_abandoned_at_stop_total``,
  ``loadtest_protocol_anomalies_total{kind}``.
* ``loadtest_ws_connects_total{outcome}`` (``ok`` / ``failed``, from ``WS connect`` samples) and
  ``loadtest_ws_drops_total`` (``WS disconnect``: connections the server closed or lost).
* ``loadtest_gauge{gauge}`` — the last reading of every gauge the suite samples (``locust:cpu_percent``,
  ``target:rss_mb``, ``redis:used_memory_mb``, ``pg:lock_waiters`` ...).
* ``loadtest_users``, ``loadtest_peak_users``, ``loadtest_workers``, ``loadtest_workers_lost``,
  ``loadtest_run_start_time_seconds``, ``loadtest_run_duration_seconds``, ``loadtest_run_info{profile, scenario}``.

Usage::

    families = metric_families(engine, now=time.time(), final_verdict=None, users=runner.user_count)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from sla_checks.counters import abandoned_at_stop, anomalies
from sla_checks.engine import DISCONNECT_METRIC, Engine
from sla_checks.evaluate import FAIL, NO_DATA, PASS, ThresholdResult, ThresholdSpec
from sla_checks.expressions import unit_of
from sla_checks.histogram import Histogram
from sla_checks.report import chat_messages

__all__ = [
    "DEFAULT_LADDER_MS",
    "STATE_CODES",
    "VERDICTS",
    "bucket_edges_ms",
    "cumulative_counts",
    "metric_families",
    "PREFIX",
]

PREFIX = "loadtest_"

DEFAULT_LADDER_MS: tuple[float, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000,
    4000, 5000, 7500, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
)
"""Bucket edges (ms) every histogram has, besides the profile's limits: ~1.5x apart, 1 ms to 2 min."""

STATE_CODES: dict[str, int] = {PASS: 0, FAIL: 1, NO_DATA: 2}
"""``loadtest_threshold_state`` values."""

VERDICTS: tuple[str, ...] = ("idle", "running", "pass", "fail", "inconclusive")
"""The states of ``loadtest_verdict`` (one of them is 1, the others 0)."""

_LIVE_VERDICTS: tuple[str, ...] = ("pass", "fail", "inconclusive")


def bucket_edges_ms(specs: Iterable[ThresholdSpec], ladder: Iterable[float] = DEFAULT_LADDER_MS) -> list[float]:
    """The histogram's bucket edges in ms, ascending: ``ladder`` plus every latency limit of ``specs`` (the
    right-hand side of ``p(..)``, ``avg``, ``med``, ``min``, ``max`` and the argument of ``within(T)``)."""
    edges = {float(e) for e in ladder}
    for spec in specs:
        expr = spec.expression
        if expr.is_latency:
            edges.add(float(expr.limit))
        if expr.stat == "within" and expr.arg is not None:
            edges.add(float(expr.arg))
    return sorted(e for e in edges if math.isfinite(e) and e > 0)


def cumulative_counts(hist: Histogram, edges_ms: Sequence[float]) -> list[int]:
    """For each edge (ascending, ms) the number of samples ``<= edge``: :meth:`Histogram.count_le` for every edge in
    one pass over the sorted buckets (exact for integer edges up to the histogram's linear limit)."""
    out: list[int] = []
    if hist.count == 0:
        return [0] * len(edges_ms)
    keys = sorted(hist.counts.items())
    i, seen = 0, 0
    for edge in edges_ms:
        if edge >= hist.max:
            out.append(hist.count)
            continue
        if edge < hist.min:
            out.append(0)
            continue
        # bucket k holds k-1 < v <= k (its upper bound): every sample of a bucket with k <= edge is <= edge
        while i < len(keys) and keys[i][0] <= edge:
            seen += keys[i][1]
            i += 1
        out.append(seen)
    return out


def _le(edge_ms: float) -> str:
    """The ``le`` label of an edge in ms: seconds, as Python writes a float (``2.0``, ``0.25``)."""
    return repr(edge_ms / 1000.0)


def _one_hot(name: str, doc: str, label: str, states: Sequence[str], current: str | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for state in states:
        family.add_metric([state], 1.0 if state == current else 0.0)
    return family


def _gauge(name: str, doc: str, value: float | None) -> list[Metric]:
    return [] if value is None else [GaugeMetricFamily(name, doc, value=float(value))]


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


def _histograms(engine: Engine) -> list[Metric]:
    edges = bucket_edges_ms(engine.specs)
    les = [_le(e) for e in edges]
    hist = HistogramMetricFamily(
        PREFIX + "response_time_seconds",
        "Judged samples per metric (request type and name), from the SLA engine's exact histograms; bucket edges at "
        "every latency limit of the profile",
        labels=["request_type", "name"],
    )
    fails = CounterMetricFamily(
        PREFIX + "response_failures", "Failed judged samples per metric", labels=["request_type", "name"]
    )
    for key, data in sorted(engine.store.judged().metrics.items()):
        h = data.hist
        if not h.count:
            continue
        rtype, _, name = key.partition(" ")
        buckets: list[tuple[str, float]] = [
            (le, float(n)) for le, n in zip(les, cumulative_counts(h, edges), strict=True)
        ]
        buckets.append(("+Inf", float(h.count)))
        hist.add_metric([rtype, name], buckets, sum_value=h.total / 1000.0)
        fails.add_metric([rtype, name], float(data.failures))
    return [hist, fails]


def _thresholds(results: Iterable[ThresholdResult]) -> list[Metric]:
    labels = ["metric", "expression"]
    value = GaugeMetricFamily(PREFIX + "threshold_value",
                              "Each threshold's statistic now, in its unit (absent without data)",
                              labels=[*labels, "unit"])
    limit = GaugeMetricFamily(PREFIX + "threshold_limit", "Each threshold's limit (right-hand side), in its unit",
                              labels=[*labels, "unit"])
    state = GaugeMetricFamily(PREFIX + "threshold_state", "Each threshold's state: 0 pass, 1 fail, 2 no data",
                              labels=labels)
    samples = GaugeMetricFamily(PREFIX + "threshold_samples", "Samples each threshold was judged on", labels=labels)
    windows = GaugeMetricFamily(PREFIX + "threshold_failed_windows",
                                "Judged windows in which each threshold failed (--sla-window)", labels=labels)
    seen: set[tuple[str, str]] = set()
    for r in results:
        expr = r.spec.expression
        key = (r.metric, str(expr))
        if key in seen:  # the same line twice (a scenario extending a profile): one series
            continue
        seen.add(key)
        unit = unit_of(expr, r.metric)
        if r.value is not None and math.isfinite(r.value):
            value.add_metric([*key, unit], float(r.value))
        limit.add_metric([*key, unit], float(expr.limit))
        state.add_metric(list(key), float(STATE_CODES.get(r.status, STATE_CODES[NO_DATA])))
        samples.add_metric(list(key), float(r.samples))
        windows.add_metric(list(key), float(len(r.failed_windows)))
    return [value, limit, state, samples, windows]


def _messages(engine: Engine) -> list[Metric]:
    out: list[Metric] = []
    m: dict[str, Any] | None = chat_messages(engine)
    if m is not None:
        out.append(GaugeMetricFamily(
            PREFIX + "messages_in_flight",
            "Chat messages sent and not ended yet (after the stop: in flight at the stop, not judged)",
            value=float(m["in_flight"])))
        for field, doc in (("sent", "Chat messages sent"),
                           ("completed", "Chat messages answered (successful WS agent_completed)"),
                           ("failed", "Chat messages that failed (error, timeout, hang, drop)"),
                           ("not_sent", "Open model: messages due but never sent")):
            out.append(_counter(f"{PREFIX}messages_{field}", doc, float(m[field])))
    counts = engine.store.counts
    out.append(_counter(PREFIX + "messages_abandoned_at_stop", "Chat messages in flight when their user stopped",
                        float(abandoned_at_stop(counts))))
    kinds = CounterMetricFamily(PREFIX + "protocol_anomalies", "Protocol anomalies of the chat client per kind",
                                labels=["kind"])
    for kind, n in anomalies(counts).items():
        kinds.add_metric([kind], float(n))
    out.append(kinds)
    return out


def _connections(engine: Engine) -> list[Metric]:
    metrics = engine.store.judged().metrics
    connects = CounterMetricFamily(PREFIX + "ws_connects", "WebSocket connects (WS connect samples) by outcome",
                                   labels=["outcome"])
    data = metrics.get("WS connect")
    total = data.count if data is not None else 0
    failed = data.failures if data is not None else 0
    connects.add_metric(["ok"], float(total - failed))
    connects.add_metric(["failed"], float(failed))
    drops = metrics.get(DISCONNECT_METRIC)
    return [connects, _counter(PREFIX + "ws_drops", "Connections the server closed or lost (WS disconnect)",
                               float(drops.count if drops is not None else 0))]


def _gauges(engine: Engine) -> list[Metric]:
    family = GaugeMetricFamily(PREFIX + "gauge", "Last reading of every gauge the suite samples (name: source:what)",
                               labels=["gauge"])
    for name, series in sorted(engine.store.gauges.items()):
        if series:
            family.add_metric([name], float(max(series, key=lambda p: p[0])[1]))
    return [family]


def _run(engine: Engine, now: float, users: int | None) -> list[Metric]:
    scenario = engine.scenario or {}
    info = GaugeMetricFamily(PREFIX + "run_info", "The run's SLA profile and scenario (value 1)",
                             labels=["profile", "scenario"])
    info.add_metric([engine.profile, str(scenario.get("name", ""))], 1.0)
    out: list[Metric] = [info]
    out += _gauge(PREFIX + "users", "Users running now (all workers)", users)
    out += _gauge(PREFIX + "peak_users", "Most users running at once in this test", engine.peak_users)
    out += _gauge(PREFIX + "workers", "Worker processes seen (0: a local run)", engine.workers)
    out += _gauge(PREFIX + "workers_lost", "Workers that went missing", len(engine.lost_workers))
    out += _gauge(PREFIX + "run_start_time_seconds", "Test start (unix time)", engine.started_at)
    if engine.started_at is not None:
        out += _gauge(PREFIX + "run_duration_seconds", "Seconds the test has run", engine.duration(now))
    return out


def metric_families(
    engine: Engine,
    *,
    now: float,
    final_verdict: str | None = None,
    final_exit_code: int | None = None,
    users: int | None = None,
) -> list[Metric]:
    """Every family of the module docstring for ``engine`` at ``now``.

    ``final_verdict`` / ``final_exit_code``: the verdict the run ended with and the exit code it set (the final
    report's), once there is one; before, a test that ended (web-UI stop) shows the verdict it would get, a running
    one ``running``, and ``loadtest_exit_code`` is absent. ``users``: the runner's user count now."""
    results = engine.evaluate(now)
    live, _reasons = engine.verdict(results)
    if final_verdict is not None:
        current = final_verdict
    elif engine.ended_at is not None:
        current = live
    elif engine.started_at is not None:
        current = "running"
    else:
        current = "idle"
    families: list[Metric] = [
        _one_hot(PREFIX + "verdict", "The run's verdict: idle, running, then pass, fail or inconclusive", "verdict",
                 VERDICTS, current),
        _one_hot(PREFIX + "live_verdict", "The verdict if the run ended now", "verdict", _LIVE_VERDICTS,
                 final_verdict or live),
    ]
    families += _gauge(PREFIX + "exit_code", "The exit code the final verdict set (absent before it)",
                       final_exit_code)
    families += _thresholds(results)
    families += _histograms(engine)
    families += _messages(engine)
    families += _connections(engine)
    families += _gauges(engine)
    families += _run(engine, now, users)
    return families
