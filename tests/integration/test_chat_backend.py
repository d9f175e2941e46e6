"""ChatClient/ChatUser against the real reference backend (``python -m reference_backend``) over real sockets: the five events,
hang, DEPENDENCY_TIMEOUT, auth refusal in both styles, a slow agent, a restart mid-run, a token file rotated mid-run."""

from __future__ import annotations

import time
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
import redis
from locust.env import Environment

from tasks.timeline import OutcomeKind
from users.auth import MintedTokens, seeded_users
from users.chat import ChatUser
from users.chat_tasks import converse, login_send_receive
from users.ws_client import ChatClient
from users.ws_options import ChatSettings

REDIS_URL = "redis://127.0.0.1:6379/0"

FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]


class Recorder:
    """A fresh Environment whose request events are collected."""

    def __init__(self) -> None:
        self.env = Environment(user_classes=[ChatUser])
        self.samples: list[dict[str, Any]] = []
        self.env.events.request.add_listener(lambda **kw: self.samples.append(kw))

    def named(self, name: str, request_type: str = "WS") -> list[dict[str, Any]]:
        return [s for s in self.samples if s["name"] == name and s["request_type"] == request_type]

    def failures(self, name: str) -> list[str]:
        return [str(s["exception"]) for s in self.named(name) if s["exception"] is not None]


def settings_for(backend: Any, **kw: Any) -> ChatSettings:
    kw.setdefault("heartbeat_interval", 0.0)
    kw.setdefault("think_time", 0.0)
    return ChatSettings(tokens=MintedTokens(backend.jwt_secret, issuer=backend.issuer), login_url=backend.http_url,
                        login_users=seeded_users(3, backend.seed_password), **kw)


def client_for(backend: Any, rec: Recorder, **kw: Any) -> ChatClient:
    return ChatClient(rec.env, settings_for(backend, **kw), backend.ws_url, user_number=1)


@pytest.mark.timeout(60)
def test_healthy_backend_five_events_in_order(backend):
    rec = Recorder()
    client = client_for(backend, rec)
    try:
        assert client.connect()
        outcomes = client.send_and_await(["hello"])
    finally:
        client.close()
    assert [o.kind for o in outcomes] == [OutcomeKind.COMPLETED], [o.failure for o in outcomes]
    outcome = outcomes[0]
    assert outcome.failure is None and list(outcome.first_ms) == FIVE
    names = [s["name"] for s in rec.samples if s["request_type"] == "WS"]
    assert names == ["connect", *FIVE]
    assert all(s["exception"] is None for s in rec.samples)
    done = rec.named("agent_completed")[0]
    assert done["context"]["outcome"] == "completed"
    assert set(done["context"]["stages"]) == {f"{a}→{b}" for a, b in zip(FIVE, FIVE[1:], strict=False)}
    times = [rec.named(n)[0]["response_time"] for n in FIVE]
    assert times == sorted(times) and times[0] > 0


@pytest.mark.timeout(60)
def test_hang_fault_ends_as_hang_failure_and_events_missing(backend, faults):
    rec = Recorder()
    client = client_for(backend, rec, hang_after=1.5, reply_timeout=10.0)
    try:
        assert client.connect()
        faults.apply("hang", for_s=8.0)
        start = time.perf_counter()
        outcomes = client.send_and_await(["are you there?"])
        waited = time.perf_counter() - start
    finally:
        faults.clear()
        client.close()
    assert [o.kind for o in outcomes] == [OutcomeKind.HANG], [o.failure for o in outcomes]
    assert 1.4 < waited < 6.0
    assert rec.failures("agent_completed") == ["hang: no event for 1.5 s"]
    assert rec.failures("events missing") == ["no agent event: hang: no event for 1.5 s"]
    assert rec.named("agent_completed")[0]["context"]["outcome"] == "hang"


@pytest.mark.timeout(60)
def test_redis_pause_longer_than_backend_timeout_gives_dependency_timeout_error(backend, faults):
    rec = Recorder()
    client = client_for(backend, rec, reply_timeout=10.0)
    try:
        assert client.connect()
        # the backend's Redis timeout is 1000 ms by default; a 2500 ms pause exceeds it by more than the time the
        # message takes to reach Redis on a loaded machine (shared Redis: keep it short all the same)
        faults.apply("redis-pause", ms=2500, for_s=2.5)
        gevent.sleep(0.1)
        outcomes = client.send_and_await(["is redis up?"])
    finally:
        client.close()
        # a started pause cannot be cleared (reference_backend/fault_injection.py): wait it out, the next test needs Redis
        probe = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
        try:
            probe.ping()
        finally:
            probe.close()
    assert [o.kind for o in outcomes] == [OutcomeKind.ERROR], [o.failure for o in outcomes]
    assert outcomes[0].error_code == "DEPENDENCY_TIMEOUT"
    (text,) = rec.failures("agent_completed")
    assert text.startswith("error DEPENDENCY_TIMEOUT: ")
    assert rec.named("agent_completed")[0]["context"]["outcome"] == "error"


