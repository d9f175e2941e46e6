"""The chat users' Locust options (``--ws-*``, ``--jwt-*``, ``--token-file``, ``--users-file``), their validation,
and the start-up check (a bad value → one clear error naming the option and the fix, exit code 2, no traceback).

Every option also reads a ``LOCUST_*`` env var (``--ws-reply-timeout`` ↔ ``LOCUST_WS_REPLY_TIMEOUT``) and a
``locust.conf`` line. ``--jwt-secret`` defaults to the env var ``JWT_SECRET_KEY`` (the real system's), then
``LOCUST_JWT_SECRET``.

In-process use (tests, benchmarks): ``ChatSettings(...)`` directly, or set ``state_of(environment).chat_settings``.
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events
from locust.env import Environment

from config.arrival import ArrivalSchedule, ScheduleError
from config.errors import UsageError, exit_usage
from config.options import add_option
from config.validate import bounded
from sla_checks.state import state_of
from tasks.corpus import DEFAULT_MESSAGES, load_messages
from tasks.timeline import ProtocolConfig, ProtocolConfigError
from users.auth import (
    AuthConfigError,
    FileTokens,
    LoginTokens,
    MintedTokens,
    TokenSource,
    http_base_from_ws,
    parse_claims,
    read_users_file,
    seeded_users,
)
from users.ws_session import AUTH_MODES, proxy_for, redact_url, split_ws_url

logger = logging.getLogger(__name__)


class ChatConfigError(UsageError, ValueError):
    """A chat option has a bad value; the text names the option, the value (never a secret) and the fix."""


@dataclass
class ChatSettings:
    """Resolved chat options shared by every chat user of a run (``state_of(environment).chat_settings``)."""

    path: str = "/ws"
    auth_mode: str = "subprotocol+header"
    insecure: bool = False
    connect_timeout: float = 10.0
    reply_timeout: float = 30.0
    hang_after: float = 10.0
    inflight: int = 1
    demand_dropped_at: float | None = None
    """``time.monotonic()`` when a scenario step last lowered ``inflight`` (users.recovery); ``None``: never."""
    heartbeat_interval: float = 15.0
    heartbeat_timeout: float = 5.0
    heartbeat_misses: int = 2
    think_time: float = 1.0
    max_frame: int = 1 << 20
    reconnect_max_backoff: float = 10.0
    max_age: float | None = None
    """Retire (drain, then replace) a connection this many seconds old; ``None`` = never (``--ws-max-age``)."""
    ca_file: str | None = None
    """PEM bundle of the CAs that verify wss:// (and the login's https://) servers; ``None`` = the system's."""
    client_cert: str | None = None
    client_key: str | None = None
    proxy: str | None = field(default=None, repr=False)
    """``--ws-proxy``: ``http://[user:password@]host:port``; ``None`` = the environment's (HTTPS_PROXY ...)."""
    compression: bool = False
    arrival: ArrivalSchedule | None = None
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    messages: tuple[str, ...] = DEFAULT_MESSAGES
    tokens: TokenSource | None = field(default=None, repr=False)
    login_url: str | None = None
    login_path: str = "/auth/login"
    login_users: list[Any] = field(default_factory=list, repr=False)
    """Credentials for the FLOW user's ``POST /auth/login`` (users file, else the reference backend's seeds)."""
    _ssl: tuple[tuple[Any, ...], ssl.SSLContext] | None = field(default=None, init=False, repr=False, compare=False)

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of wss:// connections (and the login's https://), built once and shared: loading the
        CA store costs ~15 ms of blocking CPU, too much to pay on every connect and reconnect. Raises
        :class:`ChatConfigError` naming the option of a CA file or client certificate that cannot be loaded."""
        key = (self.insecure, self.ca_file, self.client_cert, self.client_key)
        cached = self._ssl
        if cached is not None and cached[0] == key:
            return cached[1]
        ctx = tls_context(self.ca_file, self.client_cert, self.client_key, self.insecure)
        self._ssl = (key, ctx)
        return ctx

    def login_ssl(self) -> ssl.SSLContext | None:
        """The TLS context of an https:// ``login_url`` (the same CA file and client certificate as wss://)."""
        return self.ssl_context() if (self.login_url or "").startswith("https://") else None

    def with_(self, **changes: Any) -> ChatSettings:
        return replace(self, **changes)


