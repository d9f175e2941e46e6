"""One user's slow reply never delays another user's measurement in the same Locust process (gevent: one reader
greenlet per connection, no shared blocking wait). Real sockets, the scripted server of test_chat_bad_input."""

from __future__ import annotations

import itertools

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest

from tasks.timeline import OutcomeKind
from tests.integration.test_chat_bad_input import Run, five
from users.ws_client import ChatClient
from users.ws_options import ChatSettings

pytestmark = pytest.mark.timeout(60)

STALL_S = 3.0


def test_a_stalled_reply_does_not_delay_another_users_replies_or_their_latency():
    order = itertools.count()

    def script(ids):  # the first message of the run stalls 3 s before its events; every other one answers at once
        return [("sleep", STALL_S), *five(ids)] if next(order) == 0 else five(ids)

    with Run(script, reply_timeout=10.0, hang_after=8.0) as run:
        fast = ChatClient(run.env, ChatSettings(heartbeat_interval=0.0, connect_timeout=2.0, reply_timeout=10.0,
                                                hang_after=8.0), run.server.url, user_number=1)
        try:
            assert run.client.connect() and fast.connect()
            slow = gevent.spawn(run.client.send_and_await, ["x"])
            gevent.sleep(0.2)  # the slow message is in the server's stall now
            assert not slow.ready()
            quick = [fast.send_and_await(["y"])[0] for _ in range(5)]
            assert not slow.ready(), "the fast user's five messages should finish inside the other's stall"
            (stalled,) = slow.get(timeout=STALL_S + 5)
        finally:
            fast.close()
    assert all(o.kind is OutcomeKind.COMPLETED and o.failure is None for o in [*quick, stalled])
    completed = [s for s in run.samples if s["name"] == "agent_completed"]
    assert len(completed) == 6
    slow_ms = max(s["response_time"] for s in completed)
    fast_ms = sorted(s["response_time"] for s in completed)[:5]
    assert slow_ms >= STALL_S * 1000
    # each fast reply is measured on its own: nowhere near the 3 s the other user is waiting
    assert max(fast_ms) < 1000, fast_ms
