"""Token checks of the reference backend (pure: injected clock, no sockets)."""

from __future__ import annotations

import time

import jwt
import pytest

from reference_backend.auth import (
    AuthError,
    check_password,
    extract_token,
    issue_token,
    make_seed_users,
    verify_token,
)

SECRET = "unit-test-secret-0123456789abcdef0123456789"
ISS = "agent-chat-backend"
NOW = 1_800_000_000.0


def good(**kw) -> str:  # noqa: ANN003
    return issue_token(SECRET, user_id="user-0001", email="loadtest1@example.com", issuer=ISS, ttl_s=600, now=NOW,
                       **kw)


def raw(claims: dict, key: str | None = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


BASE = {"sub": "user-0001", "iat": int(NOW), "exp": int(NOW) + 600, "type": "access", "iss": ISS}


def test_valid_token_gives_its_principal():
    p = verify_token(good(), SECRET, ISS, now=NOW + 1)
    assert p.user_id == "user-0001" and p.email == "loadtest1@example.com" and "chat:write" in p.permissions


def test_issued_token_carries_the_contract_claims():
    c = jwt.decode(good(), SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}, issuer=ISS)
    assert set(c) == {"sub", "email", "permissions", "iat", "exp", "type", "iss", "jti"}
    assert c["type"] == "access" and c["exp"] - c["iat"] == 600


@pytest.mark.parametrize(("token", "reason"), [
    ("", "missing"),
    ("abc", "malformed"),
    (raw(BASE | {"exp": int(NOW) - 1}), "expired"),
    (raw(BASE, key="another-secret-0123456789abcdef0123"), "signature"),
    (raw(BASE, key=None, alg="none"), "algorithm"),
    (raw(BASE, key=SECRET * 2, alg="HS512"), "algorithm"),
    (raw({k: v for k, v in BASE.items() if k != "exp"}), "exp"),
    (raw({k: v for k, v in BASE.items() if k != "sub"}), "sub"),
    (raw(BASE | {"iss": "evil"}), "issuer"),
    (raw(BASE | {"type": "refresh"}), "type"),
])
def test_bad_tokens_are_refused_with_a_reason(token, reason):
    with pytest.raises(AuthError, match=reason) as e:
        verify_token(token, SECRET, ISS, now=NOW)
    assert SECRET not in str(e.value) and (not token or token not in str(e.value))


def _forge(claims: dict) -> str:
    # json.dumps writes NaN/Infinity, which Python's (and so pyjwt's) JSON parser reads back
    return raw(claims)


@pytest.mark.parametrize("now", [NOW, None], ids=["injected-clock", "real-clock"])
@pytest.mark.parametrize("claims", [
    {"exp": "9999999999"},
    {"exp": str(int(NOW) + 600)},
    {"exp": True},
    {"exp": [int(NOW) + 600]},
    {"exp": float("nan")},
    {"iat": str(int(NOW))},
    {"iat": True},
    {"nbf": str(int(NOW) - 10)},
    {"nbf": None},
], ids=["exp-str-far", "exp-str", "exp-bool", "exp-list", "exp-nan", "iat-str", "iat-bool", "nbf-str", "nbf-null"])
def test_time_claims_that_are_not_json_numbers_are_refused(claims, now):
    base = BASE | {"iat": 1_000_000_000, "exp": 9_999_999_999}  # valid on either clock, but for the bad claim
    with pytest.raises(AuthError, match=rf"claim '{next(iter(claims))}' must be a number") as e:
        verify_token(_forge(base | claims), SECRET, ISS, now=now)
    assert SECRET not in str(e.value)


@pytest.mark.parametrize("claims", [{"exp": int(NOW) + 600.5}, {"nbf": int(NOW) - 10}, {"nbf": float(NOW)}],
                         ids=["exp-float", "nbf-int", "nbf-float"])
def test_numeric_time_claims_are_accepted(claims):
    # RFC 7519 NumericDate: any JSON number, fractions included
    assert verify_token(raw(BASE | claims), SECRET, ISS, now=NOW + 1).user_id == "user-0001"


def test_expiry_uses_the_injected_clock():
    t = good()
    verify_token(t, SECRET, ISS, now=NOW + 599)
    with pytest.raises(AuthError, match="expired"):
        verify_token(t, SECRET, ISS, now=NOW + 600)


def test_real_clock_expiry():
    t = raw(BASE | {"iat": int(time.time()) - 100, "exp": int(time.time()) - 10})
    with pytest.raises(AuthError, match="expired"):
        verify_token(t, SECRET, ISS)


@pytest.mark.parametrize(("headers", "query", "want"), [
    ({"sec-websocket-protocol": "jwt-auth.AAA.BBB.CCC"}, "", ("AAA.BBB.CCC", "jwt-auth.AAA.BBB.CCC", "subprotocol")),
    ({"sec-websocket-protocol": "chat, jwt.XYZ"}, "", ("XYZ", "jwt.XYZ", "subprotocol")),
    ({"sec-websocket-protocol": "bearer.Q"}, "", ("Q", "bearer.Q", "subprotocol")),
    ({"authorization": "Bearer HHH"}, "", ("HHH", None, "header")),
    ({"authorization": "bearer HHH", "sec-websocket-protocol": "jwt-auth.SSS"}, "token=QQQ",
     ("SSS", "jwt-auth.SSS", "subprotocol")),
    ({"authorization": "Basic xyz"}, "token=QQQ&x=1", ("QQQ", None, "query")),
    ({}, "", (None, None, "none")),
    ({"sec-websocket-protocol": "jwt-auth."}, "", (None, None, "none")),
])
def test_token_placements_in_order_of_preference(headers, query, want):
    p = extract_token(headers, query)
    assert (p.token, p.subprotocol, p.source) == want


def test_seed_users_have_hashed_passwords():
    users = make_seed_users(3, "pw-123", rounds=4)
    assert sorted(users) == ["loadtest0@example.com", "loadtest1@example.com", "loadtest2@example.com"]
    u = users["loadtest2@example.com"]
    assert u.user_id == "user-0002" and b"pw-123" not in u.password_hash
    assert check_password(u, "pw-123") and not check_password(u, "pw-124")
