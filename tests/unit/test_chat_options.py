"""Chat option resolution and validation (no Locust process; a namespace stands in for ``parsed_options``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tasks.corpus import DEFAULT_MESSAGES
from users.auth import FileTokens, LoginTokens, MintedTokens
from users.ws_options import ChatConfigError, settings_from_options, ws_url
from users.ws_session import auth_placement, split_ws_url

pytestmark = pytest.mark.timeout(30)
SECRET = "options-test-secret-0123456789-abcdefghijkl"


def opts(**kw):
    base = {"jwt_secret": SECRET}
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.mark.parametrize(
    ("host", "path", "url"),
    [
        ("ws://127.0.0.1:8765", "/ws", "ws://127.0.0.1:8765/ws"),
        ("ws://127.0.0.1:8765/", "/api/v1/websocket", "ws://127.0.0.1:8765/api/v1/websocket"),
        ("wss://staging.example.com/custom", "/ws", "wss://staging.example.com/custom"),
    ],
)
def test_ws_url_appends_path_only_when_host_has_none(host, path, url):
    assert ws_url(host, path) == url


@pytest.mark.parametrize("host", ["http://127.0.0.1:8765", "127.0.0.1:8765", "ws://", "", None])
def test_bad_host_names_the_option_and_the_form(host):
    with pytest.raises(ChatConfigError, match="--host") as info:
        ws_url(host, "/ws")
    assert "ws://" in str(info.value)


def test_defaults_resolve_to_minted_tokens_and_builtin_corpus():
    s = settings_from_options(opts(), "ws://h:1")
    assert isinstance(s.tokens, MintedTokens)
    assert s.reply_timeout == 30.0 and s.hang_after == 10.0 and s.inflight == 1
    assert s.messages == DEFAULT_MESSAGES and s.arrival is None
    assert s.login_url == "http://h:1"
    assert SECRET not in repr(s)


def test_jwt_secret_falls_back_to_env(monkeypatch):
    monkeypatch.setenv("JWT_SECRET_KEY", SECRET)
    s = settings_from_options(SimpleNamespace(), "ws://h:1")
    assert isinstance(s.tokens, MintedTokens)
    monkeypatch.delenv("JWT_SECRET_KEY")
    monkeypatch.delenv("LOCUST_JWT_SECRET", raising=False)
    with pytest.raises(ChatConfigError, match="--token-file"):
        settings_from_options(SimpleNamespace(), "ws://h:1")


def test_token_file_wins_over_users_file_and_secret(tmp_path):
    tokens = tmp_path / "t.txt"
    tokens.write_text("opaque\n")
    users = tmp_path / "u.csv"
    users.write_text("a@b,pw\n")
    assert isinstance(settings_from_options(opts(token_file=str(tokens), users_file=str(users)), "ws://h").tokens,
                      FileTokens)
    s = settings_from_options(opts(users_file=str(users)), "ws://h")
    assert isinstance(s.tokens, LoginTokens) and s.login_users[0].email == "a@b"


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"ws_reply_timeout": 0}, "--ws-reply-timeout has value 0"),
        ({"ws_hang_after": -1}, "--ws-hang-after has value -1"),
        ({"ws_inflight": 0}, "--ws-inflight has value 0"),
        ({"ws_heartbeat_interval": -1}, "--ws-heartbeat-interval"),
        ({"ws_heartbeat_misses": 0}, "--ws-heartbeat-misses"),
        ({"ws_auth": "cookie"}, "--ws-auth has value 'cookie'"),
        ({"ws_max_frame_bytes": 10}, "--ws-max-frame-bytes"),
        ({"ws_arrival_rate": "0:5,x"}, "--ws-arrival-rate has value '0:5,x'"),
        ({"ws_event_names": "only_one"}, "--ws-event-names"),
        ({"ws_messages": "/nonexistent/messages.txt"}, "--ws-messages"),
        ({"ws_protocol": "/nonexistent/p.toml"}, "--ws-protocol"),
        ({"jwt_claims": "{"}, "--jwt-claims"),
    ],
)
def test_bad_option_values_name_the_option(kw, fragment):
    with pytest.raises(ChatConfigError, match=fragment.replace("(", r"\(")):
        settings_from_options(opts(**kw), "ws://h:1")


def test_event_names_and_envelope_options_reconfigure_the_protocol():
    s = settings_from_options(opts(ws_event_names="start, think ,done", ws_envelope="payload"), "ws://h")
    assert s.protocol.events == ("start", "think", "done")
    assert s.protocol.pairs == () and s.protocol.envelope == "payload"


def test_messages_file_and_ramp(tmp_path):
    f = tmp_path / "m.txt"
    f.write_text("# comment\nhello\n\nworld\n")
    s = settings_from_options(opts(ws_messages=str(f), ws_arrival_rate="0:1,10:20"), "ws://h")
    assert s.messages == ("hello", "world")
    assert s.arrival is not None and s.arrival.rate_at(5) == pytest.approx(10.5)


@pytest.mark.parametrize(
    ("mode", "protos", "headers", "query"),
    [
        ("subprotocol+header", ["jwt-auth.T"], [("Authorization", "Bearer T")], ""),
        ("header", [], [("Authorization", "Bearer T")], ""),
        ("subprotocol", ["jwt-auth.T"], [], ""),
        ("query", [], [], "token=T"),
    ],
)
def test_auth_placement_modes(mode, protos, headers, query):
    assert auth_placement("T", mode) == (protos, headers, query)


def test_split_ws_url():
    assert split_ws_url("wss://h/ws?x=1") == ("wss", "h", 443, "h", "/ws?x=1")
    assert split_ws_url("ws://[::1]:9/") == ("ws", "::1", 9, "[::1]:9", "/")
    with pytest.raises(ValueError):
        split_ws_url("http://h")
