"""The collector's hot-path cache (the current second's bucket and its metrics by type and name) changes nothing it
hands on: samples in any time order, across drains, land in exactly the buckets and histograms a plain per-sample
"TYPE name" lookup gives."""

from __future__ import annotations

import math
import random

from sla_checks.engine import Collector
from sla_checks.histogram import Histogram, bucket_key

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
