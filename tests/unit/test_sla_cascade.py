"""sla_checks.cascade: each tier's onset bucket and the chain of tiers ordered by it."""

from __future__ import annotations

import pytest

from sla_checks.cascade import cascade_chain, chain_text, failure_start, reference_buckets, tier_onsets
from sla_checks.engine import Bucket
from sla_checks.evaluate import MetricData, ThresholdSpec

pytestmark = pytest.mark.timeout(20)

T0 = 1_800_000_000.0
SPECS = [
    ThresholdSpec.of("WS agent_completed", "p(95) < 2000"),
    ThresholdSpec.of("REDIS *", "p(95) < 50"),
    ThresholdSpec.of("PG *", "p(95) < 200"),
    ThresholdSpec.of("CH *", "p(95) < 1000"),
]


def buckets(series: dict[str, list[float | None]], fails: dict[str, list[float]] | None = None):
    """2 s buckets; ``series[metric][i]``: the latency of 5 samples in bucket i (None: no sample);
    ``fails[metric][i]``: the share of them that failed."""
    n = max(len(v) for v in series.values())
    out = []
    for i in range(n):
        b = Bucket()
        for metric, values in series.items():
            v = values[i] if i < len(values) else None
            if v is None:
                continue
            d = MetricData()
            share = (fails or {}).get(metric, [0.0] * n)[i]
            for k in range(5):
                d.record(v, k < round(5 * share))
            b.metrics[metric] = d
        out.append((T0 + 2 * i, b))
    return out


def test_the_chain_orders_the_tiers_by_the_bucket_in_which_each_went_bad():
    run = buckets({
        "WS agent_completed": [900, 900, 2600, 2800, 2900, 3000],
        "REDIS GET": [1, 1, 300, 300, 300, 300],
        "HTTP ready:postgres": [5, 6, 5, 400, 500, 500],
        "CH insert": [20, 20, 20, 20, 1500, 1600],
    })
    chain = cascade_chain(run, SPECS, baseline={0, 1})
    assert chain is not None
    assert chain["order"] == ["redis", "postgres", "clickhouse"]
    assert chain["text"] == "redis → postgres → clickhouse"
    rows = {r["tier"]: r for r in chain["tiers"]}
    assert [rows[t]["index"] for t in chain["order"]] == [2, 3, 4]
    assert [rows[t]["after_s"] for t in chain["order"]] == [0.0, 2.0, 4.0]
    assert rows["postgres"]["metric"] == "HTTP ready:postgres" and rows["postgres"]["limit"] is None
    assert rows["redis"]["limit"] == 50 and rows["redis"]["p95"] == pytest.approx(300, rel=0.02)


def test_the_order_follows_the_data_not_the_tier_names():
    run = buckets({
        "PG thread history": [5, 5, 900, 900, 900],
        "REDIS GET": [1, 1, 1, 1, 300],
    })
    assert cascade_chain(run, SPECS, baseline={0, 1})["order"] == ["postgres", "redis"]


def test_a_tier_that_stays_healthy_is_not_in_the_chain():
    run = buckets({
        "REDIS GET": [1, 1, 300, 300],
        "PG thread history": [5, 6, 7, 9],  # within its threshold: wobbles are not an onset
        "CH insert": [20, 20, 25, 30],
    })
    chain = cascade_chain(run, SPECS, baseline={0, 1})
    assert chain["order"] == ["redis"] and chain["text"] == "redis"


def test_tiers_going_bad_in_the_same_bucket_are_joined_not_ordered():
    run = buckets({
        "REDIS GET": [1, 1, 300, 300],
        "HTTP ready:postgres": [5, 5, 500, 500],
    })
    chain = cascade_chain(run, SPECS, baseline={0, 1})
    assert chain["text"] == "postgres + redis"
    assert {r["index"] for r in chain["tiers"]} == {2}


def test_no_tier_going_bad_gives_no_chain():
    run = buckets({"WS agent_completed": [900, 3000], "REDIS GET": [1, 2], "PG thread history": [5, 5]})
    assert cascade_chain(run, SPECS, baseline={0}) is None


