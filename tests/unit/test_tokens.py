"""Token sources (minted, token file, login) with an injected clock; secrets never in reprs or error texts."""

from __future__ import annotations

import logging
import os

import jwt
import pytest

from users.auth import (
    AuthConfigError,
    Credentials,
    FileTokens,
    LoginTokens,
    MintedTokens,
    Token,
    TokenError,
    http_base_from_ws,
    parse_claims,
    read_users_file,
    token_expiry,
)

SECRET = "unit-test-secret-0123456789-abcdefghijklmnop"
pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_minted_token_has_the_backend_claims():
    clock = Clock()
    src = MintedTokens(SECRET, issuer="iss-x", ttl=600, users=10, claims={"permissions": ["chat:write"]}, clock=clock)
    tok = src.token(13)
    claims = jwt.decode(tok.value, SECRET, algorithms=["HS256"], issuer="iss-x", options={"verify_exp": False})
    assert claims["sub"] == "user-0003" and claims["email"] == "loadtest3@example.com"
    assert claims["type"] == "access" and claims["permissions"] == ["chat:write"]
    assert claims["exp"] - claims["iat"] == 600 and claims["jti"]
    assert tok.expires_at == claims["exp"]


def test_minted_token_is_cached_then_refreshed_before_expiry():
    clock = Clock()
    src = MintedTokens(SECRET, ttl=600, refresh_margin=60, clock=clock)
    first = src.token(1)
    clock.t += 500
    assert src.token(1) is first  # 100 s left > 60 s margin
    clock.t += 45
    second = src.token(1)
    assert second is not first and second.expires_at > first.expires_at
    assert src.refreshes == 1


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"secret": ""}, "--jwt-secret is empty"),
        ({"ttl": 0}, "--jwt-ttl"),
        ({"users": 0}, "--jwt-users"),
        ({"user_pattern": "user-{m}"}, "--jwt-user-pattern"),
        ({"email_pattern": "{n:q}"}, "--jwt-email-pattern"),
    ],
)
def test_bad_mint_options_name_the_option(kwargs, fragment):
    kw = {"secret": SECRET, **kwargs}
    with pytest.raises(AuthConfigError, match=fragment) as info:
        MintedTokens(kw.pop("secret"), **kw)
    assert SECRET not in str(info.value)


def test_reprs_hide_secret_and_token():
    src = MintedTokens(SECRET)
    tok = src.token(0)
    assert SECRET not in repr(src)
    assert tok.value not in repr(tok) and "hidden" in repr(tok)
    assert "pw" not in repr(Credentials("a@b", "pw"))


def _jwt(exp: float, sub: str = "u") -> str:
    return jwt.encode({"sub": sub, "exp": int(exp)}, SECRET, algorithm="HS256")


def test_token_file_round_robin_and_expiry_read(tmp_path):
    clock = Clock()
    path = tmp_path / "tokens.txt"
    path.write_text(f"# staging tokens\n{_jwt(clock.t + 100, 'a')}\n\n{_jwt(clock.t + 200, 'b')}\n")
    src = FileTokens(str(path), clock=clock)
    assert [src.token(n).subject for n in range(4)] == ["a", "b", "a", "b"]
    assert src.token(0).expires_at == int(clock.t + 100)
    assert str(path) in repr(src) and _jwt(clock.t + 100, "a") not in repr(src)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot be read"),
        ("\n# only comments\n", "holds no token"),
        ("EXPIRED", "every token has expired"),
    ],
)
def test_bad_token_file_is_a_start_error(tmp_path, content, fragment):
    clock = Clock()
    path = tmp_path / "tokens.txt"
    if content == "EXPIRED":
        content = _jwt(clock.t - 10) + "\n"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AuthConfigError, match=fragment):
        FileTokens(str(path), clock=clock)


def _rotate(path, *tokens: str) -> None:
    """Replace the file atomically, as a token-rotating sidecar would (new inode, new mtime)."""
    tmp = path.with_suffix(".new")
    tmp.write_text("".join(t + "\n" for t in tokens))
    os.replace(tmp, path)


def test_token_file_is_re_read_when_it_is_rotated(tmp_path):
    clock = Clock()
    path = tmp_path / "tokens.txt"
    path.write_text(_jwt(clock.t + 100, "a") + "\n")
    src = FileTokens(str(path), clock=clock)
    assert src.token(0).subject == "a"
    _rotate(path, _jwt(clock.t + 3600, "b"), _jwt(clock.t + 3600, "c"))
    assert [src.token(n).subject for n in range(3)] == ["b", "c", "b"]  # not yet expired: the change alone counts
    assert src.rereads == 1


