"""Server closes over real sockets: a close with nothing in flight is a planned reconnect (``WS reconnect``, its cause
counted for the report, nothing failed); a close that cuts messages fails them with the close code and counts as
``WS disconnect``; ``--ws-max-age`` retires a connection between messages, never under a reply.

The server is ``tests/integration/test_chat_bad_input.py``'s scripted WebSocket server (gevent + wsproto).
"""

from __future__ import annotations

import time
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest

from sla_checks.evaluate import ThresholdSpec
from sla_checks.plugin import SlaPlugin
from sla_checks.profiles import Profile
from tests.integration.test_chat_bad_input import Run, ev, five
from users.chat_tasks import converse

pytestmark = pytest.mark.timeout(60)


def _sla(run: Run) -> SlaPlugin:
    sla = SlaPlugin.register(run.env, Profile(name="t", path="t.toml", thresholds=[
        ThresholdSpec.of("WS disconnect", "count < 1")]), eval_interval_s=60)
    sla.on_test_start(run.env)
    return sla


def _until(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        assert time.perf_counter() < deadline, "condition not met in time"
        gevent.sleep(0.02)


def _rounds(run: Run, n: int) -> list[Any]:
    outcomes = []
    for _ in range(n):
        outcomes.extend(converse(run.client))
    return outcomes


@pytest.mark.parametrize(("after_reply", "cause"), [
    (("close", 1001), "close 1001"),
    (("close", 1000), "close 1000"),
    (("close", 1012), "close 1012"),
    (("close", 1013), "close 1013"),
    (("tcp-close",), "eof"),  # a balancer's idle/lifetime timeout: the TCP connection ends without a close frame
])
def test_a_close_with_nothing_in_flight_is_a_planned_reconnect(after_reply, cause):
    with Run(lambda ids: [*five(ids), after_reply]) as run:
        sla = _sla(run)
        assert run.client.connect()
        outcomes = _rounds(run, 3)  # each reply is followed by the server's close: 2 reconnects in between
        _until(lambda: not run.client.session.open)
        rep = sla.snapshot()
    assert [o.failure for o in outcomes] == [None, None, None]
    assert run.failures("disconnect") == [] and run.failures("agent_completed") == []
    assert run.ok("reconnect") == 2 and run.ok("connect") == 3
    assert rep["reconnects"] == {cause: 2}
    assert "WS disconnect" not in rep["metrics"]
    (line,) = [t for t in rep["thresholds"] if t["metric"] == "WS disconnect"]
    assert line["status"] == "pass"


def test_a_close_that_cuts_a_reply_fails_it_with_the_code_and_counts_as_disconnect():
    with Run(lambda ids: [ev("agent_started", ids), ("close", 1001)]) as run:
        sla = _sla(run)
        assert run.client.connect()
        (out,) = converse(run.client)
        rep = sla.snapshot()
    assert out.failure == "error DISCONNECTED: server closed 1001: bye"
    assert run.failures("disconnect") == ["disconnect: server closed 1001: bye"]
    assert rep["reconnects"] == {} and run.ok("reconnect") == 0
    (line,) = [t for t in rep["thresholds"] if t["metric"] == "WS disconnect"]
    assert line["status"] == "fail"


def test_an_unplanned_close_code_with_nothing_in_flight_is_a_disconnect():
    with Run(lambda ids: [*five(ids), ("close", 1011)]) as run:
        assert run.client.connect()
        (out,) = converse(run.client)
        _until(lambda: bool(run.failures("disconnect")))
    assert out.failure is None
    assert run.failures("disconnect") == ["disconnect: server closed 1011: bye"]
    assert run.ok("reconnect") == 0


def test_a_close_without_close_frame_whose_reconnect_fails_is_a_lost_connection():
    """A process that died (FIN, then nothing listens): not a balancer's recycling, a disconnect."""
    with Run(lambda ids: [*five(ids), ("tcp-close",)], reconnect_max_backoff=0.2) as run:
        assert run.client.connect()
        (out,) = converse(run.client)
        run.server.stop()
        _until(lambda: not run.client.session.open)
        assert not run.client.ensure_connected()
    assert out.failure is None
    (text,) = run.failures("disconnect")
    assert text.startswith("disconnect: connection closed by the server without a close frame") and \
        "the reconnect failed: TCP connect to 127.0.0.1" in text, text
    assert run.ok("reconnect") == 0


def test_max_age_retires_the_connection_between_messages():
    with Run(lambda ids: [("sleep", 0.3), *five(ids)], max_age=1.0) as run:
        sla = _sla(run)
        assert run.client.connect()
        first = run.client.session
        start = time.perf_counter()
        outcomes = []
        while time.perf_counter() - start < 2.5:  # replies take 0.3 s: the 1 s age falls inside a reply
            outcomes.extend(converse(run.client))
        rep = sla.snapshot()
    assert outcomes and all(o.failure is None for o in outcomes), [o.failure for o in outcomes]
    assert first is not run.client.session or first is None
    assert run.failures("disconnect") == [] and run.failures("agent_completed") == []
    assert run.ok("reconnect") >= 2 and rep["reconnects"] == {"max age": run.ok("reconnect")}
    assert run.ok("connect") == run.ok("reconnect") + 1


def test_max_age_drains_messages_in_flight_on_the_old_connection():
    """Open model style: messages go out without waiting; a retired connection's replies still arrive on it."""
    with Run(lambda ids: [("sleep", 0.6), *five(ids)], max_age=1.0) as run:
        assert run.client.connect()
        old = run.client.session
        timelines = [run.client.send("a")]
        gevent.sleep(1.05)  # past the age, the reply still 0.5 s away
        assert not run.client.connected and run.client.send("b") is None  # nothing new on the old connection
        assert run.client.ensure_connected()
        assert run.client.session is not old
        timelines.append(run.client.send("c"))
        _until(lambda: all(t.done for t in timelines))
        _until(lambda: not old.open)  # closed by the client once drained
    assert [t.outcome.failure for t in timelines] == [None, None]
    assert run.failures("disconnect") == [] and run.ok("reconnect") == 1
