"""A minimal, fast WebSocket server speaking just enough of docs/protocol.md for the benchmarks.

It is hand-rolled on ``asyncio.Protocol`` (uvloop when installed): no WebSocket library sits between the socket and
the reply, so the server costs a small fraction of what the load generator costs per round trip and is never the
bottleneck. With ``--processes N`` it runs N processes on one port (``SO_REUSEPORT``; the kernel spreads
connections over them).

What it does:

* accepts any upgrade on any path; echoes the first offered subprotocol that looks like a JWT placement
  (``jwt-auth.<jwt>``, ``jwt.<jwt>``, ``bearer.<jwt>``) exactly; the JWT is *not* verified (the ``sub`` claim, if
  readable, becomes ``user_id``);
* sends ``connection_established``;
* answers each ``user_message`` with ``agent_started``, ``agent_thinking``, ``tool_executing``, ``tool_completed``,
  ``agent_completed`` (realistic sizes, ≈ 1.6 KB in all; ``thread_id`` and ``correlation_id`` echoed), written in
  one ``write`` call;
* answers ``{"type": "ping"}`` with ``pong`` (and WebSocket ping frames with pong frames), unknown types with ``ack``;
* ``--delay D``: every agent reply (all five frames) is sent D seconds after the message arrived (accuracy bench);
* ``--stall-at T --stall-for N``: replies due in [T, T+N) seconds after server start are held until T+N
  (coordinated-omission demo); heartbeats are held too, as in a stalled event loop;
* ``--hosts N``: listens on N loopback addresses (``--host`` and the N-1 after it, 127.0.0.1 … 127.0.0.N, all
  loopback on Linux) on the same port, so that one client machine can hold more connections to it than the
  ephemeral port range has ports (≈ 28,000 per destination address);
* stops by itself after ``--max-seconds``.

Usage::

    python -m bench.fast_server --port 0 --processes 1 --delay 0.25
    # prints one line "READY port=NNNNN pids=..." on stdout once every process listens
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import logging
import multiprocessing
import os
import signal
import socket
import struct
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson

try:  # C masking from the websockets package (installed with uvicorn[standard]); pure Python otherwise
    from websockets.speedups import apply_mask as _apply_mask_c  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _apply_mask_c = None

logger = logging.getLogger(__name__)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
JWT_PREFIXES = ("jwt-auth.", "jwt.", "bearer.")
MAX_FRAME = 1 << 20


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """Unmask a client frame payload (C implementation when available)."""
    if _apply_mask_c is not None:
        return _apply_mask_c(data, mask)
    n = len(data)
    if n == 0:
        return b""
    full = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(full, "little")).to_bytes(n, "little")


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """An unmasked server frame (FIN set)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + struct.pack("!H", n) + payload
    return bytes((0x80 | opcode, 127)) + struct.pack("!Q", n) + payload


def _event_templates() -> list[bytes]:
    """JSON templates of the five events, with placeholders replaced per message.

    Sizes follow the reference backend's events (details under ``data``, tool events with ``tool_name``).
    """
    base = {"run_id": "__RUN__", "thread_id": "__TID__", "user_id": "__UID__", "timestamp": "__TS__"}
    events: list[dict[str, Any]] = [
        {"type": "agent_started", **base, "agent_name": "Supervisor",
         "data": {"status": "started", "message": "Agent pipeline started", "pipeline": ["Supervisor", "Triage",
                                                                                        "Data", "Optimizer"]}},
        {"type": "agent_thinking", **base, "agent_name": "Triage",
         "data": {"thought": "Classifying the request and deciding which data sources and tools are needed to "
                             "answer it; checking the thread history for context.", "stage": "triage", "step": 1}},
        {"type": "tool_executing", **base, "agent_name": "Data", "tool_name": "query_usage_metrics",
         "data": {"tool_name": "query_usage_metrics", "parameters": {"metric": "cost_per_request",
                                                                     "window": "7d", "group_by": "model",
                                                                     "limit": 50}}},
        {"type": "tool_completed", **base, "agent_name": "Data", "tool_name": "query_usage_metrics",
         "results": {"rows": 12, "summary": {"p50_cost": 0.0123, "p95_cost": 0.0456, "total": 123.45}},
         "data": {"status": "success", "duration_ms": 42.5}},
        {"type": "agent_completed", **base, "agent_name": "Optimizer",
         "data": {"status": "completed", "duration_ms": 1234.5, "tokens": {"prompt": 512, "completion": 256},
                  "result": {"summary": "Switching the long-context summarisation calls to a smaller model and "
                                        "caching the retrieval step lowers the cost per request by about 38 % "
                                        "while keeping the p95 latency under two seconds.",
                             "recommendations": ["Route summaries to the small model",
                                                 "Cache retrieval results for 10 minutes",
                                                 "Batch embedding calls"]}}},
    ]
    return [orjson.dumps(e) for e in events]