def tls_context(ca_file: str | None, client_cert: str | None = None, client_key: str | None = None,
                insecure: bool = False) -> ssl.SSLContext:
    """A client TLS context: verifying against ``ca_file`` (a PEM bundle; else the system's store, which honours
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), presenting ``client_cert`` (+ ``client_key``) for mutual TLS; no
    verification when ``insecure``. A file that cannot be loaded raises :class:`ChatConfigError` naming its option."""
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ChatConfigError(f"--ws-ca-file {ca_file!r} cannot be loaded ({_ssl_text(exc)}); give a PEM file of "
                              "CA certificates (-----BEGIN CERTIFICATE-----)") from None
    if client_cert:
        try:
            # a key protected by a passphrase is refused instead of OpenSSL prompting on the terminal
            ctx.load_cert_chain(client_cert, client_key or None, password=lambda: b"")
        except (OSError, ssl.SSLError) as exc:
            raise ChatConfigError(
                f"--ws-client-cert {client_cert!r} / --ws-client-key {client_key or '(in the same file)'!r} cannot "
                f"be loaded ({_ssl_text(exc)}); give PEM files of the certificate and its unencrypted private key "
                "(decrypt one with: openssl pkey -in key.pem -out plain.pem)") from None
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _ssl_text(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc)


def ws_url(host: str | None, path: str) -> str:
    """The chat URL from ``--host`` and ``--ws-path``; raises :class:`ChatConfigError` naming ``--host``."""
    if not host:
        raise ChatConfigError(
            "ChatUser needs --host (or LOCUST_HOST) set to a WebSocket URL, e.g. --host ws://127.0.0.1:8765 "
            "or wss://staging.example.com"
        )
    try:
        split_ws_url(host)
    except ValueError:
        raise ChatConfigError(
            f"--host has value {host!r}, which is not a ws:// or wss:// URL; ChatUser expects e.g. "
            "--host ws://127.0.0.1:8765 (the path defaults to --ws-path /ws) or wss://staging.example.com/ws"
        ) from None
    scheme, _, _, _, target = split_ws_url(host)
    if target in ("", "/"):
        if not path.startswith("/"):
            raise ChatConfigError(f"--ws-path has value {path!r}; it must start with '/', e.g. /ws")
        return host.rstrip("/") + path
    return host


_CHAT = ChatSettings()
"""The chat options' defaults (the one place they live: :class:`ChatSettings`)."""


@dataclass(frozen=True)
class JwtDefaults:
    """Defaults of the options that mint tokens (``--jwt-*``)."""

    issuer: str = "agent-chat-backend"
    user_pattern: str = "user-{n:04d}"
    email_pattern: str = "loadtest{n}@example.com"
    users: int = 100
    ttl: float = 3600.0


