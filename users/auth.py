"""Where chat users get their JWTs: minted locally, read from a token file, or from ``POST /auth/login``.

Every source hands out :class:`Token` objects for a user index (``n``, the simulated user's number) and is asked
again before each (re)connect; a token whose expiry is within ``refresh_margin`` seconds is replaced first, so a long
run never connects with an expired token. Tokens, secrets and passwords are never logged and never appear in error
texts (``Token.__repr__`` hides the value).

Sources (``users.ws_options`` picks one from the options, in this precedence):

1. ``--token-file FILE``: one JWT per line (``#`` comments ignored), handed out round-robin. The file is re-read
   when it changes (mtime, size or inode) and when the token due has expired, so a process that rotates the file
   keeps a long run going; an expired token is skipped for the next unexpired one (logged once). A file whose tokens
   have all expired is a start-up error (exit 2); during the run it fails that connect (``WS connect`` failure
   naming the file and the fix) until the file holds a fresh token.
2. ``--users-file FILE``: CSV ``email,password`` lines; each user logs in with ``POST /auth/login`` (path
   ``--ws-login-path``, base URL from ``--ws-login-url`` or derived from ``--host``: ``ws://h:p/ws`` → ``http://h:p``).
3. ``--jwt-secret`` (default: env ``JWT_SECRET_KEY``): HS256 tokens minted with pyjwt, claims ``sub`` (from
   ``--jwt-user-pattern``, e.g. ``user-{n:04d}``), ``email`` (``--jwt-email-pattern``), ``permissions``, ``iat``,
   ``exp`` (``--jwt-ttl``), ``type: "access"``, ``iss`` (``--jwt-issuer``), ``jti``, plus ``--jwt-claims`` JSON.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt

from config.errors import SuiteError, UsageError

logger = logging.getLogger(__name__)

DEFAULT_PERMISSIONS = ("chat:read", "chat:write")


class AuthConfigError(UsageError, ValueError):
    """Bad auth option (names the option, the bad value, never a secret, and the fix)."""


class TokenError(SuiteError):
    """No usable token for a connect; the text names the source and the fix, never a token or a password."""


class LoginError(TokenError):
    """``POST /auth/login`` failed; the text names the status and the email, never the password."""


class TokenFileError(TokenError):
    """``--token-file`` has no usable token now: every token in it has expired, or it cannot be read any more."""


@dataclass(frozen=True, slots=True)
class Token:
    value: str = field(repr=False)
    expires_at: float | None
    """Wall-clock expiry (``exp``), ``None`` when unknown."""
    subject: str | None = None

    def __repr__(self) -> str:
        return f"Token(sub={self.subject!r}, expires_at={self.expires_at!r}, value=<hidden>)"

    def fresh(self, now: float, margin: float) -> bool:
        return self.expires_at is None or self.expires_at - now > margin


def token_expiry(value: str) -> tuple[float | None, str | None]:
    """(exp, sub) of a JWT without verifying it (``None`` when not a readable JWT)."""
    try:
        claims = jwt.decode(value, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None, None
    exp = claims.get("exp")
    return (float(exp) if isinstance(exp, int | float) else None), claims.get("sub")


def http_base_from_ws(url: str) -> str:
    """``ws://h:p/ws`` → ``http://h:p``; ``wss`` → ``https``."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


