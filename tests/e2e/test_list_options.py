"""``locust -f locustfile.py --list-options`` (a real ``locust`` process): every suite option, grouped, with its env
var and default, exit 0, before any load and without a secret's value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCUST_BIN = Path(sys.executable).parent / "locust"


def list_options(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    penv = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_"))}
    penv.update(env or {})
    return subprocess.run(
        [str(LOCUST_BIN), "-f", "locustfile.py", "--list-options"], cwd=REPO, env=penv, capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(90)
def test_list_options_prints_suite_options_with_env_vars_and_exits_0() -> None:
    res = list_options()
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for option, env_var, default in (
        ("--sla-profile", "LOCUST_SLA_PROFILE", "local"),
        ("--ws-reply-timeout", "LOCUST_WS_REPLY_TIMEOUT", "30"),
        ("--scenario-scale", "LOCUST_SCENARIO_SCALE", "1"),
        ("--redis-url", "LOCUST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    ):
        lines = [line for line in out.splitlines() if line.strip().startswith(option + " ")]
        assert len(lines) == 1, f"{option} not listed once:\n{out}"
        assert f"({env_var}; default {default})" in lines[0], lines[0]
    for group in ("Chat users:", "Infrastructure probes:", "SLA verdict and reports:", "Scenarios:"):
        assert group in out.splitlines(), f"group {group!r} missing:\n{out}"
    assert "--headless" not in out and "--users " not in out, "Locust's own options are not the suite's"
    assert "Load generator" in out and "--list-options" in out


@pytest.mark.timeout(90)
def test_list_options_never_prints_a_secret_from_the_environment() -> None:
    res = list_options({"LOCUST_REDIS_URL": "redis://:s3cr3t-pw@redis.example:6379/0",
                        "LOCUST_JWT_SECRET": "jwt-s3cr3t", "JWT_SECRET_KEY": "jwt-s3cr3t",
                        "LOCUST_TARGET_ADMIN_TOKEN": "adm1n-s3cr3t"})
    assert res.returncode == 0, res.stderr
    assert "s3cr3t" not in res.stdout + res.stderr