_JWT = JwtDefaults()
DEFAULT_LOGIN_PASSWORD = "loadtest-password"
"""Password of the reference backend's seeded users (``--ws-login-password``, env ``TARGET_SEED_PASSWORD``)."""


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    # Web-UI runs re-read the settings from the options at each test start, so the form's edits apply.
    def add(name: str, **kwargs: Any) -> None:
        add_option(parser, name, group="Chat users", **kwargs)

    add("--ws-path", default=_CHAT.path, help="WebSocket path appended to --host when it has none (default {default})")
    add("--ws-auth", default=_CHAT.auth_mode, choices=AUTH_MODES,
        help="where the JWT goes: subprotocol jwt-auth.<jwt> plus Authorization header (default), header, "
             "subprotocol or query (?token=)")
    add("--ws-insecure", action="store_true", default=_CHAT.insecure,
        help="do not verify the TLS certificate of wss:// hosts (test systems only; logs a warning)")
    add("--ws-ca-file", default="",
        help="PEM bundle of the CA certificates that verify wss:// hosts, the login's https:// URL and the probes' "
             "TLS (a private CA); default: the system's store, or env SSL_CERT_FILE")
    add("--ws-client-cert", default="", help="PEM client certificate for mutual TLS (wss:// and the login)")
    add("--ws-client-key", default="",
        help="PEM private key of --ws-client-cert, unencrypted (default: in the certificate's file)")
    add("--ws-proxy", default="", secret=True,
        help="HTTP CONNECT proxy for the WebSocket and the login, http://[user:password@]host:port; default: env "
             "HTTPS_PROXY (wss://) or HTTP_PROXY (ws://), NO_PROXY honoured")
    add("--ws-compression", default="off", choices=("on", "off"),
        help="on: offer permessage-deflate (RFC 7692), inflate compressed replies, compress sent messages "
             "(default {default})")
    add("--ws-max-age", type=float, default=None,
        help="seconds after which a connection is drained (no new message on it) and replaced between messages, "
             "below a load balancer's maximum connection lifetime (each retires at 90-100 %% of it); default: never")
    add("--ws-connect-timeout", type=float, default=_CHAT.connect_timeout,
        help="seconds for TCP + TLS + upgrade + connection_established (default {default})")
    add("--ws-reply-timeout", type=float, default=_CHAT.reply_timeout,
        help="seconds until a message without agent_completed fails as 'timeout' (default {default})")
    add("--ws-hang-after", type=float, default=_CHAT.hang_after,
        help="seconds without any frame for a message until it fails as 'hang' (default {default})")
    add("--ws-inflight", type=int, default=_CHAT.inflight, web_ui=True,
        help="messages in flight per chat user (default {default})")
    add("--ws-heartbeat-interval", type=float, default=_CHAT.heartbeat_interval,
        help="seconds between heartbeat pings per connection; 0 = off (default {default})")
    add("--ws-heartbeat-timeout", type=float, default=_CHAT.heartbeat_timeout,
        help="seconds to wait for a pong (default {default})")
    add("--ws-heartbeat-misses", type=int, default=_CHAT.heartbeat_misses,
        help="missed pongs in a row after which the connection counts as dead and is reopened (default {default})")
    add("--ws-think-time", type=float, default=_CHAT.think_time, web_ui=True,
        help="seconds a chat user waits between replies in the closed model (default {default}; 0 = none)")
    add("--ws-arrival-rate", default="", web_ui=True,
        help="open model: total user messages per second over all connected chat users, sent on schedule "
             "without waiting for replies; a number, or a ramp 't:rate,...' (e.g. '0:5,60:50'); empty = closed "
             "model (default)")
    add("--ws-messages", default="", help="file of user messages, one per line (default: built-in corpus)")
    add("--ws-protocol", default="",
        help="TOML/JSON file mapping event names, id fields and envelope of a backend with other names")
    add("--ws-event-names", default="",
        help="comma-separated agent event types in order, first starts and last completes a reply "
             "(default agent_started,agent_thinking,tool_executing,tool_completed,agent_completed)")
    add("--ws-envelope", default="", help="key of the server events' details: data (default) or payload")
    add("--ws-max-frame-bytes", type=int, default=_CHAT.max_frame,
        help="larger incoming messages are skipped and counted as 'oversize frame' (default {default} bytes, 1 MiB)")
    add("--ws-reconnect-max-backoff", type=float, default=_CHAT.reconnect_max_backoff,
        help="upper bound in seconds of the reconnect backoff after a drop (default {default})")
    add("--ws-login-url", default="",
        help="HTTP base URL of POST /auth/login (default: derived from --host, ws→http)")
    add("--ws-login-path", default=_CHAT.login_path, help="login path (default {default})")
    add("--ws-login-password", default=None, secret=True,
        help="password of the seeded users loadtest{n}@example.com when no --users-file is given "
             f"(default: env TARGET_SEED_PASSWORD, else {DEFAULT_LOGIN_PASSWORD})")
    add("--jwt-secret", default=None, secret=True,
        help="HS256 secret to mint tokens with (default: env JWT_SECRET_KEY)")
    add("--jwt-issuer", default=None, help=f"iss claim (default: env JWT_ISSUER, else {_JWT.issuer})")
    add("--jwt-user-pattern", default=_JWT.user_pattern, help="sub claim pattern over n (default {default})")
    add("--jwt-email-pattern", default=_JWT.email_pattern, help="email claim pattern over n")
    add("--jwt-users", type=int, default=_JWT.users,
        help="distinct user ids minted, n = user number mod this (default {default})")
    add("--jwt-ttl", type=float, default=_JWT.ttl,
        help="token lifetime in seconds (default {default}); refreshed before expiry")
    add("--jwt-claims", default="", help='extra claims as a JSON object, e.g. \'{"permissions": ["chat:write"]}\'')
    add("--token-file", default="",
        help="file of JWTs, one per line, used round-robin instead of minting; re-read when it changes")
    add("--users-file", default="", help="CSV of email,password: chat users log in with POST /auth/login")
    add("--ws-skip-start-check", action="store_true", default=False,
        help="headless runs: do not open one test connection at start (host reachable, credentials accepted)")


