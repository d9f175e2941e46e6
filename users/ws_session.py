"""One chat WebSocket connection on gevent: connect + auth, one reader greenlet, sending, heartbeat pings.

The reader greenlet owns the socket's receive side: it decodes frames (:mod:`users.ws_codec`), routes them through
the pure :class:`tasks.timeline.Dispatcher`, enforces every in-flight message's deadline (its ``recv`` times out at
the earliest deadline) and reports each ended message through ``on_outcome`` right when it ends, so one slow reply
never delays the measurement of another. A connection idle for ``PARK_AFTER_S`` (nothing in flight, no pong due)
parks its reader: the greenlet ends and libev watchers (socket readable, next heartbeat due) or the next
:meth:`ChatSession.send_message` start a new one, so an idle session holds no greenlet of its own. Nothing here
knows Locust: ``users/chat.py`` turns the callbacks into samples.

Exceptions::

    ChatError
    ├── ConnectError        connect failed (TCP, TLS, upgrade refused, auth refused, no welcome); ``.auth`` flags auth
    └── HeartbeatError      a heartbeat ping got no pong in time
"""

from __future__ import annotations

import _socket
import base64
import errno
import logging
import platform
import random
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import orjson
from gevent.event import Event
from gevent.hub import Waiter
from gevent.lock import Semaphore

from config.errors import SuiteError
from tasks.timeline import (
    BINARY_FRAME,
    OVERSIZE_FRAME,
    Dispatcher,
    MessageTimeline,
    Outcome,
    ProtocolConfig,
    RouteKind,
)
from users.ws_codec import (
    DEFLATE_OFFER,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    OVERSIZE,
    FrameDecoder,
    FrameError,
    HandshakeError,
    build_connect,
    build_request,
    check_accept,
    encode_close,
    encode_frame,
    negotiate_extensions,
    new_key,
    parse_close,
    parse_response,
    random_id,
)

logger = logging.getLogger(__name__)

AUTH_MODES = ("subprotocol+header", "header", "subprotocol", "query")
CLOSE_REASONS = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1006: "abnormal closure",
    1008: "policy violation (auth)",
    1009: "message too big",
    1011: "service not ready / internal error",
    1012: "service restart",
    1013: "try again later",
}
PLANNED_CLOSE_CODES = frozenset({1000, 1001, 1012, 1013})
"""A server close with one of these codes and no message in flight is a planned reconnect (load balancers, deploys,
maximum connection lifetimes), not a lost connection."""
EOF_CLOSE = 1006
PARK_AFTER_S = 1.0
"""A connection with nothing in flight and no pong due for this long parks its reader greenlet (see
``ChatSession._park``): an idle session then holds no greenlet of its own, only two libev watchers."""
"""``close_code`` of a connection the server ended without a close frame (FIN or reset)."""


class ChatError(SuiteError):
    """Base of this module's errors; texts never contain tokens."""

    def __repr__(self) -> str:  # Locust's failure table shows repr(): keep it the plain text
        return str(self)


class ConnectError(ChatError):
    """The connect did not reach ``connection_established``."""

    def __init__(self, message: str, auth: bool = False) -> None:
        super().__init__(message)
        self.auth = auth


class HeartbeatError(ChatError):
    """A heartbeat ping got no pong in time."""


class ChatFailure(ChatError):
    """A failed sample's exception: ``repr``/``str`` are exactly the outcome text (``timeout after 30000 ms`` ...)."""


_connection_errors_logged: set[str] = set()

# Kernel receive timestamps (Linux SO_TIMESTAMPNS, not exported by Python's socket module; 35 on x86_64/aarch64):
# an event's arrival is taken from when its packet reached this machine, not from when the reader greenlet got
# to run, so a busy generator does not add its own scheduling delay to every latency.
_SO_TIMESTAMPNS = 35
_KERNEL_TS_OK = sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64", "AMD64")
_unpack_timespec = struct.Struct("qq").unpack_from
# Linux turns packet timestamping on machine-wide while any socket asks for it, but when none did, the switch-on is
# left to a kernel work queue: packets arriving before it ran carry no timestamp, and their latency falls back to
# read time. Sessions opened and closed one after another hit that window (1-3 connections in 500 on a 2-core
# machine, the CI run of 7 Dec 2026 among them); one socket kept open with the option set keeps timestamping on for
# the whole process, so only the very first connect can meet it, and that one long before its first message.
_ts_keeper: _socket.socket | None = None


