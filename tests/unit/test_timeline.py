"""The per-message timeline and the dispatcher: every outcome, ordering, duplicate and anomaly, with an injected clock."""

from __future__ import annotations

import orjson
import pytest

from tasks.timeline import (
    AMBIGUOUS_ERROR,
    DUPLICATE_COMPLETED,
    LATE_FRAME,
    MALFORMED_JSON,
    MISSING_TYPE,
    NO_ID,
    NOT_AN_OBJECT,
    UNKNOWN_ID,
    UNKNOWN_TYPE,
    ConfigError,
    Dispatcher,
    MessageTimeline,
    OutcomeKind,
    ProtocolConfig,
    RouteKind,
    TimelineState,
)

CFG = ProtocolConfig()
FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]

pytestmark = pytest.mark.timeout(30)


def ev(kind: str, thread: str = "t1", corr: str | None = "c1", **extra: object) -> dict:
    frame: dict = {"type": kind, "run_id": "r", "thread_id": thread, "data": {}}
    if corr is not None:
        frame["correlation_id"] = corr
    frame.update(extra)
    return frame


def timeline(sent_at: float = 100.0, **kw: object) -> MessageTimeline:
    kw.setdefault("reply_timeout", 30.0)
    kw.setdefault("hang_after", 10.0)
    return MessageTimeline(CFG, thread_id="t1", correlation_id="c1", sent_at=sent_at, **kw)


def feed_all(tl: MessageTimeline, kinds: list[str], start: float = 100.0, step: float = 0.1):
    out = None
    for i, kind in enumerate(kinds, 1):
        out = tl.feed(ev(kind), start + i * step) or out
    return out


def test_five_events_in_order_complete_successfully():
    tl = timeline()
    outcome = feed_all(tl, FIVE)
    assert outcome is not None and outcome.kind is OutcomeKind.COMPLETED
    assert outcome.failure is None
    assert tl.state is TimelineState.COMPLETED
    assert list(outcome.first_ms) == FIVE
    assert outcome.first_ms["agent_started"] == pytest.approx(100.0)
    assert outcome.latency_ms == pytest.approx(500.0)
    assert outcome.stages == pytest.approx(
        {"agent_started→agent_thinking": 100.0, "agent_thinking→tool_executing": 100.0,
         "tool_executing→tool_completed": 100.0, "tool_completed→agent_completed": 100.0}
    )
    assert outcome.context() == {"outcome": "completed", "stages": dict(outcome.stages)}
    assert not outcome.events_missing


def test_repeated_stage_events_are_not_duplicates():
    kinds = ["agent_started"] + ["agent_thinking", "tool_executing", "tool_completed"] * 4 + ["agent_completed"]
    outcome = feed_all(timeline(), kinds)
    assert outcome.failure is None and outcome.duplicates == () and outcome.order_violations == ()
    assert outcome.frames == len(kinds)


def test_state_moves_from_awaiting_to_in_progress():
    tl = timeline()
    assert tl.state is TimelineState.AWAITING
    assert tl.feed(ev("agent_started"), 100.1) is None
    assert tl.state is TimelineState.IN_PROGRESS


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (["agent_started", "agent_thinking", "tool_completed", "tool_executing", "agent_completed"],
         "order: tool_completed before tool_executing"),
        (["agent_thinking", "agent_started", "tool_executing", "tool_completed", "agent_completed"],
         "order: agent_thinking before agent_started"),
        (["agent_started", "agent_thinking", "tool_executing", "agent_completed"],
         "order: agent_completed before tool_completed"),
        (["agent_started", "agent_thinking", "tool_executing", "tool_completed", "tool_completed",
          "agent_completed"], "order: tool_completed before tool_executing"),
        (["agent_completed"], "order: agent_completed before agent_started"),
    ],
)
def test_out_of_order_events_fail_with_order_text(kinds, expected):
    outcome = feed_all(timeline(), kinds)
    assert outcome.kind is OutcomeKind.COMPLETED
    assert outcome.failure == expected


