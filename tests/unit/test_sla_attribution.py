from __future__ import annotations

import random

import pytest

from sla_checks.attribution import MIN_GAUGE_WINDOWS, attribute, gauge_correlations, tier_named_in, tier_of
from sla_checks.engine import Bucket, Engine
from sla_checks.evaluate import FAIL, ThresholdSpec
from sla_checks.offered_load import OfferedLoad

pytestmark = pytest.mark.timeout(20)

T0 = 1_800_000_000.0
SPECS = [
    ThresholdSpec.of("WS agent_completed", "p(95) < 2000"),
    ThresholdSpec.of("PG *", "p(95) < 200"),
    ThresholdSpec.of("REDIS *", "p(95) < 50"),
    ThresholdSpec.of("CH *", "p(95) < 1000"),
]


def run(
    seconds: int, slow: range, culprit: str | None, seed: int = 1, stage: str = "agent_started→agent_thinking"
):
    """A synthetic run: WS replies ~700 ms, 3 s slower in ``slow`` seconds when ``culprit`` stalls too."""
    rnd = random.Random(seed)
    eng = Engine(SPECS)
    eng.start(T0)
    c = eng.collector
    for s in range(seconds):
        t = T0 + s + 0.3
        bad = s in slow
        for _ in range(10):
            extra = rnd.uniform(2500, 3000) if bad else 0.0
            stages = {
                "agent_started→agent_thinking": 30.0
                + (extra if stage == "agent_started→agent_thinking" else 0),
                "tool_executing→tool_completed": 200.0
                + (extra if stage == "tool_executing→tool_completed" else 0),
            }
            c.record("WS", "agent_completed", 600 + rnd.random() * 200 + extra, False, t, stages)
        pg = 2900.0 if bad and culprit == "postgres" else 5.0
        rd = 2900.0 if bad and culprit == "redis" else 0.5
        c.record("PG", "thread history", pg + rnd.random(), False, t)
        c.record("PG", "message insert", 3 + rnd.random(), False, t)
        c.record("REDIS", "GET", rd + rnd.random(), False, t)
        c.record("CH", "agent stage summary", 30 + rnd.random() * 5, False, t)
    eng.flush_local()
    eng.stop(T0 + seconds)
    return eng


def failing(eng):
    (r,) = [r for r in eng.evaluate(T0 + 999) if r.metric == "WS agent_completed"]
    assert r.status == FAIL
    return r


@pytest.mark.parametrize(
    ("culprit", "metric", "label"),
    [("postgres", "PG thread history", 'PG "thread history"'), ("redis", "REDIS GET", 'REDIS "GET"')],
)
def test_stalled_tier_is_ranked_first_and_named_in_summary(culprit, metric, label):
    eng = run(40, range(20, 28), culprit)
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS)
    top = a["tiers"][0]
    assert (top["tier"], top["metric"], top["within_sla"]) == (culprit, metric, False)
    assert top["score"] >= 0.8
    assert all(t["score"] < 0.25 and t["within_sla"] for t in a["tiers"][1:])
    assert f"coincides with {label} p95" in a["summary"]
    assert a["summary"].startswith("WS agent_completed p(95) ")
    assert "> 2,000 ms" in a["summary"]
    assert a["slowest_stage"] == "agent_started→agent_thinking"


def test_no_tier_rises_says_backend_itself_and_names_grown_stage():
    eng = run(40, range(10, 20), None, stage="tool_executing→tool_completed")
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS)
    assert "no tier's latency rose" in a["summary"]
    assert all(t["within_sla"] for t in a["tiers"])
    assert a["slowest_stage"] == "tool_executing→tool_completed"
    within = a["summary"].split("; ")[1]
    assert within.endswith(" within SLA")
    assert {"PostgreSQL", "Redis", "ClickHouse"} == set(within.removesuffix(" within SLA").split(", "))


def test_whole_run_bad_uses_thresholds_as_baseline():
    eng = run(6, range(0, 6), "postgres")
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS)
    assert a["tiers"][0]["tier"] == "postgres"
    assert a["tiers"][0]["baseline_p95"] is None


def test_single_bucket_run_does_not_crash():
    eng = run(1, range(0, 1), "redis")
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS)
    assert a["tiers"][0]["tier"] == "redis"


