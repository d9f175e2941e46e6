from __future__ import annotations

import json
import math
import random

import pytest

from sla_checks.histogram import LINEAR_LIMIT_MS, Histogram, bucket_key

pytestmark = pytest.mark.timeout(30)


def exact_percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    rank = min(max(math.ceil(q / 100 * len(s) - 1e-9), 1), len(s))
    return s[rank - 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("q", [50, 90, 95, 99, 99.9])
def test_percentile_within_1ms_or_1_percent_of_exact(seed, q):
    rnd = random.Random(seed)
    values = [rnd.lognormvariate(7, 1.2) for _ in range(20_000)]  # ~ 1 ms .. minutes
    h = Histogram()
    h.record_many(values)
    exact = exact_percentile(values, q)
    got = h.percentile(q)
    assert got >= exact  # conservative: never reported better than it is
    assert got - exact <= max(1.0, 0.01 * exact)


@pytest.mark.parametrize(
    "value", [0.0, 0.2, 1.0, 1999.0, 1999.01, 2000.0, 2000.5, 65_536.0, 65_537.0, 3_600_000.5]
)
def test_bucket_key_is_at_or_above_value_within_accuracy(value):
    k = bucket_key(value)
    assert k >= value
    assert k - value <= max(1.0, 0.01 * value)


def test_integer_samples_are_exact_at_2000ms_boundary():
    h = Histogram()
    h.record_many([1000.0] * 94 + [2000.0] * 6)
    assert h.percentile(95) == 2000.0
    assert h.count_le(2000) == 100
    assert h.count_le(1999) == 94
    assert h.count_le(1999.5) == 94


def test_merge_from_several_sources_equals_single_histogram():
    rnd = random.Random(7)
    values = [rnd.uniform(0, 5000) for _ in range(9_000)] + [rnd.uniform(60_000, 200_000) for _ in range(100)]
    whole = Histogram()
    whole.record_many(values)
    parts = [Histogram() for _ in range(3)]
    for i, v in enumerate(values):
        parts[i % 3].record(v)
    # ship through JSON, as a worker report would
    shipped = [Histogram.from_dict(json.loads(json.dumps(p.to_dict()))) for p in parts]
    merged = Histogram.merged(shipped)
    assert merged.counts == whole.counts
    assert (merged.count, merged.min, merged.max) == (whole.count, whole.min, whole.max)
    assert merged.total == pytest.approx(whole.total)
    for q in (50, 95, 99, 99.9, 100):
        assert merged.percentile(q) == whole.percentile(q)


def test_percentiles_batch_matches_single_calls():
    rnd = random.Random(3)
    h = Histogram()
    h.record_many(rnd.expovariate(1 / 300) for _ in range(5000))
    qs = [0, 10, 50, 90, 95, 99, 99.9, 100]
    assert h.percentiles(qs) == {q: h.percentile(q) for q in qs}


def test_empty_histogram_has_no_values():
    h = Histogram()
    assert h.percentile(95) is None
    assert h.mean is None
    assert h.count_le(10) == 0
    assert Histogram.from_dict(h.to_dict()).count == 0


def test_extremes_are_exact():
    h = Histogram()
    h.record_many([3.25, 10.5, LINEAR_LIMIT_MS * 3.3])
    assert h.percentile(0) == 3.25
    assert h.percentile(100) == LINEAR_LIMIT_MS * 3.3
    assert h.percentile(99) == LINEAR_LIMIT_MS * 3.3  # bucket bound clamped to the exact maximum
    assert h.percentile(1) == 4.0  # 3.25 lands in bucket (3, 4]
