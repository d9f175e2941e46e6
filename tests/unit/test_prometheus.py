"""The Prometheus exposition of the SLA engine (pure): bucket edges at every latency limit, exact cumulative
counts, threshold states, the verdict's one-hot states, messages, connections and gauges, read back through
``prometheus_client``'s own text format and parser (no socket)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from sla_checks.counters import ANOMALY_PREFIX, CHAT_SENT
from sla_checks.engine import Engine
from sla_checks.evaluate import ThresholdSpec
from sla_checks.histogram import LINEAR_LIMIT_MS, Histogram
from sla_checks.prometheus import (
    DEFAULT_LADDER_MS,
    STATE_CODES,
    VERDICTS,
    bucket_edges_ms,
    cumulative_counts,
    metric_families,
)

pytestmark = pytest.mark.timeout(30)

T0 = 1_800_000_000.0
P95 = ThresholdSpec.of("WS agent_completed", "p(95) < 2000")
WITHIN = ThresholdSpec.of("WS agent_completed", "within(1234) >= 95%")
PG = ThresholdSpec.of("PG *", "p(95) < 200")
MISSING = ThresholdSpec.of("WS events missing", "count < 1")


def samples_of(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (sample name, labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def expose(engine: Engine, **kw: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    class One(Collector):
        def collect(self):  # noqa: ANN202
            return metric_families(engine, **kw)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())
    return samples_of(generate_latest(registry).decode())


def value(exposed: dict, sample: str, **labels: str) -> float | None:
    return exposed.get((sample, frozenset(labels.items())))


def run(*specs: ThresholdSpec, chat: list[float] = (), failed: int = 0, ended: bool = True) -> Engine:
    eng = Engine(list(specs), profile="ci", config_file="ci.toml")
    eng.start(T0)
    eng.peak_users = 2
    for i, ms in enumerate(chat):
        eng.collector.record("WS", "agent_completed", ms, i < failed, T0 + 1 + i * 0.001)
    eng.flush_local()
    if ended:
        eng.stop(T0 + 10)
    return eng


# --- bucket edges --------------------------------------------------------------------------------------------
def test_edges_hold_every_latency_limit_and_within_argument_but_no_other_limit() -> None:
    specs = [P95, WITHIN, PG, ThresholdSpec.of("FLOW x", "max < 15s"), ThresholdSpec.of("WS connect", "avg < 333.5"),
             ThresholdSpec.of("WS agent_completed", "rps >= 13"), ThresholdSpec.of("WS disconnect", "count < 17"),
             ThresholdSpec.of("WS connect", "fail_ratio < 0.011")]
    edges = bucket_edges_ms(specs)
    assert edges == sorted(set(edges))
    for limit in (2000.0, 1234.0, 200.0, 15000.0, 333.5):
        assert limit in edges
    assert set(DEFAULT_LADDER_MS) <= set(edges)
    assert set(edges) - set(DEFAULT_LADDER_MS) == {1234.0, 333.5}  # nothing from rps, count, fail_ratio


def test_edges_without_thresholds_are_the_ladder() -> None:
    assert bucket_edges_ms([]) == sorted(float(e) for e in DEFAULT_LADDER_MS)


# --- cumulative counts: exactly Histogram.count_le -----------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.integers(0, 3000).map(float), st.floats(0, 200_000, allow_nan=False)), max_size=200),
    st.lists(st.one_of(st.integers(1, 3000).map(float), st.floats(0.5, 150_000)), min_size=1, max_size=30),
)
def test_cumulative_counts_equal_count_le_at_every_edge(values: list[float], edges: list[float]) -> None:
    h = Histogram()
    h.record_many(values)
    ordered = sorted(set(edges))
    assert cumulative_counts(h, ordered) == [h.count_le(e) for e in ordered]


def test_an_integer_edge_counts_exactly_the_samples_at_or_under_it() -> None:
    h = Histogram()
    h.record_many([1999.0, 2000.0, 2000.0, 2000.4, 2001.0, LINEAR_LIMIT_MS * 3.0])
    assert cumulative_counts(h, [1999.0, 2000.0, 2001.0, 1e9]) == [1, 3, 5, 6]


# --- the exposition ------------------------------------------------------------------------------------------
def test_histogram_buckets_are_cumulative_exact_and_in_seconds() -> None:
    chat = [100.0] * 50 + [1999.0] * 40 + [2000.0] * 5 + [2000.5] * 3 + [4000.0] * 2
    eng = run(P95, WITHIN, chat=chat, failed=2)
    out = expose(eng, now=T0 + 10)
    labels = {"request_type": "WS", "name": "agent_completed"}
    bucket = "loadtest_response_time_seconds_bucket"
    assert value(out, bucket, le="2.0", **labels) == 95  # 2000 is an edge: every sample <= 2000 ms, exactly
    assert value(out, bucket, le="1.234", **labels) == 50
    assert value(out, bucket, le="2.5", **labels) == 98
    assert value(out, bucket, le="+Inf", **labels) == 100
    assert value(out, "loadtest_response_time_seconds_count", **labels) == 100
    assert value(out, "loadtest_response_time_seconds_sum", **labels) == pytest.approx(sum(chat) / 1000)
    assert value(out, "loadtest_response_failures_total", **labels) == 2
    les = sorted(float(dict(k[1])["le"]) for k in out if k[0] == bucket)
    assert les == sorted([e / 1000 for e in bucket_edges_ms(eng.specs)] + [math.inf])
    counts = [value(out, bucket, le=repr(le) if math.isfinite(le) else "+Inf", **labels) for le in les]
    assert counts == sorted(counts)


def test_threshold_value_limit_and_state_per_line() -> None:
    chat = [100.0] * 90 + [3000.0] * 10  # p95 3000: fails; within(1234) 90 %: fails
    out = expose(run(P95, WITHIN, PG, MISSING, P95, chat=chat), now=T0 + 10)
    p95 = {"metric": "WS agent_completed", "expression": "p(95) < 2000"}
    assert value(out, "loadtest_threshold_state", **p95) == STATE_CODES["fail"] == 1
    assert value(out, "loadtest_threshold_value", unit="ms", **p95) == 3000
    assert value(out, "loadtest_threshold_limit", unit="ms", **p95) == 2000
    assert value(out, "loadtest_threshold_samples", **p95) == 100
    assert value(out, "loadtest_threshold_value", metric="WS agent_completed", expression="within(1234) >= 95%",
                 unit="%") == 90
    missing = {"metric": "WS events missing", "expression": "count < 1"}
    assert value(out, "loadtest_threshold_state", **missing) == STATE_CODES["pass"] == 0
    assert value(out, "loadtest_threshold_value", unit="count", **missing) == 0
    pg = {"metric": "PG *", "expression": "p(95) < 200"}
    assert value(out, "loadtest_threshold_state", **pg) == STATE_CODES["no data"] == 2
    assert ("loadtest_threshold_value", frozenset({**pg, "unit": "ms"}.items())) not in out
    # the same line twice (a scenario extending a profile) is one series
    assert sum(1 for k in out if k[0] == "loadtest_threshold_state" and dict(k[1]) == p95) == 1


def one_hot(out: dict, name: str, states: tuple[str, ...]) -> str:
    on = [s for s in states if value(out, name, verdict=s) == 1]
    assert len(on) == 1 and all(value(out, name, verdict=s) == 0 for s in states if s not in on), out
    return on[0]


def test_verdict_is_idle_then_running_then_the_verdict() -> None:
    idle = Engine([P95])
    assert one_hot(expose(idle, now=T0), "loadtest_verdict", VERDICTS) == "idle"
    running = run(P95, chat=[3000.0] * 10, ended=False)
    out = expose(running, now=T0 + 5)
    assert one_hot(out, "loadtest_verdict", VERDICTS) == "running"
    assert one_hot(out, "loadtest_live_verdict", ("pass", "fail", "inconclusive")) == "fail"
    assert ("loadtest_exit_code", frozenset()) not in out
    assert one_hot(expose(run(P95, chat=[100.0] * 10), now=T0 + 10), "loadtest_verdict", VERDICTS) == "pass"
    assert one_hot(expose(run(P95, chat=[3000.0] * 10), now=T0 + 10), "loadtest_verdict", VERDICTS) == "fail"
    assert one_hot(expose(run(PG), now=T0 + 10), "loadtest_verdict", VERDICTS) == "inconclusive"
    final = expose(run(P95, chat=[100.0] * 10), now=T0 + 10, final_verdict="fail", final_exit_code=3)
    assert one_hot(final, "loadtest_verdict", VERDICTS) == "fail"  # the final report's verdict (a lost worker)
    assert value(final, "loadtest_exit_code") == 3


def test_messages_connections_gauges_and_run_facts() -> None:
    eng = run(P95, chat=[100.0] * 4, failed=1, ended=False)
    eng.collector.count(CHAT_SENT, 7)
    eng.collector.count(ANOMALY_PREFIX + "late frame", 2)
    for ms, failed in ((5.0, False), (6.0, False), (900.0, True)):
        eng.collector.record("WS", "connect", ms, failed, T0 + 2)
    eng.collector.record("WS", "disconnect", 0.0, True, T0 + 3)
    eng.collector.record("WS", "generator lag", 12.0, False, T0 + 3)
    # readings arrive out of order (workers): the last by time counts, not the last to arrive
    eng.collector.record_gauge("target:cpu_percent", 55.0, T0 + 5)
    eng.collector.record_gauge("target:cpu_percent", 10.0, T0 + 4)
    eng.collector.record_gauge("locust:rss_mb", 80.0, T0 + 1)
    eng.flush_local()
    out = expose(eng, now=T0 + 6, users=3)
    assert value(out, "loadtest_messages_sent_total") == 7
    assert value(out, "loadtest_messages_completed_total") == 3
    assert value(out, "loadtest_messages_failed_total") == 1
    assert value(out, "loadtest_messages_in_flight") == 3  # 7 sent - 3 completed - 1 failed
    assert value(out, "loadtest_protocol_anomalies_total", kind="late frame") == 2
    assert value(out, "loadtest_ws_connects_total", outcome="ok") == 2
    assert value(out, "loadtest_ws_connects_total", outcome="failed") == 1
    assert value(out, "loadtest_ws_drops_total") == 1
    assert value(out, "loadtest_response_time_seconds_count", request_type="WS", name="generator lag") == 1
    assert value(out, "loadtest_gauge", gauge="target:cpu_percent") == 55
    assert value(out, "loadtest_gauge", gauge="locust:rss_mb") == 80
    assert value(out, "loadtest_users") == 3 and value(out, "loadtest_peak_users") == 2
    assert value(out, "loadtest_run_start_time_seconds") == T0
    assert value(out, "loadtest_run_duration_seconds") == pytest.approx(6)
    assert value(out, "loadtest_run_info", profile="ci", scenario="") == 1


def test_warmup_samples_are_left_out_as_in_the_report() -> None:
    eng = Engine([P95], warmup_s=5)
    eng.start(T0)
    eng.collector.record("WS", "agent_completed", 100.0, False, T0 + 1)  # in the warm-up
    eng.collector.record("WS", "agent_completed", 200.0, False, T0 + 7)
    eng.flush_local()
    out = expose(eng, now=T0 + 8)
    assert value(out, "loadtest_response_time_seconds_count", request_type="WS", name="agent_completed") == 1


def test_every_metric_the_grafana_dashboard_queries_is_exposed() -> None:
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "dashboards" / "grafana-sla.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bloadtest_[a-z_]+", target["expr"])
    }
    queried |= {n for v in dashboard["templating"]["list"] for n in re.findall(r"\bloadtest_[a-z_]+", str(v.get("query")))}
    eng = run(P95, chat=[100.0, 200.0], ended=False)
    eng.collector.count(CHAT_SENT, 3)
    eng.collector.count(ANOMALY_PREFIX + "unknown id", 1)
    eng.collector.record("WS", "connect", 5.0, False, T0 + 2)
    eng.collector.record_gauge("locust:rss_mb", 80.0, T0 + 1)
    eng.flush_local()
    exposed = {name for name, _labels in expose(eng, now=T0 + 5, users=1, final_exit_code=None)}
    assert queried and queried <= exposed, sorted(queried - exposed)
