"""Hypothesis fuzz of the dispatcher + timeline: whatever frames arrive, each message ends in exactly one outcome."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.timeline import Dispatcher, MessageTimeline, OutcomeKind, ProtocolConfig, RouteKind

CFG = ProtocolConfig()
TYPES = list(CFG.events) + ["agent_error", "error_message", "pong", "ack", "connection_established", "weird", ""]
IDS = ["m0", "m1", "m2", "m3", "zz", None]

pytestmark = pytest.mark.timeout(120)

json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def frames(draw):
    frame: dict = {}
    kind = draw(st.sampled_from(TYPES + [None, 7]))
    if kind is not None:
        frame["type"] = kind
    where = draw(st.sampled_from(["top", "data", "none"]))
    for field in ("thread_id", "correlation_id"):
        value = draw(st.sampled_from(IDS + [5, [1], {"a": 1}, ""]))
        if value is not None and where != "none":
            if where == "top":
                frame[field] = value
            else:
                frame.setdefault("data", {})[field] = value
    if draw(st.booleans()):
        frame["error_code"] = draw(st.sampled_from(["DEPENDENCY_TIMEOUT", "X", 3]))
    if draw(st.booleans()):
        frame["extra"] = draw(json_value)
    return frame


operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from(["m0", "m1", "m2", "m3"]), st.booleans()),
        st.tuples(st.just("frame"), frames()),
        st.tuples(st.just("raw"), st.binary(max_size=20) | json_value.map(orjson.dumps)),
        st.tuples(st.just("wait"), st.floats(min_value=0, max_value=8)),
        st.tuples(st.just("poll")),
        st.tuples(st.just("abort")),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, reply_timeout=st.floats(0.5, 20), hang_after=st.floats(0.5, 20))
def test_random_frame_sequences_end_each_message_exactly_once(ops, reply_timeout, hang_after):
    d = Dispatcher(CFG)
    now = 0.0
    tracked: list[MessageTimeline] = []
    seen: dict[int, int] = {}

    def collect(outcomes):
        for outcome in outcomes:
            owners = [tl for tl in tracked if tl.outcome is outcome]
            assert len(owners) == 1
            seen[id(owners[0])] = seen.get(id(owners[0]), 0) + 1

    for op in ops:
        if op[0] == "send":
            key, with_corr = op[1], op[2]
            if any(tl.correlation_id == key and not tl.done for tl in tracked):
                continue
            tl = MessageTimeline(CFG, thread_id=key, correlation_id=key if with_corr else None, sent_at=now,
                                 reply_timeout=reply_timeout, hang_after=hang_after)
            d.track(tl)
            tracked.append(tl)
        elif op[0] == "frame":
            routed = d.dispatch(op[1], now)
            if routed.outcome is not None:
                collect([routed.outcome])
        elif op[0] == "raw":
            routed = d.dispatch_text(op[1], now)
            assert routed.kind in RouteKind
            if routed.outcome is not None:
                collect([routed.outcome])
        elif op[0] == "wait":
            now += op[1]
        elif op[0] == "poll":
            collect(d.poll(now))
        else:
            collect(d.abort_all("closed", now))
    collect(d.poll(now + reply_timeout + hang_after + 1))
    assert d.in_flight == 0
    for tl in tracked:
        assert tl.done, "every message must end"
        assert seen.get(id(tl), 0) == 1, "every outcome reported exactly once"
        out = tl.outcome
        assert out.kind in OutcomeKind
        assert tl.state.value == out.kind.value
        assert 0 <= out.latency_ms <= reply_timeout * 1000 + 1e-6
        assert (out.failure is None) == (
            out.kind is OutcomeKind.COMPLETED and not out.order_violations and not out.duplicates and not out.missing
        )
        assert all(v >= 0 for v in out.stages.values())
        assert list(out.first_ms.values()) == sorted(out.first_ms.values())
