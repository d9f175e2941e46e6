"""Wire protocol of docs/protocol.md: parsing client frames and building server frames. Pure (no I/O, clock injected).

``parse_frame(text, max_bytes)`` returns one of ``UserMessage``, ``Ping``, ``Unknown`` or raises ``ProtocolError``
with the error code the server answers with (``JSON_PARSE_ERROR`` or ``BAD_REQUEST``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

MAX_CONTENT_CHARS = 32_000
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

EVENT_TYPES = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


class ProtocolError(Exception):
    """A client frame the server refuses; ``code`` is the ``error_code`` of the ``error_message`` reply."""

    def __init__(self, code: str, message: str, *, thread_id: str | None = None,
                 correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.thread_id = thread_id
        self.correlation_id = correlation_id


@dataclass(frozen=True)
class UserMessage:
    content: str
    thread_id: str | None
    correlation_id: str | None
    client_timestamp: str | None


@dataclass(frozen=True)
class Ping:
    timestamp: Any


@dataclass(frozen=True)
class Unknown:
    type: str


Frame = UserMessage | Ping | Unknown


def parse_frame(text: str | bytes, max_bytes: int = 65536) -> Frame:
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise ProtocolError("BAD_REQUEST", f"frame of {size} bytes exceeds the limit of {max_bytes} bytes")
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise ProtocolError("JSON_PARSE_ERROR", f"frame is not valid JSON: {str(e)[:120]}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("BAD_REQUEST", f"frame must be a JSON object, got {type(obj).__name__}")
    ftype = obj.get("type")
    if not isinstance(ftype, str) or not ftype:
        raise ProtocolError("BAD_REQUEST", "frame lacks a string field 'type'")
    if ftype == "ping":
        return Ping(obj.get("timestamp"))
    if ftype != "user_message":
        return Unknown(ftype[:64])
    payload = obj.get("payload")
    if not isinstance(payload, dict):
        raise ProtocolError("BAD_REQUEST", "user_message lacks an object field 'payload'")
    thread_id = payload.get("thread_id")
    correlation_id = payload.get("correlation_id")
    if correlation_id is not None and (not isinstance(correlation_id, str) or not _ID_RE.match(correlation_id)):
        raise ProtocolError("BAD_REQUEST", "payload.correlation_id must be a string of 1-128 [A-Za-z0-9_.:-]")
    if thread_id is not None and (not isinstance(thread_id, str) or not _ID_RE.match(thread_id)):
        raise ProtocolError("BAD_REQUEST", "payload.thread_id must be a string of 1-128 [A-Za-z0-9_.:-]",
                            correlation_id=correlation_id)
    content = payload.get("content")
    if not isinstance(content, str) or not content.strip():
        raise ProtocolError("BAD_REQUEST", "payload.content must be a non-empty string",
                            thread_id=thread_id, correlation_id=correlation_id)
    if len(content) > MAX_CONTENT_CHARS:
        raise ProtocolError("BAD_REQUEST", f"payload.content has {len(content)} characters, limit {MAX_CONTENT_CHARS}",
                            thread_id=thread_id, correlation_id=correlation_id)
    ts = payload.get("timestamp")
    return UserMessage(content, thread_id, correlation_id, ts if isinstance(ts, str) else None)


def iso_now(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).isoformat()


def dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def error_frame(code: str, message: str, *, thread_id: str | None = None, correlation_id: str | None = None,
                run_id: str | None = None, now: float | None = None) -> dict[str, Any]:
    f: dict[str, Any] = {
        "type": "error_message",
        "error_code": code,
        "error_message": message,
        "timestamp": time.time() if now is None else now,
    }
    if thread_id:
        f["thread_id"] = thread_id
    if run_id:
        f["run_id"] = run_id
    if correlation_id:
        f["correlation_id"] = correlation_id
    return f


def welcome_frame(user_id: str, connection_id: str, now: float | None = None) -> dict[str, Any]:
    t = time.time() if now is None else now
    return {"type": "connection_established",
            "data": {"user_id": user_id, "connection_id": connection_id, "timestamp": iso_now(t)},
            "timestamp": t}


def pong_frame(echo: Any, user_id: str) -> dict[str, Any]:
    return {"type": "pong", "data": {"timestamp": echo, "user_id": user_id}}


def ack_frame(received_type: str) -> dict[str, Any]:
    return {"type": "ack", "received_type": received_type, "timestamp": time.time()}


def agent_event(etype: str, *, run_id: str, thread_id: str, user_id: str, agent_name: str,
                data: dict[str, Any] | None = None, tool_name: str | None = None, results: Any = None,
                correlation_id: str | None = None, now: float | None = None) -> dict[str, Any]:
    f: dict[str, Any] = {
        "type": etype,
        "run_id": run_id,
        "thread_id": thread_id,
        "user_id": user_id,
        "agent_name": agent_name,
        "timestamp": iso_now(now),
        "data": data or {},
    }
    if tool_name is not None:
        f["tool_name"] = tool_name
    if etype == "tool_completed":
        f["results"] = results if results is not None else {}
    if correlation_id:
        f["correlation_id"] = correlation_id
    return f


def agent_error_frame(*, run_id: str, thread_id: str, user_id: str, error_message: str, error_context: dict[str, Any],
                      correlation_id: str | None = None) -> dict[str, Any]:
    f: dict[str, Any] = {
        "type": "agent_error",
        "run_id": run_id,
        "thread_id": thread_id,
        "user_id": user_id,
        "timestamp": iso_now(),
        "data": {"error_message": error_message, "error_context": error_context},
    }
    if correlation_id:
        f["correlation_id"] = correlation_id
    return f
