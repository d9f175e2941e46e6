"""Raw WebSocket client loops (no Locust): the most chat round trips per second Python does on this machine.

Each client keeps N connections busy (default 50), one message in flight per connection: send a ``user_message``
(fresh ``thread_id`` and ``correlation_id`` each time, as the chat user does), read frames until that message's
``agent_completed``, JSON-parse every frame with orjson, check the correlation, repeat. Measured over a steady window
after a warm-up: round trips per second and the client process's CPU time (user + system, from ``getrusage``, not
wall time) per round trip.

Clients:

* ``websocket-client``: websocket-client's blocking API, one greenlet per connection (gevent-patched sockets);
* ``wsproto-gevent``: wsproto's sans-IO connection over gevent sockets, one greenlet per connection;
* ``wsproto-plain``: wsproto over plain non-blocking sockets driven by one ``epoll`` loop, no gevent at all;
* ``codec-gevent``: the suite's own sans-IO codec (``users/ws_codec.py``, what ``ChatUser`` uses) over gevent
  sockets, one greenlet per connection: the floor under ``ChatUser``'s cost.

Usage::

    python -m bench.raw_clients --url ws://127.0.0.1:PORT/ws --client wsproto-gevent --duration 10
    # prints one JSON object
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "wsproto-plain" not in sys.argv:  # gevent clients: patch before anything else
    from gevent import monkey

    monkey.patch_all()

import argparse
import logging
import resource
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

logger = logging.getLogger(__name__)

CLIENTS = ("websocket-client", "wsproto-gevent", "wsproto-plain", "codec-gevent")
SUBPROTOCOL = "jwt-auth.bench-token"  # the bench server echoes it and does not verify it


def cpu_seconds() -> float:
    """This process's CPU time (user + system) in seconds."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def user_message() -> tuple[bytes, str]:
    """A chat message frame body with a fresh thread and correlation id; returns (json bytes, correlation id)."""
    cid = uuid.uuid4().hex
    body = orjson.dumps({"type": "user_message",
                         "payload": {"content": "How can I lower the cost per request of my pipeline?",
                                     "thread_id": uuid.uuid4().hex, "correlation_id": cid,
                                     "timestamp": datetime.now(UTC).isoformat()}})
    return body, cid


class Meter:
    """Counts round trips; the main loop reads it at the start and end of the steady window."""

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.stop = False
        self.latencies: list[float] = []  # ms per round trip (codec-gevent only; for the accuracy comparison)


def _window(meter: Meter, warmup: float, duration: float, sleep: Callable[[float], Any]) -> dict[str, float]:
    sleep(warmup)
    c0, cpu0, t0 = meter.count, cpu_seconds(), time.perf_counter()
    sleep(duration)
    c1, cpu1, t1 = meter.count, cpu_seconds(), time.perf_counter()
    meter.stop = True
    n = max(c1 - c0, 1)
    return {"round_trips": c1 - c0, "seconds": t1 - t0, "rate": (c1 - c0) / (t1 - t0),
            "cpu_s": cpu1 - cpu0, "cpu_us_per_rt": (cpu1 - cpu0) / n * 1e6,
            "cpu_share": (cpu1 - cpu0) / (t1 - t0)}


# ---------------------------------------------------------------- websocket-client (gevent)

def run_websocket_client(url: str, connections: int, warmup: float, duration: float) -> dict[str, Any]:
    import gevent
    import websocket

    meter = Meter()

    def loop() -> None:
        ws = websocket.create_connection(url, subprotocols=[SUBPROTOCOL], skip_utf8_validation=True, timeout=30)
        orjson.loads(ws.recv())  # connection_established
        try:
            while not meter.stop:
                body, cid = user_message()
                ws.send(body)
                while True:
                    ev = orjson.loads(ws.recv())
                    if ev["type"] == "agent_completed":
                        if ev.get("correlation_id") != cid:
                            meter.errors += 1
                        break
                meter.count += 1
        finally:
            ws.close(timeout=1)

    glets = [gevent.spawn(loop) for _ in range(connections)]
    out = _window(meter, warmup, duration, gevent.sleep)
    gevent.joinall(glets, timeout=10)
    gevent.killall([g for g in glets if not g.dead], timeout=2)
    out["errors"] = meter.errors + sum(1 for g in glets if g.exception is not None)
    return out


