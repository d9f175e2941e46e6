"""A small sans-IO RFC 6455 client codec: the opening handshake and the frame layer. No sockets here.

Why not wsproto's frame layer: on this machine wsproto spends ≈ 44 µs decoding the five agent-event frames of one
reply (its per-frame event objects and incremental UTF-8 decoder), this decoder ≈ 3 µs, and the chat user's CPU
goal per round trip is ≈ 84 µs in total (issue 4). The codec is interop-tested against wsproto as the peer
(``tests/unit/test_chat_codec.py``) and against the reference backend (uvicorn) in the integration tests.

Text payloads are handed on as ``bytes``: orjson parses (and validates UTF-8 of) bytes directly.

Usage::

    key = new_key()
    sock.sendall(build_request("example.com:443", "/ws", key, subprotocols=["jwt-auth.<jwt>"]))
    response = parse_response(buffer)            # None until the header block is complete
    check_accept(response, key)                  # raises HandshakeError on a bad Sec-WebSocket-Accept
    decoder = FrameDecoder(max_size=1 << 20)
    for frame in decoder.feed(response.rest + more_bytes): ...
    sock.sendall(encode_frame(b'{"type": "ping"}'))
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from config.errors import SuiteError

__all__ = [
    "OP_CONT",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OVERSIZE",
    "HandshakeError",
    "FrameError",
    "HandshakeResponse",
    "Frame",
    "FrameDecoder",
    "new_key",
    "accept_key",
    "build_request",
    "parse_response",
    "check_accept",
    "encode_frame",
    "random_id",
    "encode_close",
    "parse_close",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
OVERSIZE = -1
"""Pseudo opcode: a data message over ``max_size`` was skipped (its payload is not kept)."""

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEADER_BLOCK = 65536


class HandshakeError(SuiteError):
    """The server did not switch protocols; ``status`` is the HTTP status (0 when the response was not HTTP)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class FrameError(SuiteError):
    """The server broke the frame protocol; ``close_code`` is what the client should close with."""

    def __init__(self, message: str, close_code: int = 1002) -> None:
        super().__init__(message)
        self.close_code = close_code


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    status: int
    reason: str
    headers: dict[str, str]
    """Lower-cased header names; repeated headers joined with ``", "``."""
    rest: bytes
    """Bytes after the header block (the first frames may arrive in the same packet)."""


class Frame(NamedTuple):
    """A complete message (fragments joined) or a control frame; ``opcode`` ``OVERSIZE`` = skipped message.

    A NamedTuple rather than a frozen dataclass: one is built per frame on the hot path."""

    opcode: int
    payload: bytes
    size: int = 0
    """Payload size in bytes (for ``OVERSIZE`` the size of the skipped message so far)."""


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def build_request(
    host: str,
    target: str,
    key: str,
    subprotocols: Iterable[str] = (),
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """The HTTP/1.1 upgrade request."""
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    protos = list(subprotocols)
    if protos:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(protos))
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_response(buffer: bytes) -> HandshakeResponse | None:
    """Parse the response head once complete (``None`` while incomplete). Raises on a non-HTTP answer."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > _MAX_HEADER_BLOCK:
            raise HandshakeError("handshake response header block larger than 64 KiB")
        if not (buffer.startswith(b"HTTP/") or b"HTTP/".startswith(buffer)):
            raise HandshakeError(f"not an HTTP response: {buffer[:40]!r}")
        return None
    head = buffer[:end].decode("latin-1")
    rest = buffer[end + 4 :]
    status_line, _, header_block = head.partition("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HandshakeError(f"not an HTTP response: {status_line[:60]!r}")
    headers: dict[str, str] = {}
    for line in header_block.split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HandshakeError(f"malformed response header line {line[:60]!r}")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return HandshakeResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, rest)


def check_accept(response: HandshakeResponse, key: str, offered: Iterable[str] = ()) -> str | None:
    """Validate a 101 answer; the subprotocol the server picked (``None`` if none). Raises ``HandshakeError``."""
    if response.status != 101:
        raise HandshakeError(f"HTTP {response.status} {response.reason}".strip(), response.status)
    h = response.headers
    if h.get("upgrade", "").lower() != "websocket":
        raise HandshakeError("101 response without 'Upgrade: websocket'", 101)
    if "upgrade" not in h.get("connection", "").lower():
        raise HandshakeError("101 response without 'Connection: Upgrade'", 101)
    if h.get("sec-websocket-accept") != accept_key(key):
        raise HandshakeError("101 response with a wrong Sec-WebSocket-Accept", 101)
    proto = h.get("sec-websocket-protocol")
    if proto is not None and proto not in set(offered):
        raise HandshakeError("server chose a subprotocol the client did not offer", 101)
    return proto


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    full = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(full, "little")).to_bytes(n, "little")


_pack_h = struct.Struct("!BBH").pack
_pack_q = struct.Struct("!BBQ").pack


def encode_frame(payload: bytes, opcode: int = OP_TEXT, fin: bool = True) -> bytes:
    """A masked client frame (RFC 6455 §5.3: clients always mask, with a fresh random key)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 65536:
        head = _pack_h(b0, 0x80 | 126, n)
    else:
        head = _pack_q(b0, 0x80 | 127, n)
    key = _mask_key()
    return head + key + _mask(payload, key)