def _opt(options: Any, name: str, default: Any) -> Any:
    value = getattr(options, name, default)
    return default if value is None else value


# option → (low, high, low_open, default, what the low end means): every numeric chat option's accepted range
_LIMITS: dict[str, tuple[float, float, bool, float, str]] = {
    "--ws-connect-timeout": (0, 600, True, _CHAT.connect_timeout, ""),
    "--ws-reply-timeout": (0, 3600, True, _CHAT.reply_timeout, ""),
    "--ws-hang-after": (0, 3600, True, _CHAT.hang_after, ""),
    "--ws-heartbeat-interval": (0, 3600, False, _CHAT.heartbeat_interval, "0 switches the heartbeat off"),
    "--ws-heartbeat-timeout": (0, 600, True, _CHAT.heartbeat_timeout, ""),
    "--ws-think-time": (0, 3600, False, _CHAT.think_time, "0 = no think time"),
    "--ws-reconnect-max-backoff": (0, 3600, True, _CHAT.reconnect_max_backoff, ""),
    "--jwt-ttl": (1, 366 * 86400, False, _JWT.ttl, ""),
}
_INT_LIMITS: dict[str, tuple[int, int, int]] = {
    "--ws-inflight": (1, 1000, _CHAT.inflight),
    "--ws-heartbeat-misses": (1, 100, _CHAT.heartbeat_misses),
    "--ws-max-frame-bytes": (1024, 1 << 30, _CHAT.max_frame),
    "--jwt-users": (1, 10_000_000, _JWT.users),
}


def _seconds(options: Any, option: str) -> float:
    """The value of a seconds option, finite and within its range in :data:`_LIMITS`, else ChatConfigError."""
    low, high, low_open, default, zero = _LIMITS[option]
    value = _opt(options, option.lstrip("-").replace("-", "_"), default)
    hint = f"{zero}; default {default:g}" if zero else f"default {default:g}"
    return bounded(option, value, low=low, high=high, low_open=low_open, unit="seconds", hint=hint,
                   error=ChatConfigError)


def _count(options: Any, option: str) -> int:
    """The value of a whole-number option within its range in :data:`_INT_LIMITS`, else ChatConfigError."""
    low, high, default = _INT_LIMITS[option]
    value = _opt(options, option.lstrip("-").replace("-", "_"), default)
    return int(bounded(option, value, low=low, high=high, integer=True, hint=f"default {default}",
                       error=ChatConfigError))