def test_baseline_buckets_are_never_an_onset_and_a_metric_already_slow_there_must_rise_further():
    # PG is over its threshold in the baseline too (a slow database all along): no onset unless it rises further
    run = buckets({"PG thread history": [400, 400, 410, 900], "REDIS GET": [60, 1, 300, 300]})
    onsets = tier_onsets(run, SPECS, baseline={0, 1})
    assert onsets["postgres"]["index"] == 3
    assert onsets["redis"]["index"] == 2  # bucket 0 was over 50 ms, but it is baseline


def test_without_a_threshold_the_tier_design_limit_and_the_rise_over_baseline_decide():
    # HTTP ready:postgres is PostgreSQL as the backend sees it: over PostgreSQL's 200 ms, and 2x its baseline
    run = buckets({"HTTP ready:postgres": [10, 12, 150, 250, 260]})
    assert tier_onsets(run, [], baseline={0, 1})["postgres"]["index"] == 3
    slow_all_along = buckets({"HTTP ready:postgres": [300, 320, 400, 450]})  # over 200, but not 2x its baseline
    assert tier_onsets(slow_all_along, [], baseline={0, 1}) == {}


def test_without_baseline_or_threshold_the_design_limit_decides():
    run = buckets({"HTTP ready:clickhouse": [200, 900, 1200]})
    assert tier_onsets(run, [], baseline=())["clickhouse"]["index"] == 2


def test_the_start_up_before_the_first_baseline_bucket_is_no_candidate():
    run = buckets({"HTTP ready:postgres": [400, 350, 10, 12, 600, 700]})  # spawn spikes, then the real onset
    assert tier_onsets(run, SPECS, baseline={2, 3})["postgres"]["index"] == 4


def test_an_onset_may_be_followed_by_one_good_bucket_of_sparse_samples():
    run = buckets({"HTTP ready:postgres": [10, 10, 900, 100, None, 1100, 10]})
    assert tier_onsets(run, SPECS, baseline={0, 1})["postgres"]["index"] == 2
    lone = buckets({"HTTP ready:postgres": [10, 10, 900, 100, 90, 1100, 1000]})
    assert tier_onsets(lone, SPECS, baseline={0, 1})["postgres"]["index"] == 5


def test_a_tier_failing_fast_goes_bad_by_its_failures():
    run = buckets({"REDIS SET": [1, 1, 1, 1]}, fails={"REDIS SET": [0.0, 0.0, 0.0, 0.6]})
    onset = tier_onsets(run, SPECS, baseline={0, 1})["redis"]
    assert onset["index"] == 3 and onset["metric"] == "REDIS SET"


def test_the_earliest_metric_of_a_tier_names_its_onset():
    run = buckets({
        "HTTP ready:redis": [2, 2, 2, 400],
        "REDIS GET": [1, 1, 300, 300],
    })
    onset = tier_onsets(run, SPECS, baseline={0, 1})["redis"]
    assert (onset["index"], onset["metric"]) == (2, "REDIS GET")


def test_metrics_of_no_tier_are_ignored():
    run = buckets({"WS agent_completed": [900, 5000], "HTTP /health": [5, 5000], "HTTP ready:": [1, 9000]})
    assert tier_onsets(run, SPECS, baseline={0}) == {}


def test_chain_text_joins_groups():
    rows = [{"tier": "redis", "index": 1}, {"tier": "clickhouse", "index": 3}, {"tier": "postgres", "index": 3}]
    assert chain_text(rows) == "redis → clickhouse + postgres"
    assert chain_text([]) == ""


def test_a_lone_spike_is_no_onset():
    run = buckets({
        "REDIS connect": [250, 1, 1, 1, 1, 1],  # the probe's first connection
        "REDIS GET": [1, 1, 1, 1, 300, 300],
    })
    onset = tier_onsets(run, SPECS, baseline=())["redis"]
    assert (onset["index"], onset["metric"]) == (4, "REDIS GET")


def test_a_spike_in_the_last_bucket_with_samples_counts():
    run = buckets({"REDIS GET": [1, 1, 1, 300]})
    assert tier_onsets(run, SPECS, baseline={0, 1})["redis"]["index"] == 3


