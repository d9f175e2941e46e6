"""Arrival times come from the kernel (SO_TIMESTAMPNS), so a generator too busy to run its reader greenlet at once
does not add that delay to the measured latency. The server is the bench's fast server (another process, replies at
once)."""

from __future__ import annotations

import os
import socket
import sys
import time

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from gevent import monkey

import users.ws_session as ws_session
from bench.common import BenchServer
from tasks.timeline import ProtocolConfig
from users.ws_session import ChatSession

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not ws_session._KERNEL_TS_OK, reason="kernel timestamps are used on Linux only")]

BUSY_S = 0.3
_blocking_sleep = monkey.get_original("time", "sleep")  # time.sleep itself is gevent's (it would yield)
_plain_socket = monkey.get_original("socket", "socket")


def _wait_reply_buffered(session: ChatSession, deadline_s: float = 10.0) -> float:
    """Block the whole process (no greenlet switch) until the reply's last event sits in the socket's receive
    buffer; return how long that took (ms). Peeking leaves the bytes where they are for the reader."""
    assert session._sock is not None
    # a plain (not gevent) socket on a duplicate of the descriptor: the reader greenlet owns the gevent one
    with _plain_socket(fileno=os.dup(session._sock.fileno())) as sock:
        start = time.perf_counter()
        while time.perf_counter() - start < deadline_s:
            try:
                peeked = sock.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                peeked = b""
            if b"agent_completed" in peeked:
                return (time.perf_counter() - start) * 1000
            _blocking_sleep(0.001)
    raise AssertionError(f"the reply did not arrive within {deadline_s} s")


def _latency_with_busy_generator(url: str) -> tuple[float, float, bool]:
    """(measured latency, how long after the send the reply was buffered, kernel timestamps used)."""
    session = ChatSession(url, config=ProtocolConfig(), token="bench-token")
    session.connect()
    try:
        sent = time.perf_counter()
        timeline = session.send_message("hello")
        _wait_reply_buffered(session)
        arrived_ms = (time.perf_counter() - sent) * 1000
        _blocking_sleep(BUSY_S)  # blocks the whole process (no greenlet switch): the reply waits in the socket buffer
        assert session.wait([timeline], 10.0)
        assert timeline.outcome is not None and timeline.outcome.failure is None, timeline.outcome
        return timeline.outcome.latency_ms, arrived_ms, session.kernel_timestamps
    finally:
        session.close()


def test_busy_generator_does_not_inflate_latency_with_kernel_timestamps(monkeypatch):
    with BenchServer(max_seconds=60) as srv:
        for _ in range(3):  # warm up the server's and our code paths
            _latency_with_busy_generator(srv.url)
        kernel_ms, arrived_ms, used = _latency_with_busy_generator(srv.url)
        monkeypatch.setattr(ws_session, "_KERNEL_TS_OK", False)
        user_ms, arrived_off_ms, used_off = _latency_with_busy_generator(srv.url)
    print(f"latency with kernel timestamps {kernel_ms:.1f} ms (reply buffered after {arrived_ms:.1f} ms), "
          f"without {user_ms:.1f} ms (buffered after {arrived_off_ms:.1f} ms)", file=sys.stderr)
    assert used and not used_off
    # read time: includes the generator's own busy time after the reply was already there
    assert user_ms >= arrived_off_ms + BUSY_S * 1000 - 2.0
    # arrival time: no later than when the test saw the whole reply buffered (the server's own pace, however slow a
    # loaded machine makes it), none of the busy time stacked on top (2 ms: kernel vs. monotonic clock conversion)
    assert kernel_ms <= arrived_ms + 2.0


def test_one_socket_keeps_kernel_timestamping_on_after_every_session_closed():
    """Linux switches packet timestamping on lazily (a work queue) once no socket wants it: a session opened after
    the last one closed could get its reply before that, untimestamped (the CI failure of 7 Dec 2026). The keeper
    socket stays open with the option set, so the switch never goes off between sessions."""
    with BenchServer(max_seconds=30) as srv:
        session = ChatSession(srv.url, config=ProtocolConfig(), token="bench-token")
        session.connect()
        session.close()
    keeper = ws_session._ts_keeper
    assert keeper is not None and keeper.fileno() >= 0
    assert keeper.getsockopt(socket.SOL_SOCKET, ws_session._SO_TIMESTAMPNS) == 1