def test_unchanged_looking_file_is_re_read_when_the_token_due_has_expired(tmp_path):
    # rewritten in place with the same size and its old mtime (cp -p, or a coarse file-system clock)
    clock = Clock()
    path = tmp_path / "tokens.txt"
    path.write_text(_jwt(clock.t + 100, "a") + "\n")
    before = os.stat(path)
    src = FileTokens(str(path), clock=clock)
    path.write_text(_jwt(clock.t + 900, "b") + "\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    assert src.token(0).subject == "a"
    clock.t += 150
    assert src.token(0).subject == "b"


def test_an_expired_token_is_skipped_for_the_next_unexpired_one(tmp_path, caplog):
    clock = Clock()
    path = tmp_path / "tokens.txt"
    path.write_text(f"{_jwt(clock.t + 100, 'a')}\n{_jwt(clock.t + 900, 'b')}\n")
    src = FileTokens(str(path), clock=clock)
    clock.t += 150
    with caplog.at_level(logging.INFO, logger="users.auth"):
        assert [src.token(n).subject for n in range(3)] == ["b", "b", "b"]
    assert "token #1" in caplog.text and "expired" in caplog.text


def test_all_tokens_expired_fails_the_connect_until_the_file_is_rotated(tmp_path, caplog):
    clock = Clock()
    path = tmp_path / "tokens.txt"
    old = _jwt(clock.t + 100, "a")
    path.write_text(old + "\n")
    src = FileTokens(str(path), clock=clock)
    clock.t += 150
    with caplog.at_level(logging.INFO, logger="users.auth"):
        for _ in range(3):  # every few seconds, as reconnects with backoff would
            clock.t += 5
            with pytest.raises(TokenError) as info:
                src.token(0)
    text = str(info.value)
    assert str(path) in text and "every token" in text and "expired" in text
    assert "re-read" in text and "--users-file" in text  # what to do
    assert old not in text and old not in caplog.text
    assert caplog.text.count("every token") == 1  # logged once, not per connect
    fresh = _jwt(clock.t + 600, "b")
    _rotate(path, fresh)
    assert src.token(0).value == fresh
    assert fresh not in caplog.text


def test_a_token_file_caught_mid_rotation_keeps_the_tokens_read_before(tmp_path):
    clock = Clock()
    path = tmp_path / "tokens.txt"
    path.write_text(_jwt(clock.t + 100, "a") + "\n")
    src = FileTokens(str(path), clock=clock)
    path.write_text("")  # truncated, new content not written yet
    assert src.token(0).subject == "a"
    path.unlink()
    assert src.token(0).subject == "a"
    clock.t += 150
    with pytest.raises(TokenError, match="cannot be read"):
        src.token(0)
    _rotate(path, _jwt(clock.t + 600, "b"))
    assert src.token(0).subject == "b"


def test_opaque_tokens_are_accepted_without_expiry(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("opaque-token-1\nopaque-token-2\n")
    src = FileTokens(str(path))
    assert src.token(1).value == "opaque-token-2" and src.token(1).expires_at is None
    assert token_expiry("opaque") == (None, None)


def test_users_file_parsing(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("email,password\nloadtest0@example.com,pw0\n\nloadtest1@example.com,p,w1\n")
    users = read_users_file(str(path))
    assert [u.email for u in users] == ["loadtest0@example.com", "loadtest1@example.com"]
    assert users[1].password == "p"
    bad = tmp_path / "bad.csv"
    bad.write_text("just-an-email\n")
    with pytest.raises(AuthConfigError, match="line 1 has 1 field"):
        read_users_file(str(bad))
    with pytest.raises(AuthConfigError, match="cannot be read"):
        read_users_file(str(tmp_path / "none.csv"))


def test_login_tokens_refresh_by_logging_in_again():
    clock = Clock()
    calls = []

    class FakeLogin(LoginTokens):
        def _fetch(self, n: int) -> Token:
            calls.append(self.credentials(n).email)
            return Token(f"t{len(calls)}", clock.t + 120, "s")

    src = FakeLogin("http://h", [Credentials("a@x", "p"), Credentials("b@x", "p")], clock=clock)
    assert src.token(3).value == "t1" and calls == ["b@x"]
    clock.t += 30
    assert src.token(3).value == "t1"
    clock.t += 40  # 50 s left < 60 s margin
    assert src.token(3).value == "t2"


@pytest.mark.parametrize(
    ("url", "base"),
    [("ws://h:1/ws", "http://h:1"), ("wss://staging.example.com/api/v1/websocket", "https://staging.example.com")],
)
def test_http_base_from_ws(url, base):
    assert http_base_from_ws(url) == base


def test_claims_json_is_validated():
    assert parse_claims('{"a": 1}') == {"a": 1}
    assert parse_claims("") == {}
    with pytest.raises(AuthConfigError, match="not valid JSON"):
        parse_claims("{")
    with pytest.raises(AuthConfigError, match="JSON object"):
        parse_claims("[1]")
