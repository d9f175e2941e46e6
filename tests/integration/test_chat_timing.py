"""Arrival times come from the kernel (SO_TIMESTAMPNS), so a generator too busy to run its reader greenlet at once
does not add that delay to the measured latency. The server is the bench's fast server (another process, replies at
once)."""

from __future__ import annotations

import sys

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


def _latency_with_busy_generator(url: str) -> tuple[float, bool]:
    session = ChatSession(url, config=ProtocolConfig(), token="bench-token")
    session.connect()
    try:
        timeline = session.send_message("hello")
        _blocking_sleep(BUSY_S)  # blocks the whole process (no greenlet switch): the reply waits in the socket buffer
        assert session.wait([timeline], 10.0)
        assert timeline.outcome is not None and timeline.outcome.failure is None, timeline.outcome
        return timeline.outcome.latency_ms, session.kernel_timestamps
    finally:
        session.close()


def test_busy_generator_does_not_inflate_latency_with_kernel_timestamps(monkeypatch):
    with BenchServer(max_seconds=60) as srv:
        for _ in range(3):  # warm up the server's and our code paths
            _latency_with_busy_generator(srv.url)
        kernel_ms, used = _latency_with_busy_generator(srv.url)
        monkeypatch.setattr(ws_session, "_KERNEL_TS_OK", False)
        user_ms, used_off = _latency_with_busy_generator(srv.url)
    print(f"latency with kernel timestamps {kernel_ms:.1f} ms, without {user_ms:.1f} ms", file=sys.stderr)
    assert used and not used_off
    assert user_ms >= BUSY_S * 1000  # read time: includes the generator's own busy time
    assert kernel_ms < BUSY_S * 1000 / 3  # arrival time: the reply came back long before the reader ran