def _keep_kernel_timestamps_on() -> None:
    """Open the process's timestamp keeper once (an unbound UDP socket, not gevent's: nothing ever waits on it)."""
    global _ts_keeper
    if _ts_keeper is not None:
        return
    keeper = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        keeper.setsockopt(_socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        keeper.close()
        return
    _ts_keeper = keeper


def split_ws_url(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, hostname, port, netloc-for-Host, path+query) of a ``ws://``/``wss://`` URL; ValueError if not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return parts.scheme, parts.hostname, port, netloc, target


def auth_placement(token: str | None, mode: str, prefix: str = "jwt-auth.") -> tuple[list[str], list[tuple[str, str]], str]:
    """(subprotocols, headers, query suffix) for ``--ws-auth`` ``mode``."""
    if token is None:
        return [], [], ""
    protos: list[str] = []
    headers: list[tuple[str, str]] = []
    query = ""
    if mode in ("subprotocol+header", "subprotocol"):
        protos.append(prefix + token)
    if mode in ("subprotocol+header", "header"):
        headers.append(("Authorization", f"Bearer {token}"))
    if mode == "query":
        query = "token=" + quote(token, safe="")
    if mode not in AUTH_MODES:
        raise ValueError(f"unknown auth mode {mode!r}")
    return protos, headers, query


def proxy_for(url: str, explicit: str | None = None) -> str | None:
    """The HTTP proxy a ``ws://``/``wss://`` connection to ``url`` goes through: ``explicit`` (``--ws-proxy``), else
    the environment's ``HTTPS_PROXY`` (wss://) or ``HTTP_PROXY`` then ``HTTPS_PROXY`` (ws://), lower case first;
    ``None`` when there is none or ``NO_PROXY`` names the host."""
    scheme, host, port, _, _ = split_ws_url(url)
    proxies = getproxies_environment()
    chosen = explicit or (proxies.get("https") if scheme == "wss" else proxies.get("http") or proxies.get("https"))
    if not chosen:
        return None
    if proxies.get("no") and proxy_bypass_environment(f"{host}:{port}", proxies):
        return None
    return chosen


def redact_url(url: str) -> str:
    """``url`` without its user and password (for errors and logs)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc="***@" + netloc).geturl()


def _tls_failure(exc: ssl.SSLError, host: str, port: int, has_client_cert: bool) -> str:
    """The connect error text of a failed TLS handshake (or of the alert a TLS 1.3 server sends after it)."""
    reason = str(getattr(exc, "reason", "") or exc).upper()
    if "CERTIFICATE_REQUIRED" in reason or ("HANDSHAKE_FAILURE" in reason and not has_client_cert):
        return (f"TLS with {host}:{port} failed: the server requires a client certificate (mutual TLS; "
                f"{getattr(exc, 'reason', exc)}); give --ws-client-cert and --ws-client-key")
    if has_client_cert and any(k in reason for k in ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN",
                                                       "DECRYPT_ERROR", "ACCESS_DENIED")):
        return (f"TLS with {host}:{port} failed: the server did not accept the client certificate "
                f"({getattr(exc, 'reason', exc)}); check --ws-client-cert / --ws-client-key against the CA the "
                "server trusts")
    return f"TLS handshake with {host}:{port} failed: {exc}"


_iso_cache: list[Any] = [-1, "", -1, ""]
"""[ms, its ISO text, second, the ISO text of that second up to the seconds]: :func:`iso_ms`'s last results."""


def _direct_read(sock: Any) -> tuple[Any, Any] | None:
    """``(the OS socket, its read watcher)`` of a plain gevent socket, to read without gevent's ``recv`` wrapper (a
    ``gevent.Timeout`` object, an exception and a timeout change per blocking read: ≈ 6 % of a round trip, issue 17);
    ``None`` for anything else (TLS reads go through the ``SSLSocket``, which decrypts)."""
    if type(sock) is not gevent.socket.socket:
        return None
    raw, watcher = getattr(sock, "_sock", None), getattr(sock, "_read_event", None)
    if raw is None or watcher is None or not hasattr(raw, "recvmsg"):
        return None
    return raw, watcher


def _readable(hub: Any, watcher: Any, timeout: float) -> bool:
    """Wait (this greenlet) until ``watcher``'s socket is readable (True) or ``timeout`` s passed (False): one
    waiter for the two libev watchers, stopped whichever fires, also when this greenlet is killed meanwhile."""
    waiter = Waiter(hub)
    timer = hub.loop.timer(timeout)
    watcher.start(waiter.switch, True)
    timer.start(waiter.switch, False)
    try:
        return bool(waiter.get())
    finally:
        watcher.stop()
        timer.stop()
        timer.close()


def _recv_direct(sock: Any, raw: Any, watcher: Any, hub: Any, wait: float, until: float) -> tuple[bytes, Any]:
    """``raw.recvmsg`` (data and ancillary data) of the plain gevent socket ``sock``, waiting up to ``wait`` s (and
    no later than ``until`` on the ``perf_counter`` clock) for data; ``TimeoutError`` when none came. ``OSError``
    (EBADF) when another greenlet closed ``sock`` meanwhile: gevent then closes its read watcher at once but may defer
    the OS socket's close, and starting that closed watcher on a descriptor about to close aborts the process in
    libev."""
    while True:
        try:
            data, ancdata, _flags, _addr = raw.recvmsg(65536, 64)
            return data, ancdata
        except BlockingIOError:
            if sock._read_event is not watcher:
                raise OSError(errno.EBADF, "the connection was closed by this client") from None
            if wait <= 0.0 or not _readable(hub, watcher, wait):
                raise TimeoutError from None
            wait = until - time.perf_counter()  # readable, yet nothing to read: wait the rest


def _iso_now() -> str:
    """ISO-8601 UTC now, to the millisecond."""
    return iso_ms(int(time.time() * 1000))


def iso_ms(ms: int) -> str:
    """``ms`` (unix time in ms) as ISO-8601 UTC to the millisecond, as ``datetime.isoformat(timespec="milliseconds")``
    writes it (``2026-12-07T22:16:15.123+00:00``). The date and time are formatted once per second, the rest per ms:
    a ``datetime`` per message was 2.5 µs, ~2 % of the send path."""
    if ms != _iso_cache[0]:
        sec, milli = divmod(ms, 1000)
        if sec != _iso_cache[2]:
            _iso_cache[2] = sec
            _iso_cache[3] = datetime.fromtimestamp(sec, UTC).isoformat(timespec="seconds")[:-6]  # no "+00:00"
        _iso_cache[0] = ms
        _iso_cache[1] = f"{_iso_cache[3]}.{milli:03d}+00:00"
    return _iso_cache[1]


class ChatSession:
    """One authenticated chat WebSocket with its reader greenlet. Not reusable after :meth:`close`."""

    # slots: a session has ~50 attributes, past the 30 a shared-key instance dict holds (1.4 KiB per session as a
    # dict, 0.4 KiB as slots); "__dict__" keeps any other attribute possible
    __slots__ = (
        "url", "config", "scheme", "hostname", "port", "_netloc", "_target", "_subprotocols", "_headers",
        "ssl_context", "compression", "deflate", "client_cert", "proxy", "connect_timeout", "reply_timeout",
        "hang_after", "dispatcher", "decoder", "on_outcome", "on_closed", "on_anomaly", "welcomed", "subprotocol",
        "close_reason", "close_code", "lost_in_flight", "connected_at", "messages_sent", "_sock", "_reader",
        "_send_lock", "_changed", "_open", "_closing", "_last_error", "_pending_frames", "heartbeat_interval",
        "heartbeat_timeout", "heartbeat_misses", "on_heartbeat", "on_event", "_hb_echo", "_hb_sent_at",
        "_hb_deadline", "_hb_missed", "_next_ping", "_park_io", "_park_timer", "kernel_timestamps", "_raw_send",
        "__dict__", "__weakref__",
    )

    def __init__(
        self,
        url: str,
        *,
        config: ProtocolConfig,
        token: str | None = None,
        auth_mode: str = "subprotocol+header",
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        reply_timeout: float = 30.0,
        hang_after: float = 10.0,
        max_frame: int = 1 << 20,
        extra_headers: Iterable[tuple[str, str]] = (),
        on_outcome: Callable[[MessageTimeline, Outcome], None] | None = None,
        on_closed: Callable[[str], None] | None = None,
        on_anomaly: Callable[[str], None] | None = None,
        heartbeat_interval: float = 0.0,
        heartbeat_timeout: float = 5.0,
        heartbeat_misses: int = 2,
        on_heartbeat: Callable[[float | None, str | None], None] | None = None,
        on_event: Callable[[MessageTimeline], None] | None = None,
        compression: bool = False,
        proxy: str | None = None,
        client_cert: bool = False,
    ) -> None:
        self.url = url
        self.config = config
        self.scheme, self.hostname, self.port, self._netloc, self._target = split_ws_url(url)
        protos, headers, query = auth_placement(token, auth_mode)
        self._subprotocols = protos
        self._headers = headers + list(extra_headers)
        if query:
            self._target += ("&" if "?" in self._target else "?") + query
        self.ssl_context = ssl_context
        self.compression = compression
        """Offer permessage-deflate (RFC 7692); ``deflate`` holds what the server accepted."""
        self.deflate: Any = None
        self.client_cert = client_cert
        """``ssl_context`` holds a client certificate (mutual TLS): only for the texts of TLS failures."""
        self.proxy = proxy or None
        """``http://[user:password@]host:port`` of an HTTP CONNECT proxy (see :func:`proxy_for`), or ``None``."""
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self.hang_after = hang_after
        self.dispatcher = Dispatcher(config)
        self.decoder = FrameDecoder(max_frame)
        self.on_outcome = on_outcome
        self.on_closed = on_closed
        self.on_anomaly = on_anomaly
        self.welcomed = False
        """The server's welcome (``connection_established``) arrived; its body is not kept (0.5 KiB a session)."""
        self.subprotocol: str | None = None
        self.close_reason: str | None = None
        self.close_code: int | None = None
        """The server's close code (``EOF_CLOSE`` when it closed without a close frame); ``None`` when the client
        closed, or the connection failed on this side (protocol error, heartbeat lost, send failed)."""
        self.lost_in_flight = 0
        """Messages that were still in flight when the connection ended (each failed with the close reason)."""
        self.connected_at = 0.0
        self.messages_sent = 0
        self._sock: socket.socket | None = None
        self._raw_send: Any = None
        """The OS socket's ``send`` of a plain (not TLS) connection: see :meth:`_send`."""
        self._reader: gevent.Greenlet | None = None
        self._send_lock = Semaphore()
        self._changed = Event()
        self._open = False
        self._closing = False
        self._last_error: str | None = None
        self._pending_frames: list[Any] = []
        # heartbeat, run by the reader greenlet itself (no extra greenlet per connection)
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.heartbeat_misses = heartbeat_misses
        self.on_heartbeat = on_heartbeat
        self.on_event = on_event
        """Called with a message's timeline at the end of a reader batch (the frames of one read) that brought first
        arrivals of its event types while it goes on, once per message and batch: ``timeline.reported`` says how
        many were reported before. The events of a message that ends in the batch are left to ``on_outcome``, which
        then has all of the message's samples at once."""
        self._hb_echo: float | None = None
        self._hb_sent_at = 0.0
        self._hb_deadline = float("inf")
        self._hb_missed = 0
        self._next_ping = float("inf")
        # an idle connection parks its reader: the greenlet ends and two libev watchers (socket readable, next
        # heartbeat due) start a new one; a greenlet costs ~8 KiB, the watchers ~0.3 KiB (see _park)
        self._park_io: Any = None
        self._park_timer: Any = None

    # -- connect -------------------------------------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self._open

    def connect(self) -> float:
        """Open, upgrade, authenticate and wait for the welcome; returns the connect time in ms.

        Raises :class:`ConnectError` with a text that names what failed (never the token).
        """
        start = time.perf_counter()
        deadline = start + self.connect_timeout
        if _KERNEL_TS_OK and self.scheme == "ws":
            _keep_kernel_timestamps_on()
        if self.proxy:
            parts = urlsplit(self.proxy)
            addr, what = (parts.hostname or "", parts.port or 80), f"proxy {redact_url(self.proxy)}"
        else:
            addr, what = (self.hostname, self.port), f"{self.hostname}:{self.port}"
        try:
            sock = socket.create_connection(addr, timeout=self.connect_timeout)
        except TimeoutError:
            raise ConnectError(f"TCP connect to {what} timed out after {self.connect_timeout:g} s") from None
        except OSError as exc:
            raise ConnectError(f"TCP connect to {what} failed: {exc.strerror or exc}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.proxy:
                self._tunnel(sock, deadline)
            if self.scheme == "wss":
                ctx = self.ssl_context or ssl.create_default_context()
                try:
                    sock = ctx.wrap_socket(sock, server_hostname=self.hostname)
                except ssl.SSLCertVerificationError as exc:
                    raise ConnectError(
                        f"TLS certificate of {self.hostname} not trusted ({exc.verify_message}); give the CA that "
                        "signed it with --ws-ca-file (a PEM bundle; or set SSL_CERT_FILE), fix the certificate, or "
                        "pass --ws-insecure for a test system"
                    ) from None
                except ssl.SSLError as exc:
                    raise ConnectError(_tls_failure(exc, self.hostname, self.port, self.client_cert)) from None
                except OSError as exc:
                    raise ConnectError(f"TLS handshake with {self.hostname}:{self.port} failed: {exc}") from None
            key = new_key()
            headers = [*self._headers, ("Sec-WebSocket-Extensions", DEFLATE_OFFER)] if self.compression \
                else self._headers
            sock.sendall(build_request(self._netloc, self._target, key, self._subprotocols, headers))
            buffer = b""
            while True:
                response = parse_response(buffer)
                if response is not None:
                    break
                buffer += self._recv_before(sock, deadline, "the upgrade response")
            if response.status in (401, 403):
                raise ConnectError(
                    f"auth refused at upgrade: HTTP {response.status} {response.reason} "
                    "(check the token: --jwt-secret / JWT_SECRET_KEY, --token-file or --users-file)",
                    auth=True,
                )
            if response.status != 101:
                hint = ""
                if response.status == 404:
                    hint = " (check --ws-path and the host)"
                elif response.status == 400 and not self.compression:
                    hint = (" (a server that requires a WebSocket extension the client did not offer answers 400: "
                            "if it requires permessage-deflate, pass --ws-compression on)")
                raise ConnectError(f"upgrade refused: HTTP {response.status} {response.reason}{hint}")
            picked = check_accept(response, key, self._subprotocols)
            # every subprotocol offered carries the token (``jwt-auth.<token>``, see auth_placement): keep the
            # picked one's name only, not a copy of the secret for the connection's life (0.4 KiB each)
            self.subprotocol = picked.split(".", 1)[0] if picked is not None else None
            self.deflate = negotiate_extensions(response, self.compression)
            self.decoder.deflate = self.deflate
            frames = self.decoder.feed(response.rest) if response.rest else []
            welcome_type = self.config.welcome_type
            type_field = self.config.type_field
            while not self.welcomed:
                while frames:
                    frame = frames.pop(0)
                    if frame.opcode == OP_TEXT:
                        try:
                            body = orjson.loads(frame.payload)
                        except orjson.JSONDecodeError:
                            self._anomaly("malformed json")
                            continue
                        if not isinstance(body, dict):
                            self._anomaly("not a json object")
                            continue
                        kind = body.get(type_field)
                        if kind == welcome_type:
                            self.welcomed = True
                            self._pending_frames = frames
                            frames = []
                            break
                        if kind in self.config.error_types:
                            code = body.get(self.config.error_code_field) or kind
                            msg = body.get(self.config.error_message_field) or ""
                            self._last_error = f"{code}: {msg}"
                            if code == self.config.auth_error_code:
                                raise ConnectError(f"auth failed: {code}: {msg}", auth=True)
                    elif frame.opcode == OP_CLOSE:
                        code, reason = parse_close(frame.payload)
                        auth = code == 1008
                        what = CLOSE_REASONS.get(code, "")
                        detail = f" after {self._last_error}" if self._last_error else ""
                        raise ConnectError(
                            f"{'auth failed: ' if auth else ''}server closed {code} {what}{detail}"
                            f"{': ' + reason if reason else ''}".rstrip(),
                            auth=auth,
                        )
                    elif frame.opcode == OP_PING:
                        sock.sendall(encode_frame(frame.payload, OP_PONG))
                if not self.welcomed:
                    frames = self.decoder.feed(self._recv_before(sock, deadline, "connection_established"))
        except ConnectError:
            sock.close()
            raise
        except HandshakeError as exc:
            sock.close()
            raise ConnectError(f"upgrade failed: {exc}") from None
        except FrameError as exc:
            sock.close()
            raise ConnectError(f"protocol error during connect: {exc}") from None
        except ssl.SSLError as exc:  # TLS 1.3: a refused client certificate shows on the first read
            sock.close()
            raise ConnectError(_tls_failure(exc, self.hostname, self.port, self.client_cert)) from None
        except OSError as exc:
            sock.close()
            raise ConnectError(f"connection failed during the upgrade: {exc.strerror or exc}") from None
        elapsed = (time.perf_counter() - start) * 1000.0
        self._sock = sock
        direct = _direct_read(sock)
        self._raw_send = direct[0].send if direct is not None else None
        self.kernel_timestamps = False
        if _KERNEL_TS_OK and self.scheme == "ws":
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self.kernel_timestamps = True
            except OSError:
                pass
        self._open = True
        self.connected_at = time.perf_counter()
        if self.heartbeat_interval > 0:
            # the first ping comes after 0.5-1 interval, so that users started together do not ping together
            self._next_ping = self.connected_at + self.heartbeat_interval * (0.5 + random.random() * 0.5)
        # the upgrade is done: the token (twice: subprotocol and header) is not needed on this connection any more
        self._subprotocols = []
        self._headers = []
        self._reader = gevent.spawn(self._read_loop)
        return elapsed

    def _tunnel(self, sock: socket.socket, deadline: float) -> None:
        """``CONNECT host:port`` through the HTTP proxy on ``sock``; raises :class:`ConnectError` unless it answers
        2xx (its user and password go as Basic ``Proxy-Authorization``, never into a text)."""
        assert self.proxy is not None
        parts = urlsplit(self.proxy)
        auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            auth = "Basic " + base64.b64encode(pair).decode()
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        authority = f"{host}:{self.port}"
        sock.sendall(build_connect(authority, auth))
        buffer = b""
        what = f"the proxy's answer to CONNECT {authority}"
        try:
            while True:
                response = parse_response(buffer)
                if response is not None:
                    break
                buffer += self._recv_before(sock, deadline, what)
        except HandshakeError as exc:
            raise ConnectError(f"proxy {redact_url(self.proxy)}: {exc}") from None
        if not 200 <= response.status < 300:
            hint = " (check the proxy's user and password)" if response.status == 407 else ""
            raise ConnectError(f"proxy {redact_url(self.proxy)} refused CONNECT {authority}: HTTP {response.status} "
                               f"{response.reason}{hint}")
        if response.rest:
            raise ConnectError(f"proxy {redact_url(self.proxy)} sent data before the tunnel was used")

    def _recv_before(self, sock: socket.socket, deadline: float, waiting_for: str) -> bytes:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise ConnectError(f"no {waiting_for} within {self.connect_timeout:g} s")
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise ConnectError(f"no {waiting_for} within {self.connect_timeout:g} s") from None
        if not data:
            detail = f" after {self._last_error}" if self._last_error else ""
            raise ConnectError(f"server closed the connection before {waiting_for}{detail}")
        return data

    def _anomaly(self, name: str) -> None:
        self.dispatcher.note(name)
        if self.on_anomaly is not None:
            self.on_anomaly(name)

    # -- sending -------------------------------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        sock = self._sock
        if sock is None or not self._open:
            raise ConnectionError("connection is not open")
        raw_send = self._raw_send
        lock = self._send_lock
        if raw_send is not None and not lock.locked():
            # nothing else is sending and the OS socket's send never yields (non-blocking), so no other frame can
            # come between: a frame it takes whole needs neither the lock nor gevent's send (≈ 0.7 µs a message)
            try:
                sent = raw_send(data)
            except BlockingIOError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        with lock:
            # one send() call takes a small frame whole (gevent's sendall costs a getsockopt per call); the rest,
            # if any, goes with sendall under the send's own timeout (the reader sets short ones for its deadlines)
            try:
                sent = sock.send(data)
            except TimeoutError:
                if sock.gettimeout() == self.connect_timeout:  # a direct reader leaves it there: waited enough
                    raise
                sent = 0
            if sent < len(data):
                reader_timeout = sock.gettimeout()
                sock.settimeout(self.connect_timeout)
                try:
                    sock.sendall(data[sent:])
                finally:
                    sock.settimeout(reader_timeout)

    def send_message(self, content: str, intended_at: float | None = None) -> MessageTimeline:
        """Send one user message (fresh thread and correlation id) and track its timeline.

        On a send failure the timeline is ended at once as ``error DISCONNECTED`` (reported via ``on_outcome``).
        """
        cfg = self.config
        # one fresh random id serves as both: a new thread per message, and its correlation id
        thread_id = correlation_id = random_id()
        body = orjson.dumps(
            {
                cfg.type_field: cfg.user_message_type,
                cfg.send_envelope: {
                    cfg.content_field: content,
                    cfg.thread_field: thread_id,
                    cfg.correlation_field: correlation_id,
                    "timestamp": _iso_now(),
                },
            }
        )
        deflate = self.deflate
        frame = encode_frame(deflate.deflate(body), rsv1=True) if deflate is not None and deflate.compress_outgoing \
            else encode_frame(body)
        now = time.perf_counter()
        timeline = MessageTimeline(
            cfg,
            thread_id=thread_id,
            correlation_id=correlation_id,
            sent_at=now,
            reply_timeout=self.reply_timeout,
            hang_after=self.hang_after,
            intended_at=intended_at,
        )
        self.dispatcher.track(timeline)
        if self._park_io is not None:  # the reader was parked: it must run this message's deadlines
            self._unpark()
        self.messages_sent += 1
        try:
            self._send(frame)
        except OSError as exc:
            self._lost(f"send failed: {exc.strerror or exc}")
        return timeline

    def wait(self, timelines: Iterable[MessageTimeline], timeout: float) -> bool:
        """Block until every timeline ended (the reader ends them by their deadlines); False on ``timeout``.

        The ``timeout`` guard is one libev timer setting the change event, not a ``gevent.Timeout`` per wait (a
        Python object, a timer and a greenlet throw each time: ~3 % of the generator's CPU per round trip)."""
        pending = [t for t in timelines if not t.done]
        if not pending:
            return True
        perf = time.perf_counter
        end = perf() + timeout
        changed = self._changed
        guard: Any = None
        try:
            while True:
                changed.clear()
                pending = [t for t in pending if not t.done]
                if not pending:
                    return True
                remaining = end - perf()
                if remaining <= 0:
                    return False
                if guard is None or not guard.active:  # (re)armed: libev's cached clock may fire it a bit early
                    if guard is not None:
                        guard.close()
                    guard = gevent.get_hub().loop.timer(remaining)
                    guard.start(changed.set)
                changed.wait()
        finally:
            if guard is not None:
                guard.stop()
                guard.close()

    def _send_heartbeat(self, now: float) -> None:
        echo = time.time()
        self._send(encode_frame(orjson.dumps({self.config.type_field: self.config.ping_type, "timestamp": echo})))
        self._hb_echo = echo
        self._hb_sent_at = now
        self._hb_deadline = now + self.heartbeat_timeout
        self._next_ping = now + self.heartbeat_interval

    def _heartbeat_due(self, now: float) -> str | None:
        """Run the heartbeat at ``now``: record a missed pong, send a due ping. A reason when the connection
        counts as dead (``heartbeat_misses`` pongs missed in a row)."""
        if self._hb_echo is not None and now >= self._hb_deadline:
            self._hb_echo = None
            self._hb_deadline = float("inf")
            self._hb_missed += 1
            if self.on_heartbeat is not None:
                self.on_heartbeat(None, f"heartbeat: no pong within {self.heartbeat_timeout:g} s")
            if self._hb_missed >= self.heartbeat_misses:
                return f"heartbeat: no pong for {self._hb_missed} pings"
        if self._hb_echo is None and now >= self._next_ping:
            self._send_heartbeat(now)
        return None

    # -- reader --------------------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        dispatcher = self.dispatcher
        decoder = self.decoder
        perf = time.perf_counter
        changed = self._changed
        inf = float("inf")
        reason = "connection closed"
        heartbeat = self.heartbeat_interval > 0
        # a message sent while the reader waits idle has its first deadline at least this far ahead of the wait's
        # start, so an idle wait this long never misses one
        idle_wait = min(self.hang_after, self.reply_timeout)
        kernel_ts = self.kernel_timestamps
        # plain ws with kernel timestamps: read the OS socket directly and wait on its watcher with a timer of our
        # own; the socket's timeout then stays the send's (``connect_timeout``)
        direct = _direct_read(sock) if kernel_ts else None
        raw, read_watcher = direct if direct is not None else (None, None)
        hub = gevent.get_hub()
        if raw is not None:
            sock.settimeout(self.connect_timeout)
        wall = time.time
        sol_socket = socket.SOL_SOCKET
        arrived: float | None = None  # kernel wall-clock time of the last packet of the current batch
        last_now = 0.0
        idle = False  # this wait has nothing in flight and no pong due
        idle_timed_out = False  # ... and the last one ended by its timeout (or a pong came): time to park
        parked = False
        fresh: list[MessageTimeline] = []  # messages going on with first arrivals in this batch
        message_kind, pong_kind = RouteKind.MESSAGE, RouteKind.PONG  # locals: an enum member is ≈ 0.15 µs to read
        try:
            frames = self._pending_frames
            self._pending_frames = []
            while True:
                if frames:
                    now = perf()
                    if arrived is not None:
                        delay = wall() - arrived
                        if 0.0 < delay < 60.0:
                            now -= delay
                        if now < last_now:  # arrival order is preserved whatever the clocks' jitter
                            now = last_now
                    last_now = now
                    for frame in frames:
                        op = frame.opcode
                        if op == OP_TEXT:
                            routed = dispatcher.dispatch_text(frame.payload, now)
                            if routed.outcome is not None:
                                on_outcome = self.on_outcome  # read each time: close() may clear it (abandon)
                                if on_outcome is not None and routed.timeline is not None:
                                    on_outcome(routed.timeline, routed.outcome)
                                changed.set()
                            elif routed.kind is message_kind:
                                timeline = routed.timeline
                                if (timeline is not None and timeline.first_arrival is not None
                                        and (not fresh or fresh[-1] is not timeline)):
                                    fresh.append(timeline)
                            else:
                                self._route_other(routed, now)
                                if routed.kind is pong_kind:  # a heartbeat-only wake-up: park again at once
                                    idle_timed_out = True
                        elif op == OP_PING:
                            if fresh:  # the send may yield: what arrived is reported first
                                self._report_fresh(fresh)
                            self._send(encode_frame(frame.payload, OP_PONG))
                        elif op == OP_CLOSE:
                            code, text = parse_close(frame.payload)
                            what = CLOSE_REASONS.get(code, "no reason given")
                            extra = f" after {self._last_error}" if self._last_error else ""
                            reason = f"server closed {code}: {text or what}{extra}"
                            self.close_code = code
                            try:
                                self._send(encode_close(code if code not in (1005, 1006) else 1000))
                            except OSError:
                                pass
                            return
                        elif op == OP_BINARY:
                            self._anomaly(BINARY_FRAME)
                        elif op == OVERSIZE:
                            self._anomaly(OVERSIZE_FRAME)
                        # OP_PONG: unsolicited pong frames are fine
                    if fresh:
                        self._report_fresh(fresh)
                # deadlines (messages, heartbeat): recv times out at the earliest one
                now = perf()
                deadline = now + idle_wait
                if dispatcher.in_flight:
                    due = dispatcher.next_deadline()
                    if due <= now:
                        pending = dispatcher.pending()
                        dispatcher.poll(now)
                        on_outcome = self.on_outcome
                        if on_outcome is not None:
                            for timeline in pending:
                                if timeline.outcome is not None:
                                    on_outcome(timeline, timeline.outcome)
                        changed.set()
                        due = dispatcher.next_deadline() if dispatcher.in_flight else inf
                    if due < deadline:
                        deadline = due
                if heartbeat:
                    dead = self._heartbeat_due(now)
                    if dead is not None:
                        reason = dead
                        try:
                            self._send(encode_close(1001, "heartbeat lost"))
                        except OSError:
                            pass
                        return
                    due = self._hb_deadline if self._hb_echo is not None else self._next_ping
                    if due < deadline:
                        deadline = due
                idle = not dispatcher.in_flight and self._hb_echo is None
                if idle:
                    if idle_timed_out and self._park(sock):
                        parked = True
                        return
                    if now + PARK_AFTER_S < deadline:
                        deadline = now + PARK_AFTER_S
                wait = max(deadline - now, 0.0005)
                try:
                    if raw is not None:
                        data, ancdata = _recv_direct(sock, raw, read_watcher, hub, wait, now + wait)
                    elif kernel_ts:
                        sock.settimeout(wait)
                        data, ancdata, _flags, _addr = sock.recvmsg(65536, 64)
                    else:
                        sock.settimeout(wait)
                        data = sock.recv(65536)
                    if kernel_ts:
                        arrived = None
                        for level, kind, cdata in ancdata:
                            if level == sol_socket and kind == _SO_TIMESTAMPNS and len(cdata) >= 16:
                                sec, nsec = _unpack_timespec(cdata)
                                arrived = sec + nsec * 1e-9
                except TimeoutError:
                    frames = []
                    idle_timed_out = idle
                    continue
                idle_timed_out = False
                if not data:
                    reason = "connection closed by the server without a close frame (1006 abnormal closure)"
                    self.close_code = EOF_CLOSE
                    return
                frames = decoder.feed(data)
        except FrameError as exc:
            reason = f"protocol error from the server: {exc}"
            try:
                self._send(encode_close(exc.close_code))
            except OSError:
                pass
        except OSError as exc:
            reason = f"connection lost: {exc.strerror or exc}"
        except gevent.GreenletExit:
            reason = "connection closed by the client"
            raise
        except Exception as exc:  # a bug must end this connection cleanly, not leave messages waiting
            logger.exception("chat reader failed; closing the connection")
            reason = f"client error: {type(exc).__name__}"
        finally:
            if not parked:
                self._lost(reason)

    def _report_fresh(self, fresh: list[MessageTimeline]) -> None:
        """Hand ``on_event`` each message of ``fresh`` still going on (one that ended had its samples with its
        outcome); empties ``fresh``."""
        on_event = self.on_event
        if on_event is not None:
            for timeline in fresh:
                if timeline.outcome is None:
                    on_event(timeline)
        fresh.clear()

    def _park(self, sock: socket.socket) -> bool:
        """End the reader of a connection idle for ``PARK_AFTER_S`` (nothing in flight, no pong due): two libev
        watchers, one for the socket turning readable and one for the next heartbeat, start a new reader greenlet,
        as does :meth:`send_message`. False (keep reading) when TLS holds decrypted bytes not yet read."""
        pending = getattr(sock, "pending", None)
        if pending is not None and pending():
            return False
        loop = gevent.get_hub().loop
        watcher = loop.io(sock.fileno(), 1)
        watcher.start(self._unpark)
        self._park_io = watcher
        if self.heartbeat_interval > 0:
            timer = loop.timer(max(self._next_ping - time.perf_counter(), 0.0))
            timer.start(self._unpark)
            self._park_timer = timer
        self._reader = None
        return True

    def _unpark(self) -> None:
        """A parked connection's socket turned readable, its heartbeat is due or a message goes out: read again."""
        if self._park_io is None:
            return
        self._stop_park()
        if self._open and self._sock is not None:
            self._reader = gevent.spawn(self._read_loop)

    def _stop_park(self) -> None:
        watcher, timer = self._park_io, self._park_timer
        self._park_io = self._park_timer = None
        if watcher is not None:
            watcher.stop()
            watcher.close()
        if timer is not None:
            timer.stop()
            timer.close()

    def _route_other(self, routed: Any, now: float) -> None:
        kind = routed.kind
        if kind is RouteKind.PONG:
            data = routed.frame.get(self.config.envelope)
            echo = data.get("timestamp") if isinstance(data, dict) else routed.frame.get("timestamp")
            if self._hb_echo is not None and (echo is None or echo == self._hb_echo):
                self._hb_echo = None
                self._hb_deadline = float("inf")
                self._hb_missed = 0
                if self.on_heartbeat is not None:
                    self.on_heartbeat((now - self._hb_sent_at) * 1000.0, None)
        elif kind is RouteKind.CONNECTION_ERROR:
            frame = routed.frame
            code = frame.get(self.config.error_code_field) or frame.get(self.config.type_field)
            self._last_error = f"{code}: {frame.get(self.config.error_message_field) or ''}"
            # once per code and process at warning level: a misbehaving server must not flood the log
            key = str(code)
            first = key not in _connection_errors_logged
            _connection_errors_logged.add(key)
            logger.log(logging.WARNING if first else logging.DEBUG,
                       "chat connection error frame without a message: %s", self._last_error)
        elif kind is RouteKind.ANOMALY and self.on_anomaly is not None:
            self.on_anomaly(routed.anomaly)

    def _lost(self, reason: str) -> None:
        """The connection is gone: end every in-flight message, wake waiters, report once."""
        if not self._open and self._sock is None:
            return
        was_open = self._open
        self._open = False
        self.close_reason = reason
        sock, self._sock = self._sock, None
        self._stop_park()  # the watchers first: libev must not watch a closed descriptor
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        now = time.perf_counter()
        pending = self.dispatcher.pending()
        self.lost_in_flight = len(pending)
        self.dispatcher.abort_all(reason, now)
        if self.on_outcome is not None:
            for timeline in pending:
                if timeline.outcome is not None:
                    self.on_outcome(timeline, timeline.outcome)
        self._changed.set()
        if was_open and not self._closing and self.on_closed is not None:
            self.on_closed(reason)

    # -- closing -------------------------------------------------------------------------------------------------
    def close(self, code: int = 1000, reason: str = "client done") -> None:
        """Close (best effort close frame), end in-flight messages as ``error DISCONNECTED``, stop the reader."""
        self._closing = True
        if self._open and self._sock is not None:
            try:
                self._sock.settimeout(1.0)
                with self._send_lock:
                    self._sock.sendall(encode_close(code, reason))
            except OSError:
                pass
        reader = self._reader
        if reader is not None and not reader.dead and reader is not gevent.getcurrent():
            reader.kill(block=True, timeout=2.0)
        self._lost(f"client closed the connection ({reason})")