@pytest.mark.parametrize(
    ("metric", "tier"),
    [
        ("PG connect", "postgres"),
        ("REDIS GET", "redis"),
        ("CH insert", "clickhouse"),
        ("HTTP ready:redis", "redis"),
        ("HTTP ready:postgres", "postgres"),
        ("HTTP /health", None),
        ("WS connect", None),
    ],
)
def test_tier_of(metric, tier):
    assert tier_of(metric) == tier


def test_fast_errors_during_a_redis_stall_point_at_redis():
    """Messages that fail fast (DEPENDENCY_TIMEOUT) while Redis stalls: bad buckets are found by failures."""
    eng = Engine([ThresholdSpec.of("WS agent_completed", "p(95) < 2000"), *SPECS[1:]])
    eng.start(T0)
    c = eng.collector
    for s in range(40):
        t = T0 + s + 0.3
        stall = 20 <= s < 26
        for k in range(10):
            failed = stall and k < 6
            c.record("WS", "agent_completed", 150.0 if failed else 700.0 + s % 5 * 90, failed, t)
        if s % 5 == 0 or stall:
            c.record("REDIS", "GET", 3000.0 if stall else 0.6, False, t)
        c.record("PG", "thread history", 4.0 + s % 3, False, t)
    c.record("WS", "agent_completed", 2600.0, False, T0 + 5.3)  # an unrelated slow reply in a healthy bucket
    eng.flush_local()
    eng.stop(T0 + 40)
    res = [r for r in eng.evaluate(T0 + 40) if r.metric == "WS agent_completed"][0]
    res.status = "fail"  # judge the attribution alone: the run-wide p95 may pass with fast errors
    a = attribute(res, eng.store.sorted_buckets(), SPECS)
    assert a["tiers"][0]["tier"] == "redis"
    assert 'coincides with REDIS "GET"' in a["summary"]
    assert "PostgreSQL within SLA" in a["summary"]


def test_tier_refusing_calls_without_latency_rise_is_named():
    """Redis out of memory: SETs fail at once, chat messages fail fast; no tier latency rises."""
    eng = Engine([ThresholdSpec.of("WS agent_completed", "within(2000) >= 95%"), *SPECS[1:]])
    eng.start(T0)
    c = eng.collector
    for s in range(30):
        t = T0 + s + 0.3
        oom = 10 <= s < 20
        for k in range(10):
            c.record("WS", "agent_completed", 40.0 if oom and k < 7 else 650.0 + k, oom and k < 7, t)
        c.record("REDIS", "SET", 0.8, oom, t)
        c.record("PG", "thread history", 4.0, False, t)
    eng.flush_local()
    eng.stop(T0 + 30)
    res = [r for r in eng.evaluate(T0 + 30) if r.metric == "WS agent_completed"][0]
    assert res.status == "fail"
    a = attribute(res, eng.store.sorted_buckets(), SPECS)
    top = a["tiers"][0]
    assert (top["tier"], top["within_sla"], top["baseline_fail_ratio"]) == ("redis", False, 0.0)
    assert top["fail_ratio"] >= 0.7  # bad buckets widened by one bucket each side: 10 of 14 s
    expected = f'coincides with REDIS "SET" failing {100 * top["fail_ratio"]:.0f}% of calls (baseline 0%)'
    assert expected in a["summary"]


def test_gauge_correlation_is_pearson_r_over_buckets_with_both_values():
    slow = (4, 5, 6)
    latency = [(T0 + 2 * i, 3000.0 if i in slow else 600.0 + 10 * (i % 3)) for i in range(10)]
    gauges = {
        # two readings per bucket, averaged; one before the first bucket is ignored
        "target:cpu_percent": [[T0 - 5, 999.0]]
        + [[T0 + 2 * i + d, (90.0 if i in slow else 10.0) + d] for i in range(10) for d in (0.2, 1.5)],
        "locust:rss_mb": [[T0 + 2 * i + 1, 80.0 if i in slow else 200.0] for i in range(10)],
        "redis:used_memory_mb": [[T0 + 2 * i + 1, 5.0] for i in range(10)],  # flat: no r
        "pg:lock_waiters": [[T0 + 2 * i + 1, float(i in slow)] for i in range(4)],  # too few buckets
    }
    rows = {g["gauge"]: g for g in gauge_correlations(latency, gauges, 2.0)}
    assert rows["target:cpu_percent"]["windows"] == 10 and rows["target:cpu_percent"]["correlation"] > 0.99
    assert rows["locust:rss_mb"]["correlation"] < -0.99
    assert rows["redis:used_memory_mb"] == {
        "gauge": "redis:used_memory_mb", "windows": 10, "correlation": None, "detrended_correlation": None,
        "change_pct": None, "moves_with": False,
    }
    assert rows["pg:lock_waiters"]["windows"] == 4 < MIN_GAUGE_WINDOWS
    assert rows["pg:lock_waiters"]["correlation"] is None
    ordered = [g["gauge"] for g in gauge_correlations(latency, gauges, 2.0)]
    assert ordered[2:] == ["pg:lock_waiters", "redis:used_memory_mb"]  # without an r: last