def settings_from_options(options: Any, host: str | None) -> ChatSettings:
    """Resolve and validate every chat option; :class:`ChatConfigError` names the first bad one."""
    s = ChatSettings()
    s.path = _opt(options, "ws_path", s.path)
    s.auth_mode = _opt(options, "ws_auth", s.auth_mode)
    if s.auth_mode not in AUTH_MODES:
        raise ChatConfigError(f"--ws-auth has value {s.auth_mode!r}; use one of {', '.join(AUTH_MODES)}")
    s.insecure = bool(_opt(options, "ws_insecure", s.insecure))
    s.connect_timeout = _seconds(options, "--ws-connect-timeout")
    s.reply_timeout = _seconds(options, "--ws-reply-timeout")
    s.hang_after = _seconds(options, "--ws-hang-after")
    s.inflight = _count(options, "--ws-inflight")
    s.heartbeat_interval = _seconds(options, "--ws-heartbeat-interval")
    s.heartbeat_timeout = _seconds(options, "--ws-heartbeat-timeout")
    s.heartbeat_misses = _count(options, "--ws-heartbeat-misses")
    s.think_time = _seconds(options, "--ws-think-time")
    s.max_frame = _count(options, "--ws-max-frame-bytes")
    s.reconnect_max_backoff = _seconds(options, "--ws-reconnect-max-backoff")
    _network_options(options, s)
    _seconds(options, "--jwt-ttl")
    _count(options, "--jwt-users")
    rate = str(_opt(options, "ws_arrival_rate", "") or "").strip()
    if rate:
        try:
            s.arrival = ArrivalSchedule.parse(rate)
        except ScheduleError as exc:
            raise ChatConfigError(f"--ws-arrival-rate has value {rate!r}: {exc}") from None
    # protocol mapping
    try:
        protocol_file = _opt(options, "ws_protocol", "")
        protocol = ProtocolConfig.from_file(protocol_file) if protocol_file else ProtocolConfig()
        names = str(_opt(options, "ws_event_names", "") or "").strip()
        envelope = str(_opt(options, "ws_envelope", "") or "").strip()
        changes: dict[str, Any] = {}
        if names:
            events_ = tuple(n.strip() for n in names.split(",") if n.strip())
            changes["events"] = events_
            changes["pairs"] = tuple(p for p in protocol.pairs if p[0] in events_ and p[1] in events_)
            if protocol.required is not None:
                changes["required"] = tuple(r for r in protocol.required if r in events_)
        if envelope:
            changes["envelope"] = envelope
        s.protocol = replace(protocol, **changes) if changes else protocol
    except ProtocolConfigError as exc:
        raise ChatConfigError(f"{exc} (options --ws-protocol / --ws-event-names / --ws-envelope)") from None
    messages_file = _opt(options, "ws_messages", "")
    if messages_file:
        try:
            s.messages = load_messages(messages_file)
        except ValueError as exc:
            raise ChatConfigError(str(exc)) from None
    url = ws_url(host, s.path)
    login_url = str(_opt(options, "ws_login_url", "") or "")
    if login_url and urlsplit(login_url).scheme not in ("http", "https"):
        raise ChatConfigError(f"--ws-login-url has value {login_url!r}; it must be an http:// or https:// URL, "
                              "e.g. http://127.0.0.1:8765 (default: derived from --host)")
    s.login_url = login_url or http_base_from_ws(url)
    s.login_path = _opt(options, "ws_login_path", s.login_path)
    s.tokens, s.login_users = _token_source(options, s)
    if s.insecure and url.startswith("wss://"):
        logger.warning("--ws-insecure: TLS certificates of %s are NOT verified (use only on test systems)",
                       split_ws_url(url)[1])
    return s


def _network_options(options: Any, s: ChatSettings) -> None:
    """``--ws-max-age``, the TLS files, ``--ws-proxy`` and ``--ws-compression`` into ``s`` (checked: the TLS files
    are loaded once here, so a bad one stops the run before any load)."""
    max_age = _opt(options, "ws_max_age", None)
    if max_age is not None:
        s.max_age = bounded("--ws-max-age", max_age, low=1, high=366 * 86400, unit="seconds",
                            hint="e.g. 50 below a balancer's 60 s connection lifetime; unset = never",
                            error=ChatConfigError)
    s.ca_file = str(_opt(options, "ws_ca_file", "") or "") or None
    s.client_cert = str(_opt(options, "ws_client_cert", "") or "") or None
    s.client_key = str(_opt(options, "ws_client_key", "") or "") or None
    if s.client_key and not s.client_cert:
        raise ChatConfigError(f"--ws-client-key {s.client_key!r} is given without --ws-client-cert; give both")
    for option, path in (("--ws-ca-file", s.ca_file), ("--ws-client-cert", s.client_cert),
                         ("--ws-client-key", s.client_key)):
        if path and not os.path.isfile(path):
            raise ChatConfigError(f"{option} {path!r} is not a readable file; give the path of a PEM file")
    if s.ca_file or s.client_cert:
        s.ssl_context()
    proxy = str(_opt(options, "ws_proxy", "") or "")
    if proxy:
        parts = urlsplit(proxy)
        try:
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            parts = parts._replace(scheme="bad")
        if parts.scheme != "http" or not parts.hostname:
            raise ChatConfigError(f"--ws-proxy has value {redact_url(proxy)!r}; give an HTTP proxy URL "
                                  "http://[user:password@]host:port (an https:// proxy is not supported)")
        s.proxy = proxy
    compression = str(_opt(options, "ws_compression", "off") or "off").lower()
    if compression not in ("on", "off"):
        raise ChatConfigError(f"--ws-compression has value {compression!r}; use on or off")
    s.compression = compression == "on"