def test_duplicate_started_fails_as_duplicate():
    outcome = feed_all(timeline(), ["agent_started", "agent_started"] + FIVE[1:])
    assert outcome.failure == "duplicate: agent_started"
    assert outcome.duplicates == ("agent_started",)
    assert outcome.first_ms["agent_started"] == pytest.approx(100.0)  # first arrival kept


def test_missing_required_event_fails_when_not_out_of_order():
    cfg = ProtocolConfig(pairs=())
    tl = MessageTimeline(cfg, thread_id="t", correlation_id=None, sent_at=0.0)
    tl.feed(ev("agent_started", "t", None), 0.1)
    # agent_thinking is not required-before tool events when it is optional; make it missing via required
    cfg2 = ProtocolConfig(required=("agent_started", "agent_thinking", "agent_completed"), pairs=())
    tl2 = MessageTimeline(cfg2, thread_id="t", correlation_id=None, sent_at=0.0)
    tl2.feed(ev("agent_started", "t", None), 0.1)
    tl2.feed(ev("agent_thinking", "t", None), 0.2)
    out = tl2.feed(ev("agent_completed", "t", None), 0.3)
    assert out.failure is None  # tool events optional under this config
    assert tl.feed(ev("agent_completed", "t", None), 0.2).failure == "order: agent_completed before agent_thinking"


def test_missing_text_lists_every_missing_required_event():
    cfg = ProtocolConfig(required=("agent_started", "agent_thinking", "agent_completed"), pairs=())
    tl = MessageTimeline(cfg, thread_id="t", correlation_id=None, sent_at=0.0)
    tl.feed(ev("tool_executing", "t", None), 0.05)  # optional event, ahead of required ones
    assert tl.state is TimelineState.IN_PROGRESS
    cfg3 = ProtocolConfig(required=("agent_thinking", "agent_completed"), pairs=())
    tl3 = MessageTimeline(cfg3, thread_id="t", correlation_id=None, sent_at=0.0)
    tl3.feed(ev("agent_started", "t", None), 0.1)
    out = tl3.feed(ev("agent_completed", "t", None), 0.2)
    assert out.failure == "order: agent_completed before agent_thinking"
    assert out.missing == ("agent_thinking",)


@pytest.mark.parametrize(
    ("frame", "code", "text"),
    [
        ({"type": "error_message", "error_code": "DEPENDENCY_TIMEOUT", "error_message": "redis timed out"},
         "DEPENDENCY_TIMEOUT", "error DEPENDENCY_TIMEOUT: redis timed out"),
        ({"type": "agent_error", "data": {"error_message": "boom", "error_context": {}}},
         "AGENT_ERROR", "error AGENT_ERROR: boom"),
        ({"type": "agent_error", "data": {"error_code": "X", "error_message": "y"}}, "X", "error X: y"),
        ({"type": "error_message"}, "ERROR_MESSAGE", "error ERROR_MESSAGE: "),
        ({"type": "agent_error", "data": {"error_message": "redis timed out",
                                          "error_context": {"error_code": "DEPENDENCY_TIMEOUT", "tier": "redis"}}},
         "DEPENDENCY_TIMEOUT", "error DEPENDENCY_TIMEOUT: redis timed out"),
    ],
)
def test_error_frames_end_as_error_with_code(frame, code, text):
    tl = timeline()
    tl.feed(ev("agent_started"), 100.2)
    frame = dict(frame, thread_id="t1")
    outcome = tl.feed(frame, 100.5)
    assert outcome.kind is OutcomeKind.ERROR
    assert outcome.error_code == code
    assert outcome.error_message == text.partition(": ")[2]
    assert outcome.failure == text
    assert outcome.latency_ms == pytest.approx(500.0)
    assert tl.state is TimelineState.ERROR
    assert outcome.context()["error_code"] == code


