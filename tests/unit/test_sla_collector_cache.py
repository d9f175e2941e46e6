"""The collector's hot-path cache (the current second's bucket and its metrics by type and name) changes nothing it
hands on: samples in any time order, across drains, land in exactly the buckets and histograms a plain per-sample
"TYPE name" lookup gives."""

from __future__ import annotations

import math
import random

import pytest

from sla_checks.engine import NON_FINITE, Bucket, Collector
from sla_checks.evaluate import MetricData
from sla_checks.histogram import LINEAR_LIMIT_MS, Histogram, bucket_key

NAMES = [("WS", "agent_started"), ("WS", "agent_completed"), ("PG", "thread history"), ("WS", "agent started"),
         ("WS agent", "started")]


def _reference(samples):
    """(second, "TYPE name") -> (all, failed) histograms, built the plain way."""
    out: dict[tuple[int, str], tuple[Histogram, Histogram]] = {}
    for rtype, name, ms, failed, now in samples:
        h = out.setdefault((int(now // 1.0), f"{rtype} {name}"), (Histogram(), Histogram()))
        h[0].record(ms)
        if failed:
            h[1].record(ms)
    return out


def _collected(payloads):
    out: dict[tuple[int, str], tuple[Histogram, Histogram]] = {}
    for payload in payloads:
        for start, bucket in payload["b"]:
            for key, m in bucket["m"].items():
                h = out.setdefault((int(start), key), (Histogram(), Histogram()))
                h[0].merge(Histogram.from_dict(m["h"]))
                if "f" in m:
                    h[1].merge(Histogram.from_dict(m["f"]))
    return out


def test_cached_lookups_give_the_same_histograms_in_any_order_and_across_drains():
    rnd = random.Random(7)
    samples = []
    for _ in range(5000):
        rtype, name = rnd.choice(NAMES)
        now = 1_000_000.0 + rnd.choice([rnd.uniform(0, 5), rnd.uniform(0, 0.999)])  # mostly one second, some jumps
        ms = rnd.choice([rnd.expovariate(0.01), rnd.expovariate(0.01), rnd.uniform(60_000, 200_000), -rnd.random(),
                         float(rnd.randint(0, 5))])  # beyond the 1-ms buckets and below 0 too
        samples.append((rtype, name, ms, rnd.random() < 0.1, now))
    c = Collector()
    payloads = []
    for i, (rtype, name, ms, failed, now) in enumerate(samples):
        c.record(rtype, name, ms, failed, now)
        if i % 997 == 0:
            payloads.append(c.drain())
    payloads.append(c.drain())
    got = _collected(p for p in payloads if p)
    want = _reference(samples)
    assert got.keys() == want.keys()
    for key, pair in want.items():
        for mine, theirs in zip(got[key], pair, strict=True):
            assert mine.counts == theirs.counts, key  # exact: the same buckets, the same percentiles
            assert (mine.count, mine.min, mine.max) == (theirs.count, theirs.min, theirs.max), key
            assert math.isclose(mine.total, theirs.total, rel_tol=1e-12), key  # summed per drain here
    assert c.samples == len(samples)
    # "WS agent" + "started" and "WS" + "agent started" share one "TYPE name" key, as before the cache
    assert any(k == "WS agent started" for _, k in got)


def test_histogram_buckets_are_bucket_key():
    rnd = random.Random(3)
    for v in [0, -0.5, -3, 0.2, 1, 1.0000001, 65_536, 65_536.5, 70_000.3, 1e9, 2.9999999999, True, 5]:
        h = Histogram()
        h.record(v)
        assert list(h.counts) == [bucket_key(v)], v
    for _ in range(20_000):
        v = rnd.choice([rnd.uniform(-5, 100_000), rnd.expovariate(0.001), rnd.randint(-3, 200_000)])
        h = Histogram()
        h.record(v)
        assert list(h.counts) == [bucket_key(v)], v


def test_stage_gaps_land_as_histogram_record_puts_them():
    rnd = random.Random(11)
    c = Collector()
    want: dict[str, Histogram] = {}
    for _ in range(3000):
        stages = {gap: rnd.choice([rnd.expovariate(0.5), rnd.uniform(60_000, 90_000), 0.0, 3])
                  for gap in rnd.sample(["a→b", "b→c", "c→d", "d→e"], 3)}
        stages["x→y"] = "not a number"  # type: ignore[assignment]  # skipped, as before
        c.record("WS", "agent_completed", 5.0, False, 2_000_000.5, stages)
        for gap, ms in stages.items():
            if isinstance(ms, int | float):
                want.setdefault(gap, Histogram()).record(ms)
    payload = c.drain()
    assert payload is not None
    [(start, bucket)] = payload["b"]
    got = {gap: Histogram.from_dict(d) for gap, d in bucket["s"].items()}
    assert got.keys() == want.keys()
    for gap, h in want.items():
        assert got[gap].counts == h.counts and (got[gap].count, got[gap].min, got[gap].max) == (h.count, h.min, h.max)
        assert got[gap].total == h.total  # one drain, the same order: the same sum


def test_record_success_lands_exactly_where_record_puts_a_success():
    """The direct path's lean copy (users.sample_sink): successes with and without stage gaps, mixed with failures
    through record(), in any time order and across drains, give the payloads record() alone gives."""
    rnd = random.Random(5)
    plain, lean = Collector(), Collector()
    payloads: tuple[list, list] = ([], [])
    for i in range(6000):
        rtype, name = rnd.choice(NAMES)
        now = 3_000_000.0 + rnd.choice([rnd.uniform(0, 4), rnd.uniform(0, 0.999)])
        r = rnd.random()  # mostly distinct values, so that a slip in min/max/sum shows
        ms = (rnd.expovariate(0.02) if r < 0.85 else rnd.uniform(60_000, 200_000) if r < 0.95
              else float(rnd.randint(0, 5)) if r < 0.99 else -rnd.random())
        stages = {"a→b": rnd.expovariate(0.5), "b→c": rnd.uniform(60_000, 90_000)} if rnd.random() < 0.3 else None
        if rnd.random() < 0.1:  # a failure: record() in both
            plain.record(rtype, name, ms, True, now, None, "postgres")
            lean.record(rtype, name, ms, True, now, None, "postgres")
        else:
            plain.record(rtype, name, ms, False, now, stages)
            lean.record_success(rtype, name, ms, now, stages)
        if i % 1013 == 0:
            payloads[0].append(plain.drain())
            payloads[1].append(lean.drain())
    payloads[0].append(plain.drain())
    payloads[1].append(lean.drain())
    assert payloads[0] == payloads[1]
    assert plain.samples == lean.samples == 6000
    assert any(p and any(b["s"] for _, b in p["b"]) for p in payloads[1])  # stage gaps were recorded


def _random_ms(rnd: random.Random) -> float:
    r = rnd.random()  # mostly distinct values, so that a slip in min/max/sum shows
    return (rnd.expovariate(0.02) if r < 0.85 else rnd.uniform(60_000, 200_000) if r < 0.95
            else float(rnd.randint(0, 5)) if r < 0.99 else -rnd.random())


def test_record_list_is_record_of_each_value_in_order():
    """The fold's C-loop path and its one-by-one fallback give exactly what record() of each value gives: the same
    buckets in the same order (the payload lists them so), count, min, max, and the same float sum."""
    rnd = random.Random(17)
    cases = [[], [0.0], [-0.0, 0.0], [0.0, -0.0], [3, True, 2.5], [-0.5, 0.2], [LINEAR_LIMIT_MS, 1.0],
             [LINEAR_LIMIT_MS + 0.5, 1.0], [1e9, -3.0, 2.0]]
    cases += [[rnd.expovariate(0.01) for _ in range(rnd.randint(1, 400))] for _ in range(200)]  # the fast path
    cases += [[_random_ms(rnd) for _ in range(rnd.randint(1, 400))] for _ in range(200)]  # mostly the fallback
    for values in cases:
        want, got = Histogram(), Histogram()
        for h in (want, got):  # on top of earlier samples, as a bucket's second fold is
            h.record(7.25)
            h.record(0.5)
        for v in values:
            want.record(v)
        assert got.record_list(list(values)) == 0
        assert list(got.counts.items()) == list(want.counts.items()), values
        assert (got.count, got.total, got.min, got.max) == (want.count, want.total, want.min, want.max), values


def test_record_list_skips_what_record_refuses_and_says_how_many():
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises((ValueError, OverflowError)):
            Histogram().record(bad)
        for values in ([1.0, bad, 2.0], [bad], [bad, 70_000.0, 3.0], [5.0, bad, bad]):
            h, want = Histogram(), Histogram()
            assert h.record_list(values) == sum(1 for v in values if not math.isfinite(v))
            want.record_many(v for v in values if math.isfinite(v))
            assert (h.counts, h.count, h.total, h.min, h.max) == (want.counts, want.count, want.total, want.min,
                                                                  want.max), values


class _Reference:
    """The collector as it was before its buffer: every sample straight into its bucket's histograms with
    Histogram.record (a bucket per second, in first-seen order), drained as Bucket.to_dict()."""

    def __init__(self) -> None:
        self.pending: dict[int, Bucket] = {}

    def record(self, rtype, name, ms, failed, now, stages=None, tier=None):
        b = self.pending.setdefault(int(now // 1.0), Bucket())
        m = b.metrics.setdefault(f"{rtype} {name}", MetricData())
        m.record(ms, failed)
        if failed and tier is not None:
            named = b.named.setdefault(f"{rtype} {name}", {})
            named[tier] = named.get(tier, 0) + 1
        for gap, v in (stages or {}).items():
            if isinstance(v, int | float):
                b.stages.setdefault(gap, Histogram()).record(v)

    def drain(self):
        out = [[idx * 1.0, b.to_dict()] for idx, b in self.pending.items()]
        self.pending = {}
        return out


def test_batched_successes_give_the_payloads_of_a_record_per_sample():
    """The sink's path (record_successes: a message's samples at once, buffered until the samples move to another
    second or a drain) and record() (buffered too) against the pre-buffer collector: failures interleaved, stage
    gaps on the staged name only, times in any order, drains between; the buckets are equal to the order of the
    buckets, of their metrics, stage gaps and histogram keys, and to the float sums."""
    rnd = random.Random(23)
    ref, c = _Reference(), Collector()
    got: list = []
    want: list = []
    staged = "agent_completed"
    for i in range(3000):
        now = 4_000_000.0 + rnd.choice([rnd.uniform(0, 4), rnd.uniform(0, 0.999)])
        rtype = rnd.choice(["WS", "WS", "PG"])
        names = rnd.sample(["agent_started", "agent_thinking", "tool_executing", staged, "other"], rnd.randint(1, 5))
        batch = []
        for name in names:
            stages = ({"sent→agent_started": rnd.expovariate(0.5), "a→b": _random_ms(rnd), "note": "text"}
                      if rnd.random() < 0.6 else None)
            batch.append((name, _random_ms(rnd), stages, None))
        for name, ms, stages, _ in batch:
            ref.record(rtype, name, ms, False, now, stages if name == staged else None)
        c.record_successes(rtype, batch, now, staged)
        if rnd.random() < 0.2:  # through record() in both, between the batches: a failure, or a staged success
            ms, failed = _random_ms(rnd), rnd.random() < 0.5
            stages = None if failed else {"a→b": _random_ms(rnd)}
            ref.record(rtype, staged, ms, failed, now, stages, "redis")
            c.record(rtype, staged, ms, failed, now, stages, "redis")
        if i % 701 == 0:
            got.append((c.drain() or {}).get("b"))
            want.append(ref.drain() or None)
    got.append((c.drain() or {}).get("b"))
    want.append(ref.drain() or None)
    assert got == want
    assert any(b["s"] for segment in got if segment for _, b in segment)  # stage gaps were recorded
    assert any(len(segment) > 1 for segment in got if segment)  # drains held several seconds


def test_a_second_waits_at_most_until_the_samples_move_on():
    """The buffer is folded when the samples move to another second, not only at drain: a long run without drains
    (a local run drains every few seconds, a worker with its report) keeps no more than a second's values."""
    c = Collector()
    for s in range(5):
        c.record_successes("WS", [("agent_completed", 10.0 + s, None, None)] * 100, 5_000_000.0 + s, None)
        assert sum(len(values) for _, values in c._unfolded) == 100
    payload = c.drain()
    assert payload is not None
    assert [m["m"]["WS agent_completed"]["h"]["n"] for _, m in payload["b"]] == [100] * 5


def test_a_non_finite_time_from_the_batch_path_is_left_out_and_counted():
    """record() refuses a non-finite time at once, as before the buffer (the listener's error); the batch path,
    whose times are clock differences, keeps every other sample and counts the bad ones as an anomaly."""
    c = Collector()
    with pytest.raises(ValueError):
        c.record("WS", "agent_completed", math.nan, False, 6_000_000.0)
    c.record_successes("WS", [("agent_completed", 12.0, {"a→b": math.inf}, None), ("agent_completed", math.nan,
                                                                                    None, None)],
                       6_000_000.0, "agent_completed")
    payload = c.drain()
    assert payload is not None
    [(_, bucket)] = payload["b"]
    h = Histogram.from_dict(bucket["m"]["WS agent_completed"]["h"])
    assert (h.count, h.min, h.max) == (1, 12.0, 12.0)
    assert payload["c"] == {NON_FINITE: 2}
    assert bucket["s"] == {}  # no histogram for a gap without a number


def test_samples_after_a_fold_within_the_same_second_are_kept():
    """A fold in the middle of a second (as a reader that wants the figures so far makes) leaves no list behind that
    takes samples the histograms would never see."""
    c = Collector()
    now = 7_000_000.25
    c.record_successes("WS", [("agent_completed", 10.0, None, None)], now, None)
    c._fold()  # noqa: SLF001
    c.record_successes("WS", [("agent_completed", 20.0, None, None)], now + 0.1, None)
    c.record("WS", "agent_completed", 30.0, False, now + 0.2)
    payload = c.drain()
    assert payload is not None
    [(_, bucket)] = payload["b"]
    h = Histogram.from_dict(bucket["m"]["WS agent_completed"]["h"])
    assert (h.count, h.min, h.max, h.total) == (3, 10.0, 30.0, 60.0)
