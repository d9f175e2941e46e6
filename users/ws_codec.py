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
import zlib
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
    "DEFLATE_OFFER",
    "Deflate",
    "negotiate_extensions",
    "build_connect",
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


_new_tuple = tuple.__new__
"""``_new_tuple(Frame, (opcode, payload, size))`` is ``Frame(opcode, payload, size)`` without the NamedTuple's
``__new__``, a Python function (≈ 0.3 µs a frame; the hot paths build one per frame)."""


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


def build_connect(authority: str, proxy_authorization: str | None = None) -> bytes:
    """An HTTP/1.1 ``CONNECT host:port`` request (a tunnel through an HTTP proxy, RFC 9110 §9.3.6)."""
    if any(c in authority for c in "\r\n /"):
        raise ValueError(f"bad CONNECT authority {authority!r}")
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy_authorization:
        lines.append(f"Proxy-Authorization: {proxy_authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


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
    """``payload`` XOR the 4-byte ``key`` repeated (RFC 6455 §5.3), in Python: :data:`apply_mask` when the C one is
    not there."""
    n = len(payload)
    if n == 0:
        return payload
    full = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(full, "little")).to_bytes(n, "little")


try:  # websockets' C masking (≈ 0.15 µs for a 200-byte message, the Python one ≈ 1.3; issue 17)
    from websockets.speedups import apply_mask
except ImportError:  # a build without its C extension
    apply_mask = _mask  # type: ignore[assignment]


_pack_h = struct.Struct("!BBH").pack
_pack_q = struct.Struct("!BBQ").pack


def encode_frame(payload: bytes, opcode: int = OP_TEXT, fin: bool = True, rsv1: bool = False) -> bytes:
    """A masked client frame (RFC 6455 §5.3: clients always mask, with a fresh random key); ``rsv1`` marks a
    permessage-deflate compressed message."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 65536:
        head = _pack_h(b0, 0x80 | 126, n)
    else:
        head = _pack_q(b0, 0x80 | 127, n)
    key = _mask_key()
    return head + key + apply_mask(payload, key)


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

    __slots__ = ("max_size", "deflate", "_buf", "_frag_op", "_frags", "_frag_len", "_frag_z", "_skip", "_skip_fin",
                 "_skipping_msg")

    def __init__(self, max_size: int = 1 << 20, deflate: Deflate | None = None) -> None:
        self.max_size = max_size
        self.deflate = deflate
        """Negotiated permessage-deflate: messages with RSV1 are inflated (without it, RSV1 is a protocol error)."""
        self._frag_z = False  # the message being reassembled is compressed
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
            if b0 == 0x81 and b1 <= 126 and not self._frag_op and not self._skipping_msg:
                # the common frame, a whole text message (FIN, no reserved bits, unmasked, < 64 KiB) that continues
                # no fragmented one: none of the checks below can fail it but its size
                if b1 == 126:
                    if n - pos < 4:
                        break
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                    start = pos + 4
                else:
                    length = b1
                    start = pos + 2
                if length <= max_size:
                    end = start + length
                    if end > n:
                        break
                    out.append(_new_tuple(Frame, (OP_TEXT, buf[start:end], length)))
                    pos = end
                    continue
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
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            compressed = False
            if b0 & 0x70:
                if b0 & 0x70 != 0x40 or self.deflate is None:
                    raise FrameError("reserved bits set without a negotiated extension")
                if opcode not in (OP_TEXT, OP_BINARY):
                    raise FrameError("RSV1 (compressed) set on a control or continuation frame")
                compressed = True
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
                if (compressed or (opcode == OP_CONT and self._frag_z)) and self.deflate is not None \
                        and self.deflate.server_takeover:
                    raise FrameError(f"compressed message larger than {max_size} bytes; the connection cannot "
                                     "continue (its deflate window is lost)", 1009)
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
                    whole = b"".join(self._frags)
                    out.append(self._inflated(self._frag_op, whole) if self._frag_z
                               else Frame(self._frag_op, whole, self._frag_len))
                    self._frag_op = 0
                    self._frags = []
                    self._frag_len = 0
                    self._frag_z = False
            else:
                if self._frag_op:
                    raise FrameError("new data frame while a fragmented message is unfinished")
                if fin:
                    out.append(self._inflated(opcode, payload) if compressed else Frame(opcode, payload, length))
                else:
                    self._frag_op = opcode
                    self._frags = [payload]
                    self._frag_len = length
                    self._frag_z = compressed
        self._buf = buf[pos:] if pos < n else b""
        return out

    def _inflated(self, opcode: int, payload: bytes) -> Frame:
        assert self.deflate is not None
        data = self.deflate.inflate(payload, self.max_size)
        if data is None:
            return Frame(OVERSIZE, b"", self.max_size + 1)
        return Frame(opcode, data, len(data))


# -- permessage-deflate (RFC 7692) --------------------------------------------------------------------------------
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
"""What the client offers: the server may also choose its window and either side's context takeover."""
_TAIL = b"\x00\x00\xff\xff"


