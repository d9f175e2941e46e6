"""Bad input from the server, over real sockets: each case ends as a named failure or counter, never a crash/hang.

The server is a small scriptable WebSocket server in this file (gevent ``StreamServer`` + wsproto, server side):
per ``user_message`` it plays a script of frames built from the message's own ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import orjson
import pytest
from gevent.server import StreamServer
from locust.env import Environment
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request, TextMessage

from sla_checks.evaluate import ThresholdSpec
from sla_checks.plugin import SlaPlugin
from sla_checks.profiles import Profile
from sla_checks.state import state_of
from tasks.timeline import OutcomeKind
from users.chat import ChatUser
from users.ws_client import ChatClient
from users.ws_options import ChatSettings

pytestmark = pytest.mark.timeout(60)

FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
Script = Callable[[dict[str, Any]], list[Any]]


def ev(kind: str, ids: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"type": kind, "run_id": "r", **ids, "data": {}, **extra})


def five(ids: dict[str, Any]) -> list[Any]:
    return [ev(k, ids) for k in FIVE]


class ScriptedServer:
    """Accepts WebSocket upgrades; ``welcome`` controls connection_established; ``script(ids)`` → frames to send
    per user message: ``bytes`` (a text frame), ``("binary", b"...")``, ``("close", code)``, ``("tcp-close",)``,
    ``("sleep", s)``, ``("raw", b"...")`` (bytes straight onto the socket)."""

    def __init__(self, script: Script, welcome: bool = True, **ssl_args: Any) -> None:
        self.script = script
        self.welcome = welcome
        self.scheme = "wss" if ssl_args else "ws"
        self.server = StreamServer(("127.0.0.1", 0), self._handle, **ssl_args)
        self.server.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_port}/ws"

    def stop(self) -> None:
        self.server.stop(timeout=1)

    def _handle(self, sock: Any, _addr: Any) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        parts: list[str] = []  # of a text message wsproto hands over in pieces (a large one)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        proto = event.subprotocols[0] if event.subprotocols else None
                        sock.sendall(ws.send(AcceptConnection(subprotocol=proto)))
                        if self.welcome:
                            sock.sendall(ws.send(Message(data='{"type": "connection_established", "data": {}}')))
                    elif isinstance(event, TextMessage):
                        parts.append(event.data)
                        if not event.message_finished:
                            continue
                        frame = orjson.loads("".join(parts))
                        parts.clear()
                        if frame.get("type") == "ping":
                            sock.sendall(ws.send(Message(data=orjson.dumps(
                                {"type": "pong", "data": {"timestamp": frame.get("timestamp")}}).decode())))
                            continue
                        payload = frame["payload"]
                        ids = {"thread_id": payload["thread_id"], "correlation_id": payload["correlation_id"]}
                        for action in self.script(ids):
                            if isinstance(action, bytes):
                                sock.sendall(ws.send(Message(data=action.decode("utf-8", "replace"))))
                            elif action[0] == "binary":
                                sock.sendall(ws.send(Message(data=action[1])))
                            elif action[0] == "close":
                                sock.sendall(ws.send(CloseConnection(code=action[1], reason="bye")))
                                gevent.sleep(0.2)
                                return
                            elif action[0] == "tcp-close":
                                return
                            elif action[0] == "sleep":
                                gevent.sleep(action[1])
                            elif action[0] == "raw":
                                sock.sendall(action[1])
                    elif isinstance(event, CloseConnection):
                        return
        except OSError:
            return
        finally:
            sock.close()


class Run:
    def __init__(self, script: Script, welcome: bool = True, **settings: Any) -> None:
        self.server = ScriptedServer(script, welcome)
        self.env = Environment(user_classes=[ChatUser])
        self.samples: list[dict[str, Any]] = []
        self.env.events.request.add_listener(lambda **kw: self.samples.append(kw))
        settings.setdefault("heartbeat_interval", 0.0)
        settings.setdefault("connect_timeout", 2.0)
        settings.setdefault("reply_timeout", 5.0)
        settings.setdefault("hang_after", 1.0)
        self.client = ChatClient(self.env, ChatSettings(**settings), self.server.url, user_number=0)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.stop()

    def failures(self, name: str) -> list[str]:
        return [str(s["exception"]) for s in self.samples if s["name"] == name and s["exception"] is not None]

    def ok(self, name: str) -> int:
        return sum(1 for s in self.samples if s["name"] == name and s["exception"] is None)

    def anomalies(self) -> dict[str, int]:
        return state_of(self.env).chat_anomalies


def test_malformed_json_is_counted_and_the_message_still_completes():
    with Run(lambda ids: [b"{not json", b"[1,2]", *five(ids)]) as run:
        assert run.client.connect()
        (out,) = run.client.send_and_await(["x"])
    assert out.kind is OutcomeKind.COMPLETED and out.failure is None
    assert run.anomalies() == {"malformed json": 1, "not a json object": 1}


def test_binary_and_oversize_frames_are_counted():
    big = b'{"type": "agent_thinking", "pad": "' + b"x" * 5000 + b'"}'
    with Run(lambda ids: [("binary", b"\x00\x01"), big, *five(ids)], max_frame=4096) as run:
        assert run.client.connect()
        (out,) = run.client.send_and_await(["x"])
    assert out.failure is None
    assert run.anomalies() == {"binary frame": 1, "oversize frame": 1}


def test_unknown_ids_and_types_are_counted():
    def script(ids):
        return [ev("agent_started", {"thread_id": "nobody"}), ev("mystery", ids), ev("agent_started", {}),
                *five(ids)]

    with Run(script) as run:
        assert run.client.connect()
        (out,) = run.client.send_and_await(["x"])
    assert out.failure is None
    assert run.anomalies() == {"unknown id": 1, "unknown type": 1, "event without id": 1}


def test_out_of_order_events_fail_with_order_text():
    def script(ids):
        return [ev(k, ids) for k in ["agent_started", "agent_thinking", "tool_completed", "tool_executing",
                                     "agent_completed"]]

    with Run(script) as run:
        assert run.client.connect()
        run.client.send_and_await(["x"])
    assert run.failures("agent_completed") == ["order: tool_completed before tool_executing"]


def test_duplicate_agent_completed_is_counted():
    with Run(lambda ids: [*five(ids), ev("agent_completed", ids)]) as run:
        assert run.client.connect()
        run.client.send_and_await(["x"])
        deadline = time.perf_counter() + 3
        while not run.anomalies() and time.perf_counter() < deadline:
            gevent.sleep(0.05)
    assert run.anomalies() == {"duplicate completed": 1}
    assert run.ok("agent_completed") == 1 and not run.failures("agent_completed")


def test_bad_frames_and_a_message_cut_off_by_the_stop_reach_the_sla_report():
    replies = iter([
        lambda ids: [b"{not json", ev("agent_started", {"thread_id": "nobody"}), *five(ids), ev("agent_completed", ids)],
        lambda ids: [],  # the second message is still in flight when the user stops
    ])
    with Run(lambda ids: next(replies)(ids)) as run:
        sla = SlaPlugin.register(run.env, Profile(name="t", path="t.toml", thresholds=[
            ThresholdSpec.of("WS agent_completed", "p(95) < 2000")]), eval_interval_s=60)
        sla.on_test_start(run.env)
        assert run.client.connect()
        (out,) = run.client.send_and_await(["x"])
        assert out.failure is None
        deadline = time.perf_counter() + 3
        while "duplicate completed" not in run.anomalies() and time.perf_counter() < deadline:
            gevent.sleep(0.05)
        assert run.client.send("y") is not None
        user = ChatUser(run.env)
        user.client = run.client
        user.on_stop()
        rep = sla.snapshot()
    assert rep["anomalies"] == {"duplicate completed": 1, "malformed json": 1, "unknown id": 1} == run.anomalies()
    assert rep["abandoned_at_stop"] == 1
    assert rep["metrics"]["WS agent_completed"]["count"] == 1  # the cut-off message is counted, not judged


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        (("close", 1001), "server closed 1001: bye"),
        (("tcp-close",), "without a close frame"),
        (("raw", bytes((0x81, 0x85)) + b"mask" + b"hello"), "protocol error from the server: server frame is masked"),
    ],
)
def test_connection_lost_mid_message_fails_it_and_reports_disconnect(action, fragment):
    with Run(lambda ids: [ev("agent_started", ids), action]) as run:
        assert run.client.connect()
        start = time.perf_counter()
        (out,) = run.client.send_and_await(["x"])
        assert time.perf_counter() - start < 3.0  # ends at once, not at a deadline
    assert out.kind is OutcomeKind.ERROR
    (text,) = run.failures("agent_completed")
    assert text.startswith("error DISCONNECTED: ") and fragment in text, text
    (drop,) = run.failures("disconnect")
    assert fragment in drop
    assert run.ok("agent_started") == 1


def test_accept_then_silent_server_fails_connect_clearly():
    with Run(lambda ids: [], welcome=False, connect_timeout=1.0) as run:
        start = time.perf_counter()
        assert not run.client.connect()
        assert time.perf_counter() - start < 3.0
    assert run.failures("connect") == ["no connection_established within 1 s"]


def test_server_that_never_answers_messages_gives_hang_and_events_missing():
    with Run(lambda ids: [], hang_after=0.8) as run:
        assert run.client.connect()
        (out,) = run.client.send_and_await(["x"])
    assert out.kind is OutcomeKind.HANG
    assert run.failures("agent_completed") == ["hang: no event for 0.8 s"]
    assert run.failures("events missing") == ["no agent event: hang: no event for 0.8 s"]


def test_slow_trickle_gives_timeout_not_hang():
    def script(ids):
        return [x for k in FIVE[:-1] for x in (ev(k, ids), ("sleep", 0.5))]

    with Run(script, reply_timeout=1.5, hang_after=1.0) as run:
        assert run.client.connect()
        (out,) = run.client.send_and_await(["x"])
    assert out.kind is OutcomeKind.TIMEOUT
    assert run.failures("agent_completed") == ["timeout after 1500 ms"]
    assert not run.failures("events missing")


def test_inflight_messages_are_routed_each_to_its_own_timeline():
    def script(ids):  # replies interleave with other messages' replies only through their ids
        return [*five(ids)]

    with Run(script) as run:
        assert run.client.connect()
        outs = run.client.send_and_await(["a", "b", "c", "d"])
    assert [o.failure for o in outs] == [None] * 4
    assert run.ok("agent_completed") == 4 and not run.anomalies()


@pytest.mark.parametrize("path", ["fired", "direct"])
def test_events_of_a_slow_reply_are_sampled_as_they_arrive_and_once(path):
    """A reply whose events come in separate reads: each event's sample is there before the message ends (live
    figures during a slow reply), and every event is counted once, fired to a listener of the test's own or handed
    straight to the SLA plug-in (users.sample_sink) when no such listener is there."""
    def script(ids):
        return [x for k in FIVE[:-1] for x in (ev(k, ids), ("sleep", 0.15))] + [ev(FIVE[-1], ids)]

    with Run(script) as run:
        if path == "direct":
            run.env.events.request._handlers.clear()  # the test's listener: gone
            SlaPlugin.register(run.env)
            run.client._sink._seen = None  # noqa: SLF001  (re-read the listeners at the next sample)
        assert run.client.connect()
        assert run.client._sink.direct == (path == "direct")  # noqa: SLF001
        plugin = state_of(run.env).sla
        collector = plugin.engine.collector if plugin is not None else None

        def counted(name: str) -> int:
            if collector is None:
                return run.ok(name)
            collector._fold()  # noqa: SLF001  (what it holds of the current second, into the histograms)
            return sum(b.metrics[f"WS {name}"].hist.count for b in collector._pending.values()  # noqa: SLF001
                       if f"WS {name}" in b.metrics)

        timeline = run.client.send("x")
        assert timeline is not None
        deadline = time.monotonic() + 3.0
        while not counted("tool_executing") and time.monotonic() < deadline:
            gevent.sleep(0.01)
        assert counted("tool_executing") == 1 and not timeline.done  # sampled while the reply goes on
        assert run.client.session is not None and run.client.session.wait([timeline], 5.0)
    assert timeline.outcome is not None and timeline.outcome.failure is None
    assert [counted(k) for k in FIVE] == [1] * 5
    if collector is None:
        times = [next(s["response_time"] for s in run.samples if s["name"] == k) for k in FIVE]
        assert times == sorted(times) and times[-1] - times[0] >= 4 * 150 - 20, times


def test_a_message_larger_than_the_send_buffer_goes_whole_with_heartbeats_only_between_frames():
    """The OS socket takes part of a 4 MB frame at once, the rest goes under the send lock while the reader's
    heartbeat pings (every 20 ms) wait for it: the server's parser sees whole frames only (it would close the
    connection on a ping inside the message), and the message completes."""
    with Run(lambda ids: five(ids), heartbeat_interval=0.02, heartbeat_timeout=5.0) as run:
        assert run.client.connect()
        session = run.client.session
        assert session is not None
        gevent.sleep(0.1)  # heartbeats going
        (out,) = run.client.send_and_await(["x" * (4 << 20)])
        gevent.sleep(0.1)
        assert session.open
    assert out.failure is None, out.failure
    assert run.ok("heartbeat") >= 3 and not run.failures("heartbeat")
    assert not run.failures("disconnect")
