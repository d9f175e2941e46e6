"""A hostile chat WebSocket server for tests: raw asyncio, hand-written RFC 6455 handshake and framing (no WebSocket
library), speaking just enough of the suite's wire protocol (``connection_established``, ``user_message`` → the five
agent events with ``thread_id`` and ``correlation_id`` echoed, ``ping`` → ``pong``, ``POST /auth/login``) to be a
backend a ``ChatUser`` can load, and misbehaving on purpose in one of these modes:

==================  =================================================================================================
``normal``          answers every message with the five events after ``delay`` seconds
``never_answers``   accepts connections and messages, never sends an agent event or a pong
``stall_at``        ``normal`` until ``at`` seconds after start, then never answers again (events or pongs)
``dies``            ``normal`` until ``at``, then drops every connection (TCP reset) and stops listening; for a real
                    process death run it as a subprocess and ``kill -9`` it (or give ``--at``: it SIGKILLs itself)
``duplicates``      ``normal``, but ``agent_completed`` is sent twice per reply
``garbage``         ``normal``, plus a non-JSON text frame, a binary frame and an invalid-UTF-8 text frame before
                    every reply
``refuses``         answers every WebSocket upgrade with ``HTTP 503`` and closes
``errors``          answers every message after ``delay`` with ``agent_started`` and then an ``agent_error`` frame
                    (``DEPENDENCY_TIMEOUT``): a graceful failure, never a completion
``hangs``           answers every message after ``delay`` with ``agent_started`` and then nothing: a hang after
                    the first event (no ``WS events missing``; only the hang deadline catches it)
==================  =================================================================================================

Tokens are not checked (any token, or none, is accepted; the first offered ``jwt-auth.``/``jwt.``/``bearer.``
subprotocol is echoed). Every wait has a deadline; :meth:`HostileServer.stop` closes every connection.

Usage in a test (in-process, its own event loop in a background thread)::

    with HostileServer("never_answers") as server:
        run_locust("--host", server.ws_url, ...)

As a process (prints ``READY port=N`` once it listens; SIGTERM stops it, SIGKILL kills it)::

    python -m tests.hostile_ws --mode dies --port 0 [--at 4] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

__all__ = ["HostileServer", "MODES"]

MODES = ("normal", "never_answers", "stall_at", "dies", "duplicates", "garbage", "refuses", "errors", "hangs")
EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
JWT_PREFIXES = ("jwt-auth.", "jwt.", "bearer.")
HEADER_DEADLINE_S = 10.0
MAX_HEADER = 64 * 1024
MAX_FRAME = 1 << 20
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
GARBAGE = (
    (OP_TEXT, b"this is {not json"),
    (OP_BINARY, b"\x00\x01\x02binary\xff"),
    (OP_TEXT, b'{"type": "agent_started", "x": "\xff\xfe\xc3"}'),  # invalid UTF-8
)


def encode(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """An unmasked server frame (FIN set)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One client frame (masked, per RFC 6455 §5.3), unmasked; fragments are returned as they come."""
    b0, b1 = await reader.readexactly(2)
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    if length > MAX_FRAME:
        raise ConnectionError(f"client frame of {length} bytes")
    key = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(length)
    if b1 & 0x80 and length:
        full = (key * (length // 4 + 1))[:length]
        data = (int.from_bytes(data, "little") ^ int.from_bytes(full, "little")).to_bytes(length, "little")
    return b0 & 0x0F, data


class HostileServer:
    """The server; ``start()`` binds a free port on 127.0.0.1 (or ``port``) and serves from a background thread."""

    def __init__(self, mode: str = "normal", *, at: float | None = None, delay: float = 0.05, port: int = 0,
                 host: str = "127.0.0.1") -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        if mode in ("stall_at", "dies") and at is None:
            raise ValueError(f"mode {mode!r} needs at= (seconds after start)")
        self.mode = mode
        self.at = at
        self.delay = delay
        self.host = host
        self.port = port
        self.started_at = 0.0
        self.connections = 0
        self.messages = 0
        self.replies = 0
        self.logins = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopped: asyncio.Event | None = None
        self._ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> HostileServer:
        """Start serving; returns once the port listens (RuntimeError after ``timeout`` s)."""
        self._thread = threading.Thread(target=self._run_thread, name=f"hostile-ws-{self.mode}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"hostile server ({self.mode}) did not listen within {timeout:g} s")
        if self._error is not None:
            raise RuntimeError(f"hostile server ({self.mode}) failed to start: {self._error}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every connection; wait (``timeout`` s at most) for the thread to end."""
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopped.set)
            except RuntimeError:  # the loop already ended
                pass
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"hostile server ({self.mode}) did not stop within {timeout:g} s")

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run_thread(self) -> None:
        try:
            asyncio.run(self.serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            self._ready.set()

    async def serve(self, on_ready: Any = None) -> None:
        """Serve until :meth:`stop` (or, as a process, a signal). ``on_ready(port)`` runs once it listens."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self._server = await asyncio.start_server(self._handle, sock=sock, backlog=512)
        self.port = sock.getsockname()[1]
        self.started_at = time.monotonic()
        if self.mode == "dies":
            self._loop.call_later(float(self.at or 0.0), self._die)
        if on_ready is not None:
            on_ready(self.port)
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            self._close_all(abort=False)
            self._server.close()

    def _die(self) -> None:
        """Drop every connection at once (RST, no close frame) and stop listening."""
        if self._server is not None:
            self._server.close()
        self._close_all(abort=True)

    def _close_all(self, abort: bool) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            if abort:
                sock = transport.get_extra_info("socket")
                if sock is not None:  # SO_LINGER 0: close() sends a reset
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError:
                        pass
                transport.abort()
            else:
                transport.close()
        self._writers.clear()

    # -- behaviour -------------------------------------------------------------------------------------------------
    def _answering(self) -> bool:
        """Whether the server still answers at this moment (``stall_at``: not from ``at`` on)."""
        if self.mode == "never_answers":
            return False
        if self.mode == "stall_at":
            return time.monotonic() - self.started_at < float(self.at or 0.0)
        return True

    def _dead(self) -> bool:
        return self.mode == "dies" and time.monotonic() - self.started_at >= float(self.at or 0.0)

    # -- connections -----------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._dead():
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_DEADLINE_S)
            if len(head) > MAX_HEADER:
                return
            request_line, headers = self._parse_head(head)
            method, _, rest = request_line.partition(" ")
            path = rest.split(" ", 1)[0]
            if method == "POST":
                await self._login(reader, writer, path, headers)
                return
            if headers.get("upgrade", "").lower() != "websocket" or "sec-websocket-key" not in headers:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n"
                             b"Connection: close\r\n\r\n{\"status\":\"ok\"}")
                await writer.drain()
                return
            if self.mode == "refuses":
                body = b"service unavailable"
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                return
            await self._websocket(reader, writer, headers)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError, OSError,
                ValueError):
            pass
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.transport.close()

    @staticmethod
    def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return lines[0], headers

    async def _login(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                     headers: dict[str, str]) -> None:
        """``POST /auth/login``: any credentials get an (unsigned, unchecked) access token."""
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await asyncio.wait_for(reader.readexactly(min(length, MAX_HEADER)), HEADER_DEADLINE_S)
        if path.rstrip("/") != "/auth/login":
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            self.logins += 1
            body = json.dumps({"access_token": f"hostile-token-{next(self._ids)}", "token_type": "bearer",
                               "expires_in": 3600}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    async def _websocket(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         headers: dict[str, str]) -> None:
        accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest()).decode()
        offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        proto = next((p for p in offered if p.startswith(JWT_PREFIXES)), None)
        response = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept}\r\n")
        if proto is not None:
            response += f"Sec-WebSocket-Protocol: {proto}\r\n"
        writer.write((response + "\r\n").encode("latin-1"))
        self.connections += 1
        user_id = f"hostile-user-{self.connections}"
        welcome = {"type": "connection_established",
                   "data": {"user_id": user_id, "connection_id": f"conn-{self.connections}", "timestamp": _iso()},
                   "timestamp": time.time()}
        writer.write(encode(json.dumps(welcome).encode()))
        await writer.drain()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                opcode, data = await read_frame(reader)
                if opcode == OP_CLOSE:
                    writer.write(encode(data[:2] or struct.pack("!H", 1000), OP_CLOSE))
                    await writer.drain()
                    return
                if opcode == OP_PING:
                    writer.write(encode(data, OP_PONG))
                    continue
                if opcode != OP_TEXT:
                    continue
                try:
                    frame = json.loads(data)
                except ValueError:
                    continue
                if not isinstance(frame, dict):
                    continue
                kind = frame.get("type")
                if kind == "ping":
                    if self._answering():
                        pong = {"type": "pong", "data": {"timestamp": frame.get("timestamp"), "user_id": user_id}}
                        writer.write(encode(json.dumps(pong).encode()))
                elif kind == "user_message":
                    self.messages += 1
                    payload = frame.get("payload") if isinstance(frame.get("payload"), dict) else {}
                    task = asyncio.create_task(self._reply(writer, payload, user_id))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    writer.write(encode(json.dumps({"type": "ack", "received_type": kind}).encode()))
        finally:
            for task in tasks:
                task.cancel()

    async def _reply(self, writer: asyncio.StreamWriter, payload: dict[str, Any], user_id: str) -> None:
        if not self._answering():
            return
        await asyncio.sleep(self.delay)
        if not self._answering() or writer.transport.is_closing():
            return
        thread_id = payload.get("thread_id") or f"thread-{next(self._ids)}"
        run_id = f"run-{next(self._ids)}"
        out = bytearray()
        if self.mode == "garbage":
            for opcode, junk in GARBAGE:
                out += encode(junk, opcode)
        events = list(EVENTS) + (["agent_completed"] if self.mode == "duplicates" else [])
        if self.mode in ("errors", "hangs"):
            events = ["agent_started", "agent_error"] if self.mode == "errors" else ["agent_started"]
        for kind in events:
            event: dict[str, Any] = {"type": kind, "run_id": run_id, "thread_id": thread_id, "user_id": user_id,
                                     "agent_name": "Supervisor", "timestamp": _iso(), "data": {"status": kind}}
            if kind == "agent_error":
                event["data"] = {"error_message": "redis admit timed out",
                                 "error_context": {"error_code": "DEPENDENCY_TIMEOUT"}}
            if payload.get("correlation_id"):
                event["correlation_id"] = payload["correlation_id"]
            if kind.startswith("tool_"):
                event["tool_name"] = "query_usage_metrics"
            out += encode(json.dumps(event).encode())
        writer.write(bytes(out))
        self.replies += 1
        await writer.drain()


def main(argv: list[str] | None = None) -> None:
    """Command line: serve one mode on ``--port`` until SIGTERM (``dies --at T``: SIGKILL itself at T)."""
    parser = argparse.ArgumentParser(prog="python -m tests.hostile_ws", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, default="normal")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--at", type=float, default=None, help="stall_at / dies: seconds after start")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds before each reply (default 0.05)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop by itself after this (default 300)")
    args = parser.parse_args(argv)
    mode = args.mode
    at = args.at
    if mode == "dies":
        # as a process, dying is the process's death: SIGKILL itself at --at (or wait for the test's kill -9)
        mode = "normal"
    server = HostileServer(mode, at=at, delay=args.delay, port=args.port)

    def ready(port: int) -> None:
        print(f"READY port={port}", flush=True)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        serving = asyncio.create_task(server.serve(on_ready=ready))
        while server._stopped is None:
            await asyncio.sleep(0.01)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server._stopped.set)
        loop.call_later(args.max_seconds, server._stopped.set)
        if args.mode == "dies" and at is not None:
            loop.call_later(at, os.kill, os.getpid(), signal.SIGKILL)
        await serving

    asyncio.run(run())
    sys.exit(0)


if __name__ == "__main__":
    main()