def test_no_frame_for_hang_after_ends_as_hang():
    tl = timeline(reply_timeout=30.0, hang_after=10.0)
    tl.feed(ev("agent_started"), 101.0)
    assert tl.deadline == pytest.approx(111.0)
    assert tl.poll(110.9) is None
    outcome = tl.poll(111.0)
    assert outcome.kind is OutcomeKind.HANG
    assert outcome.failure == "hang: no event for 10 s"
    assert outcome.latency_ms == pytest.approx(11000.0)
    assert tl.state is TimelineState.HANG
    assert tl.poll(200.0) is None and tl.done


def test_no_event_at_all_is_hang_with_events_missing():
    tl = timeline(hang_after=2.5)
    outcome = tl.poll(103.0)
    assert outcome.kind is OutcomeKind.HANG and outcome.events_missing
    assert outcome.failure == "hang: no event for 2.5 s"


def test_slow_trickle_ends_as_timeout_at_reply_timeout():
    tl = timeline(reply_timeout=30.0, hang_after=10.0)
    t = 100.0
    for kind in ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_thinking"]:
        t += 5.5
        assert tl.feed(ev(kind), t) is None
    outcome = tl.poll(131.0)
    assert outcome.kind is OutcomeKind.TIMEOUT
    assert outcome.failure == "timeout after 30000 ms"
    assert outcome.latency_ms == pytest.approx(30000.0)


def test_completion_after_deadline_still_counts_as_timeout():
    tl = timeline(reply_timeout=3.0, hang_after=10.0)
    tl.feed(ev("agent_started"), 100.5)
    outcome = tl.feed(ev("agent_completed"), 104.0)
    assert outcome.kind is OutcomeKind.TIMEOUT
    assert tl.feed(ev("agent_completed"), 104.1) is None


def test_abort_ends_as_error_disconnected_once():
    tl = timeline()
    out = tl.abort("connection closed (1006)", 101.0)
    assert out.kind is OutcomeKind.ERROR and out.failure == "error DISCONNECTED: connection closed (1006)"
    assert tl.abort("again", 102.0) is None


def test_intended_latency_reported_from_intended_send():
    tl = MessageTimeline(CFG, thread_id="t1", correlation_id="c1", sent_at=100.0, intended_at=98.0)
    out = feed_all(tl, FIVE)
    assert out.intended_latency_ms == pytest.approx(2500.0)
    assert out.context()["intended_ms"] == pytest.approx(2500.0)


@pytest.mark.parametrize(("timeout", "hang"), [(0, 1), (1, 0), (-1, 1)])
def test_bad_deadlines_are_rejected(timeout, hang):
    with pytest.raises(ValueError):
        MessageTimeline(CFG, thread_id="t", correlation_id=None, sent_at=0, reply_timeout=timeout, hang_after=hang)


# ---- configuration ------------------------------------------------------------------------------------------------


def test_other_event_names_and_envelope_work_via_config():
    cfg = ProtocolConfig.from_mapping(
        {"events": ["start", "think", "done"], "envelope": "payload", "thread_field": "conversation",
         "type_field": "event"}
    )
    d = Dispatcher(cfg)
    tl = MessageTimeline(cfg, thread_id="x", correlation_id=None, sent_at=0.0)
    d.track(tl)
    d.dispatch({"event": "start", "payload": {"conversation": "x"}}, 0.1)
    d.dispatch({"event": "think", "payload": {"conversation": "x"}}, 0.2)
    routed = d.dispatch({"event": "done", "payload": {"conversation": "x"}}, 0.3)
    assert routed.outcome.kind is OutcomeKind.COMPLETED and routed.outcome.failure is None
    assert list(routed.outcome.first_ms) == ["start", "think", "done"]


