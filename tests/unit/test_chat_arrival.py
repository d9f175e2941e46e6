"""Open-model arrival schedule and scheduler (``--ws-arrival-rate``), with an injected clock."""

from __future__ import annotations

import math

import pytest

from config.arrival import ArrivalSchedule, ArrivalScheduler, ScheduleError
from tasks.timeline import MessageTimeline, ProtocolConfig

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("text", "points"),
    [
        ("20", ((0.0, 20.0),)),
        (" 2.5 ", ((0.0, 2.5),)),
        ("0:5,60:50", ((0.0, 5.0), (60.0, 50.0))),
        ("10:0,20:10,30:10", ((10.0, 0.0), (20.0, 10.0), (30.0, 10.0))),
    ],
)
def test_parse_rate_and_ramp(text, points):
    assert ArrivalSchedule.parse(text).points == points


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("fast", "messages/s"),
        ("0:5,x", "messages/s"),
        ("-1", ">= 0"),
        ("0", "0 everywhere"),
        ("10:5,5:10", "increase"),
        ("inf", ">= 0"),
    ],
)
def test_bad_rate_text_says_how_to_write_it(text, fragment):
    with pytest.raises(ScheduleError, match=fragment):
        ArrivalSchedule.parse(text)


def test_constant_rate_arrivals_are_evenly_spaced():
    s = ArrivalSchedule.parse("4")
    assert [s.time_of(k) for k in range(1, 5)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert s.count_until(10) == pytest.approx(40)


def test_ramp_count_is_the_integral_and_time_of_inverts_it():
    s = ArrivalSchedule.parse("0:0,10:10,20:10")
    assert s.rate_at(5) == pytest.approx(5)
    assert s.count_until(10) == pytest.approx(50)  # triangle 10 s × 10/s / 2
    assert s.count_until(20) == pytest.approx(150)
    for k in (1, 2, 10, 49.5, 50, 51, 149, 200):
        assert s.count_until(s.time_of(k)) == pytest.approx(k)
    assert s.time_of(50) == pytest.approx(10.0)


def test_delayed_start_and_ramp_to_zero_ends_the_schedule():
    s = ArrivalSchedule.parse("5:0,6:0,8:10")
    assert s.time_of(1) > 6.0
    down = ArrivalSchedule.parse("0:10,2:0")
    assert down.count_until(100) == pytest.approx(10)
    assert down.time_of(10) == pytest.approx(2.0)
    assert math.isinf(down.time_of(10.5))


def test_scheduler_hands_out_each_due_time_once_with_injected_clock():
    sched = ArrivalScheduler(ArrivalSchedule.parse("10"), start=1000.0)
    assert sched.next_at() == pytest.approx(1000.1)
    assert sched.due(1000.05) == []
    assert sched.due(1000.3) == pytest.approx([1000.1, 1000.2, 1000.3])
    assert sched.due(1000.3) == []
    # the generator fell 1 s behind: everything overdue comes at once, each with its own intended time
    late = sched.due(1001.3)
    assert len(late) == 10 and late[0] == pytest.approx(1000.4)
    lags = [1001.3 - t for t in late]
    assert max(lags) == pytest.approx(0.9) and min(lags) == pytest.approx(0.0, abs=1e-9)


def test_scheduler_limit_caps_one_batch():
    sched = ArrivalScheduler(ArrivalSchedule.parse("1000"), start=0.0)
    assert len(sched.due(10.0, limit=100)) == 100
    assert sched.sent == 100


def test_intended_latency_is_measured_from_the_intended_send():
    cfg = ProtocolConfig()
    # intended at t=10.0, actually sent at 12.0 (the generator was behind), completed at 12.5
    tl = MessageTimeline(cfg, thread_id="t", correlation_id=None, sent_at=12.0, intended_at=10.0)
    for i, kind in enumerate(cfg.events):
        out = tl.feed({"type": kind, "thread_id": "t"}, 12.1 + i * 0.1)
    assert out.latency_ms == pytest.approx(500.0)
    assert out.intended_latency_ms == pytest.approx(2500.0)
    assert out.context()["intended_ms"] == pytest.approx(2500.0)


def test_scaled_schedule_keeps_the_shape_at_a_share_of_the_rate():
    half = ArrivalSchedule.parse("0:10,10:30").scaled(0.5)
    assert half.points == ((0.0, 5.0), (10.0, 15.0))
    assert half.count_until(20.0) == pytest.approx(ArrivalSchedule.parse("0:10,10:30").count_until(20.0) / 2)


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan")])
def test_scaled_rejects_a_non_positive_factor(factor):
    with pytest.raises(ScheduleError, match="scale factor"):
        ArrivalSchedule.parse("10").scaled(factor)