TEMPLATES = _event_templates()


class _Clock:
    """Cached ISO timestamp (refreshed at most every 10 ms: formatting a datetime per frame is waste)."""

    def __init__(self) -> None:
        self._at = 0.0
        self._iso = b""

    def iso(self) -> bytes:
        now = time.time()
        if now - self._at > 0.01:
            self._at = now
            self._iso = datetime.fromtimestamp(now, UTC).isoformat().encode()
        return self._iso


class ServerConfig:
    """What the protocol needs to know; shared by all connections of one process."""

    def __init__(self, delay: float, stall_at: float | None, stall_for: float, t0: float) -> None:
        self.delay = delay
        self.stall_at = stall_at
        self.stall_for = stall_for
        self.t0 = t0  # time.time() at server start (same in every process)
        self.clock = _Clock()
        self.connections = 0
        self.messages = 0
        self.holds: list[float] = []  # seconds each delayed reply was actually held (timer slack included)

    def release_time(self, loop: asyncio.AbstractEventLoop) -> float | None:
        """Loop time at which a reply due now (+delay) may go out; None = immediately."""
        due_wall = time.time() + self.delay
        if self.stall_at is not None:
            start = self.t0 + self.stall_at
            end = start + self.stall_for
            if start <= due_wall < end:
                return loop.time() + (end - time.time())
        if self.delay > 0:
            return loop.time() + self.delay
        return None