def _token_source(options: Any, s: ChatSettings) -> tuple[TokenSource | None, list[Any]]:
    token_file = _opt(options, "token_file", "")
    users_file = _opt(options, "users_file", "")
    password = (_opt(options, "ws_login_password", None) or os.environ.get("TARGET_SEED_PASSWORD")
                or DEFAULT_LOGIN_PASSWORD)
    try:
        login_users = read_users_file(users_file) if users_file else seeded_users(100, password)
        if token_file:
            return FileTokens(token_file), login_users
        if users_file:
            return LoginTokens(s.login_url or "", login_users, s.login_path, ssl_context=s.login_ssl(),
                               proxy=s.proxy), login_users
        secret = _opt(options, "jwt_secret", None) or os.environ.get("JWT_SECRET_KEY") or ""
        if not secret:
            raise ChatConfigError(
                "chat users need credentials: set --jwt-secret (or env JWT_SECRET_KEY / LOCUST_JWT_SECRET) to mint "
                "tokens, or give --token-file FILE or --users-file FILE"
            )
        return (
            MintedTokens(
                secret,
                issuer=_opt(options, "jwt_issuer", None) or os.environ.get("JWT_ISSUER") or _JWT.issuer,
                user_pattern=_opt(options, "jwt_user_pattern", _JWT.user_pattern),
                email_pattern=_opt(options, "jwt_email_pattern", _JWT.email_pattern),
                ttl=float(_opt(options, "jwt_ttl", _JWT.ttl)),
                users=int(_opt(options, "jwt_users", _JWT.users)),
                claims=parse_claims(_opt(options, "jwt_claims", "")),
            ),
            login_users,
        )
    except AuthConfigError as exc:
        raise ChatConfigError(str(exc)) from None


def start_check(settings: ChatSettings, url: str, login: bool = False) -> None:
    """One connect as chat user 0 before any load: the host answers and accepts the credentials (an unreachable
    host, a secret that is not the backend's, a token from a skewed clock fail here, not as thousands of samples).
    ``login``: also one ``POST /auth/login`` with the first login user (``ChatFlowUser``)."""
    from users.auth import LoginError, TokenError
    from users.auth import login as http_login
    from users.ws_session import ChatSession, ConnectError

    skip = "(or skip this check with --ws-skip-start-check)"
    if login and settings.login_users:
        try:
            http_login(settings.login_url or "", settings.login_path, settings.login_users[0],
                       timeout=settings.connect_timeout, ssl_context=settings.login_ssl(), proxy=settings.proxy)
        except LoginError as exc:
            raise ChatConfigError(
                f"start-up check: ChatFlowUser {exc}; fix --ws-login-password (env TARGET_SEED_PASSWORD), "
                f"--users-file or --ws-login-url / --ws-login-path {skip}") from None
    try:
        token = settings.tokens.token(0).value if settings.tokens is not None else None
    except LoginError as exc:
        raise ChatConfigError(f"start-up check: {exc}; fix --users-file / --ws-login-url {skip}") from None
    except TokenError as exc:  # the text already says what to do
        raise ChatConfigError(f"start-up check: {exc} {skip}") from None
    session = ChatSession(url, config=settings.protocol, token=token, auth_mode=settings.auth_mode,
                          ssl_context=settings.ssl_context() if url.startswith("wss://") else None,
                          connect_timeout=settings.connect_timeout, max_frame=settings.max_frame,
                          client_cert=bool(settings.client_cert), compression=settings.compression,
                          proxy=proxy_for(url, settings.proxy))
    try:
        session.connect()
    except ConnectError as exc:
        if exc.auth:
            fix = ("check that --jwt-secret (env JWT_SECRET_KEY) is the backend's secret and --jwt-issuer its "
                   "issuer, that --token-file / --users-file hold current credentials, and that this machine's clock "
                   "agrees with the backend's (a token whose iat is in the future or exp in the past is refused)")
        else:
            fix = "start the backend or fix --host / --ws-path"
        raise ChatConfigError(f"start-up check: ChatUser cannot connect to --host {url}: {exc}; {fix} {skip}") \
            from None
    finally:
        session.close(reason="start-up check")