# ---------------------------------------------------------------- wsproto helpers

def _wsproto_connect(url: str, sock: socket.socket) -> Any:
    """Blocking handshake on ``sock``; returns the open ``WSConnection``."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request

    u = urlsplit(url)
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=u.netloc, target=u.path or "/", subprotocols=[SUBPROTOCOL])))
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("bench server closed during the handshake")
        ws.receive_data(data)
        for ev in ws.events():
            if isinstance(ev, AcceptConnection):
                return ws
            raise ConnectionError(f"handshake refused: {ev!r}")


def _tcp(url: str) -> socket.socket:
    u = urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port or 80), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


# ---------------------------------------------------------------- wsproto over gevent sockets

def run_wsproto_gevent(url: str, connections: int, warmup: float, duration: float) -> dict[str, Any]:
    import gevent
    from wsproto.events import CloseConnection, Message, TextMessage

    meter = Meter()

    def loop() -> None:
        sock = _tcp(url)
        ws = _wsproto_connect(url, sock)
        pending: list[str] = []  # text of a fragmented message
        cid = None
        try:
            body, cid = user_message()
            first = True
            while not meter.stop:
                if first:
                    first = False
                else:
                    body, cid = user_message()
                sock.sendall(ws.send(Message(data=body.decode())))
                done = False
                while not done:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("bench server closed the connection")
                    ws.receive_data(data)
                    for ev in ws.events():
                        if isinstance(ev, TextMessage):
                            pending.append(ev.data)
                            if not ev.message_finished:
                                continue
                            text = "".join(pending)
                            pending.clear()
                            msg = orjson.loads(text)
                            if msg["type"] == "agent_completed":
                                if msg.get("correlation_id") != cid:
                                    meter.errors += 1
                                done = True
                        elif isinstance(ev, CloseConnection):
                            raise ConnectionError("bench server sent close")
                meter.count += 1
        finally:
            sock.close()

    glets = [gevent.spawn(loop) for _ in range(connections)]
    out = _window(meter, warmup, duration, gevent.sleep)
    gevent.joinall(glets, timeout=10)
    gevent.killall([g for g in glets if not g.dead], timeout=2)
    out["errors"] = meter.errors + sum(1 for g in glets if g.exception is not None)
    return out


# ---------------------------------------------------------------- wsproto over plain sockets, one epoll loop

def run_wsproto_plain(url: str, connections: int, warmup: float, duration: float) -> dict[str, Any]:
    import select

    from wsproto.events import Message, TextMessage

    meter = Meter()
    conns: dict[int, list[Any]] = {}  # fd -> [sock, ws, cid, pending]
    for _ in range(connections):
        sock = _tcp(url)
        ws = _wsproto_connect(url, sock)
        sock.setblocking(False)
        conns[sock.fileno()] = [sock, ws, None, []]
    ep = select.epoll()
    for fd in conns:
        ep.register(fd, select.EPOLLIN)

    def send_next(c: list[Any]) -> None:
        body, cid = user_message()
        c[2] = cid
        c[0].sendall(ws_send(c[1], body))

    def ws_send(ws: Any, body: bytes) -> bytes:
        return ws.send(Message(data=body.decode()))

    for c in conns.values():
        c[0].setblocking(True)
        send_next(c)
        c[0].setblocking(False)
    t_start = time.perf_counter()
    phase = 0
    c0 = cpu0 = t0 = 0.0
    try:
        while True:
            now = time.perf_counter()
            if phase == 0 and now - t_start >= warmup:
                phase, c0, cpu0, t0 = 1, meter.count, cpu_seconds(), now
            elif phase == 1 and now - t0 >= duration:
                c1, cpu1 = meter.count, cpu_seconds()
                break
            for fd, _ in ep.poll(0.1):
                c = conns[fd]
                data = c[0].recv(65536)
                if not data:
                    raise ConnectionError("bench server closed the connection")
                ws = c[1]
                ws.receive_data(data)
                for ev in ws.events():
                    if isinstance(ev, TextMessage):
                        c[3].append(ev.data)
                        if not ev.message_finished:
                            continue
                        msg = orjson.loads("".join(c[3]))
                        c[3].clear()
                        if msg["type"] == "agent_completed":
                            if msg.get("correlation_id") != c[2]:
                                meter.errors += 1
                            meter.count += 1
                            c[0].setblocking(True)
                            send_next(c)
                            c[0].setblocking(False)
    finally:
        ep.close()
        for c in conns.values():
            c[0].close()
    n = max(c1 - c0, 1)
    t1 = time.perf_counter()
    return {"round_trips": c1 - c0, "seconds": t1 - t0, "rate": (c1 - c0) / (t1 - t0), "cpu_s": cpu1 - cpu0,
            "cpu_us_per_rt": (cpu1 - cpu0) / n * 1e6, "cpu_share": (cpu1 - cpu0) / (t1 - t0),
            "errors": meter.errors}


# ---------------------------------------------------------------- the suite's own sans-IO codec over gevent sockets

def run_codec_gevent(url: str, connections: int, warmup: float, duration: float) -> dict[str, Any]:
    """``users/ws_codec.py`` (the codec ``ChatUser`` uses) in a bare loop: the floor under ``ChatUser``'s cost."""
    import gevent

    from users.ws_codec import (
        OP_TEXT,
        FrameDecoder,
        build_request,
        check_accept,
        encode_frame,
        new_key,
        parse_response,
    )

    meter = Meter()

    def loop() -> None:
        u = urlsplit(url)
        sock = _tcp(url)
        key = new_key()
        sock.sendall(build_request(u.netloc, u.path or "/", key, subprotocols=[SUBPROTOCOL]))
        buf = b""
        resp = None
        while resp is None:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("bench server closed during the handshake")
            buf += data
            resp = parse_response(buf)
        check_accept(resp, key, [SUBPROTOCOL])
        dec = FrameDecoder()
        pending = dec.feed(resp.rest)  # may hold connection_established
        try:
            while not meter.stop:
                body, cid = user_message()
                t_send = time.perf_counter()
                sock.sendall(encode_frame(body))
                done = False
                while not done:
                    for fr in pending:
                        if fr.opcode == OP_TEXT:
                            msg = orjson.loads(fr.payload)
                            if msg["type"] == "agent_completed":
                                if msg.get("correlation_id") != cid:
                                    meter.errors += 1
                                done = True
                    pending = []
                    if not done:
                        data = sock.recv(65536)
                        if not data:
                            raise ConnectionError("bench server closed the connection")
                        pending = dec.feed(data)
                meter.count += 1
                meter.latencies.append((time.perf_counter() - t_send) * 1000)
        finally:
            sock.close()

    glets = [gevent.spawn(loop) for _ in range(connections)]
    gevent.sleep(warmup)
    meter.latencies.clear()
    out = _window(meter, 0.0, duration, gevent.sleep)
    lat = sorted(meter.latencies)
    out["p50_ms"] = lat[len(lat) // 2] if lat else None
    out["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None
    gevent.joinall(glets, timeout=10)
    gevent.killall([g for g in glets if not g.dead], timeout=2)
    out["errors"] = meter.errors + sum(1 for g in glets if g.exception is not None)
    return out


RUNNERS = {"codec-gevent": run_codec_gevent, "websocket-client": run_websocket_client, "wsproto-gevent": run_wsproto_gevent,
           "wsproto-plain": run_wsproto_plain}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.raw_clients", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="ws:// URL of the bench server (loopback)")
    ap.add_argument("--client", choices=CLIENTS, required=True, help="which raw client loop")
    ap.add_argument("--connections", type=int, default=50, help="connections, one message in flight each")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds before the measured window")
    ap.add_argument("--duration", type=float, default=10.0, help="measured window in seconds")
    a = ap.parse_args(argv)
    if urlsplit(a.url).scheme != "ws":
        print(f"error: --url {a.url!r} must be a ws:// URL of the bench server", file=sys.stderr)
        return 2
    out = RUNNERS[a.client](a.url, a.connections, a.warmup, a.duration)
    out.update(client=a.client, connections=a.connections)
    print(orjson.dumps(out).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