@pytest.mark.timeout(60)
def test_agent_slow_fault_completes_after_the_delay(backend, faults):
    rec = Recorder()
    client = client_for(backend, rec)
    try:
        assert client.connect()
        faults.apply("agent-slow", ms=2500, for_s=10.0)
        outcomes = client.send_and_await(["take your time"])
    finally:
        faults.clear()
        client.close()
    assert [o.failure for o in outcomes] == [None], [o.failure for o in outcomes]
    (done,) = rec.named("agent_completed")
    assert done["exception"] is None and done["response_time"] >= 2500


@pytest.mark.timeout(60)
def test_bad_token_close_1008_is_a_clear_connect_auth_failure(backend):
    rec = Recorder()
    client = ChatClient(rec.env, settings_for(backend), backend.ws_url, user_number=1)
    assert not client.connect(token="not.a.jwt")
    wrong = MintedTokens("another-secret-of-at-least-32-bytes-0123456789", issuer=backend.issuer).token(1).value
    assert not client.connect(token=wrong)
    texts = rec.failures("connect")
    assert len(texts) == 2
    for text in texts:
        assert text.startswith("auth failed: AUTH_FAILED"), text
        assert "not.a.jwt" not in text and wrong not in text


@pytest.mark.timeout(90)
def test_bad_token_http_403_at_upgrade_is_a_clear_connect_auth_failure(start_backend):
    b = start_backend(auth_reject_mode="http403")
    rec = Recorder()
    client = ChatClient(rec.env, settings_for(b), b.ws_url, user_number=1)
    assert not client.connect(token="not.a.jwt")
    (text,) = rec.failures("connect")
    assert text.startswith("auth refused at upgrade: HTTP 403"), text
    assert "--jwt-secret" in text
    assert client.connect()  # a good token still works on this backend
    client.close()


@pytest.mark.timeout(120)
def test_backend_restart_mid_run_fails_in_flight_and_reconnects(start_backend):
    b = start_backend()
    rec = Recorder()
    client = ChatClient(rec.env, settings_for(b, reconnect_max_backoff=1.0), b.ws_url, user_number=1)
    results: list[Any] = []

    def loop() -> None:
        while True:
            results.extend(converse(client))

    g = gevent.spawn(loop)
    try:
        deadline = time.perf_counter() + 20
        while not [s for s in rec.named("agent_completed") if s["exception"] is None]:
            assert time.perf_counter() < deadline, rec.samples
            gevent.sleep(0.1)
        port, secret, admin = b.port, b.jwt_secret, b.admin_token
        b.stop()
        gevent.sleep(1.5)
        b2 = start_backend(port=port, jwt_secret=secret, admin_token=admin)
        deadline = time.perf_counter() + 30
        while True:
            connects = [s for s in rec.named("connect") if s["exception"] is None]
            ok_after = [s for s in rec.named("agent_completed") if s["exception"] is None]
            if len(connects) >= 2 and len(ok_after) >= 2:
                break
            assert time.perf_counter() < deadline, [(s["name"], s["exception"]) for s in rec.samples]
            gevent.sleep(0.2)
    finally:
        g.kill(block=True, timeout=5)
        client.close()
    assert rec.failures("disconnect"), "the drop must be reported"
    # the restart's failures are the in-flight messages it cut off (DEPENDENCY_* ones come from other work on the
    # shared Redis/PostgreSQL, not from the restart, and are not what this test is about)
    in_flight_failures = [t for t in rec.failures("agent_completed") if "DEPENDENCY_" not in t]
    assert all(t.startswith("error DISCONNECTED") for t in in_flight_failures), in_flight_failures
    assert b2.alive()


@pytest.mark.timeout(60)
def test_flow_login_send_receive_is_one_sample(backend):
    rec = Recorder()
    client = client_for(backend, rec)
    try:
        outcome = login_send_receive(client)
    finally:
        client.close()
    assert outcome is not None and outcome.kind is OutcomeKind.COMPLETED
    (flow,) = rec.named("login→send→receive", "FLOW")
    assert flow["exception"] is None
    assert flow["response_time"] >= rec.named("agent_completed")[0]["response_time"]
    assert rec.named("/auth/login", "HTTP")[0]["exception"] is None