def chat_settings(environment: Environment) -> ChatSettings:
    """The run's chat settings (``state_of(environment).chat_settings``), resolved from the options on first use."""
    state = state_of(environment)
    settings = state.chat_settings
    if not isinstance(settings, ChatSettings):
        settings = settings_from_options(environment.parsed_options, environment.host)
        state.chat_settings = settings
        state.chat_settings_from_options = True
    return settings


def _runs_subclass_of(environment: Environment, base_name: str) -> bool:
    """A user class of the run derives from :mod:`users.chat`'s class ``base_name``, told by the class names in its
    MRO: users.chat imports this module, never the other way round."""
    return any(isinstance(c, type) and any(k.__name__ == base_name for k in c.__mro__)
               for c in environment.user_classes or [])


def _uses_flow(environment: Environment) -> bool:
    return _runs_subclass_of(environment, "ChatFlowUser")


def _uses_chat(environment: Environment) -> bool:
    return _runs_subclass_of(environment, "ChatUserBase")


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is not None and not getattr(options, "headless", False) and not getattr(options, "worker", False):
        # web UI: options (and the host) may have been edited in the form since init; resolve again lazily
        state = state_of(environment)
        if state.chat_settings_from_options:
            state.chat_settings = None


ARRIVAL_SHARE_MESSAGE = "chat_arrival_share"


def _register_arrival_share(environment: Environment) -> None:
    """``--ws-arrival-rate`` is a total: the master tells each of its N workers to send 1/N of it."""
    from locust.runners import MasterRunner, WorkerRunner

    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        def on_share(msg: Any, **_kw: Any) -> None:
            share = float(msg.data["share"])
            state = state_of(environment)
            state.chat_arrival_share = share
            driver = state.chat_open_model
            if driver is not None:
                driver.set_share(share)

        runner.register_message(ARRIVAL_SHARE_MESSAGE, on_share)
    elif isinstance(runner, MasterRunner):
        def send_share(**_kw: Any) -> None:
            workers = max(1, runner.worker_count)
            runner.send_message(ARRIVAL_SHARE_MESSAGE, {"share": 1.0 / workers})

        # test_start fires on the master before its spawn messages go out; spawning_complete re-sends when
        # workers joined meanwhile.
        environment.events.test_start.add_listener(send_share)
        environment.events.spawning_complete.add_listener(lambda user_count, **kw: send_share())


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is not None and environment.runner is not None and (
            getattr(options, "worker", False) or getattr(options, "ws_arrival_rate", "")):
        _register_arrival_share(environment)  # a worker learns the master's options only with its first spawn
    state = state_of(environment)
    if options is None or state.chat_settings is not None:
        return
    if not _uses_chat(environment):
        return
    if getattr(options, "worker", False):
        # a worker gets the host and the master's options with the first spawn message (the master checked them
        # at its start): resolve lazily when its first chat user starts
        return
    host = environment.host
    if not host and not getattr(options, "headless", False) and not getattr(options, "worker", False):
        return  # web UI: the host may still be entered in the form; checked again when users start
    try:
        settings = state.chat_settings = settings_from_options(options, host)
        state.chat_settings_from_options = True
        if getattr(options, "headless", False) and not getattr(options, "ws_skip_start_check", False):
            start_check(settings, ws_url(host, settings.path),
                        login=_uses_flow(environment))
    except ChatConfigError as exc:
        exit_usage(exc, prefix="Bad chat option", logger=logger)


__all__ = ["ChatSettings", "ChatConfigError", "chat_settings", "settings_from_options", "start_check", "ws_url"]