def test_gauge_that_moves_with_the_failing_metric_is_named_in_summary():
    eng = run(40, range(20, 28), "postgres")
    for s in range(40):
        eng.collector.record_gauge("target:cpu_percent", 95.0 if 20 <= s < 28 else 20.0 + s % 4, T0 + s + 0.6)
        eng.collector.record_gauge("locust:rss_mb", 70.0 + (s * 7) % 5, T0 + s + 0.6)
    eng.flush_local()
    buckets = eng.store.sorted_buckets()
    a = attribute(failing(eng), buckets, SPECS, gauges=eng.store.gauges, bucket_s=eng.store.resolution_s)
    top, other = a["gauges"]
    assert (top["gauge"], top["windows"]) == ("target:cpu_percent", 20)
    assert top["correlation"] > 0.9 and abs(other["correlation"]) < 0.5
    assert top["moves_with"] and top["detrended_correlation"] > 0.9 and not other["moves_with"]
    assert f"moves with target:cpu_percent (r {top['detrended_correlation']:+.2f} detrended, 20 windows)" in a["summary"]
    assert "locust:rss_mb" not in a["summary"]
    assert a["tiers"][0]["tier"] == "postgres"  # gauges do not change the tier ranking
    plain = attribute(failing(eng), buckets, SPECS)
    assert plain["gauges"] == [] and "moves with" not in plain["summary"]
    assert attribute(failing(eng), buckets, SPECS, gauges=eng.store.gauges)["gauges"] == a["gauges"]  # width inferred


def test_gauge_correlation_needs_enough_buckets():
    eng = run(6, range(2, 4), "postgres")
    for s in range(6):
        eng.collector.record_gauge("target:cpu_percent", 95.0 if 2 <= s < 4 else 20.0, T0 + s + 0.6)
    eng.flush_local()
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS, gauges=eng.store.gauges, bucket_s=2.0)
    assert a["gauges"] == [{"gauge": "target:cpu_percent", "windows": 3, "correlation": None,
                            "detrended_correlation": None, "change_pct": 78.9, "moves_with": False}]
    assert "moves with" not in a["summary"]


def test_tier_without_threshold_or_baseline_is_judged_against_the_design_sla():
    # pipeline-event-timing: only WS thresholds, and the PG probe's first samples landed in the stall
    eng = run(6, range(0, 6), "postgres")
    a = attribute(failing(eng), eng.store.sorted_buckets(), [SPECS[0]])
    top = a["tiers"][0]
    assert (top["tier"], top["baseline_p95"], top["threshold"]) == ("postgres", None, None)
    assert top["within_sla"] is False and top["rise_ms"] > 2000 and top["score"] >= 0.8
    assert all(t["within_sla"] and t["score"] < 0.25 for t in a["tiers"][1:])
    assert "coincides with PG" in a["summary"]


