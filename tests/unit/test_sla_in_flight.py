"""Every chat message sent is judged: the ones still in flight when the run stops travel to the master with their age;
at the final verdict one that has waited past the longest latency limit of ``WS agent_completed`` is a failed sample
of that age, a younger one is counted "in flight at stop"; sent = completed + failed + in flight. Protocol anomalies
are samples of ``WS protocol anomaly`` that thresholds judge. Pure parts, injected clock, no sockets."""

from __future__ import annotations

import json

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.env import Environment
from locust.event import Events

from sla_checks.counters import CHAT_NOT_SENT, CHAT_SENT
from sla_checks.engine import Collector, Engine, in_flight_limit_ms
from sla_checks.evaluate import FAIL, PASS, ThresholdSpec
from sla_checks.profiles import load_profile
from sla_checks.report import build_report, chat_messages
from sla_checks.state import state_of
from tasks.timeline import (
    BINARY_FRAME,
    INVALID_UTF8,
    MALFORMED_JSON,
    Dispatcher,
    InFlight,
    MessageTimeline,
    Outcome,
    OutcomeKind,
    ProtocolConfig,
)
from users.ws_client import ChatClient
from users.ws_options import ChatSettings

pytestmark = pytest.mark.timeout(20)

T0 = 1_800_000_000.0
MAX_3000 = ThresholdSpec.of("WS agent_completed", "max < 3000")


def specs(*lines: str, metric: str = "WS agent_completed") -> list[ThresholdSpec]:
    return [ThresholdSpec.of(metric, line) for line in lines]


@pytest.mark.parametrize(("thresholds", "limit"), [
    (specs("p(95) < 2000", "within(2000) >= 95%", "rps >= 10", "max < 3000", "fail_ratio < 0.5"), 3000.0),
    (specs("p(95) < 2000", "within(2500) >= 95%"), 2500.0),
    (specs("avg <= 800", "med < 400"), 800.0),
    (specs("p(99) < 5000", metric="WS *"), 5000.0),  # a glob that matches judges it too
    (specs("p(99) < 5000", metric="PG *"), None),  # another metric's limit is not its limit
    (specs("min > 10", "p(50) > 100", "count > 5", "fail_ratio < 0.01", "rps >= 10"), None),  # no upper latency bound
    ([], None),
])
def test_in_flight_limit_is_the_longest_latency_limit_of_the_chat_metric(thresholds, limit):
    assert in_flight_limit_ms(thresholds) == limit


@pytest.mark.parametrize(("profile", "limit"), [("local", 2000.0), ("ci", 3000.0), ("staging", 3000.0)])
def test_shipped_profiles_limit_in_flight_messages(profile, limit):
    assert in_flight_limit_ms(load_profile(profile).thresholds) == limit


def engine_with(in_flight: list[tuple[float, float]], thresholds: list[ThresholdSpec], answered: int = 3,
                sent: int | None = None) -> Engine:
    """A run of ``answered`` 400 ms replies, then ``in_flight`` messages (age, deadline) cut off at its stop."""
    eng = Engine(thresholds, profile="test")
    eng.start(T0)
    c = Collector()
    for i in range(answered):
        c.record("WS", "agent_completed", 400.0, False, T0 + 1 + i)
    c.count(CHAT_SENT, answered + len(in_flight) if sent is None else sent)
    c.in_flight(in_flight, T0 + 9.5)
    eng.store.absorb(json.loads(json.dumps(c.drain())), "w1")  # as msgpack would: plain types only
    return eng


def result(eng: Engine, now: float, name: str) -> object:
    return next(r for r in eng.evaluate(now) if r.name == name)


def test_a_message_in_flight_past_the_limit_fails_max_at_the_time_it_waited():
    eng = engine_with([(7000.0, 30000.0), (150.0, 30000.0)], [MAX_3000])
    eng.stop(T0 + 10)
    r = result(eng, T0 + 10, "WS agent_completed max < 3000")
    assert (r.status, r.value, r.samples) == (FAIL, 7000.0, 4)
    assert (eng.failed_at_stop, eng.in_flight_at_stop) == (1, 1)
    data = eng.store.judged().metrics["WS agent_completed"]
    assert (data.count, data.failures) == (4, 1)


def test_messages_in_flight_are_judged_only_once_the_run_stopped():
    eng = engine_with([(7000.0, 30000.0)], [MAX_3000])
    assert result(eng, T0 + 9, "WS agent_completed max < 3000").status == PASS  # live: still waiting
    assert eng.store.in_flight and eng.failed_at_stop == 0
    eng.stop(T0 + 10)
    assert result(eng, T0 + 10, "WS agent_completed max < 3000").status == FAIL


def test_settling_is_idempotent_and_takes_late_worker_reports_too():
    eng = engine_with([(7000.0, 30000.0)], [MAX_3000])
    eng.stop(T0 + 10)
    eng.evaluate(T0 + 10)
    eng.evaluate(T0 + 11)
    assert eng.store.judged().metrics["WS agent_completed"].failures == 1
    late = Collector()  # a worker's final report arrives after the first verdict was built
    late.in_flight([(4000.0, 30000.0), (100.0, 30000.0)], T0 + 10)
    eng.store.absorb(late.drain(), "w2")
    eng.evaluate(T0 + 12)
    assert (eng.failed_at_stop, eng.in_flight_at_stop) == (2, 1)
    assert eng.store.judged().metrics["WS agent_completed"].failures == 2


