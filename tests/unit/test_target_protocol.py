"""Frame parsing and frame building of the reference backend (pure)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_backend.protocol import (
    Ping,
    ProtocolError,
    Unknown,
    UserMessage,
    agent_event,
    error_frame,
    parse_frame,
    pong_frame,
    welcome_frame,
)


def um(**payload) -> str:  # noqa: ANN003
    return json.dumps({"type": "user_message", "payload": payload})


def test_user_message_is_parsed():
    f = parse_frame(um(content="hi", thread_id="abc123", correlation_id="c-1", timestamp="2026-01-01T00:00:00Z"))
    assert f == UserMessage("hi", "abc123", "c-1", "2026-01-01T00:00:00Z")


def test_optional_fields_may_be_absent():
    assert parse_frame(um(content="hi")) == UserMessage("hi", None, None, None)


def test_ping_and_unknown_types():
    assert parse_frame('{"type": "ping", "timestamp": 1.5}') == Ping(1.5)
    assert parse_frame('{"type": "typing"}') == Unknown("typing")


@pytest.mark.parametrize(("text", "code", "fragment"), [
    ("{", "JSON_PARSE_ERROR", "not valid JSON"),
    ("", "JSON_PARSE_ERROR", "not valid JSON"),
    ("\xff\xfe", "JSON_PARSE_ERROR", "not valid JSON"),
    ("[]", "BAD_REQUEST", "JSON object"),
    ("{}", "BAD_REQUEST", "'type'"),
    ('{"type": 3}', "BAD_REQUEST", "'type'"),
    ('{"type": "user_message"}', "BAD_REQUEST", "'payload'"),
    ('{"type": "user_message", "payload": "x"}', "BAD_REQUEST", "'payload'"),
    (um(), "BAD_REQUEST", "content"),
    (um(content="  "), "BAD_REQUEST", "content"),
    (um(content=5), "BAD_REQUEST", "content"),
    (um(content="x", thread_id="has space"), "BAD_REQUEST", "thread_id"),
    (um(content="x", thread_id=""), "BAD_REQUEST", "thread_id"),
    (um(content="x", correlation_id=7), "BAD_REQUEST", "correlation_id"),
    (um(content="x" * 40_000), "BAD_REQUEST", "characters"),
])
def test_bad_frames_raise_the_reply_code(text, code, fragment):
    with pytest.raises(ProtocolError) as e:
        parse_frame(text)
    assert e.value.code == code and fragment in e.value.message


def test_frame_over_the_limit_is_bad_request_before_parsing():
    text = um(content="x" * 100)
    parse_frame(text, max_bytes=len(text))
    with pytest.raises(ProtocolError, match="exceeds the limit of") as e:
        parse_frame(text, max_bytes=len(text) - 1)
    assert e.value.code == "BAD_REQUEST"


def test_limit_counts_utf8_bytes():
    text = json.dumps({"type": "user_message", "payload": {"content": "é" * 40}}, ensure_ascii=False)
    with pytest.raises(ProtocolError):
        parse_frame(text, max_bytes=len(text) + 10)


def test_error_keeps_thread_and_correlation_for_routing():
    with pytest.raises(ProtocolError) as e:
        parse_frame(um(thread_id="t1", correlation_id="c1"))
    f = error_frame(e.value.code, e.value.message, thread_id=e.value.thread_id,
                    correlation_id=e.value.correlation_id, now=5.0)
    assert f == {"type": "error_message", "error_code": "BAD_REQUEST", "error_message": e.value.message,
                 "timestamp": 5.0, "thread_id": "t1", "correlation_id": "c1"}


def test_agent_event_shape():
    ev = agent_event("tool_completed", run_id="r", thread_id="t", user_id="u", agent_name="Data",
                     data={"a": 1}, tool_name="query_metrics", results={"n": 1}, correlation_id="c", now=0.0)
    assert ev == {"type": "tool_completed", "run_id": "r", "thread_id": "t", "user_id": "u", "agent_name": "Data",
                  "timestamp": "1970-01-01T00:00:00+00:00", "data": {"a": 1}, "tool_name": "query_metrics",
                  "results": {"n": 1}, "correlation_id": "c"}
    plain = agent_event("agent_started", run_id="r", thread_id="t", user_id="u", agent_name="Supervisor", now=0.0)
    assert "tool_name" not in plain and "results" not in plain and "correlation_id" not in plain


def test_welcome_and_pong():
    w = welcome_frame("user-1", "conn-1", now=0.0)
    assert w["type"] == "connection_established" and w["data"]["user_id"] == "user-1" and w["timestamp"] == 0.0
    assert pong_frame({"x": 1}, "u") == {"type": "pong", "data": {"timestamp": {"x": 1}, "user_id": "u"}}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                              max_leaves=20).map(json.dumps),
                 st.dictionaries(st.sampled_from(["content", "thread_id", "correlation_id", "timestamp"]),
                                 st.none() | st.integers() | st.text(max_size=40)).map(
                     lambda p: json.dumps({"type": "user_message", "payload": p}))))
def test_any_input_gives_a_frame_or_a_protocol_error(text):
    try:
        f = parse_frame(text)
    except ProtocolError as e:
        assert e.code in ("JSON_PARSE_ERROR", "BAD_REQUEST") and e.message
    else:
        assert isinstance(f, UserMessage | Ping | Unknown)