class EntropyPool:
    """``os.urandom`` bytes fetched in 4 KiB batches: one syscall per ~1000 masking keys or ~250 ids instead of
    one each (the syscall showed up at ~3 % of the chat user's CPU)."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        pos = self._pos
        if pos + n > len(self._buf):
            self._buf = os.urandom(max(4096, n))
            pos = 0
        self._pos = pos + n
        return self._buf[pos : pos + n]


_entropy = EntropyPool()


def _mask_key() -> bytes:
    return _entropy.take(4)


def random_id() -> str:
    """32 hex digits from the OS's CSPRNG (a fresh thread/correlation id)."""
    return _entropy.take(16).hex()


def encode_close(code: int = 1000, reason: str = "") -> bytes:
    body = struct.pack("!H", code) + reason.encode()[:120]
    return encode_frame(body, OP_CLOSE)


def parse_close(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a close frame's payload; 1005 when it has none."""
    if len(payload) < 2:
        return 1005, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


class FrameDecoder:
    """Feed bytes from the server; get complete messages and control frames out.

    Raises :class:`FrameError` on a protocol violation (masked server frame, reserved bits, unknown opcode,
    fragmented or oversized control frame, a continuation without a start). A data message larger than
    ``max_size`` is skipped without buffering it and reported once as ``Frame(OVERSIZE, b"", size)``.
    """

    __slots__ = ("max_size", "_buf", "_frag_op", "_frags", "_frag_len", "_skip", "_skip_fin", "_skipping_msg")

    def __init__(self, max_size: int = 1 << 20) -> None:
        self.max_size = max_size
        self._buf = b""
        self._frag_op = 0  # opcode of the message being reassembled (0 = none)
        self._frags: list[bytes] = []
        self._frag_len = 0
        self._skip = 0  # payload bytes still to discard of an oversize frame
        self._skip_fin = True  # whether that frame ends its message
        self._skipping_msg = False  # discarding the remaining fragments of an oversize message

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        buf = self._buf + data if self._buf else data
        pos = 0
        n = len(buf)
        if self._skip:
            take = min(self._skip, n)
            self._skip -= take
            pos = take
            if not self._skip and self._skip_fin:
                self._skipping_msg = False
        max_size = self.max_size
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:
                raise FrameError("server frame is masked (RFC 6455 §5.1 forbids it)")
            if b0 & 0x70:
                raise FrameError("reserved bits set without a negotiated extension")
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode >= 0x8:
                if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                    raise FrameError(f"unknown control opcode {opcode:#x}")
                if not fin or length > 125:
                    raise FrameError("control frame fragmented or longer than 125 bytes")
            elif opcode not in (OP_CONT, OP_TEXT, OP_BINARY):
                raise FrameError(f"unknown data opcode {opcode:#x}")
            start = pos + head
            # oversize data: discard without buffering
            if opcode < 0x8 and (self._skipping_msg or length > max_size or self._frag_len + length > max_size):
                if opcode == OP_CONT and not self._frag_op and not self._skipping_msg:
                    raise FrameError("continuation frame without a message to continue")
                if opcode != OP_CONT and (self._frag_op or self._skipping_msg):
                    raise FrameError("new data frame while a fragmented message is unfinished")
                if not self._skipping_msg:
                    out.append(Frame(OVERSIZE, b"", self._frag_len + length))
                self._skipping_msg = not fin
                self._frag_op = 0
                self._frags = []
                self._frag_len = 0
                end = start + length
                if end > n:
                    self._skip = end - n
                    self._skip_fin = bool(fin)
                    self._skipping_msg = True
                    pos = n
                    break
                pos = end
                continue
            end = start + length
            if end > n:
                break
            payload = buf[start:end]
            pos = end
            if opcode >= 0x8:
                out.append(Frame(opcode, payload, length))
            elif opcode == OP_CONT:
                if not self._frag_op:
                    raise FrameError("continuation frame without a message to continue")
                self._frags.append(payload)
                self._frag_len += length
                if fin:
                    out.append(Frame(self._frag_op, b"".join(self._frags), self._frag_len))
                    self._frag_op = 0
                    self._frags = []
                    self._frag_len = 0
            else:
                if self._frag_op:
                    raise FrameError("new data frame while a fragmented message is unfinished")
                if fin:
                    out.append(Frame(opcode, payload, length))
                else:
                    self._frag_op = opcode
                    self._frags = [payload]
                    self._frag_len = length
        self._buf = buf[pos:] if pos < n else b""
        return out