class TokenSource:
    """Hands out a fresh-enough token for user number ``n``, cached per ``n``."""

    kind = "abstract"
    refresh_margin: float = 60.0

    def __init__(self, refresh_margin: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.refresh_margin = refresh_margin
        self.clock = clock
        self._cache: dict[int, Token] = {}
        self.refreshes = 0

    def token(self, n: int) -> Token:
        """A token for user ``n`` that stays valid for more than ``refresh_margin`` s (refreshing it if needed)."""
        now = self.clock()
        cached = self._cache.get(n)
        if cached is not None and cached.fresh(now, self.refresh_margin):
            return cached
        token = self._fetch(n)
        if cached is not None:
            self.refreshes += 1
            logger.info("refreshed the %s token of chat user %d before its expiry", self.kind, n)
        self._cache[n] = token
        return token

    def _fetch(self, n: int) -> Token:
        raise NotImplementedError


class MintedTokens(TokenSource):
    """HS256 tokens minted with the backend's shared secret."""

    kind = "minted"

    def __init__(
        self,
        secret: str,
        *,
        issuer: str = "agent-chat-backend",
        user_pattern: str = "user-{n:04d}",
        email_pattern: str = "loadtest{n}@example.com",
        ttl: float = 3600.0,
        users: int = 100,
        claims: Mapping[str, Any] | None = None,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(refresh_margin=min(refresh_margin, ttl / 2), clock=clock)
        if not secret:
            raise AuthConfigError(
                "--jwt-secret is empty: set --jwt-secret, LOCUST_JWT_SECRET or JWT_SECRET_KEY "
                "(or use --token-file / --users-file)"
            )
        if ttl <= 0:
            raise AuthConfigError(f"--jwt-ttl has value {ttl!r}: it must be > 0 seconds")
        if users < 1:
            raise AuthConfigError(f"--jwt-users has value {users!r}: it must be >= 1")
        for option, pattern in (("--jwt-user-pattern", user_pattern), ("--jwt-email-pattern", email_pattern)):
            try:
                pattern.format(n=1)
            except (KeyError, IndexError, ValueError) as exc:
                raise AuthConfigError(
                    f"{option} has value {pattern!r}, which does not format with n (error: {exc}); "
                    "use a str.format pattern with {n}, e.g. 'user-{n:04d}'"
                ) from None
        self._secret = secret
        self.issuer = issuer
        self.user_pattern = user_pattern
        self.email_pattern = email_pattern
        self.ttl = ttl
        self.users = users
        self.claims = dict(claims or {})

    def __repr__(self) -> str:
        return f"MintedTokens(issuer={self.issuer!r}, users={self.users}, ttl={self.ttl}, secret=<hidden>)"

    def _fetch(self, n: int) -> Token:
        now = self.clock()
        i = n % self.users
        sub = self.user_pattern.format(n=i)
        payload: dict[str, Any] = {
            "sub": sub,
            "email": self.email_pattern.format(n=i),
            "permissions": list(DEFAULT_PERMISSIONS),
            "iat": int(now),
            "exp": int(now + self.ttl),
            "type": "access",
            "iss": self.issuer,
            "jti": uuid.uuid4().hex,
        }
        payload.update(self.claims)
        return Token(jwt.encode(payload, self._secret, algorithm="HS256"), float(payload["exp"]), sub)


def read_token_file(path: str) -> list[Token]:
    """The tokens of a ``--token-file`` (one per line, ``#`` comments and blank lines skipped), with their ``exp``."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [ln.strip() for ln in fh]
    except OSError as exc:
        raise AuthConfigError(
            f"--token-file {path!r} cannot be read ({exc.strerror}); give a file with one JWT per line"
        ) from None
    except UnicodeDecodeError:
        raise AuthConfigError(
            f"--token-file {path!r} is not UTF-8 text (a binary file?); give a file with one JWT per line"
        ) from None
    values = [ln for ln in lines if ln and not ln.startswith("#")]
    if not values:
        raise AuthConfigError(f"--token-file {path!r} holds no token; put one JWT per line")
    unfit = [i for i, value in enumerate(values, 1) if not (value.isascii() and value.isprintable())]
    if unfit:
        raise AuthConfigError(
            f"--token-file {path!r}: token #{unfit[0]} holds control or non-ASCII characters (a binary file?), "
            "which no HTTP header can carry; give a file with one JWT per line"
        )
    return [Token(value, *token_expiry(value)) for value in values]


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class FileTokens(TokenSource):
    """Tokens from a file, one per line, round-robin over users; re-read when the file changes (mtime, size or
    inode) or, at most every ``reread_interval`` s, when the token due has expired (an in-place rewrite may keep the
    mtime). An expired token is skipped for the next unexpired one; with none left, :meth:`token` raises
    :class:`TokenFileError` (that connect fails, the run goes on). A file caught mid-rotation (missing, empty) keeps
    the tokens read before."""

    kind = "token-file"
    reread_interval: float = 1.0

    def __init__(self, path: str, refresh_margin: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(refresh_margin=refresh_margin, clock=clock)
        self.path = path
        self._signature = self._stat()  # before the read: a change during it is seen at the next token()
        self.tokens: list[Token] = read_token_file(path)
        now = clock()
        self._read_at = now
        self._read_error: str | None = None
        self.rereads = 0
        expired = [i for i, t in enumerate(self.tokens, 1) if not t.fresh(now, 0.0)]
        if len(expired) == len(self.tokens):
            raise AuthConfigError(
                f"--token-file {path!r}: every token has expired (exp in the past); issue new tokens"
            )
        if expired:
            logger.warning("--token-file %s: %d of %d tokens already expired (token #%s); they will be skipped",
                           path, len(expired), len(self.tokens), ", #".join(map(str, expired[:5])))
        self._warned: set[int] = {i - 1 for i in expired}
        self._exhausted_logged = False

    def __repr__(self) -> str:
        return f"FileTokens(path={self.path!r}, count={len(self.tokens)})"

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _reread(self, now: float, signature: tuple[int, int, int] | None, why: str) -> None:
        self._signature = signature
        self._read_at = now
        try:
            tokens = read_token_file(self.path)
        except AuthConfigError as exc:
            if self._read_error is None:
                logger.warning("%s; keeping the %d token(s) read before", exc, len(self.tokens))
            self._read_error = str(exc)
            return
        self._read_error = None
        if [t.value for t in tokens] == [t.value for t in self.tokens]:
            return  # same tokens: nothing to log again
        self.tokens = tokens
        self._warned.clear()
        self._exhausted_logged = False
        self.rereads += 1
        fresh = sum(1 for t in tokens if t.fresh(now, self.refresh_margin))
        logger.info("--token-file %s re-read (%s): %d token(s), %d unexpired", self.path, why, len(tokens), fresh)

    def _pick(self, n: int, now: float) -> Token | None:
        """The token of user ``n``, or if it has expired the next unexpired one in round-robin order."""
        count = len(self.tokens)
        due = n % count
        for k in range(count):
            i = (due + k) % count
            token = self.tokens[i]
            if token.fresh(now, self.refresh_margin):
                return token
            if i not in self._warned:
                self._warned.add(i)
                logger.warning("--token-file %s: token #%d (sub=%s) has expired; its users get the next unexpired "
                               "token until the file is rotated", self.path, i + 1, token.subject)
        return None

    def token(self, n: int) -> Token:
        now = self.clock()
        signature = self._stat()
        if signature != self._signature:
            self._reread(now, signature, "changed")
        due = self.tokens[n % len(self.tokens)]
        if not due.fresh(now, self.refresh_margin) and now - self._read_at >= self.reread_interval:
            self._reread(now, signature, "a token expired")
        token = self._pick(n, now)
        if token is not None:
            return token
        latest = max(t.expires_at or 0.0 for t in self.tokens)
        unreadable = f" and it cannot be read now ({self._read_error})" if self._read_error else ""
        text = (f"--token-file {self.path}: every token in it has expired (the latest exp was {_utc(latest)})"
                f"{unreadable}; write fresh tokens into the file (it is re-read when it changes) or use "
                "--users-file / --jwt-secret, whose tokens are refreshed")
        if not self._exhausted_logged:
            self._exhausted_logged = True
            logger.error("chat users cannot connect: %s", text)
        raise TokenFileError(text)


@dataclass(frozen=True, slots=True)
class Credentials:
    email: str
    password: str = field(repr=False)


def read_users_file(path: str) -> list[Credentials]:
    """CSV ``email,password`` (a header line ``email,password`` is skipped)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise AuthConfigError(
            f"--users-file {path!r} cannot be read ({exc.strerror}); give a CSV file of email,password lines"
        ) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        what = "not UTF-8 text (a binary file?)" if isinstance(exc, UnicodeDecodeError) else f"not CSV ({exc})"
        raise AuthConfigError(
            f"--users-file {path!r} is {what}; give a CSV file of email,password lines"
        ) from None
    users = []
    for lineno, row in enumerate(rows, 1):
        if not row or not "".join(row).strip() or row[0].startswith("#"):
            continue
        if lineno == 1 and [c.strip().lower() for c in row[:2]] == ["email", "password"]:
            continue
        if len(row) < 2 or not row[0].strip():
            raise AuthConfigError(
                f"--users-file {path!r} line {lineno} has {len(row)} field(s); expected email,password"
            )
        users.append(Credentials(row[0].strip(), row[1]))
    if not users:
        raise AuthConfigError(f"--users-file {path!r} holds no user; put email,password lines")
    return users


def login(base_url: str, path: str, creds: Credentials, timeout: float = 10.0,
          ssl_context: ssl.SSLContext | None = None, proxy: str | None = None) -> Token:
    """``POST {base_url}{path}`` with ``{"email", "password"}`` → the access token. Raises :class:`LoginError`.

    ``ssl_context`` verifies an https:// server (``--ws-ca-file``, client certificate); ``proxy`` is an HTTP proxy
    URL (``--ws-proxy``), else the environment's ``HTTP(S)_PROXY`` / ``NO_PROXY`` apply."""
    body = json.dumps({"email": creds.email, "password": creds.password}).encode()
    req = urllib.request.Request(
        base_url.rstrip("/") + path, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    handlers: list[urllib.request.BaseHandler] = []
    if ssl_context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
    if proxy:
        handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    opener = urllib.request.build_opener(*handlers) if handlers else None
    try:
        with (opener.open(req, timeout=timeout) if opener is not None
              else urllib.request.urlopen(req, timeout=timeout)) as resp:
            data = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise LoginError(f"login of {creds.email} refused: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LoginError(f"login at {base_url}{path} failed: {reason}") from None
    except ValueError:
        raise LoginError(f"login of {creds.email}: the answer is not JSON") from None
    value = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise LoginError(f"login of {creds.email}: the answer has no access_token")
    exp, sub = token_expiry(value)
    if exp is None and isinstance(data.get("expires_in"), int | float):
        exp = time.time() + float(data["expires_in"])
    return Token(value, exp, sub)


class LoginTokens(TokenSource):
    """Tokens from ``POST /auth/login``, one user per ``n`` (round-robin over the users file)."""

    kind = "login"

    def __init__(
        self,
        base_url: str,
        users: list[Credentials],
        path: str = "/auth/login",
        timeout: float = 10.0,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
    ) -> None:
        super().__init__(refresh_margin=refresh_margin, clock=clock)
        self.base_url = base_url
        self.path = path
        self.users = users
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.proxy = proxy

    def __repr__(self) -> str:
        return f"LoginTokens(url={self.base_url}{self.path}, users={len(self.users)})"

    def credentials(self, n: int) -> Credentials:
        return self.users[n % len(self.users)]

    def _fetch(self, n: int) -> Token:
        return login(self.base_url, self.path, self.credentials(n), self.timeout, self.ssl_context, self.proxy)


def seeded_users(count: int, password: str, pattern: str = "loadtest{n}@example.com") -> list[Credentials]:
    """The reference backend's seeded users (``loadtest{i}@example.com``)."""
    return [Credentials(pattern.format(n=i), password) for i in range(count)]


def parse_claims(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        claims = json.loads(text)
    except ValueError as exc:
        raise AuthConfigError(f"--jwt-claims is not valid JSON ({exc}); give an object like "
                              '\'{"permissions": ["chat:read"]}\'') from None
    if not isinstance(claims, dict):
        raise AuthConfigError("--jwt-claims must be a JSON object, e.g. '{\"permissions\": [\"chat:read\"]}'")
    return claims
