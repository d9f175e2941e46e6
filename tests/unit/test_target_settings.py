"""Options of ``python -m reference_backend`` and log redaction (pure)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from reference_backend.logs import RedactFilter
from reference_backend.settings import SettingsError, settings_from_args


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for k in ("JWT_SECRET_KEY", "TARGET_ADMIN_TOKEN", "TARGET_PORT", "TARGET_PG_POOL_SIZE", "TARGET_THINK_MIN_MS"):
        monkeypatch.delenv(k, raising=False)


def test_secret_is_required_and_the_message_says_how():
    with pytest.raises(SettingsError, match="JWT_SECRET_KEY"):
        settings_from_args([])


def test_env_and_option_precedence(monkeypatch):
    monkeypatch.setenv("JWT_SECRET_KEY", "s3cret-from-env")
    monkeypatch.setenv("TARGET_PG_POOL_SIZE", "7")
    s = settings_from_args(["--port", "0"])
    assert s.jwt_secret == "s3cret-from-env" and s.pg_pool_size == 7 and s.port == 0
    assert settings_from_args(["--pg-pool-size", "3"]).pg_pool_size == 3
    assert "s3cret" not in repr(s)


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--port", "abc"], "--port has value 'abc'"),
    (["--port", "70000"], "0..65535"),
    (["--pg-pool-size", "0"], "--pg-pool-size"),
    (["--auth-reject-mode", "teapot"], "close1008, http403"),
    (["--think-min-ms", "500", "--think-max-ms", "100"], "--think-max-ms"),
    (["--redis-url", "localhost:6379"], "--redis-url"),
    (["--log-format", "xml"], "json or plain"),
])
def test_bad_values_name_option_and_value(argv, fragment):
    with pytest.raises(SettingsError, match=fragment.replace("(", r"\(")):
        settings_from_args(["--jwt-secret", "x" * 32, *argv])


def test_cli_exits_2_without_traceback():
    env = {"PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "reference_backend", "--port", "nope", "--jwt-secret", "abc"],
                       capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).parents[2])
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--port" in r.stderr


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, None)


def test_redaction_removes_tokens_and_secrets():
    f = RedactFilter(["the-admin-token", "jwt-secret-value"])
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.abcdefghijk"
    r = record('GET /ws?token=%s&x=1 "Bearer %s" jwt-auth.%s %s %s', jwt_like, jwt_like, jwt_like,
               "the-admin-token", "jwt-secret-value")
    f.filter(r)
    out = r.getMessage()
    assert jwt_like not in out and "the-admin-token" not in out and "jwt-secret-value" not in out
    assert "token=***" in out and "&x=1" in out
