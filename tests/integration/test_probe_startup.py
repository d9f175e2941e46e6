"""Bad probe configuration stops a real ``locust`` process at start: exit code 2, one clear message naming the
option (and env var) and the URL with its password hidden, no traceback; a switched-off probe is not checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-probe-secret"
LOCUSTFILE = """
import locust  # noqa: F401
from users.redis_probe import RedisProbeUser  # noqa: F401
from users.postgres_probe import PostgresProbeUser  # noqa: F401
from users.clickhouse_probe import ClickHouseProbeUser  # noqa: F401
"""


def _run(tmp_path: Path, args: list[str], env: dict[str, str] | None = None, run_time: str = "2s",
         ) -> subprocess.CompletedProcess[str]:
    lf = tmp_path / "probes_locustfile.py"
    lf.write_text(LOCUSTFILE)
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, "-m", "locust", "-f", str(lf), "--headless", "-u", "3", "-r", "3", "-t", run_time,
           "--only-summary", *args, "RedisProbeUser", "PostgresProbeUser", "ClickHouseProbeUser"]
    return subprocess.run(cmd, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=90)


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--redis-url", f"redis://:{SECRET}@127.0.0.1:1/0"], {},
         ["redis://:***@127.0.0.1:1/0", "Fix --redis-url (env LOCUST_REDIS_URL)", "RedisProbeUser: cannot reach"]),
        (["--pg-dsn", f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"], {},
         ["postgresql://postgres:***@127.0.0.1:1/test", "Fix --pg-dsn (env LOCUST_PG_DSN)"]),
        ([], {"LOCUST_CLICKHOUSE_URL": f"http://default:{SECRET}@127.0.0.1:1"},
         ["http://default:***@127.0.0.1:1", "Fix --clickhouse-url (env LOCUST_CLICKHOUSE_URL)"]),
        (["--pg-dsn", f"mysql://root:{SECRET}@127.0.0.1/db"], {},
         ["Bad probe option: --pg-dsn 'mysql://root:***@127.0.0.1/db' has scheme 'mysql'"]),
        (["--probes", "redis,mongo"], {}, ["--probes has unknown tier(s) 'mongo'"]),
    ],
    ids=["redis-unreachable", "pg-unreachable", "clickhouse-env-unreachable", "pg-bad-scheme", "probes-unknown"],
)
def test_bad_probe_config_exits_2_with_clear_message(tmp_path: Path, args: list[str], env: dict[str, str],
                                                     expected: list[str]) -> None:
    proc = _run(tmp_path, args, env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    for text in expected:
        assert text in out, out[-3000:]
    assert SECRET not in out
    assert "Traceback" not in out


def test_bad_probe_config_distributed_every_process_exits_2(tmp_path: Path) -> None:
    """With --processes, master and workers each run the check; the run ends at once with exit code 2."""
    proc = _run(tmp_path, ["--processes", "2", "--redis-url", f"redis://:{SECRET}@127.0.0.1:1/0"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert out.count("RedisProbeUser: cannot reach redis://:***@127.0.0.1:1/0") >= 2, out[-3000:]
    assert SECRET not in out and "Traceback" not in out


def test_switched_off_probe_is_not_checked_and_run_proceeds(tmp_path: Path) -> None:
    proc = _run(tmp_path, ["--probes", "redis,clickhouse", "--pg-dsn", f"postgresql://u:{SECRET}@127.0.0.1:1/x"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "PostgresProbeUser switched off" in out
    assert "REDIS" in out and "CH" in out and "PG " not in out.split("Response time percentiles")[0]
    assert SECRET not in out
