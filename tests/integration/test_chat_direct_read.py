"""A plain-ws chat reader reads the OS socket directly and waits on its watcher with a timer of its own (issue 17:
no ``gevent.Timeout`` per blocking read). Real sockets to the bench server on loopback: the direct path is the one
taken with the pinned gevent (an upgrade that renames gevent's socket internals fails here instead of running
slower unnoticed), a message goes and comes back, and the socket closed by another greenlet while the reader waits
ends the reader cleanly."""

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
pytestmark = [pytest.mark.timeout(60)]


def _until(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        gevent.sleep(0.02)
    return cond()


@pytest.fixture(scope="module")
def server():
    with BenchServer(max_seconds=60) as srv:
        yield srv


def test_plain_ws_reads_the_os_socket_directly(server):
    s = ChatSession(server.url, config=CFG, token="a.b.c", connect_timeout=7.0)
    s.connect()
    try:
        assert s.kernel_timestamps, "this machine gives kernel receive timestamps (the direct path needs them)"
        assert ws_session._direct_read(s._sock) is not None, "gevent's socket internals changed: reads go the slow way"
        timelines = [s.send_message(f"hello {i}") for i in range(3)]
        assert s.wait(timelines, 10.0)
        assert all(t.outcome is not None and t.outcome.failure is None for t in timelines), timelines
        assert s._sock.gettimeout() == 7.0  # the send's timeout, not the reader's last deadline
    finally:
        s.close()
    assert ws_session._direct_read(object()) is None  # e.g. an SSLSocket: it decrypts in its own recv


def test_socket_closed_by_another_greenlet_while_the_reader_waits_ends_the_reader(server, monkeypatch):
    monkeypatch.setattr(ws_session, "PARK_AFTER_S", 30.0)  # the reader waits on the socket, not parked
    closed: list[str] = []
    s = ChatSession(server.url, config=CFG, token="a.b.c", on_closed=closed.append)
    s.connect()
    reader = s._reader
    assert reader is not None
    gevent.sleep(0.3)  # the reader is in its wait
    assert not reader.dead and s._reader is reader
    s._lost("send failed: test")  # what a failed send does, from the user's greenlet
    assert _until(lambda: reader.dead, 5.0), "the reader kept waiting on a closed socket"
    assert reader.successful(), reader.exception
    assert s.close_reason == "send failed: test" and closed == ["send failed: test"] and not s.open
