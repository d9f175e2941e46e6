"""Pure helpers of the benchmarks: percentiles, profile shares, soak growth, the table."""

from __future__ import annotations

import pytest

from bench.__main__ import format_table
from bench.locust_meter import BenchMeter, percentile
from bench.profile_share import parse, shares
from bench.soak import analyse


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 50, None),
    ([5.0], 99, 5.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
    (list(map(float, range(1, 101))), 99, 99.0),
    (list(map(float, range(1, 101))), 100, 100.0),
])
def test_percentile_nearest_rank_expected(values, q, expected):
    assert percentile(values, q) == expected


def test_profile_shares_skip_idle_and_startup_and_count_sla():
    raw = [
        "run_user (locust/user/users.py:1);on_request (sla_checks/plugin.py:2) 5",
        "run_user (locust/user/users.py:1);send (gevent/_socketcommon.py:3) 15",
        "_WorkerGreenlet.run (gevent/threadpool.py:216);acquire_with_timeout (gevent/_threading.py:36) 50",
        "<module> (x.py:1);_find_and_load (<frozen importlib._bootstrap>:1) 30",
        "garbage line",
    ]
    s = shares(parse(raw))
    assert s["samples"] == 20
    assert s["sla_share"] == pytest.approx(0.25)
    assert s["owners"] == {"gevent/": 0.75, "sla_checks/": 0.25}


def _sample(t, rss, fds=10, tcp=5, glets=30):
    return {"t": t, "rss": rss, "fds": fds, "tcp": tcp, "greenlets": glets, "users": 5, "completed": int(t),
            "failures": 0}


def test_soak_analyse_growth_after_warmup():
    samples = [_sample(t, 100 if t < 60 else 200 + t) for t in range(0, 601, 30)]
    r = analyse(samples, minutes=10)
    assert r["warmup_s"] == 120
    assert r["rss_after_warmup"] == 320 and r["rss_end"] == 800
    assert r["rss_growth"] == pytest.approx(1.5)
    assert r["fds"] == [10, 10, 10]


def test_soak_analyse_too_few_samples_is_an_error():
    assert "error" in analyse([_sample(0, 1)], minutes=1)


def test_format_table_aligns_three_columns():
    t = format_table([("a", "1 rt/s", "goal"), ("longer figure", "2", "")]).splitlines()
    assert len(t) == 4 and t[0].startswith("figure") and t[2].index("|") == t[3].index("|")


def test_accuracy_load_is_capped_at_the_open_model_limit_and_says_so():
    from bench.accuracy import target_rate
    from config.arrival import MAX_RATE

    assert target_rate(8000.0, 0.8, chat=True) == (6400.0, False)
    assert target_rate(13_462.0, 0.8, chat=True) == (MAX_RATE, True)  # a fast machine: 10,770/s would be refused
    assert target_rate(13_462.0, 0.8, chat=False) == (13_462.0 * 0.8, False)  # the closed model has no such limit


def test_accuracy_max_is_the_open_models_own_and_the_row_names_both_maxima():
    from bench.accuracy import open_max, rows

    assert open_max(2841.0, 333.5) == pytest.approx(2998.5, abs=0.1)  # one core's worth of its CPU per round trip
    assert open_max(2841.0, None) == 2841.0  # no CPU figure: the rate it reached
    load = {"p50_ms": 250.2, "p99_ms": 252.2, "p50_error_ms": 0.2, "p99_error_ms": 2.2, "users": 100, "rate": 2399.7,
            "achieved_share": 0.8, "closed_share": 0.676, "capped_at": None, "server_hold_p50_ms": 250.0,
            "server_hold_p99_ms": 251.0}
    res = {"user": "ChatUser", "model": "open", "max_rate": 3548.0, "max_rate_source": "overhead.json",
           "open_max_rate": 2998.5, "open_calibration": {"target": 2838.4, "rate": 2841.0, "cpu_share": 0.95,
                                                         "cpu_us_per_rt": 333.5}, "loads": {"80%": load}}
    (label, text, verdict), (_, maxima, _) = rows(res)
    assert label == "accuracy D=250 ms at 80% of max" and verdict == "p50 ±1 ms MET, p99 ±5 ms MET"
    assert "2,400 rt/s = 80% of max (68% of the closed model's)" in text
    assert "max 2,998 rt/s (the open model's own: 334 µs CPU/rt at 2,841 rt/s, 95% of a core)" in maxima
    assert "closed model's max 3,548 rt/s (overhead.json)" in maxima
    load["p99_error_ms"], load["p99_ms"] = 6.0, 256.0
    assert rows(res)[0][2] == "p50 ±1 ms MET, p99 ±5 ms MISSED"


def _bare_meter() -> BenchMeter:
    meter = BenchMeter.__new__(BenchMeter)  # the counting part only: no environment, greenlet or gc hook
    meter.recording, meter.req_type, meter.name = True, "WS", "agent_completed"
    meter.count = meter.failures = meter.total_samples = meter.connects_ok = meter.connects_failed = 0
    meter.times, meter.intended = [], []
    return meter


def test_meter_counts_a_batch_of_successes_as_it_counts_each_fired() -> None:
    samples = [("agent_started", 3.0, None, None), ("agent_completed", 9.5, {"a→b": 1.0}, None),
               ("agent_completed (intended)", 12.0, None, None), ("agent_completed", 7.25, None, 8.5)]
    fired, batched = _bare_meter(), _bare_meter()
    for name, ms, _stages, intended in samples:
        fired.on_request("WS", name, ms, 0, context=None if intended is None else {"intended_ms": intended})
    batched.record_successes("WS", samples, 0.0)
    batched.record_successes("HTTP", samples[:2], 0.0)  # another type: counted as samples, not as the metric
    for name, ms, _stages, _intended in samples[:2]:
        fired.on_request("HTTP", name, ms, 0)
    assert (batched.count, batched.times, batched.intended, batched.total_samples) == \
        (fired.count, fired.times, fired.intended, fired.total_samples) == (2, [9.5, 7.25], [8.5], 6)
    batched.recording = False
    batched.record_successes("WS", samples, 0.0)
    assert batched.total_samples == 6
