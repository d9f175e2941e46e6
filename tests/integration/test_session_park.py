"""An idle chat session parks its reader greenlet (issue 17: memory per idle session) and keeps every behaviour:
heartbeats keep being sent and measured, a message sent to a parked session is tracked to its end, a server close
while parked is noticed, and a pong that never comes still counts as a miss. Real sockets to the bench server on
loopback; the bench server's ``--hosts`` listens on several loopback addresses."""

from __future__ import annotations

import time

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest

import users.ws_session as ws_session
from bench.common import BenchServer
from tasks.timeline import ProtocolConfig
from users.ws_session import ChatSession

CFG = ProtocolConfig()


def _until(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        gevent.sleep(0.02)
    return cond()


@pytest.fixture(scope="module")
def server():
    with BenchServer(hosts=2, max_seconds=120) as srv:
        yield srv


@pytest.mark.timeout(60)
def test_idle_session_parks_and_keeps_heartbeats_and_messages(server, monkeypatch):
    monkeypatch.setattr(ws_session, "PARK_AFTER_S", 0.2)
    beats: list[tuple[float | None, str | None]] = []
    outcomes = []
    s = ChatSession(server.url, config=CFG, token="a.b.c", heartbeat_interval=0.5, heartbeat_timeout=2.0,
                    on_heartbeat=lambda ms, err: beats.append((ms, err)),
                    on_outcome=lambda t, o: outcomes.append(o))
    s.connect()
    try:
        assert _until(lambda: s._reader is None, 5.0), "an idle session's reader did not park"
        assert s._park_io is not None and s._park_timer is not None
        # heartbeats go on while parked: each wakes a reader, which parks again after the pong
        assert _until(lambda: len(beats) >= 4, 10.0), beats
        assert all(ms is not None and err is None and ms >= 0 for ms, err in beats)
        assert _until(lambda: s._reader is None, 5.0)
        # a message sent to a parked session is tracked to its end (its deadlines run in a new reader)
        t = s.send_message("hello")
        assert s._reader is not None and s._park_io is None
        assert s.wait([t], 10.0)
        assert t.outcome is not None and t.outcome.failure is None, t.outcome
        assert len(outcomes) == 1
        assert _until(lambda: s._reader is None, 5.0), "the reader did not park again after the message"
    finally:
        s.close()
    assert s._park_io is None and s._park_timer is None and not s.open


@pytest.mark.timeout(60)
def test_parked_session_notices_server_close_and_missed_pongs(monkeypatch):
    monkeypatch.setattr(ws_session, "PARK_AFTER_S", 0.2)
    closed: list[str] = []
    with BenchServer(max_seconds=60) as srv:
        s = ChatSession(srv.url, config=CFG, token="a.b.c", on_closed=closed.append)
        s.connect()
        assert _until(lambda: s._reader is None, 5.0)
        srv.stop()  # the server goes away while the session is parked
        assert _until(lambda: bool(closed), 10.0), "a parked session did not notice the server's close"
        assert not s.open and s._park_io is None
    # stalled server: the pong never comes; the miss is still reported (and the connection declared dead)
    beats: list[tuple[float | None, str | None]] = []
    with BenchServer(stall_at=0.0, stall_for=60.0, max_seconds=60) as srv:
        s = ChatSession(srv.url, config=CFG, token="a.b.c", heartbeat_interval=0.3, heartbeat_timeout=0.5,
                        heartbeat_misses=2, on_heartbeat=lambda ms, err: beats.append((ms, err)))
        s.connect()
        try:
            assert _until(lambda: not s.open, 10.0), "missed pongs did not end the connection"
            assert [err for _, err in beats if err] and all(ms is None for ms, _ in beats)
            assert "heartbeat" in (s.close_reason or "")
        finally:
            s.close()


@pytest.mark.timeout(60)
def test_bench_server_listens_on_several_loopback_addresses(server):
    assert server.urls == [f"ws://127.0.0.1:{server.port}/ws", f"ws://127.0.0.2:{server.port}/ws"]
    for url in server.urls:
        s = ChatSession(url, config=CFG, token="a.b.c")
        s.connect()
        try:
            assert s.welcomed and s.open
        finally:
            s.close()
