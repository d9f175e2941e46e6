"""A plain-ws chat reader reads the OS socket directly and waits on its watcher with a timer of its own (issue 17:
no ``gevent.Timeout`` per blocking read). Real sockets to the bench server on loopback: the direct path is the one
taken with the pinned gevent (an upgrade that renames gevent's socket internals fails here instead of running
slower unnoticed), a message goes and comes back, and the socket closed by another greenlet while the reader waits
ends the reader cleanly."""

from __future__ import annotations

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest

import users.ws_session as ws_session
from bench.common import BenchServer
from tasks.timeline import ProtocolConfig
from tests.helpers import wait_until
from users.ws_session import ChatSession

CFG = ProtocolConfig()
pytestmark = [pytest.mark.timeout(60)]


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
    assert wait_until(lambda: reader.dead, 5.0, 0.02), "the reader kept waiting on a closed socket"
    assert reader.successful(), reader.exception
    assert s.close_reason == "send failed: test" and closed == ["send failed: test"] and not s.open


_DEFERRED_CLOSE = """
from gevent import monkey; monkey.patch_all()
import socket, time
from gevent.hub import get_hub
import users.ws_session as ws
a, b = socket.socketpair()
raw, watcher = ws._direct_read(a)
hub = get_hub()
other = hub.loop.io(a.fileno(), 1)  # a watcher gevent does not know of: it defers the OS socket's close
other.start(lambda: None)
a.close()  # another greenlet's close: the read watcher is closed now, the descriptor still open
try:
    ws._recv_direct(a, raw, watcher, hub, 0.2, time.perf_counter() + 0.2)
except OSError as exc:
    print("ended:", type(exc).__name__, exc.errno)
other.stop()
"""


def test_a_socket_closed_with_its_os_close_deferred_ends_the_read_without_touching_the_closed_watcher():
    """gevent defers the OS socket's close while watchers it does not know of watch it; the read then finds nothing
    (EAGAIN) and must not start the closed read watcher (libev aborts the process). In a child: an abort would
    otherwise take the test run with it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", _DEFERRED_CLOSE], cwd=root, capture_output=True, text=True, timeout=30,
                       env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "WS_SUITE_ACCEL": "off"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ended: OSError 9" in r.stdout, (r.stdout, r.stderr[-2000:])


def test_a_frame_waits_for_another_greenlet_s_frame_in_progress_then_goes_whole(server):
    """A plain-ws send goes straight to the OS socket only while no other frame is being sent (the send lock free):
    a frame sent while another greenlet holds the lock (mid-``sendall`` of a large frame) waits for it, so the two
    never interleave on the wire. Real sockets: the session's connection to the bench server, the server's side
    read through a socket pair standing in for it."""
    s = ChatSession(server.url, config=CFG, token="a.b.c")
    s.connect()
    try:
        assert s._raw_send is not None, "plain ws sends through the OS socket"
        ours, theirs = gevent.socket.socketpair()
        s._sock.close()
        s._sock = ours  # the same kind of socket (gevent's), whose other end this test reads
        s._raw_send = ws_session._direct_read(ours)[0].send
        theirs.settimeout(0.2)
        s._send_lock.acquire()  # another greenlet's frame in progress
        try:
            sender = gevent.spawn(s._send, b"ping frame")
            gevent.sleep(0.1)
            assert not sender.dead
            with pytest.raises(TimeoutError):
                theirs.recv(100)  # nothing went out meanwhile
        finally:
            s._send_lock.release()
        sender.join(timeout=2)
        assert sender.dead and sender.exception is None
        assert theirs.recv(100) == b"ping frame"
        s._send(b"next")  # the lock free: straight out
        assert theirs.recv(100) == b"next"
        theirs.close()
    finally:
        s.close()