def test_tier_that_peaks_beside_the_failure_says_its_correlation_is_negative():
    """ClickHouse stalls just before and just after the PG-bound slow replies (inside the widened bad buckets): it
    coincides by its rise, and the summary says it moved against the chat latency."""
    eng = run(40, range(20, 26), "postgres")
    for s in (18, 19, 26, 27):
        for k in range(3):
            eng.collector.record("CH", "agent stage summary", 2500.0 + k, False, T0 + s + 0.5)
    eng.flush_local()
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS)
    by_tier = {t["tier"]: t for t in a["tiers"]}
    assert a["tiers"][0]["tier"] == "postgres" and by_tier["postgres"]["correlation"] > 0.9
    ch = by_tier["clickhouse"]
    assert ch["rise_ms"] > 1000 and ch["correlation"] < 0, ch
    assert f"though it did not rise with the chat latency bucket by bucket (r {ch['correlation']:+.2f})" in a["summary"]
    pg_part, ch_part = a["summary"].split('CH "agent stage summary"')
    assert 'PG "thread history" p95' in pg_part and "did not rise with" not in pg_part
    assert ch_part.startswith(" p95 ") and "did not rise with" in ch_part


def closed_run(seconds: int, per_second: int, reply_ms: float, probes: bool) -> Engine:
    """A healthy closed-model run judged by ``rps >= 10``: ``per_second`` replies of ~``reply_ms`` each second."""
    rnd = random.Random(3)
    eng = Engine([ThresholdSpec.of("WS agent_completed", "rps >= 10"), *SPECS[1:]])
    eng.start(T0)
    for s in range(seconds):
        for k in range(per_second):
            eng.collector.record("WS", "agent_completed", reply_ms + rnd.uniform(-50, 50), False, T0 + s + k / 10)
        if probes:
            eng.collector.record("PG", "thread history", 4.0 + rnd.random(), False, T0 + s + 0.5)
            eng.collector.record("REDIS", "GET", 0.5 + rnd.random(), False, T0 + s + 0.5)
            eng.collector.record("CH", "agent stage summary", 30.0 + rnd.random(), False, T0 + s + 0.5)
    eng.flush_local()
    eng.stop(T0 + seconds)
    return eng


def failing_rps(eng):
    (r,) = [r for r in eng.evaluate(T0 + 999) if r.metric == "WS agent_completed"]
    assert r.status == FAIL and r.spec.expression.stat == "rps"
    return r


TEN_USERS = OfferedLoad(chat_users=10, peak_users=10, chat_concurrency=10, think_s=1.0)


@pytest.mark.parametrize("probes", [True, False])
def test_rps_below_what_ten_thinking_users_can_offer_is_put_on_the_offered_load(probes):
    eng = closed_run(30, 7, 450.0, probes)
    r = failing_rps(eng)
    a = attribute(r, eng.store.sorted_buckets(), eng.specs, load=TEN_USERS)
    cap = 10 / (1 + a["offered_load"]["reply_s"])
    assert a["offered_load"]["caps"] and a["offered_load"]["cap_rps"] == pytest.approx(cap, abs=0.01)
    assert a["summary"] == (
        f"WS agent_completed rps {r.value:.2f} rps < 10.00 rps — the offered load caps throughput at {cap:.1f} msg/s "
        f"(10 users, think ~1 s, reply ~{a['offered_load']['reply_s']:.2f} s): raise users or lower think time"
    )
    assert "slow" not in a["summary"] and "tier" not in a["summary"]
    # without the load facts the same line falls back to the tier analysis
    plain = attribute(r, eng.store.sorted_buckets(), eng.specs)
    assert plain["offered_load"] is None and "offered load" not in plain["summary"]


def test_rps_failing_with_enough_offered_load_keeps_the_tier_analysis():
    eng = closed_run(30, 7, 450.0, True)
    many = OfferedLoad(chat_users=10, peak_users=10, chat_concurrency=10, think_s=0.1)  # could offer 18 msg/s
    a = attribute(failing_rps(eng), eng.store.sorted_buckets(), eng.specs, load=many)
    assert a["offered_load"]["caps"] is False and "offered load" not in a["summary"]
    assert "no tier's latency rose" in a["summary"]


def test_without_tier_probes_the_summary_says_no_tier_was_measured():
    eng = run(40, range(20, 28), None)
    buckets = [(t, b) for t, b in eng.store.sorted_buckets()]
    for _, b in buckets:
        for m in [m for m in b.metrics if tier_of(m)]:
            del b.metrics[m]
    a = attribute(failing(eng), buckets, SPECS)
    assert a["tiers"] == []
    assert "no tier was measured" in a["summary"] and "cannot be told" in a["summary"]
    assert "backend/agent itself is slow" not in a["summary"] and "no samples from" not in a["summary"]