def test_reference_buckets_are_those_before_the_failure_with_every_tier_within_its_limit():
    run = buckets({
        "WS agent_completed": [900, 900, 900, 1200, 1300, 2600, 2800],
        "REDIS connect": [250, 1, 1, 1, 1, 1, 1],
        "REDIS GET": [1, 1, 1, 300, 300, 300, 300],
        "HTTP ready:postgres": [8, 9, 8, 10, 12, 600, 500],
    })
    assert reference_buckets(run, SPECS, before=5) == [1, 2]
    assert reference_buckets(run, SPECS, before=0) == []


def test_a_cause_that_went_bad_before_the_chat_metric_broke_leads_the_chain():
    # Redis slow from bucket 3 (replies still within SLA), the pool queues from bucket 5 (replies break)
    run = buckets({
        "WS agent_completed": [900, 900, 900, 1200, 1300, 2600, 2800, 2700],
        "REDIS GET": [1, 1, 1, 300, 300, 800, 800, 800],
        "HTTP ready:redis": [2, 2, 2, 150, None, 500, None, 450],
        "HTTP ready:postgres": [8, 9, 8, 10, None, 600, None, 500],
        "CH insert": [20, 20, 20, 20, 20, 20, 20, 20],
    })
    chain = cascade_chain(run, SPECS, reference_buckets(run, SPECS, before=5))
    assert chain["text"] == "redis → postgres"
    assert [(r["tier"], r["index"], r["after_s"]) for r in chain["tiers"]] == [("redis", 3, 0.0), ("postgres", 5, 4.0)]


def test_the_failure_starts_where_two_bad_buckets_follow_each_other():
    assert failure_start([1, 6, 7, 8]) == 6  # bucket 1: the spawn's first slow replies
    assert failure_start([3, 5]) == 3
    assert failure_start([]) is None


def _engine_run(redis_from: int, pg_from: int, seconds: int = 30):
    """A synthetic run through the SLA engine: WS replies ~700 ms that break 2 s once PostgreSQL queues; Redis slow
    from ``redis_from`` s, the backend's PostgreSQL readiness slow from ``pg_from`` s."""
    from sla_checks.engine import Engine

    eng = Engine(SPECS)
    eng.start(T0)
    c = eng.collector
    for s in range(seconds):
        t = T0 + s + 0.3
        for k in range(10):
            c.record("WS", "agent_completed", 700 + 10 * k + (2500 if s >= pg_from else 0), False, t)
        c.record("REDIS", "GET", 300.0 if s >= redis_from else 0.5, False, t)
        c.record("HTTP", "ready:postgres", 900.0 if s >= pg_from else 8.0, False, t)
        c.record("PG", "thread history", 5.0, False, t)
        c.record("CH", "insert", 20.0, False, t)
    eng.flush_local()
    eng.stop(T0 + seconds)
    return eng


def _ws_failure(eng):
    from sla_checks.evaluate import FAIL

    (r,) = [r for r in eng.evaluate(T0 + 999) if r.metric == "WS agent_completed"]
    assert r.status == FAIL
    return r


def test_attribution_carries_the_chain_and_names_it_in_its_summary():
    from sla_checks.attribution import attribute

    eng = _engine_run(redis_from=10, pg_from=18)
    a = attribute(_ws_failure(eng), eng.store.sorted_buckets(), eng.specs)
    chain = a["chain"]
    assert chain["order"] == ["redis", "postgres"] and chain["text"] == "redis → postgres"
    rows = {r["tier"]: r for r in chain["tiers"]}
    assert rows["redis"]["start"] == T0 + 10 and rows["postgres"]["start"] == T0 + 18
    assert rows["postgres"]["after_s"] == 8.0
    assert a["summary"].endswith("chain: redis → postgres") or "; chain: redis → postgres" in a["summary"]


def test_attribution_of_a_single_tier_has_a_one_tier_chain_and_no_chain_clause():
    from sla_checks.attribution import attribute

    eng = _engine_run(redis_from=99, pg_from=18)
    a = attribute(_ws_failure(eng), eng.store.sorted_buckets(), eng.specs)
    assert a["chain"]["order"] == ["postgres"]
    assert "chain:" not in a["summary"]


def test_an_onset_near_the_end_needs_no_successor_left():
    run = buckets({"HTTP ready:postgres": [10, 10, 10, 900, 5]})  # the fault ended in bucket 3
    assert tier_onsets(run, SPECS, baseline={0, 1})["postgres"]["index"] == 3
