"""JWT issue/verify and the seeded test users. Pure apart from bcrypt's CPU work (callers run it in a thread).

Tokens: HS256 with claims ``sub``, ``email``, ``permissions``, ``iat``, ``exp``, ``type: "access"``, ``iss``,
``jti``. Verification accepts only HS256 (so ``alg: none`` and other algorithms are refused), requires ``exp``,
``iat`` and ``sub``, requires ``exp``/``iat``/``nbf`` (when present) to be JSON numbers, not numeric strings, checks
the issuer and the ``type``. Error texts never contain the token or the secret.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import bcrypt
import jwt

ALGORITHM = "HS256"
DEFAULT_PERMISSIONS = ("chat:read", "chat:write")
SUBPROTOCOL_PREFIXES = ("jwt-auth.", "jwt.", "bearer.")


class AuthError(Exception):
    """A token was missing or refused; the message says why without quoting the token."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    email: str
    permissions: tuple[str, ...]


@dataclass(frozen=True)
class SeedUser:
    user_id: str
    email: str
    password_hash: bytes


def seed_email(i: int) -> str:
    return f"loadtest{i}@example.com"


def seed_user_id(i: int) -> str:
    return f"user-{i:04d}"


def make_seed_users(count: int, password: str, rounds: int) -> dict[str, SeedUser]:
    """``count`` users keyed by email, each with its own salted bcrypt hash (CPU-bound: run in a thread)."""
    pw = password.encode()
    users = {}
    for i in range(count):
        email = seed_email(i)
        users[email] = SeedUser(seed_user_id(i), email, bcrypt.hashpw(pw, bcrypt.gensalt(rounds)))
    return users


def check_password(user: SeedUser, password: str) -> bool:
    return bcrypt.checkpw(password.encode(), user.password_hash)


def issue_token(
    secret: str,
    *,
    user_id: str,
    email: str,
    issuer: str,
    ttl_s: int,
    permissions: Iterable[str] = DEFAULT_PERMISSIONS,
    now: float | None = None,
) -> str:
    iat = int(time.time() if now is None else now)
    claims = {
        "sub": user_id,
        "email": email,
        "permissions": list(permissions),
        "iat": iat,
        "exp": iat + ttl_s,
        "type": "access",
        "iss": issuer,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


TIME_CLAIMS = ("exp", "iat", "nbf")


def check_time_claim_types(claims: Mapping[str, object]) -> None:
    """Raise AuthError unless each time claim present is a JSON number (RFC 7519 NumericDate: seconds since the
    epoch, fractions allowed); a string, boolean, null, NaN or infinity is refused."""
    for name in TIME_CLAIMS:
        if name not in claims:
            continue
        v = claims[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            got = repr(v) if isinstance(v, float) else type(v).__name__
            raise AuthError(f"token claim {name!r} must be a number (seconds since the epoch), not {got}")


def verify_token(token: str, secret: str, issuer: str, *, now: float | None = None, leeway_s: float = 0) -> Principal:
    """Return the token's principal or raise AuthError saying what is wrong."""
    if not token:
        raise AuthError("missing token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("malformed token") from None
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise AuthError(f"token algorithm {str(alg)[:16]!r} is not accepted (only {ALGORITHM})")
    options: Any = {"require": ["exp", "iat", "sub"]}
    try:
        # Signature, issuer and required claims first, the time claims' types next, their values last: pyjwt
        # (2.15) checks a time claim only with int(claim), so it takes "exp": "9999999999" or "iat": true.
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=issuer,
            options={**options, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
        check_time_claim_types(claims)
        if now is None:
            jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=issuer, options=options, leeway=leeway_s)
        elif claims["exp"] + leeway_s <= now:  # an injected clock (tests): check exp ourselves against it
            raise jwt.ExpiredSignatureError("Signature has expired")
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("token signature is invalid") from None
    except jwt.MissingRequiredClaimError as e:
        raise AuthError(f"token lacks the required claim {e.claim!r}") from None
    except jwt.InvalidIssuerError:
        raise AuthError("token issuer is not accepted") from None
    except jwt.PyJWTError as e:
        raise AuthError(f"token rejected: {type(e).__name__}") from None
    if claims.get("type", "access") != "access":
        raise AuthError("token type is not 'access'")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthError("token subject is empty")
    perms = claims.get("permissions") or []
    return Principal(sub, str(claims.get("email", "")), tuple(str(p) for p in perms if isinstance(p, str)))


@dataclass(frozen=True)
class TokenPlacement:
    token: str | None
    subprotocol: str | None  # the exact offered subprotocol to echo back, if the token came that way
    source: str  # "subprotocol" | "header" | "query" | "none"


def extract_token(headers: Mapping[str, str], query_string: str) -> TokenPlacement:
    """Find the JWT in (order of preference) a ``jwt-auth.``/``jwt.``/``bearer.`` subprotocol, the Authorization
    header, or the ``token`` query parameter. ``headers`` keys are lower-case."""
    offered = headers.get("sec-websocket-protocol", "")
    for proto in (p.strip() for p in offered.split(",")):
        for prefix in SUBPROTOCOL_PREFIXES:
            if proto.lower().startswith(prefix) and len(proto) > len(prefix):
                return TokenPlacement(proto[len(prefix):], proto, "subprotocol")
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return TokenPlacement(auth[7:].strip(), None, "header")
    q = parse_qs(query_string, keep_blank_values=False).get("token")
    if q and q[0]:
        return TokenPlacement(q[0], None, "query")
    return TokenPlacement(None, None, "none")
