"""Auth placements, rejections, error paths, ownership, rate limits, health and admin API of the reference backend
over real sockets."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
import uuid

import jwt
import pytest
import websocket

from reference_backend.auth import issue_token
from tests.helpers import free_port
from tests.integration.test_target_pipeline import connect, recv_until_final, send_message


def http(method: str, url: str, body: object = None, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method)
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def token_for(backend, **overrides) -> str:  # noqa: ANN001
    now = int(time.time())
    claims = {"sub": "user-0042", "email": "loadtest42@example.com", "permissions": ["chat:write"], "iat": now,
              "exp": now + 600, "type": "access", "iss": backend.issuer, "jti": uuid.uuid4().hex}
    key = overrides.pop("_key", backend.jwt_secret)
    alg = overrides.pop("_alg", "HS256")
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg)


def none_alg_token(backend) -> str:  # noqa: ANN001
    return jwt.encode({"sub": "user-0042", "exp": int(time.time()) + 600, "iat": int(time.time()),
                       "iss": backend.issuer, "type": "access"}, None, algorithm="none")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("placement", ["subprotocol", "header", "query"])
def test_each_token_placement_is_accepted(backend, placement):
    tok = backend.login(20)
    kw: dict = {}
    url = backend.ws_url
    if placement == "subprotocol":
        kw["subprotocols"] = [f"jwt-auth.{tok}"]
    elif placement == "header":
        kw["header"] = [f"Authorization: Bearer {tok}"]
    else:
        url += f"?token={tok}"
    ws = websocket.create_connection(url, timeout=10, **kw)
    try:
        hello = json.loads(ws.recv())
        assert hello["type"] == "connection_established" and hello["data"]["user_id"] == "user-0020"
        if placement == "subprotocol":
            assert ws.getheaders()["sec-websocket-protocol"] == f"jwt-auth.{tok}"  # exact echo
    finally:
        ws.close()


BAD_TOKENS = {
    "missing": lambda b: None,
    "expired": lambda b: token_for(b, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
    "bad signature": lambda b: token_for(b, _key="not-the-secret-" * 3),
    "alg none": none_alg_token,
    "wrong algorithm": lambda b: token_for(b, _alg="HS512"),
    "missing exp": lambda b: token_for(b, exp=None),
    "wrong issuer": lambda b: token_for(b, iss="someone-else"),
    "garbage": lambda b: "not.a.jwt",
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_token_gets_auth_failed_and_close_1008(backend, kind):
    tok = BAD_TOKENS[kind](backend)
    header = [f"Authorization: Bearer {tok}"] if tok else []
    ws = websocket.create_connection(backend.ws_url, header=header, timeout=10)
    try:
        f = json.loads(ws.recv())
        assert f["type"] == "error_message" and f["error_code"] == "AUTH_FAILED", f
        assert tok is None or tok not in f["error_message"]
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1008
    finally:
        ws.close()


@pytest.mark.timeout(30)
def test_bad_subprotocol_token_is_still_echoed_then_refused(backend):
    tok = token_for(backend, _key="wrong-secret-" * 3)
    ws = websocket.create_connection(backend.ws_url, subprotocols=[f"jwt-auth.{tok}"], timeout=10)
    try:
        assert json.loads(ws.recv())["error_code"] == "AUTH_FAILED"
    finally:
        ws.close()


@pytest.mark.timeout(60)
def test_http403_mode_rejects_bad_token_at_handshake(start_backend):
    b = start_backend(auth_reject_mode="http403")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(b.ws_url, header=["Authorization: Bearer nope.nope.nope"], timeout=10)
    assert e.value.status_code == 403
    ws = websocket.create_connection(b.ws_url, header=[f"Authorization: Bearer {b.login(1)}"], timeout=10)
    try:
        assert json.loads(ws.recv())["type"] == "connection_established"
    finally:
        ws.close()


@pytest.mark.timeout(30)
def test_bad_frames_get_errors_and_the_connection_survives(backend):
    ws = connect(backend, 21)
    try:
        cases = [
            ("{not json", "JSON_PARSE_ERROR"),
            ("[1, 2]", "BAD_REQUEST"),
            (json.dumps({"payload": {}}), "BAD_REQUEST"),
            (json.dumps({"type": "user_message"}), "BAD_REQUEST"),
            (json.dumps({"type": "user_message", "payload": {"thread_id": "t1"}}), "BAD_REQUEST"),
            (json.dumps({"type": "user_message", "payload": {"content": "x" * 70000}}), "BAD_REQUEST"),
        ]
        for text, code in cases:
            ws.send(text)
            f = json.loads(ws.recv())
            assert f["type"] == "error_message" and f["error_code"] == code, (text[:40], f)
        assert "65536" in f["error_message"]
        ws.send_binary(b"\x00\x01")
        assert json.loads(ws.recv())["error_code"] == "BAD_REQUEST"
        ws.send(json.dumps({"type": "subscribe", "topic": "x"}))
        assert json.loads(ws.recv()) | {"timestamp": 0} == {"type": "ack", "received_type": "subscribe", "timestamp": 0}
        ws.send(json.dumps({"type": "ping", "timestamp": 12.5}))
        assert json.loads(ws.recv()) == {"type": "pong", "data": {"timestamp": 12.5, "user_id": "user-0021"}}
        send_message(ws, "still alive")
        assert recv_until_final(ws)[-1]["type"] == "agent_completed"
    finally:
        ws.close()


@pytest.mark.timeout(30)
def test_thread_of_another_user_is_refused(backend):
    a, b = connect(backend, 22), connect(backend, 23)
    try:
        tid = send_message(a, "mine")
        assert recv_until_final(a)[-1]["type"] == "agent_completed"
        send_message(b, "steal", thread_id=tid, correlation_id="c-steal")
        f = recv_until_final(b)[-1]
        assert f["type"] == "error_message" and f["error_code"] == "BAD_REQUEST"
        assert f["error_message"] == "thread belongs to another user" and f["correlation_id"] == "c-steal"
        send_message(a, "mine again", thread_id=tid)
        assert recv_until_final(a)[-1]["type"] == "agent_completed"
    finally:
        a.close()
        b.close()


@pytest.mark.timeout(60)
def test_rate_limit_per_user_answers_rate_limited(start_backend):
    b = start_backend(rate_limit_per_s=5, think_min_ms=0, think_max_ms=10)
    ws = connect(b, 30)
    try:
        for i in range(12):
            send_message(ws, f"burst {i}")
        finals = [recv_until_final(ws)[-1] for _ in range(12)]
    finally:
        ws.close()
    codes = [f.get("error_code") or f["type"] for f in finals]
    assert codes.count("RATE_LIMITED") >= 2, codes
    assert codes.count("agent_completed") >= 5, codes


@pytest.mark.timeout(60)
def test_ready_is_503_when_a_tier_is_down(start_backend):
    dead = free_port()  # nothing listens there
    b = start_backend(clickhouse_url=f"http://127.0.0.1:{dead}")
    status, body = http("GET", b.http_url + "/health/ready")
    assert status == 503 and body["status"] == "degraded"
    assert not body["tiers"]["clickhouse"]["ok"] and body["tiers"]["clickhouse"]["error"]
    assert body["tiers"]["redis"]["ok"] and body["tiers"]["postgres"]["ok"]
    status, body = http("GET", b.http_url + "/health")
    assert status == 200 and body["status"] == "ok" and body["pid"] == b.pid


@pytest.mark.timeout(30)
def test_ready_reports_each_tier_with_latency(backend):
    status, body = http("GET", backend.http_url + "/health/ready")
    assert status == 200 and body["status"] == "ready"
    for tier in ("redis", "postgres", "clickhouse"):
        assert body["tiers"][tier]["ok"] is True and body["tiers"][tier]["error"] is None
        assert body["tiers"][tier]["latency_ms"] > 0


@pytest.mark.timeout(30)
def test_login_refuses_a_wrong_password_and_issues_the_contract_claims(backend):
    status, body = http("POST", backend.http_url + "/auth/login",
                        {"email": "loadtest5@example.com", "password": "wrong"})
    assert status == 401
    status, body = http("POST", backend.http_url + "/auth/login",
                        {"email": "loadtest5@example.com", "password": backend.seed_password})
    assert status == 200 and body["token_type"] == "bearer" and body["expires_in"] > 0
    claims = jwt.decode(body["access_token"], backend.jwt_secret, algorithms=["HS256"], issuer=backend.issuer)
    assert claims["sub"] == "user-0005" and claims["email"] == "loadtest5@example.com"
    assert claims["type"] == "access" and claims["permissions"] and claims["jti"]
    assert claims["exp"] > claims["iat"]
    assert http("POST", backend.http_url + "/auth/login", {"email": "x" * 70000, "password": "p"})[0] == 413
    req = urllib.request.Request(backend.http_url + "/auth/login", data=b"{nope", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400


@pytest.mark.timeout(30)
def test_admin_api_requires_the_admin_token(backend):
    assert http("GET", backend.http_url + "/admin/faults")[0] == 401
    assert http("POST", backend.http_url + "/admin/faults", {"kind": "hang"}, token="wrong")[0] == 401
    status, body = http("POST", backend.http_url + "/admin/faults", {"kind": "nope"}, token=backend.admin_token)
    assert status == 400 and "redis-pause" in body["detail"]
    assert http("GET", backend.http_url + "/admin/faults", token=backend.admin_token) == (200, {"faults": []})


@pytest.mark.timeout(60)
def test_admin_api_is_closed_without_an_admin_token(start_backend):
    b = start_backend(admin_token="")
    assert http("GET", b.http_url + "/admin/faults", token="")[0] == 403
    assert http("POST", b.http_url + "/admin/faults", {"kind": "hang"}, token="x")[0] == 403


@pytest.mark.timeout(60)
def test_sigterm_shuts_down_gracefully_and_logs_no_secret(start_backend):
    b = start_backend()
    tok = b.login(31)
    ws = websocket.create_connection(f"{b.ws_url}?token={tok}", timeout=10)
    ws.recv()
    send_message(ws)
    time.sleep(0.1)
    b.proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal after its graceful shutdown: the exit status is "killed by SIGTERM".
    assert b.proc.wait(20) in (0, -signal.SIGTERM)
    ws.close()
    log = b.log_path.read_text()
    assert "backend stopped" in log
    for secret in (tok, b.jwt_secret, b.admin_token, b.seed_password):
        assert secret not in log


def test_issue_token_matches_the_backend(backend):
    tok = issue_token(backend.jwt_secret, user_id="user-0099", email="x@example.com", issuer=backend.issuer,
                      ttl_s=60)
    ws = websocket.create_connection(backend.ws_url, subprotocols=[f"bearer.{tok}"], timeout=10)
    try:
        assert json.loads(ws.recv())["data"]["user_id"] == "user-0099"
        assert ws.getheaders()["sec-websocket-protocol"] == f"bearer.{tok}"
    finally:
        ws.close()


@pytest.mark.timeout(60)
def test_connection_is_closed_1011_while_postgres_is_unreachable(start_backend):
    dead = free_port()
    b = start_backend(pg_dsn=f"postgresql://postgres@127.0.0.1:{dead}/test", pg_timeout_ms=500)
    ws = websocket.create_connection(b.ws_url, header=[f"Authorization: Bearer {b.login(2)}"], timeout=10)
    try:
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1011
    finally:
        ws.close()
    status, body = http("GET", b.http_url + "/health/ready")
    assert status == 503 and not body["tiers"]["postgres"]["ok"] and body["tiers"]["redis"]["ok"]


@pytest.mark.timeout(30)
def test_disconnect_cancels_the_connections_in_flight_messages(start_backend):
    b = start_backend(think_min_ms=3000, think_max_ms=3000, log_level="debug")
    ws = connect(b, 40)
    for i in range(5):
        send_message(ws, f"abandoned {i}")
    deadline = time.monotonic() + 5
    while http("GET", b.http_url + "/health")[1]["in_flight"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http("GET", b.http_url + "/health")[1]["in_flight"] == 5
    ws.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        health = http("GET", b.http_url + "/health")[1]
        if health["in_flight"] == 0 and health["connections"] == 0:
            break
        time.sleep(0.05)
    assert health["in_flight"] == 0 and health["connections"] == 0, health
    assert health["messages_completed"] == 0, b.log_tail(80)  # cancelled well before the 3 s think time ended


@pytest.mark.timeout(30)
def test_api_v1_websocket_alias_runs_the_same_pipeline(backend):
    token = backend.login(21)
    url = backend.ws_url.rsplit("/", 1)[0] + "/api/v1/websocket"
    ws = websocket.create_connection(url, subprotocols=[f"jwt-auth.{token}"], timeout=10)
    try:
        assert json.loads(ws.recv())["type"] == "connection_established"
        send_message(ws, "alias check")
        types = [f["type"] for f in recv_until_final(ws)]
    finally:
        ws.close()
    assert types[-1] == "agent_completed"
    assert {"agent_started", "agent_thinking", "tool_executing", "tool_completed"} <= set(types), types


@pytest.mark.timeout(30)
def test_liveness_answers_like_health_without_touching_the_tiers(backend):
    status, body = http("GET", backend.http_url + "/health/live")
    assert status == 200 and body["status"] == "ok" and body["pid"] > 0
    assert "tiers" not in body  # readiness (tier checks) is /health/ready's job
