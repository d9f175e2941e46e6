"""Security of the reference backend beyond tests/*/test_target_* (which cover: missing/garbage token, bad signature,
``alg: none`` via pyjwt, HS512, missing ``exp``, expired, wrong issuer, another user's thread, one connection's burst
rate limit, admin API without/with a wrong token or disabled, SIGTERM log hygiene).

Here: hand-forged JWT headers (every spelling of ``none``, other algorithms, a missing ``alg``) carrying a *valid*
HS256 signature so only the algorithm check can refuse them, malformed ``exp``/``iat``/``nbf`` (also numeric strings
and booleans, which pyjwt 2.15 lets through: it only tries ``int(claim)``), in both reject modes; the admin API
refuses a chat user's JWT, the JWT secret, near-miss tokens and other placements; the rate limit counts per user
across connections (another user is not affected); the backend binds to loopback by default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
import websocket

from tests.reliability.helpers import ROOT, wait_until


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(backend, header: dict, sign: bool = True, **claims) -> str:  # noqa: ANN001, ANN003
    now = int(time.time())
    body = {"sub": "user-0061", "email": "loadtest61@example.com", "permissions": ["chat:write"], "iat": now,
            "exp": now + 600, "type": "access", "iss": backend.issuer, "jti": uuid.uuid4().hex}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    sig = _b64(hmac.new(backend.jwt_secret.encode(), signing_input.encode(), hashlib.sha256).digest()) if sign else ""
    return f"{signing_input}.{sig}"


def ws_auth_result(backend, token: str, placement: str = "header") -> tuple[str, int | None]:  # noqa: ANN001
    """(first frame type or error_code, close code) of a connect with ``token``."""
    url, kw = backend.ws_url, {}
    if placement == "header":
        kw["header"] = [f"Authorization: Bearer {token}"]
    else:
        url += f"?token={token}"
    ws = websocket.create_connection(url, timeout=10, **kw)
    try:
        first = json.loads(ws.recv())
        if first["type"] == "connection_established":
            return "connection_established", None
        opcode, data = ws.recv_data(control_frame=True)
        code = int.from_bytes(data[:2], "big") if opcode == websocket.ABNF.OPCODE_CLOSE else None
        return first.get("error_code") or first["type"], code
    finally:
        ws.close()


@pytest.mark.timeout(30)
def test_forged_token_with_the_right_header_is_accepted(backend) -> None:  # noqa: ANN001
    # counter-proof: the forger makes tokens the backend accepts, so the refusals below are the header's doing
    assert ws_auth_result(backend, forged(backend, {"alg": "HS256", "typ": "JWT"}))[0] == "connection_established"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("placement", ["header", "query"])
@pytest.mark.parametrize(("header", "sign"), [
    ({"alg": "none", "typ": "JWT"}, False),
    ({"alg": "None", "typ": "JWT"}, False),
    ({"alg": "NONE"}, False),
    ({"alg": "nOnE"}, False),
    ({"alg": "none"}, True),
    ({"alg": ""}, True),
    ({"typ": "JWT"}, True),
    ({"alg": "RS256"}, True),
    ({"alg": "ES256"}, True),
    ({"alg": "HS384"}, True),
    ({"alg": ["HS256"]}, True),
], ids=["none", "None", "NONE", "nOnE", "none-signed", "empty", "missing", "RS256", "ES256", "HS384", "list"])
def test_forged_algorithm_header_is_refused(backend, header: dict, sign: bool, placement: str) -> None:  # noqa: ANN001
    assert ws_auth_result(backend, forged(backend, header, sign=sign), placement) == ("AUTH_FAILED", 1008)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("claims", [
    {"exp": str(int(time.time()) - 10)},
    {"exp": 1.5},
    {"exp": int(time.time()) - 1},
    {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200},
    {"nbf": int(time.time()) + 3600},
    {"sub": ""},
    {"sub": 61},
    {"type": "refresh"},
    {"exp": "9999999999"},
    {"iat": str(int(time.time()))},
    {"iat": True},
    {"nbf": str(int(time.time()) - 10)},
], ids=["exp-string-past", "exp-past-float", "exp-just-passed", "iat-future", "nbf-future", "sub-empty", "sub-int",
        "refresh-type", "exp-string-future", "iat-string", "iat-bool", "nbf-string-past"])
def test_malformed_claims_are_refused(backend, claims: dict) -> None:  # noqa: ANN001
    assert ws_auth_result(backend, forged(backend, {"alg": "HS256", "typ": "JWT"}, **claims)) == ("AUTH_FAILED",
                                                                                                   1008)


@pytest.mark.timeout(60)
def test_string_exp_is_refused_at_the_upgrade_in_http403_mode(start_backend) -> None:  # noqa: ANN001
    b = start_backend(auth_reject_mode="http403")
    hdr = {"alg": "HS256", "typ": "JWT"}
    assert ws_auth_result(b, forged(b, hdr))[0] == "connection_established"  # the forger's tokens pass here too
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        ws_auth_result(b, forged(b, hdr, exp="9999999999"))
    assert e.value.status_code == 403


def admin_status(backend, method: str, headers: dict[str, str], query: str = "") -> int:  # noqa: ANN001
    body = json.dumps({"kind": "hang", "for_s": 1}).encode() if method == "POST" else None
    req = urllib.request.Request(backend.http_url + "/admin/faults" + query, data=body, method=method,
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_admin_api_refuses_everything_but_its_own_token(backend, method: str) -> None:  # noqa: ANN001
    admin = backend.admin_token
    user_jwt = backend.login(62)
    attempts = {
        "chat user's JWT": {"Authorization": f"Bearer {user_jwt}"},
        "JWT secret": {"Authorization": f"Bearer {backend.jwt_secret}"},
        "token + 1 char": {"Authorization": f"Bearer {admin}x"},
        "token - 1 char": {"Authorization": f"Bearer {admin[:-1]}"},
        "token prefix": {"Authorization": f"Bearer {admin[:8]}"},
        "Basic scheme": {"Authorization": f"Basic {admin}"},
        "no scheme": {"Authorization": admin},
        "other header": {"X-Admin-Token": admin},
        "cookie": {"Cookie": f"token={admin}; admin_token={admin}"},
    }
    for what, headers in attempts.items():
        assert admin_status(backend, method, headers) == 401, what
    assert admin_status(backend, method, {}, f"?token={admin}&admin_token={admin}") == 401
    try:
        assert admin_status(backend, "GET", {"Authorization": f"Bearer {admin}"}) == 200  # counter-proof
    finally:
        backend.faults.clear()
    assert backend.faults.list() == []  # nothing above got through


@pytest.mark.timeout(60)
def test_rate_limit_counts_per_user_across_connections(start_backend) -> None:  # noqa: ANN001
    b = start_backend(rate_limit_per_s=4, think_min_ms=0, think_max_ms=10)
    same = [websocket.create_connection(b.ws_url, header=[f"Authorization: Bearer {b.login(63)}"], timeout=10)
            for _ in range(2)]
    other = websocket.create_connection(b.ws_url, header=[f"Authorization: Bearer {b.login(64)}"], timeout=10)
    conns = [*same, other]
    try:
        for ws in conns:
            assert json.loads(ws.recv())["type"] == "connection_established"
        # 4 + 4 messages of one user on two connections (each connection alone is within the limit of 4/s),
        # 4 of another user at the same moment; sent early in a second, so the limit's 1 s windows cannot split them
        while not 0.05 < time.time() % 1.0 < 0.5:
            time.sleep(0.01)
        for i in range(4):
            for ws in conns:
                ws.send(json.dumps({"type": "user_message", "payload": {
                    "content": f"m{i}", "thread_id": uuid.uuid4().hex, "correlation_id": f"c{i}",
                    "timestamp": "2026-01-01T00:00:00Z"}}))
        finals: list[list[str]] = []
        for ws in conns:
            got = []
            deadline = time.monotonic() + 20
            while len(got) < 4 and time.monotonic() < deadline:
                f = json.loads(ws.recv())
                if f["type"] in ("agent_completed", "error_message"):
                    got.append(f.get("error_code") or f["type"])
            finals.append(got)
    finally:
        for ws in conns:
            ws.close()
    user_a = finals[0] + finals[1]
    assert len(user_a) == 8 and len(finals[2]) == 4, finals
    assert user_a.count("RATE_LIMITED") >= 1, finals  # counted per user, not per connection
    assert user_a.count("agent_completed") >= 4, finals
    assert finals[2] == ["agent_completed"] * 4, finals  # another user is not limited by user A's burst


@pytest.mark.timeout(60)
def test_backend_binds_loopback_by_default(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARGET_", "JWT_"))}
    env.update(JWT_SECRET_KEY="bind-test-secret-" + uuid.uuid4().hex, TARGET_ADMIN_TOKEN=uuid.uuid4().hex,
               TARGET_PORT_FILE=str(port_file), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "backend.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "reference_backend", "--port", "0"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    try:
        assert wait_until(lambda: port_file.exists() and port_file.read_text().strip(), 30), \
            (tmp_path / "backend.log").read_text()[-2000:]
        port = int(port_file.read_text())
        listening = [c for c in psutil.Process(proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening, "no listening socket"
        assert {c.laddr.ip for c in listening} <= {"127.0.0.1", "::1"}, listening
        assert {c.laddr.port for c in listening} == {port}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