class BenchWSProtocol(asyncio.Protocol):
    """One WebSocket connection: handshake, frame parsing, replies."""

    __slots__ = ("cfg", "loop", "transport", "buf", "upgraded", "user_id", "frag", "seq")

    def __init__(self, cfg: ServerConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.cfg = cfg
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.user_id = b"bench-user"
        self.frag: bytearray | None = None
        self.seq = 0

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.cfg.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.cfg.connections -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self._abort()
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            self._handshake(head)
            if not self.upgraded:
                return
        self._frames()

    # -- handshake
    def _handshake(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        key = headers.get(b"sec-websocket-key")
        if key is None:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        proto = b""
        offered = headers.get(b"sec-websocket-protocol", b"")
        for p in offered.split(b","):
            p = p.strip()
            if p.decode("latin-1").startswith(JWT_PREFIXES):
                proto = p
                self.user_id = _jwt_sub(p.split(b".", 1)[1]) or self.user_id
                break
        resp = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n")
        if proto:
            resp += b"Sec-WebSocket-Protocol: " + proto + b"\r\n"
        resp += b"\r\n"
        self.upgraded = True
        welcome = orjson.dumps({"type": "connection_established",
                                "data": {"user_id": self.user_id.decode("latin-1"),
                                         "connection_id": f"bench-{os.getpid()}-{id(self):x}",
                                         "timestamp": self.cfg.clock.iso().decode()},
                                "timestamp": time.time()})
        self.transport.write(resp + frame(welcome))

    # -- frames
    def _frames(self) -> None:
        buf = self.buf
        while True:
            n = len(buf)
            if n < 2:
                return
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if n < 4:
                    return
                length = (buf[2] << 8) | buf[3]
                pos = 4
            elif length == 127:
                if n < 10:
                    return
                length = struct.unpack_from("!Q", buf, 2)[0]
                pos = 10
            if length > MAX_FRAME:
                self._abort()
                return
            masked = b1 & 0x80
            if masked:
                if n < pos + 4 + length:
                    return
                mask = bytes(buf[pos: pos + 4])
                payload = apply_mask(bytes(buf[pos + 4: pos + 4 + length]), mask)
                del buf[: pos + 4 + length]
            else:
                if n < pos + length:
                    return
                payload = bytes(buf[pos: pos + length])
                del buf[: pos + length]
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode == 0x0:  # continuation
                if self.frag is None:
                    continue
                self.frag += payload
                if fin:
                    payload, self.frag = bytes(self.frag), None
                    self._message(payload)
            elif opcode in (0x1, 0x2):
                if fin:
                    self._message(payload)
                else:
                    self.frag = bytearray(payload)
            elif opcode == 0x8:  # close: echo the code and go
                if self.transport is not None:
                    self.transport.write(frame(payload[:2], 0x8))
                    self.transport.close()
                return
            elif opcode == 0x9:
                self._send(frame(payload, 0xA), immediate=False)
            if self.transport is None:
                return

    def _message(self, payload: bytes) -> None:
        try:
            msg = orjson.loads(payload)
            kind = msg.get("type")
        except (orjson.JSONDecodeError, AttributeError):
            self._send(frame(orjson.dumps({"type": "error_message", "error_code": "JSON_PARSE_ERROR",
                                           "error_message": "frame is not a JSON object",
                                           "timestamp": time.time()})), immediate=True)
            return
        if kind == "user_message":
            self._reply(msg.get("payload") or {})
        elif kind == "ping":
            self._send(frame(orjson.dumps({"type": "pong", "data": {"timestamp": msg.get("timestamp"),
                                                                    "user_id": self.user_id.decode("latin-1")}})),
                       immediate=False)
        else:
            self._send(frame(orjson.dumps({"type": "ack", "received_type": kind})), immediate=True)

    def _reply(self, payload: dict[str, Any]) -> None:
        cfg = self.cfg
        cfg.messages += 1
        self.seq += 1
        tid = payload.get("thread_id") or f"thread-{id(self):x}-{self.seq}"
        cid = payload.get("correlation_id")
        tid_json = orjson.dumps(tid)
        if cid is not None:
            tid_json += b',"correlation_id":' + orjson.dumps(cid)
        run = b'"run-%x-%d"' % (id(self), self.seq)
        uid = b'"' + self.user_id + b'"'
        ts = b'"' + cfg.clock.iso() + b'"'
        out = []
        for t in TEMPLATES:
            body = (t.replace(b'"__TID__"', tid_json).replace(b'"__RUN__"', run)
                    .replace(b'"__UID__"', uid).replace(b'"__TS__"', ts))
            out.append(frame(body))
        self._send(b"".join(out), immediate=False, reply=True)

    def _send(self, data: bytes, immediate: bool, reply: bool = False) -> None:
        if self.transport is None:
            return
        at = None if immediate else self.cfg.release_time(self.loop)
        if at is None:
            self.transport.write(data)
        else:
            self.loop.call_at(at, self._write_later, data, time.perf_counter() if reply else None)

    def _write_later(self, data: bytes, arrived: float | None) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            if arrived is not None and len(self.cfg.holds) < 2_000_000:
                self.cfg.holds.append(time.perf_counter() - arrived)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _jwt_sub(token: bytes) -> bytes | None:
    """The unverified ``sub`` claim of a JWT (the bench server does not check tokens)."""
    try:
        body = token.split(b".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        sub = claims.get("sub")
        return sub.encode() if isinstance(sub, str) else None
    except (IndexError, ValueError, binascii.Error, orjson.JSONDecodeError, AttributeError):
        return None


def raise_fd_limit(want: int = 65536) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards ``want`` (up to the hard limit); returns the new soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        return new
    return soft


def _listen_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _write_stats(path: str, cfg: ServerConfig) -> None:
    holds = sorted(cfg.holds)

    def pct(q: float) -> float | None:
        return holds[min(len(holds) - 1, int(q / 100 * len(holds)))] * 1000 if holds else None

    with open(f"{path}.{os.getpid()}", "wb") as f:
        f.write(orjson.dumps({"pid": os.getpid(), "messages": cfg.messages, "delayed_replies": len(holds),
                              "hold_p50_ms": pct(50), "hold_p99_ms": pct(99),
                              "hold_max_ms": holds[-1] * 1000 if holds else None}))


def loopback_hosts(first: str, count: int) -> list[str]:
    """``count`` consecutive IPv4 addresses from ``first`` (127.0.0.1, 127.0.0.2 …); ValueError outside 127/8."""
    import ipaddress

    start = ipaddress.IPv4Address(first if first != "localhost" else "127.0.0.1")
    hosts = [str(start + i) for i in range(count)]
    if any(not ipaddress.IPv4Address(h).is_loopback for h in hosts):
        raise ValueError(f"{count} addresses from {first} leave 127.0.0.0/8")
    return hosts


def _serve(host: str | list[str], port: int, cfg: ServerConfig, max_seconds: float, ready: Any,
           stats_file: str | None = None) -> None:
    raise_fd_limit()
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    servers = []
    for h in [host] if isinstance(host, str) else host:
        sock = _listen_socket(h, port)
        sock.listen(4096)
        servers.append(loop.run_until_complete(
            loop.create_server(lambda: BenchWSProtocol(cfg, loop), sock=sock, backlog=4096)))
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    loop.call_later(max_seconds, lambda: stop.done() or stop.set_result(None))
    if stats_file:  # SIGUSR1: write the counters now (a bench reads the message count mid-run)
        loop.add_signal_handler(signal.SIGUSR1, _write_stats, stats_file, cfg)
    if ready is not None:
        ready.put(os.getpid())
    loop.run_until_complete(stop)
    for server in servers:
        server.close()
    if stats_file:
        _write_stats(stats_file, cfg)
    logger.info("bench server %d: %d messages answered", os.getpid(), cfg.messages)


def start_processes(host: str | list[str], port: int, processes: int, delay: float, stall_at: float | None,
                    stall_for: float, max_seconds: float,
                    stats_file: str | None = None) -> tuple[int, list[multiprocessing.Process]]:
    """Start ``processes`` server processes on one port (of every address of ``host``); returns (port, processes)
    once all listen."""
    hosts = [host] if isinstance(host, str) else host
    holder = _listen_socket(hosts[0], port)  # reserves the port in the SO_REUSEPORT group; never listens
    port = holder.getsockname()[1]
    t0 = time.time()
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Queue()
    procs = []
    for _ in range(processes):
        cfg = ServerConfig(delay, stall_at, stall_for, t0)
        p = ctx.Process(target=_serve, args=(hosts, port, cfg, max_seconds, ready, stats_file), daemon=True)
        p.start()
        procs.append(p)
    for _ in range(processes):
        ready.get(timeout=30)
    holder.close()
    return port, procs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fast_server", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="bind address (loopback only; default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port, 0 = a free one (printed in the READY line)")
    ap.add_argument("--processes", type=int, default=1, help="server processes sharing the port (SO_REUSEPORT)")
    ap.add_argument("--hosts", type=int, default=1,
                    help="listen on this many consecutive loopback addresses from --host (default 1)")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to hold each reply (accuracy bench)")
    ap.add_argument("--stall-at", type=float, default=None, help="seconds after start when replies stall")
    ap.add_argument("--stall-for", type=float, default=2.0, help="stall length in seconds (default 2)")
    ap.add_argument("--max-seconds", type=float, default=900.0, help="stop by itself after this (default 900)")
    ap.add_argument("--stats-file", default=None,
                    help="on stop, each process writes FILE.<pid>: messages answered and the actual hold time "
                         "p50/p99 of delayed replies")
    a = ap.parse_args(argv)
    if not a.host.startswith("127.") and a.host not in ("localhost", "::1"):
        print(f"error: --host {a.host!r} is not a loopback address; the bench server binds loopback only "
              "(use 127.0.0.1)", file=sys.stderr)
        return 2
    if a.processes < 1 or a.delay < 0 or a.stall_for < 0 or a.max_seconds <= 0:
        print("error: --processes must be >= 1 and --delay/--stall-for >= 0, --max-seconds > 0", file=sys.stderr)
        return 2
    try:
        hosts = loopback_hosts(a.host, a.hosts) if a.hosts > 1 else a.host
    except ValueError as exc:
        print(f"error: --hosts: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    port, procs = start_processes(hosts, a.port, a.processes, a.delay, a.stall_at, a.stall_for, a.max_seconds,
                                  a.stats_file)
    print(f"READY port={port} pids={','.join(str(p.pid) for p in procs)}", flush=True)

    def _term(*_: Any) -> None:
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    for p in procs:
        p.join(a.max_seconds + 30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