@pytest.mark.parametrize(
    ("mapping", "fragment"),
    [
        ({"events": ["only"]}, "at least two"),
        ({"events": ["a", "a"]}, "unique"),
        ({"evnts": ["a", "b"]}, "unknown key 'evnts'"),
        ({"events": "a,b"}, "Not a list"),
        ({"required": ["zzz"]}, "'zzz'"),
        ({"pairs": [["tool_executing"]]}, "pairs"),
        ({"envelope": ""}, "'envelope'"),
        ({"error_types": ["agent_started"]}, "also an agent event"),
    ],
)
def test_bad_protocol_mapping_names_the_key(mapping, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        ProtocolConfig.from_mapping(mapping)


def test_protocol_file_toml_and_json(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('events = ["a", "b"]\npairs = []\nenvelope = "payload"\n')
    js = tmp_path / "p.json"
    js.write_text('{"events": ["a", "b"], "pairs": []}')
    assert ProtocolConfig.from_file(str(toml)).envelope == "payload"
    assert ProtocolConfig.from_file(str(js)).events == ("a", "b")
    with pytest.raises(ConfigError, match="cannot be read"):
        ProtocolConfig.from_file(str(tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("events = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ProtocolConfig.from_file(str(bad))


# ---- dispatcher ---------------------------------------------------------------------------------------------------


def make(d: Dispatcher, n: int, sent_at: float = 0.0, **kw) -> list[MessageTimeline]:
    tls = []
    for i in range(n):
        tl = MessageTimeline(CFG, thread_id=f"t{i}", correlation_id=f"c{i}", sent_at=sent_at, **kw)
        d.track(tl)
        tls.append(tl)
    return tls


def test_dispatcher_routes_by_correlation_first_then_thread():
    d = Dispatcher(CFG)
    a, b = make(d, 2)
    # correlation says c1 even though the thread says t0: correlation wins
    r = d.dispatch({"type": "agent_started", "thread_id": "t0", "correlation_id": "c1"}, 0.1)
    assert r.kind is RouteKind.MESSAGE and r.timeline is b
    # no correlation: routed by thread
    r = d.dispatch({"type": "agent_started", "thread_id": "t0"}, 0.1)
    assert r.timeline is a
    # ids inside the envelope also work
    r = d.dispatch({"type": "agent_thinking", "data": {"thread_id": "t0"}}, 0.2)
    assert r.timeline is a
    # an unknown correlation id falls back to the thread id
    r = d.dispatch({"type": "tool_executing", "thread_id": "t0", "correlation_id": "zzz"}, 0.3)
    assert r.timeline is a


def test_dispatcher_interleaved_messages_each_complete():
    d = Dispatcher(CFG)
    tls = make(d, 3)
    outs = []
    t = 0.0
    for kind in FIVE:
        for i in (2, 0, 1):
            t += 0.01
            r = d.dispatch(ev(kind, f"t{i}", f"c{i}"), t)
            if r.outcome:
                outs.append(r.outcome)
    assert len(outs) == 3 and all(o.failure is None for o in outs)
    assert d.in_flight == 0 and all(tl.done for tl in tls)


@pytest.mark.parametrize(
    ("raw", "anomaly"),
    [
        (b"{not json", MALFORMED_JSON),
        (b"[1, 2]", NOT_AN_OBJECT),
        (b'"x"', NOT_AN_OBJECT),
        (b'{"no_type": 1}', MISSING_TYPE),
        (b'{"type": 5}', MISSING_TYPE),
        (b'{"type": "weird_event", "thread_id": "t0"}', UNKNOWN_TYPE),
        (b'{"type": "agent_started", "thread_id": "nobody"}', UNKNOWN_ID),
        (b'{"type": "agent_started", "thread_id": 17}', UNKNOWN_ID),
        (b'{"type": "agent_started"}', NO_ID),
    ],
)
def test_dispatcher_counts_bad_frames_per_kind(raw, anomaly):
    d = Dispatcher(CFG)
    make(d, 1)
    r = d.dispatch_text(raw, 0.1)
    assert r.kind is RouteKind.ANOMALY and r.anomaly == anomaly
    assert d.anomalies == {anomaly: 1}
    assert d.pending()[0].state is TimelineState.AWAITING


def test_dispatcher_late_and_duplicate_completed_are_counted():
    d = Dispatcher(CFG)
    make(d, 1)
    for i, kind in enumerate(FIVE):
        d.dispatch(ev(kind, "t0", "c0"), 0.1 * (i + 1))
    assert d.dispatch(ev("agent_completed", "t0", "c0"), 1.0).anomaly == DUPLICATE_COMPLETED
    assert d.dispatch(ev("agent_thinking", "t0", None), 1.0).anomaly == LATE_FRAME
    assert d.anomalies == {DUPLICATE_COMPLETED: 1, LATE_FRAME: 1}


def test_dispatcher_welcome_pong_ack_are_routed():
    d = Dispatcher(CFG)
    assert d.dispatch_text(orjson.dumps({"type": "pong", "data": {"timestamp": 1.0}}), 0).kind is RouteKind.PONG
    assert d.dispatch({"type": "connection_established", "data": {}}, 0).kind is RouteKind.WELCOME
    assert d.dispatch({"type": "ack", "received_type": "x"}, 0).kind is RouteKind.ACK
    assert not d.anomalies


def test_error_without_ids_goes_to_sole_message_else_counted():
    d = Dispatcher(CFG)
    err = {"type": "error_message", "error_code": "RATE_LIMITED", "error_message": "slow down"}
    assert d.dispatch(err, 0.0).kind is RouteKind.CONNECTION_ERROR
    (tl,) = make(d, 1)
    r = d.dispatch(err, 0.1)
    assert r.timeline is tl and r.outcome.failure == "error RATE_LIMITED: slow down"
    make(d, 2, sent_at=1.0)
    assert d.dispatch(err, 1.1).anomaly == AMBIGUOUS_ERROR
    assert d.in_flight == 2


def test_dispatcher_poll_and_abort_end_every_message_once():
    d = Dispatcher(CFG)
    a, b, c = make(d, 3, reply_timeout=5.0, hang_after=2.0)
    d.dispatch(ev("agent_started", "t0", "c0"), 1.5)
    assert d.next_deadline() == pytest.approx(2.0)
    hung = d.poll(2.0)
    assert [o.kind for o in hung] == [OutcomeKind.HANG, OutcomeKind.HANG]
    assert d.in_flight == 1 and d.next_deadline() == pytest.approx(3.5)
    aborted = d.abort_all("connection closed", 3.0)
    assert [o.kind for o in aborted] == [OutcomeKind.ERROR]
    assert d.in_flight == 0 and d.next_deadline() == float("inf")
    assert d.poll(100.0) == [] and d.abort_all("x", 100.0) == []


def test_dispatcher_rejects_duplicate_correlation_in_flight():
    d = Dispatcher(CFG)
    make(d, 1)
    with pytest.raises(Exception, match="already in flight"):
        make(d, 1)


def test_dispatcher_remembers_a_bounded_number_of_ended_ids():
    d = Dispatcher(CFG, remember=4)
    for i in range(10):
        tl = MessageTimeline(CFG, thread_id=f"t{i}", correlation_id=None, sent_at=0.0)
        d.track(tl)
        d.abort_all("x", 0.1)
    assert len(d._ended) == 4
    assert d.dispatch(ev("agent_started", "t0", None), 1).anomaly == UNKNOWN_ID
    assert d.dispatch(ev("agent_started", "t9", None), 1).anomaly == LATE_FRAME


def test_first_arrival_flags_each_event_type_once():
    tl = timeline()
    seen = []
    for i, kind in enumerate(["agent_started", "agent_thinking", "agent_thinking", "tool_executing"]):
        tl.feed(ev(kind), 100.1 + i * 0.1)
        seen.append(tl.first_arrival)
    assert seen == ["agent_started", "agent_thinking", None, "tool_executing"]
    tl.feed({"type": "weird", "thread_id": "t1"}, 100.6)
    assert tl.first_arrival is None