@pytest.mark.timeout(60)
def test_heartbeat_measures_pong_while_reply_is_slow(backend, faults):
    rec = Recorder()
    client = client_for(backend, rec, heartbeat_interval=0.3)
    try:
        assert client.connect()
        faults.apply("agent-slow", ms=1500, for_s=10.0)
        outcomes = client.send_and_await(["slow one"])
    finally:
        faults.clear()
        client.close()
    assert outcomes[0].kind is OutcomeKind.COMPLETED, outcomes[0].failure
    beats = rec.named("heartbeat")
    assert len(beats) >= 3 and all(b["exception"] is None for b in beats)


@pytest.mark.timeout(60)
def test_missed_pongs_count_as_dead_connection_and_reconnect(backend, faults):
    rec = Recorder()
    client = client_for(backend, rec, heartbeat_interval=0.3, heartbeat_timeout=0.5, heartbeat_misses=2,
                        reconnect_max_backoff=0.5)
    try:
        assert client.connect()
        faults.apply("slow-pong", ms=3000, for_s=3.0)
        deadline = time.perf_counter() + 15
        while not rec.failures("disconnect"):
            assert time.perf_counter() < deadline, rec.samples
            gevent.sleep(0.1)
        faults.clear()
        assert client.ensure_connected()
        outcomes = client.send_and_await(["back again"])
    finally:
        faults.clear()
        client.close()
    assert rec.failures("heartbeat")[:2] == ["heartbeat: no pong within 0.5 s"] * 2
    assert rec.failures("disconnect") == ["disconnect: heartbeat: no pong for 2 pings"]
    assert outcomes[0].failure is None
    assert len([s for s in rec.named("connect") if s["exception"] is None]) == 2


@pytest.mark.timeout(60)
def test_users_file_login_tokens_connect_and_a_refused_login_is_a_connect_failure(backend):
    from users.auth import Credentials, LoginTokens

    rec = Recorder()
    good = LoginTokens(backend.http_url, [Credentials("loadtest2@example.com", backend.seed_password)])
    client = ChatClient(rec.env, settings_for(backend).with_(tokens=good), backend.ws_url, user_number=0)
    try:
        assert client.connect()
        assert client.send_and_await(["hi"])[0].failure is None
    finally:
        client.close()
    bad = LoginTokens(backend.http_url, [Credentials("loadtest2@example.com", "wrong-password-123")])
    client = ChatClient(rec.env, settings_for(backend).with_(tokens=bad), backend.ws_url, user_number=0)
    assert not client.connect()
    client.close()
    (text,) = rec.failures("connect")
    assert text.startswith("no token: login of loadtest2@example.com refused: HTTP 401"), text
    assert "wrong-password-123" not in text


@pytest.mark.timeout(60)
def test_token_file_rotated_mid_run_keeps_the_user_going_and_all_expired_is_a_connect_failure(backend, tmp_path):
    import os

    from reference_backend.auth import issue_token
    from users.auth import FileTokens

    def mint(ttl_s: int) -> str:
        return issue_token(backend.jwt_secret, user_id="user-0002", email="loadtest2@example.com",
                           issuer=backend.issuer, ttl_s=ttl_s)

    now = [time.time()]  # the client's clock, moved on instead of waiting for expiry; the backend's is real
    path = tmp_path / "tokens.txt"
    first = mint(600)
    path.write_text(first + "\n")
    rec = Recorder()
    source = FileTokens(str(path), clock=lambda: now[0])
    client = ChatClient(rec.env, settings_for(backend).with_(tokens=source), backend.ws_url, user_number=0)
    try:
        assert client.connect()
        assert client.send_and_await(["before"])[0].failure is None
        client.close()
        now[0] += 700  # the file's only token has expired
        assert not client.connect()  # a failed connect, not an exception out of the user
        (text,) = rec.failures("connect")
        assert text.startswith(f"no token: --token-file {path}: every token in it has expired"), text
        assert first not in text
        rotated = mint(1200)
        tmp = tmp_path / "tokens.new"
        tmp.write_text(rotated + "\n")
        os.replace(tmp, path)  # an external process rotates the file
        assert client.connect()
        assert client.send_and_await(["after"])[0].failure is None
    finally:
        client.close()
    assert len([s for s in rec.named("agent_completed") if s["exception"] is None]) == 2  # nothing lost
    assert len([s for s in rec.named("connect") if s["exception"] is None]) == 2
