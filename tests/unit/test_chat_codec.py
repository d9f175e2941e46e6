"""The sans-IO WebSocket client codec, interop-tested against wsproto as the server peer (no sockets)."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from users.ws_codec import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    OVERSIZE,
    FrameDecoder,
    FrameError,
    HandshakeError,
    _mask,
    apply_mask,
    build_request,
    check_accept,
    encode_close,
    encode_frame,
    new_key,
    parse_close,
    parse_response,
)

pytestmark = pytest.mark.timeout(60)


def handshake(subprotocol: str | None = "jwt-auth.abc", extra_after: bytes = b"") -> tuple[WSConnection, bytes, str]:
    key = new_key()
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(build_request("h:1", "/ws", key, ["jwt-auth.abc"], [("Authorization", "Bearer abc")]))
    (req,) = list(server.events())
    assert isinstance(req, Request)
    assert req.subprotocols == ["jwt-auth.abc"]
    assert (b"authorization", b"Bearer abc") in [(k.lower(), v) for k, v in req.extra_headers]
    return server, server.send(AcceptConnection(subprotocol=subprotocol)) + extra_after, key


def test_handshake_with_wsproto_server_is_accepted():
    server, raw, key = handshake()
    resp = parse_response(raw)
    assert resp.status == 101
    assert check_accept(resp, key, ["jwt-auth.abc"]) == "jwt-auth.abc"
    assert resp.rest == b""


def test_handshake_incomplete_returns_none_and_first_frames_are_kept():
    server, raw, key = handshake()
    frame = server.send(Message(data='{"type": "connection_established"}'))
    assert parse_response(raw[:20]) is None
    resp = parse_response(raw + frame)
    assert FrameDecoder().feed(resp.rest)[0].payload == b'{"type": "connection_established"}'


@pytest.mark.parametrize("status", [401, 403, 500])
def test_rejected_upgrade_raises_with_status(status):
    server = WSConnection(ConnectionType.SERVER)
    key = new_key()
    server.receive_data(build_request("h", "/ws", key))
    list(server.events())
    raw = server.send(RejectConnection(status_code=status, has_body=False))
    with pytest.raises(HandshakeError) as info:
        check_accept(parse_response(raw), key)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP"),
        (b"garbage without end", "not an HTTP"),
        (b"HTTP/1.1 101 OK\r\nbroken line\r\n\r\n", "malformed"),
    ],
)
def test_non_http_answers_raise(raw, fragment):
    with pytest.raises(HandshakeError, match=fragment):
        parse_response(raw)


def test_wrong_accept_key_and_unoffered_subprotocol_raise():
    _, raw, key = handshake()
    with pytest.raises(HandshakeError, match="Sec-WebSocket-Accept"):
        check_accept(parse_response(raw), new_key(), ["jwt-auth.abc"])
    with pytest.raises(HandshakeError, match="did not offer"):
        check_accept(parse_response(raw), key, [])


def test_header_injection_is_refused():
    with pytest.raises(ValueError):
        build_request("h", "/", new_key(), headers=[("X", "a\r\nEvil: 1")])


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_client_frames_are_masked_and_decoded_by_wsproto(size):
    server, _, _ = handshake()
    text = ("é" * size)[:size]
    server.receive_data(encode_frame(text.encode()))
    (msg,) = list(server.events())
    assert isinstance(msg, TextMessage) and msg.data == text
    server.receive_data(encode_frame(b"\x00\x01", OP_BINARY) + encode_frame(b"hi", OP_PING) + encode_close(1000, "bye"))
    events = list(server.events())
    assert isinstance(events[0], BytesMessage) and events[0].data == b"\x00\x01"
    assert isinstance(events[1], Ping) and events[1].payload == b"hi"
    assert isinstance(events[2], CloseConnection) and events[2].code == 1000 and events[2].reason == "bye"


def feed_in_pieces(dec: FrameDecoder, wire: bytes, cuts: list[int]) -> list[Any]:
    """Everything ``dec`` decodes of ``wire`` fed in pieces of the ``cuts`` sizes, then the rest."""
    got: list[Any] = []
    pos = 0
    for c in cuts:
        got += dec.feed(wire[pos : pos + c])
        pos += c
    return got + dec.feed(wire[pos:])


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=30),
)
def test_server_frames_decode_in_any_chunking(messages, cuts):
    server, _, _ = handshake()
    wire = b""
    for m in messages:
        if isinstance(m, str):
            # fragment text messages in two to exercise continuation frames
            half = len(m) // 2
            wire += server.send(Message(data=m[:half], message_finished=False))
            wire += server.send(Message(data=m[half:], message_finished=True))
        else:
            wire += server.send(Message(data=m))
    wire += server.send(Ping(b"p"))
    got = feed_in_pieces(FrameDecoder(), wire, cuts)
    expected = [(OP_TEXT, m.encode()) if isinstance(m, str) else (OP_BINARY, m) for m in messages]
    assert [(f.opcode, f.payload) for f in got[:-1]] == expected
    assert got[-1].opcode == OP_PING and got[-1].payload == b"p"


@settings(max_examples=80, deadline=None)
@given(
    messages=st.lists(st.text(max_size=300), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=30),
    max_size=st.sampled_from([10, 125, 126, 200, 1 << 20]),
)
def test_whole_text_frames_decode_in_any_chunking_within_their_size_limit(messages, cuts, max_size):
    """Unfragmented text frames (the decoder's fast path: 7-bit and 16-bit lengths) come out whole and in order, each
    larger than ``max_size`` as one ``OVERSIZE``, and a fragmented message between them still joins."""
    server, _, _ = handshake()
    wire = b""
    for m in messages:
        wire += server.send(Message(data=m))
    wire += server.send(Message(data="ab", message_finished=False)) + server.send(Message(data="c"))
    got = feed_in_pieces(FrameDecoder(max_size=max_size), wire, cuts)
    expected = [(OP_TEXT, m.encode()) if len(m.encode()) <= max_size else (OVERSIZE, b"") for m in messages]
    assert [(f.opcode, f.payload) for f in got] == [*expected, (OP_TEXT, b"abc")]
    assert [f.size for f in got[:-1]] == [len(m.encode()) for m in messages]


def test_close_frame_from_server_parses_code_and_reason():
    server, _, _ = handshake()
    (frame,) = FrameDecoder().feed(server.send(CloseConnection(code=1008, reason="auth failed")))
    assert frame.opcode == OP_CLOSE and parse_close(frame.payload) == (1008, "auth failed")
    assert parse_close(b"") == (1005, "")


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_oversize_message_is_skipped_once_and_stream_continues(chunk):
    server, _, _ = handshake()
    wire = server.send(Message(data="x" * 5000)) + server.send(Message(data="y" * 3000, message_finished=False))
    wire += server.send(Message(data="y" * 3000)) + server.send(Message(data="ok"))
    dec = FrameDecoder(max_size=4000)
    got = []
    for i in range(0, len(wire), chunk):
        got += dec.feed(wire[i : i + chunk])
    kinds = [f.opcode for f in got]
    assert kinds == [OVERSIZE, OVERSIZE, OP_TEXT]
    assert got[-1].payload == b"ok"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (bytes((0x81, 0x82)) + b"\x00\x00\x00\x00ab", "masked"),
        (bytes((0xC1, 0x01)) + b"a", "reserved"),
        (bytes((0x83, 0x01)) + b"a", "unknown data opcode"),
        (bytes((0x8B, 0x00)), "unknown control opcode"),
        (bytes((0x09, 0x00)), "control frame"),
        (bytes((0x89, 126)) + struct.pack("!H", 200) + b"a" * 200, "control frame"),
        (bytes((0x80, 0x01)) + b"a", "continuation"),
        (bytes((0x01, 0x01)) + b"a" + bytes((0x81, 0x01)) + b"b", "unfinished"),
    ],
)
def test_protocol_violations_raise_frame_error(raw, fragment):
    with pytest.raises(FrameError, match=fragment):
        FrameDecoder().feed(raw)


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=40), max_size=20), max_size=st.integers(min_value=1, max_value=64))
def test_random_bytes_only_ever_raise_frame_error(chunks, max_size):
    dec = FrameDecoder(max_size=max_size)
    try:
        for chunk in chunks:
            for frame in dec.feed(chunk):
                assert frame.opcode in (OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, 0xA, OVERSIZE)
                assert frame.opcode == OVERSIZE or frame.opcode >= 0x8 or len(frame.payload) <= max_size
    except FrameError:
        pass


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=600), key=st.binary(min_size=4, max_size=4))
def test_the_mask_the_frames_use_is_rfc_6455_masking(payload, key):
    """The masking ``encode_frame`` uses (websockets' C one when installed) and the Python one agree, and each is
    RFC 6455 §5.3: byte i XOR key[i % 4]."""
    expected = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    assert apply_mask(payload, key) == _mask(payload, key) == expected