def test_without_a_latency_threshold_the_reply_deadline_is_the_limit():
    eng = engine_with([(31000.0, 30000.0), (29000.0, 30000.0)], specs("fail_ratio < 0.5"))
    eng.stop(T0 + 10)
    r = result(eng, T0 + 10, "WS agent_completed fail_ratio < 0.5")
    assert (eng.failed_at_stop, eng.in_flight_at_stop) == (1, 1)
    assert (r.status, r.value) == (PASS, 0.25)


def test_young_messages_in_flight_do_not_fail_a_healthy_run():
    eng = engine_with([(300.0, 30000.0)] * 4, load_profile("ci").thresholds, answered=40)
    eng.stop(T0 + 10)
    rep = build_report(eng, T0 + 10)
    assert not [t for t in rep["thresholds"] if t["metric"] == "WS agent_completed" and t["status"] == FAIL
                and t["expression"] != "rps >= 10"]
    assert rep["messages"]["in_flight"] == 4 and rep["messages"]["failed_at_stop"] == 0


def test_messages_add_up_sent_equals_completed_failed_and_in_flight():
    eng = engine_with([(7000.0, 30000.0), (150.0, 30000.0)], [MAX_3000], answered=3)
    c = Collector()
    c.record("WS", "agent_completed", 30000.0, True, T0 + 5)  # a timeout
    c.record("WS", "agent_completed", 30000.0, True, T0 + 6)  # open model: due, never sent
    c.count(CHAT_SENT)
    c.count(CHAT_NOT_SENT)
    eng.store.absorb(c.drain(), "w2")
    live = chat_messages(eng)
    assert live["in_flight"] == 2 and live["failed"] == 1  # before the stop: what is still out, not yet judged
    eng.stop(T0 + 10)
    eng.evaluate(T0 + 10)
    m = chat_messages(eng)
    assert m == {"sent": 6, "completed": 3, "failed": 2, "failed_at_stop": 1, "in_flight": 1,
                 "in_flight_limit_ms": 3000.0, "not_sent": 1, "unaccounted": 0}
    assert m["sent"] == m["completed"] + m["failed"] + m["in_flight"]


def test_a_run_without_chat_messages_has_no_message_accounting():
    eng = Engine([MAX_3000])
    eng.start(T0)
    eng.collector.record("PG", "connect", 3.0, False, T0 + 1)
    eng.flush_local()
    eng.stop(T0 + 5)
    assert build_report(eng, T0 + 5)["messages"] is None


def test_collector_ships_in_flight_messages_once():
    c = Collector()
    c.in_flight([InFlight(120.0, 30000.0)], T0)
    assert c.drain() == {"r": 1.0, "b": [], "g": [], "i": [[T0, 120.0, 30000.0]]}
    assert c.drain() is None


# --- the client side: ages, anomaly kinds, anomaly samples ----------------------------------------------------------
CONFIG = ProtocolConfig()


def test_dispatcher_reports_the_age_and_deadline_of_every_message_in_flight():
    d = Dispatcher(CONFIG)
    for i, sent in enumerate((10.0, 11.5)):
        d.track(MessageTimeline(CONFIG, thread_id=f"t{i}", correlation_id=f"c{i}", sent_at=sent, reply_timeout=30.0))
    assert d.in_flight_at(12.0) == [InFlight(2000.0, 30000.0), InFlight(500.0, 30000.0)]


@pytest.mark.parametrize(("frame", "kind"), [
    (b"this is {not json", MALFORMED_JSON),
    (b'{"type": "agent_started", "x": "\xff\xfe"}', INVALID_UTF8),
])
def test_undecodable_text_frames_are_told_apart(frame, kind):
    d = Dispatcher(CONFIG)
    assert d.dispatch_text(frame, 1.0).anomaly == kind
    assert d.anomalies == {kind: 1}


def chat_client() -> tuple[ChatClient, list[dict]]:
    env = Environment(events=Events())
    fired: list[dict] = []
    env.events.request.add_listener(lambda **kw: fired.append(kw))
    return ChatClient(env, ChatSettings(), "ws://127.0.0.1:1/ws", 0), fired


def test_an_anomaly_is_a_failed_protocol_anomaly_sample_naming_its_kind():
    client, fired = chat_client()
    client._on_anomaly(BINARY_FRAME)
    (sample,) = fired
    assert (sample["request_type"], sample["name"], sample["response_time"]) == ("WS", "protocol anomaly", 0.0)
    assert str(sample["exception"]) == "protocol anomaly: binary frame"
    assert state_of(client.environment).pending_counts == {"chat anomaly:binary frame": 1}


@pytest.mark.parametrize(("violations", "duplicates", "kinds"), [
    (("tool_completed before tool_executing",), (), ["order violation"]),
    ((), ("agent_started",), ["duplicate event"]),
    ((), (), []),
])
def test_order_violations_and_duplicates_within_a_message_are_anomalies(violations, duplicates, kinds):
    client, fired = chat_client()
    timeline = MessageTimeline(CONFIG, thread_id="t", correlation_id="c", sent_at=0.0)
    outcome = Outcome(OutcomeKind.COMPLETED, 100.0, "order: x" if violations or duplicates else None,
                      {"agent_completed": 100.0}, {}, order_violations=violations, duplicates=duplicates)
    client._on_outcome(timeline, outcome)
    anomalies = [str(f["exception"]) for f in fired if f["name"] == "protocol anomaly"]
    assert anomalies == [f"protocol anomaly: {k}" for k in kinds]


def test_a_message_sent_is_counted():
    client, _ = chat_client()
    client.session = type("S", (), {"open": True, "send_message": lambda self, c, intended_at=None: None})()
    client.send("hello")
    client.send("again")
    assert state_of(client.environment).pending_counts == {CHAT_SENT: 2}
