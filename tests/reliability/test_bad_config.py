"""Bad configuration stops a real ``locust`` process at start: exit code 2, a clear error naming the option (or
file) and the fix, no traceback, no load generated, no secret echoed. One short subprocess per case.

Not repeated here (covered by their owners): ``--host http://...`` and a missing ``--token-file`` path
(tests/e2e/test_chat_e2e.py), unreachable probe services and bad probe URL schemes
(tests/integration/test_probe_startup.py), an unknown SLA metric (tests/e2e/test_sla_e2e.py).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.reliability.helpers import ROOT, free_port, locust_cmd, locust_env, scan_for_secrets

SECRET = "reliability-bad-config-secret-9f3e1c77"


def _token(secret: str, **claims: Any) -> str:
    now = int(time.time())
    base = {"sub": "user-0001", "email": "loadtest1@example.com", "permissions": ["chat:read", "chat:write"],
            "iat": now, "exp": now + 3600, "type": "access", "iss": "agent-chat-backend", "jti": "x" * 32}
    return jwt.encode(base | claims, secret, algorithm="HS256")


def _file(tmp: Path, name: str, text: str) -> str:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return str(p)


# (args builder (tmp_path, backend) -> args, user classes, fragments that must all appear in the output)
Case = tuple[Callable[[Path, Any], list[str]], list[str], list[str]]
CASES: dict[str, Case] = {
    "wrong-url-scheme": (
        lambda t, b: ["-H", "ftp://127.0.0.1:8765/ws"], ["ChatUser"],
        ["--host has value 'ftp://127.0.0.1:8765/ws'", "ws://"]),
    "unreachable-host": (
        lambda t, b: ["-H", f"ws://127.0.0.1:{free_port()}"], ["ChatUser"],
        ["--host", "ws://127.0.0.1:", "refused"]),
    "bad-dsn": (
        lambda t, b: ["-H", b.ws_url, "--pg-dsn", "postgresql://postgres:pw-x@127.0.0.1:notaport/test"],
        ["PostgresProbeUser"], ["--pg-dsn", "notaport", "expected e.g. postgresql://"]),
    "bad-threshold-expression": (
        lambda t, b: ["-H", b.ws_url, "--sla-config",
                      _file(t, "bad.toml", '[thresholds]\n"WS agent_completed" = ["p(95) <<< 2000"]\n')],
        ["ChatUser"], ["bad.toml", "p(95) <<< 2000"]),
    "unknown-profile": (
        lambda t, b: ["-H", b.ws_url, "--sla-profile", "nosuchprofile"], ["ChatUser"],
        ["nosuchprofile", "local"]),
    "token-file-is-a-directory": (
        lambda t, b: ["-H", b.ws_url, "--token-file", str(t)], ["ChatUser"],
        ["--token-file", "cannot be read"]),
    "expired-token": (
        lambda t, b: ["-H", b.ws_url, "--token-file",
                      _file(t, "expired.txt", _token(SECRET, iat=int(time.time()) - 7200,
                                                     exp=int(time.time()) - 3600) + "\n")],
        ["ChatUser"], ["--token-file", "expired"]),
    "clock-skew-iat-in-future": (
        lambda t, b: ["-H", b.ws_url, "--token-file",
                      _file(t, "future.txt", _token(b.jwt_secret, iat=int(time.time()) + 3600,
                                                    exp=int(time.time()) + 7200) + "\n")],
        ["ChatUser"], ["--token-file", "iat", "clock"]),
    "secret-mismatch": (
        lambda t, b: ["-H", b.ws_url, "--jwt-secret", SECRET], ["ChatUser"],
        ["--jwt-secret", "signature"]),
    "login-url-scheme": (
        lambda t, b: ["-H", b.ws_url, "--ws-login-url", "ftp://127.0.0.1:21"], ["ChatFlowUser"],
        ["--ws-login-url has value 'ftp://127.0.0.1:21'", "http://"]),
    "wrong-login-password": (
        lambda t, b: ["-H", b.ws_url, "--ws-login-password", "pw-x-wrong"], ["ChatFlowUser"],
        ["ChatFlowUser login of loadtest0@example.com refused: HTTP 401", "--ws-login-password"]),
    "secret-mismatch-token-in-query": (
        lambda t, b: ["-H", b.ws_url, "--jwt-secret", SECRET, "--ws-auth", "query"], ["ChatUser"],
        ["--jwt-secret", "signature"]),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", list(CASES))
def test_bad_configuration_exits_2_naming_the_option(backend, tmp_path: Path, case: str) -> None:
    build, users, fragments = CASES[case]
    args = build(tmp_path, backend)
    env = locust_env({**backend.env}, drop=("LOCUST_HOST",))
    proc = subprocess.run(
        locust_cmd(str(ROOT / "locustfile.py"),
                   ["--headless", "-u", "1", "-r", "1", "-t", "4s", "--only-summary", *args, *users]),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=80)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}:\n{out[-3000:]}"
    for fragment in fragments:
        assert fragment in out, (fragment, out[-3000:])
    assert "Traceback" not in out, out[-3000:]
    assert "Ramping to" not in out and "All users spawned" not in out, out[-3000:]  # no load generated
    hits = scan_for_secrets({"output": out}, {"secret": SECRET, "backend secret": backend.jwt_secret,
                                              "admin token": backend.admin_token})
    assert not hits and "pw-x" not in out, hits  # also no JWT (the minted/file token) in the error texts


def _binary(tmp: Path, name: str) -> str:
    p = tmp / name
    p.write_bytes(bytes(range(256)) * 8)  # no UTF-8 text
    return str(p)


def _file_in_the_way(tmp: Path) -> str:
    (tmp / "plain-file").write_text("x")
    return str(tmp / "plain-file" / "sla.xml")


# (args builder (tmp_path) -> args, user classes, the option the one error line must name, fragments of that line)
RangeCase = tuple[Callable[[Path], list[str]], list[str], str, list[str]]
RANGE_CASES: dict[str, RangeCase] = {
    "hang-after-nan": (lambda t: ["--ws-hang-after", "nan"], ["ChatUser"], "--ws-hang-after", ["nan", "finite"]),
    "reply-timeout-inf": (lambda t: ["--ws-reply-timeout", "inf"], ["ChatUser"], "--ws-reply-timeout", ["inf"]),
    "connect-timeout-nan": (lambda t: ["--ws-connect-timeout", "nan"], ["ChatUser"], "--ws-connect-timeout",
                            ["nan"]),
    "think-time-huge": (lambda t: ["--ws-think-time", "1e300"], ["ChatUser"], "--ws-think-time", ["3600"]),
    "heartbeat-timeout-negative": (lambda t: ["--ws-heartbeat-timeout", "-1"], ["ChatUser"],
                                   "--ws-heartbeat-timeout", ["-1", "> 0"]),
    "arrival-rate-absurd": (lambda t: ["--ws-arrival-rate", "1e12"], ["ChatUser"], "--ws-arrival-rate",
                            ["1e12", "10000"]),
    "token-file-binary": (lambda t: ["--token-file", _binary(t, "tokens.bin")], ["ChatUser"], "--token-file",
                          ["tokens.bin", "not UTF-8"]),
    "users-file-binary": (lambda t: ["--users-file", _binary(t, "users.bin")], ["ChatUser"], "--users-file",
                          ["users.bin", "not UTF-8"]),
    "sla-config-binary": (lambda t: ["--sla-config", _binary(t, "sla.bin")], ["ChatUser"], "sla.bin",
                          ["not UTF-8", "TOML"]),
    "sla-exit-code-0": (lambda t: ["--sla-exit-code", "0"], ["ChatUser"], "--sla-exit-code",
                        ["0", "failing run pass"]),
    "sla-window-nan": (lambda t: ["--sla-window", "nan"], ["ChatUser"], "--sla-window", ["nan"]),
    "report-json-is-a-directory": (lambda t: ["--sla-report-json", str(t)], ["ChatUser"], "--sla-report-json",
                                   ["is a directory"]),
    "report-junit-under-a-file": (lambda t: ["--sla-report-junit", _file_in_the_way(t)], ["ChatUser"],
                                  "--sla-report-junit", ["is a file, not a directory"]),
    "probe-timeout-inf": (lambda t: ["--redis-timeout", "inf"], ["RedisProbeUser"], "--redis-timeout", ["inf"]),
    "scenario-scale-zero": (lambda t: ["--scenario", "ws-reply-2s", "--scenario-scale", "0"], [],
                            "--scenario-scale", ["0", "> 0"]),
    "scenario-scale-nan": (lambda t: ["--scenario", "ws-reply-2s", "--scenario-scale", "nan"], [],
                           "--scenario-scale", ["nan"]),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(RANGE_CASES))
def test_bad_value_exits_2_at_once_with_one_line_naming_the_option(backend, tmp_path: Path, case: str) -> None:
    build, users, option, fragments = RANGE_CASES[case]
    env = locust_env({**backend.env, "LOCUST_HOST": backend.ws_url})
    started = time.monotonic()
    proc = subprocess.run(
        # -t 30s: a run that got past the start, or wedged, would take at least that long
        locust_cmd(str(ROOT / "locustfile.py"),
                   ["--headless", "-u", "1", "-r", "1", "-t", "30s", "--only-summary", *build(tmp_path), *users]),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=50)
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}:\n{out[-3000:]}"
    errors = [line for line in out.splitlines() if "/ERROR/" in line]
    assert len(errors) == 1, out[-3000:]
    assert option in errors[0] and all(f in errors[0] for f in fragments), errors[0]
    assert "Traceback" not in out, out[-3000:]
    assert "Ramping to" not in out and "Shape test updating" not in out, out[-3000:]  # no load generated
    assert elapsed < 20, f"took {elapsed:.1f} s: the error must come before any load"