def test_with_some_tiers_unprobed_the_summary_leaves_the_unprobed_ones_open():
    eng = run(40, range(20, 28), None)
    buckets = eng.store.sorted_buckets()
    for _, b in buckets:
        b.metrics.pop("CH agent stage summary", None)
    a = attribute(failing(eng), buckets, SPECS)
    assert "no measured tier's latency rose in the same windows (the agent itself, or an unmeasured tier: " \
           "ClickHouse, is slow)" in a["summary"]
    assert "backend/agent itself is slow" not in a["summary"]


@pytest.mark.parametrize("seed", range(5))
def test_gauge_that_only_trends_with_time_is_not_named_but_one_stepping_with_the_fault_is(seed):
    """The fault holds from half-way to the end: memory that grows all run correlates with that (raw r > 0.8), but
    not once the time trend is removed; CPU that steps up with the fault still does."""
    rnd = random.Random(seed)
    eng = run(40, range(20, 40), None, seed=seed)
    for s in range(40):
        t = T0 + s + 0.6
        eng.collector.record_gauge("locust:rss_mb", 70.0 + 0.8 * s + rnd.gauss(0, 1.0), t)
        eng.collector.record_gauge("redis:used_memory_mb", 5.0 + 0.05 * s, t)  # a straight line
        eng.collector.record_gauge("target:cpu_percent", (85.0 if s >= 20 else 25.0) + rnd.gauss(0, 3.0), t)
    eng.flush_local()
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS, gauges=eng.store.gauges, bucket_s=2.0)
    rows = {g["gauge"]: g for g in a["gauges"]}
    rss, mem, cpu = rows["locust:rss_mb"], rows["redis:used_memory_mb"], rows["target:cpu_percent"]
    assert rss["correlation"] > 0.8 and mem["correlation"] > 0.8  # what the raw r said
    assert not rss["moves_with"] and not mem["moves_with"] and mem["detrended_correlation"] is None
    assert cpu["moves_with"] and cpu["detrended_correlation"] > 0.9
    assert "moves with target:cpu_percent" in a["summary"]
    assert "rss_mb" not in a["summary"] and "used_memory_mb" not in a["summary"]
    assert a["gauges"][0]["gauge"] == "target:cpu_percent"


def test_gauge_with_a_tiny_step_at_the_fault_is_not_named():
    """The generator's memory grew 0.3 MB (0.4 %) as the fault was injected: in step with it, but no resource story."""
    rnd = random.Random(7)
    eng = run(40, range(20, 40), None)
    for s in range(40):
        eng.collector.record_gauge("locust:rss_mb", 72.0 + (0.3 if s >= 20 else 0.0) + rnd.gauss(0, 0.02), T0 + s + 0.6)
    eng.flush_local()
    a = attribute(failing(eng), eng.store.sorted_buckets(), SPECS, gauges=eng.store.gauges, bucket_s=2.0)
    (rss,) = a["gauges"]
    assert rss["detrended_correlation"] > 0.9 and 0 < rss["change_pct"] < 5.0 and not rss["moves_with"], rss
    assert "moves with" not in a["summary"]


@pytest.mark.parametrize(
    ("text", "tier"),
    [
        ("error DEPENDENCY_TIMEOUT: postgres thread history timed out after 2000 ms", "postgres"),
        ("error DEPENDENCY_ERROR: PostgreSQL pool acquire failed", "postgres"),
        ("error DEPENDENCY_TIMEOUT: Redis GET session timed out", "redis"),
        ("error E: clickhouse insert refused", "clickhouse"),
        ("hang: no event for 10 s", None),
        ("error TIMEOUT: upgrade took too long", None),  # 'upgrade' contains no tier word
    ],
)
def test_tier_named_in_error_text(text, tier):
    assert tier_named_in(text) == tier


