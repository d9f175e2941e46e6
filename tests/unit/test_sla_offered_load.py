"""The offered load's message-rate cap (pure arithmetic) and the time averages of the runner's user counts."""

from __future__ import annotations

import pytest

from sla_checks.offered_load import CHAT_METRIC, FLOW_METRIC, OfferedLoad, rps_cap, time_average

pytestmark = pytest.mark.timeout(20)


def closed(users: float, think: float = 1.0, inflight: int = 1, flow: float = 0.0) -> OfferedLoad:
    return OfferedLoad(chat_users=users, flow_users=flow, peak_users=int(users + flow),
                       chat_concurrency=users * inflight, think_s=think)


def test_ten_users_thinking_one_second_cap_a_closed_model_below_ten_per_second():
    cap = rps_cap(closed(10), CHAT_METRIC, reply_ms=450.0)
    assert cap is not None and cap.model == "closed"
    assert cap.cap == pytest.approx(10 / 1.45)
    assert cap.instant_cap == pytest.approx(10.0)
    assert cap.caps(limit=10.0, measured=6.8) and cap.load_alone(limit=10.0, measured=6.8)
    assert cap.describe(10.0, 6.8) == (
        "the offered load caps throughput at 6.9 msg/s (10 users, think ~1 s, reply ~0.45 s): "
        "raise users or lower think time"
    )
    d = cap.to_dict(10.0, 6.8)
    assert (d["cap_rps"], d["instant_cap_rps"], d["users"], d["think_s"], d["reply_s"], d["caps"]) == (
        6.897, 10.0, 10.0, 1.0, 0.45, True)


@pytest.mark.parametrize(
    ("load", "reply_ms", "flow_ms", "expected"),
    [
        (closed(3, think=1.0), 500.0, None, 3 / 1.5),
        (closed(3, think=1.0, inflight=2), 500.0, None, 6 / 1.5),  # messages in flight per round count
        (closed(4, think=0.5, flow=2), 500.0, 1500.0, 4 / 1.0 + 2 / 2.0),  # a flow round takes login..reply
        (closed(2, think=0.0), 250.0, None, 8.0),  # no think time: replies alone bound the rate
    ],
)
def test_closed_model_cap_is_slots_over_think_plus_reply(load, reply_ms, flow_ms, expected):
    cap = rps_cap(load, CHAT_METRIC, reply_ms=reply_ms, flow_ms=flow_ms)
    assert cap is not None and cap.cap == pytest.approx(expected)


def test_flow_metric_counts_flow_users_only():
    cap = rps_cap(closed(5, flow=2), FLOW_METRIC, reply_ms=1000.0)
    assert cap is not None and cap.cap == pytest.approx(2 / 2.0) and cap.users == 2
    assert rps_cap(closed(5), FLOW_METRIC, reply_ms=1000.0) is None
    assert rps_cap(closed(5), "WS connect", reply_ms=10.0) is None


def test_slow_replies_cap_it_too_but_faster_replies_would_reach_the_limit():
    """30 users at 1 s think could send 30/s; 3 s replies bring that to 7.5/s: the load caps it, the backend's
    replies are part of it (so the tier analysis stays in the summary)."""
    cap = rps_cap(closed(30), CHAT_METRIC, reply_ms=3000.0)
    assert cap is not None and cap.cap == pytest.approx(7.5)
    assert cap.caps(10.0, 7.4) and not cap.load_alone(10.0, 7.4)
    assert "or make replies faster (instant replies would allow 30 msg/s)" in cap.describe(10.0, 7.4)


def test_cap_above_the_limit_does_not_explain_a_failing_rate():
    cap = rps_cap(closed(40), CHAT_METRIC, reply_ms=450.0)  # 27.6 msg/s offered
    assert cap is not None and not cap.caps(10.0, 4.0)


def test_cap_just_above_the_limit_explains_it_when_the_run_delivered_it():
    cap = rps_cap(closed(15), CHAT_METRIC, reply_ms=450.0)  # 10.3 msg/s
    assert cap is not None and 10.0 < cap.cap < 11.0
    assert cap.caps(10.0, 9.9) and not cap.caps(10.0, 6.0)


def test_a_measured_rate_far_above_the_cap_means_the_model_does_not_fit():
    """A user class with its own (shorter) wait time: the measured rate contradicts the cap, so no claim."""
    cap = rps_cap(closed(3), CHAT_METRIC, reply_ms=450.0)  # 2.1 msg/s
    assert cap is not None and not cap.caps(10.0, 8.0)


def test_a_run_far_below_its_own_cap_says_how_much_it_delivered():
    cap = rps_cap(closed(10), CHAT_METRIC, reply_ms=450.0)
    assert cap is not None and cap.caps(10.0, 3.0) and not cap.load_alone(10.0, 3.0)
    assert cap.describe(10.0, 3.0).endswith("; the run delivered 3 msg/s of it")


def test_open_model_cap_is_the_arrival_rate_and_a_lagging_generator_is_named():
    load = OfferedLoad(chat_users=4, peak_users=4, chat_concurrency=4, arrival_rate=5.0)
    cap = rps_cap(load, CHAT_METRIC, reply_ms=450.0, lag_p95_ms=2.0)
    assert cap is not None and (cap.model, cap.cap) == ("open", 5.0)
    assert cap.caps(10.0, 4.9) and cap.load_alone(10.0, 4.9) and not cap.generator_behind()
    assert cap.describe(10.0, 4.9).startswith("the offered load caps throughput at 5 msg/s (--ws-arrival-rate")
    late = rps_cap(OfferedLoad(chat_users=4, peak_users=4, chat_concurrency=4, arrival_rate=50.0), CHAT_METRIC,
                   reply_ms=450.0, lag_p95_ms=2500.0)
    assert late is not None and not late.caps(10.0, 6.0) and late.generator_behind()
    assert "generator lag p95 2500 ms" in late.lag_text()


def test_no_users_seen_gives_no_cap():
    assert rps_cap(OfferedLoad(), CHAT_METRIC, reply_ms=450.0) is None


@pytest.mark.parametrize(
    ("samples", "start", "end", "expected"),
    [
        ([(0.0, 3.0)], 0.0, 10.0, 3.0),
        ([(0.0, 0.0), (2.0, 4.0)], 0.0, 10.0, 3.2),  # spawn at 2 s: 0 users for 2 s, then 4
        ([(0.0, 2.0), (5.0, 6.0), (20.0, 0.0)], 4.0, 10.0, (1 * 2 + 5 * 6) / 6),  # judged span from 4 s
        ([(3.0, 5.0)], 0.0, 10.0, 5.0),  # before the first sample: its value
        ([], 0.0, 10.0, None),
        ([(0.0, 1.0)], 5.0, 5.0, None),
    ],
)
def test_time_average_weights_each_count_by_how_long_it_held(samples, start, end, expected):
    got = time_average(samples, start, end)
    assert got == (None if expected is None else pytest.approx(expected))
