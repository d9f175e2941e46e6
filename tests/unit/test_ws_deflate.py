"""permessage-deflate (RFC 7692) in the sans-IO codec: negotiation, inflating RSV1 messages with and without context
takeover, compressing sent ones, and the errors (pure: bytes in, frames out)."""

from __future__ import annotations

import zlib

import pytest

from users.ws_codec import (
    OP_TEXT,
    OVERSIZE,
    Deflate,
    FrameDecoder,
    FrameError,
    HandshakeError,
    HandshakeResponse,
    negotiate_extensions,
)


def server_frame(payload: bytes, rsv1: bool = True, opcode: int = OP_TEXT, fin: bool = True) -> bytes:
    n = len(payload)
    head = bytes(((0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode,))
    head += bytes((n,)) if n < 126 else bytes((126,)) + n.to_bytes(2, "big")
    return head + payload


def compress(messages: list[bytes], takeover: bool = True) -> list[bytes]:
    out, c = [], zlib.compressobj(6, zlib.DEFLATED, -15)
    for m in messages:
        if not takeover:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
        out.append(data[:-4])
    return out


def response(ext: str | None) -> HandshakeResponse:
    return HandshakeResponse(101, "Switching Protocols", {"sec-websocket-extensions": ext} if ext else {}, b"")


@pytest.mark.parametrize("takeover", [True, False])
def test_compressed_messages_inflate_in_order(takeover):
    params = "" if takeover else "; server_no_context_takeover"
    deflate = negotiate_extensions(response("permessage-deflate" + params), offered=True)
    decoder = FrameDecoder(1 << 20, deflate)
    messages = [b'{"type": "agent_started", "x": "%d"}' % i * 3 for i in range(4)]
    wire = b"".join(server_frame(p) for p in compress(messages, takeover))
    frames = decoder.feed(wire[:7]) + decoder.feed(wire[7:])
    assert [f.payload for f in frames] == messages


def test_fragmented_compressed_message_and_uncompressed_ones_mix():
    deflate = negotiate_extensions(response("permessage-deflate"), offered=True)
    decoder = FrameDecoder(1 << 20, deflate)
    (z,) = compress([b"hello " * 50])
    wire = server_frame(z[:5], fin=False) + server_frame(z[5:], rsv1=False, opcode=0, fin=True)
    wire += server_frame(b"plain", rsv1=False)
    assert [f.payload for f in decoder.feed(wire)] == [b"hello " * 50, b"plain"]


def test_rsv1_without_negotiation_or_on_a_continuation_is_a_protocol_error():
    with pytest.raises(FrameError, match="reserved bits"):
        FrameDecoder().feed(server_frame(b"x"))
    decoder = FrameDecoder(1 << 20, Deflate({}))
    with pytest.raises(FrameError, match="RSV1"):
        decoder.feed(server_frame(b"x", rsv1=False, fin=False) + server_frame(b"y", opcode=0))


def test_a_message_inflating_past_the_limit_is_skipped_or_fatal_with_takeover():
    (bomb,) = compress([b"a" * 5000], takeover=False)
    skipping = FrameDecoder(1024, Deflate({"server_no_context_takeover": None}))
    (frame,) = skipping.feed(server_frame(bomb))
    assert frame.opcode == OVERSIZE
    with pytest.raises(FrameError, match="inflates beyond 1024 bytes"):
        FrameDecoder(1024, Deflate({})).feed(server_frame(bomb))
    with pytest.raises(FrameError, match="not valid deflate"):
        FrameDecoder(1024, Deflate({})).feed(server_frame(b"\xff\xff\xff"))


@pytest.mark.parametrize("takeover", [True, False])
def test_sent_messages_compress_so_a_peer_inflates_them(takeover):
    deflate = Deflate({} if takeover else {"client_no_context_takeover": None})
    d = zlib.decompressobj(-15)
    for i in range(3):
        body = b'{"type": "user_message", "n": %d}' % i * 4
        if not takeover:
            d = zlib.decompressobj(-15)
        assert d.decompress(deflate.deflate(body) + b"\x00\x00\xff\xff") == body


def test_negotiation_errors_name_the_extension_and_the_option():
    assert negotiate_extensions(response(None), offered=True) is None
    with pytest.raises(HandshakeError, match="permessage-deflate, which the client did not offer; pass "
                                             "--ws-compression on"):
        negotiate_extensions(response("permessage-deflate"), offered=False)
    with pytest.raises(HandshakeError, match="x-webkit-deflate-frame, which the client did not offer"):
        negotiate_extensions(response("x-webkit-deflate-frame"), offered=True)
    with pytest.raises(HandshakeError, match="server_max_window_bits='20'"):
        negotiate_extensions(response("permessage-deflate; server_max_window_bits=20"), offered=True)
    eight = negotiate_extensions(response("permessage-deflate; client_max_window_bits=8"), offered=True)
    assert eight is not None and not eight.compress_outgoing  # zlib cannot write an 8-bit window