def _whole_run_fault(named: str | None) -> Engine:
    """A fault over the whole run (no baseline windows): PG is slow in every bucket, a fifth of the replies fail
    fast-ish with an error that names ``named``, the rest are slow."""
    eng = Engine([ThresholdSpec.of("WS agent_completed", "fail_ratio < 0.01"), *SPECS[1:]])
    eng.start(T0)
    c = eng.collector
    for s in range(10):
        t = T0 + s + 0.3
        for i in range(5):
            fails = i == 0
            c.record("WS", "agent_completed", 2000.0 if fails else 1500.0, fails, t, None,
                     named if fails else None)
        c.record("PG", "thread history", 1800.0, False, t)
        c.record("PG", "thread update", 5.0 if s % 2 else 3.0, False, t)
        c.record("REDIS", "GET", 0.5, False, t)
    eng.flush_local()
    eng.stop(T0 + 10)
    return eng


def test_failures_that_name_a_tier_rank_it_first_when_latency_cannot_tell():
    eng = _whole_run_fault("postgres")
    (r,) = [r for r in eng.evaluate(T0 + 999) if r.metric == "WS agent_completed"]
    assert r.status == FAIL
    a = attribute(r, eng.store.sorted_buckets(), eng.specs)
    top = a["tiers"][0]
    assert top["tier"] == "postgres" and top["failures_naming"] == 10 and top["within_sla"] is False
    assert top["score"] == 1.0
    assert "PostgreSQL, named in the error of 10 failed replies" in a["summary"]
    redis = [t for t in a["tiers"] if t["tier"] == "redis"][0]
    assert redis["failures_naming"] == 0 and redis["within_sla"] is True


def test_a_named_tier_without_samples_of_its_own_still_gets_an_entry():
    eng = _whole_run_fault("clickhouse")
    (r,) = [r for r in eng.evaluate(T0 + 999) if r.metric == "WS agent_completed"]
    a = attribute(r, eng.store.sorted_buckets(), eng.specs)
    top = a["tiers"][0]
    assert top["tier"] == "clickhouse" and top["p95"] is None and top["failures_naming"] == 10
    assert "ClickHouse, named in the error of 10 failed replies" in a["summary"]


def test_named_tiers_survive_the_worker_report_round_trip():
    eng = _whole_run_fault("redis")
    (b,) = [b for _, b in eng.store.sorted_buckets()][:1]
    n = b.named["WS agent_completed"]["redis"]
    assert n >= 1 and Bucket.from_dict(b.to_dict()).named == b.named == {"WS agent_completed": {"redis": n}}
    merged = Bucket.merged([b, Bucket.from_dict(b.to_dict())])
    assert merged.named == {"WS agent_completed": {"redis": 2 * n}}


def _cut_run(tier_stall: bool) -> Engine:
    """Replies ~700 ms; in seconds 20-27 a third of them fail with a connection cut (a WS disconnect each) and, with
    ``tier_stall``, Redis stalls as well."""
    eng = Engine([ThresholdSpec.of("WS agent_completed", "fail_ratio < 0.01"), *SPECS[1:]])
    eng.start(T0)
    c = eng.collector
    for s in range(40):
        t = T0 + s + 0.3
        bad = 20 <= s < 28
        for i in range(9):
            cut = bad and i % 3 == 0
            c.record("WS", "agent_completed", 700.0, cut, t)
            if cut:
                c.record("WS", "disconnect", 0.0, True, t)
        c.record("PG", "thread history", 5.0, False, t)
        c.record("REDIS", "GET", 2900.0 if bad and tier_stall else 0.5, False, t)
    eng.flush_local()
    eng.stop(T0 + 40)
    return eng


def test_replies_failed_by_dropped_connections_blame_the_drops_not_the_backend():
    eng = _cut_run(tier_stall=False)
    (r,) = [r for r in eng.evaluate(T0 + 999) if r.metric == "WS agent_completed"]
    assert r.status == FAIL
    a = attribute(r, eng.store.sorted_buckets(), eng.specs)
    assert "no tier's latency rose, but 24 connection(s) dropped in the same windows (WS disconnect)" in a["summary"]
    assert "load balancer" in a["summary"] and "itself is slow" not in a["summary"]


def test_dropped_connections_beside_a_coinciding_tier_are_a_note_after_it():
    eng = _cut_run(tier_stall=True)
    (r,) = [r for r in eng.evaluate(T0 + 999) if r.metric == "WS agent_completed"]
    a = attribute(r, eng.store.sorted_buckets(), eng.specs)
    assert "coincides with REDIS" in a["summary"], a["summary"]
    assert "; 24 connection(s) dropped in the same windows (WS disconnect)" in a["summary"]