class Deflate:
    """The negotiated permessage-deflate of one connection: inflates the server's compressed messages (RSV1) and
    compresses the client's own when ``compress_outgoing``. Keeps each direction's LZ77 window between messages
    unless the server said ``server_no_context_takeover`` / ``client_no_context_takeover``."""

    __slots__ = ("server_takeover", "client_takeover", "server_bits", "client_bits", "compress_outgoing",
                 "_inflater", "_deflater")

    def __init__(self, params: dict[str, str | None], compress_outgoing: bool = True) -> None:
        self.server_takeover = "server_no_context_takeover" not in params
        self.client_takeover = "client_no_context_takeover" not in params
        self.server_bits = _window_bits(params, "server_max_window_bits")
        self.client_bits = _window_bits(params, "client_max_window_bits")
        # zlib cannot write raw deflate with an 8-bit window (it silently uses 9): send uncompressed then
        self.compress_outgoing = compress_outgoing and self.client_bits >= 9
        self._inflater: zlib._Decompress | None = None
        self._deflater: zlib._Compress | None = None

    def inflate(self, payload: bytes, max_size: int) -> bytes | None:
        """The message's bytes, or ``None`` when they would exceed ``max_size`` (skipped). Raises FrameError on
        data that is not deflate, or on an oversize message whose window the next message still needs."""
        inflater = self._inflater
        if inflater is None or not self.server_takeover:
            inflater = self._inflater = zlib.decompressobj(-15)  # a 15-bit window reads any smaller one too
        try:
            data = inflater.decompress(payload + _TAIL, max_size + 1)
        except zlib.error as exc:
            raise FrameError(f"compressed message is not valid deflate data ({exc})", 1007) from None
        if len(data) > max_size or inflater.unconsumed_tail:
            if self.server_takeover:
                raise FrameError(f"compressed message inflates beyond {max_size} bytes; the connection cannot "
                                 "continue (its deflate window is lost)", 1009)
            self._inflater = None
            return None
        return data

    def deflate(self, payload: bytes) -> bytes:
        """``payload`` compressed as one permessage-deflate message (without the ``00 00 ff ff`` tail)."""
        deflater = self._deflater
        if deflater is None or not self.client_takeover:
            deflater = self._deflater = zlib.compressobj(6, zlib.DEFLATED, -self.client_bits)
        data = deflater.compress(payload) + deflater.flush(zlib.Z_SYNC_FLUSH)
        return data[:-4] if data.endswith(_TAIL) else data


def _window_bits(params: dict[str, str | None], name: str) -> int:
    value = params.get(name)
    if value is None:
        return 15
    if not value.isdigit() or not 8 <= int(value) <= 15:
        raise HandshakeError(f"server answered permessage-deflate with {name}={value!r} (RFC 7692 allows 8..15)", 101)
    return int(value)


def _parse_extensions(header: str) -> list[tuple[str, dict[str, str | None]]]:
    out: list[tuple[str, dict[str, str | None]]] = []
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        if not parts[0]:
            continue
        params: dict[str, str | None] = {}
        for p in parts[1:]:
            if not p:
                continue
            name, sep, value = p.partition("=")
            params[name.strip().lower()] = value.strip().strip('"') if sep else None
        out.append((parts[0].lower(), params))
    return out


def negotiate_extensions(response: HandshakeResponse, offered: bool,
                         compress_outgoing: bool = True) -> Deflate | None:
    """The extension the server accepted in its 101 answer: a :class:`Deflate`, or ``None``. Raises
    ``HandshakeError`` when the server answered with an extension the client did not offer (every frame of it would
    be unreadable), naming the extension and what to do."""
    header = response.headers.get("sec-websocket-extensions", "")
    chosen = _parse_extensions(header)
    if not chosen:
        return None
    names = [name for name, _ in chosen]
    if names != ["permessage-deflate"] or not offered:
        what = ", ".join(names)
        hint = ("; pass --ws-compression on to offer permessage-deflate" if "permessage-deflate" in names and not offered
                else "; this client offers only permessage-deflate (--ws-compression on)")
        raise HandshakeError(f"server requires the WebSocket extension {what}, which the client did not offer{hint}",
                             101)
    params = chosen[0][1]
    unknown = set(params) - {"server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits",
                             "client_max_window_bits"}
    if unknown:
        raise HandshakeError(f"server answered permessage-deflate with unknown parameter(s) {', '.join(sorted(unknown))}",
                             101)
    return Deflate(params, compress_outgoing)

