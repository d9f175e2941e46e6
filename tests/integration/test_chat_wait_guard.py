"""``ChatSession.wait``'s guard is one libev timer, not a ``gevent.Timeout`` per wait: it still ends a wait whose
messages the reader has not ended by then (False), and a wait whose messages end first returns True without waiting
for it. The server is the bench's fast server (another process) holding each reply 0.8 s."""

from __future__ import annotations

import time

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest

from bench.common import BenchServer
from tasks.timeline import ProtocolConfig
from users.ws_session import ChatSession

pytestmark = pytest.mark.timeout(60)

HOLD_S = 0.8


def test_wait_guard_ends_the_wait_then_the_reply_ends_it():
    with BenchServer(delay=HOLD_S, max_seconds=60) as srv:
        session = ChatSession(srv.url, config=ProtocolConfig(), token="bench-token", reply_timeout=30.0)
        session.connect()
        try:
            timeline = session.send_message("hello")
            start = time.perf_counter()
            assert not session.wait([timeline], 0.2)  # the reply is 0.8 s away: the guard ends this wait
            waited = time.perf_counter() - start
            assert 0.15 <= waited < HOLD_S, waited
            assert timeline.outcome is None  # the guard ends the wait, not the message
            start = time.perf_counter()
            assert session.wait([timeline], 10.0)  # the reply ends it long before this guard
            assert time.perf_counter() - start < 5.0
            assert timeline.outcome is not None and timeline.outcome.failure is None, timeline.outcome
            assert session.wait([timeline], 0.0)  # nothing pending: True at once, even with no time left
        finally:
            session.close()
