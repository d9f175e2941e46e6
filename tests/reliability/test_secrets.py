"""Secrets never leak: a whole session with known, distinctive secret values, every output scanned.

The session: the reference backend (JWT secret, admin token, seed password, a PostgreSQL role with a password in its
DSN, a project-local Redis with ``--requirepass``) and one ``locust`` run with the web UI on (``--autostart``): chat
users (minted tokens and the login flow), every probe (Redis and PG URLs with passwords), the SLA reports
(JSON/JUnit/HTML), ``--csv``, ``--html``, ``--logfile``; while it runs the web UI's pages and JSON endpoints are
fetched. Every file written, the captured stdout/stderr and the fetched pages are scanned for each secret, in raw,
URL-encoded, JSON-escaped and base64 forms, and for any JWT (``eyJ...``). Also: the secret options are
``is_secret`` in Locust's parser.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from reference_backend.process import BackendProcess
from tests.reliability.helpers import (
    ROOT,
    LocalRedis,
    free_port,
    locust_cmd,
    locust_env,
    scan_for_secrets,
    wait_until,
)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SECRET_OPTIONS = ["jwt_secret", "ws_login_password", "redis_url", "pg_dsn", "clickhouse_url"]


PARSER_PROBE = """
import json
import locust.argument_parser as ap
import locustfile  # noqa: F401  (registers every option listener)
parser = ap.get_parser()
print(json.dumps({a.dest: [bool(getattr(a, "is_secret", False)), a.dest in parser.args_included_in_web_ui]
                  for a in parser._actions}))
"""


@pytest.mark.timeout(60)
def test_secret_options_are_marked_secret_and_kept_out_of_the_web_ui() -> None:
    # in a subprocess: importing locust here would monkey-patch the test process
    proc = subprocess.run([sys.executable, "-c", PARSER_PROBE], cwd=ROOT, env=locust_env(), capture_output=True,
                          text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr[-2000:]
    actions = json.loads(proc.stdout.strip().splitlines()[-1])
    for dest in SECRET_OPTIONS:
        assert dest in actions, dest
        is_secret, in_web_ui = actions[dest]
        assert is_secret, f"--{dest.replace('_', '-')} is not is_secret"
        # Locust renders a web-UI option's current value into the page (is_secret only masks the input field)
        assert not in_web_ui, f"--{dest.replace('_', '-')} is offered in the web UI: its value would be in the page"


def _fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"<{url}: {exc}>"


@contextmanager
def _secret_stack(tmp_path: Path) -> Iterator[tuple[dict[str, str], LocalRedis, str, BackendProcess]]:
    """Distinctive secrets, a password-protected Redis of our own, a PG role with a password, and the reference
    backend using them all: ``(secrets, redis, pg_dsn, backend)``; everything torn down afterwards."""
    tag = secrets.token_hex(4)
    values = {
        "jwt secret": f"JwtS3cret-{secrets.token_hex(12)}",
        "admin token": f"AdmT0ken-{secrets.token_hex(12)}",
        "seed password": f"SeedPw-{secrets.token_hex(8)}",
        "pg password": f"PgPa55-{secrets.token_hex(8)}",
        "redis password": f"RdPa55-{secrets.token_hex(8)}",
    }
    role = f"rel_secret_{tag}"
    redis = LocalRedis(tmp_path / "redis", password=values["redis password"])
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{values['pg password']}'")
    backend = None
    try:
        redis.start()
        pg_dsn = f"postgresql://{role}:{values['pg password']}@127.0.0.1:5432/test"
        backend = BackendProcess.start(tmp_path / "backend", jwt_secret=values["jwt secret"],
                                       admin_token=values["admin token"], seed_password=values["seed password"],
                                       redis_url=redis.url, pg_dsn=pg_dsn, think_min_ms=50, think_max_ms=150)
        yield values, redis, pg_dsn, backend
    finally:
        if backend is not None:
            backend.stop()
        redis.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def _files(out: Path) -> dict[str, str]:
    return {f"file {f.relative_to(out)}": f.read_text(errors="replace") for f in sorted(out.rglob("*")) if f.is_file()}


@pytest.mark.timeout(180)
def test_whole_session_leaks_no_secret(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with _secret_stack(tmp_path) as (values, redis, pg_dsn, backend):
        web_port = free_port()
        args = ["--autostart", "--autoquit", "3", "--web-host", "127.0.0.1", "--web-port", str(web_port),
                "-u", "7", "-r", "7", "-t", "14s", "--stop-timeout", "3", "-H", backend.ws_url,
                "--jwt-secret", values["jwt secret"], "--ws-login-password", values["seed password"],
                "--redis-url", redis.url, "--pg-dsn", pg_dsn, "--ws-think-time", "0.3",
                "--ws-heartbeat-interval", "2",
                "--csv", str(out / "run"), "--html", str(out / "locust.html"), "--logfile", str(out / "locust.log"),
                "--loglevel", "DEBUG",
                "--sla-report-json", str(out / "sla.json"), "--sla-report-junit", str(out / "sla.xml"),
                "--sla-report-html", str(out / "sla.html"),
                "ChatUser", "ChatFlowUser", "RedisProbeUser", "PostgresProbeUser", "ClickHouseProbeUser",
                "HealthCheckUser"]
        env = locust_env({"TARGET_ADMIN_TOKEN": values["admin token"]},
                         drop=("JWT_SECRET_KEY", "LOCUST_JWT_SECRET", "TARGET_SEED_PASSWORD"))
        proc = subprocess.Popen(locust_cmd(str(ROOT / "locustfile.py"), args), cwd=out, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pages: dict[str, str] = {}
        try:
            base = f"http://127.0.0.1:{web_port}"
            assert wait_until(lambda: "ChatUser" in _fetch(base + "/"), 40)
            time.sleep(8)
            for path in ("/", "/stats/requests", "/stats/requests/csv", "/stats/failures/csv", "/exceptions",
                         "/exceptions/csv", "/stats/report", "/sla/status", "/sla/report"):
                pages["web UI " + path] = _fetch(base + path)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        log_text = backend.log_path.read_text(errors="replace")

    texts = {"locust stdout": stdout, "locust stderr": stderr, "backend log": log_text, **pages, **_files(out)}
    # the session really ran and wrote everything
    for name in ("run_stats.csv", "run_failures.csv", "locust.html", "locust.log", "sla.json", "sla.xml", "sla.html"):
        assert f"file {name}" in texts, (name, sorted(texts))
    stats = texts["file run_stats.csv"]
    for metric in ("agent_completed", "login→send→receive", "REDIS", "PG", "CH", "/health"):
        assert metric in stats, (metric, stats[:2000])
    assert '"ChatUser"' in pages["web UI /"] or "ChatUser" in pages["web UI /"]
    assert "WS agent_completed" in pages["web UI /sla/status"], pages["web UI /sla/status"][:500]
    assert len(texts) >= 14
    hits = scan_for_secrets(texts, values)
    total = sum(len(t) for t in texts.values())
    print(f"scanned {len(texts)} outputs ({total} chars) for {len(values)} secrets + JWTs: {len(hits)} hits")
    assert not hits, "\n".join(hits)


@pytest.mark.timeout(150)
def test_distributed_run_with_injected_faults_leaks_no_secret(tmp_path: Path) -> None:
    """A master and a worker (each with its own log file, DEBUG), a scenario whose fault the master injects through
    the backend's admin API, every report: no secret in any of it."""
    out = tmp_path / "out"
    out.mkdir()
    with _secret_stack(tmp_path) as (values, redis, pg_dsn, backend):
        port = free_port()
        common = ["-H", backend.ws_url, "--jwt-secret", values["jwt secret"],
                  "--ws-login-password", values["seed password"], "--redis-url", redis.url, "--pg-dsn", pg_dsn,
                  "--loglevel", "DEBUG"]
        master_args = [*common, "--headless", "--master", "--master-bind-host", "127.0.0.1",
                       "--master-bind-port", str(port), "--expect-workers", "1", "--stop-timeout", "3",
                       "--scenario", "reproduce-3s-timeout", "--scenario-duration", "8", "--inject-faults",
                       "--logfile", str(out / "master.log"), "--csv", str(out / "run"),
                       "--sla-report-json", str(out / "sla.json"), "--sla-report-html", str(out / "sla.html")]
        worker_args = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                       "--logfile", str(out / "worker.log")]
        env = locust_env({"TARGET_ADMIN_TOKEN": values["admin token"]},
                         drop=("JWT_SECRET_KEY", "LOCUST_JWT_SECRET", "TARGET_SEED_PASSWORD"))
        locustfile = str(ROOT / "locustfile.py")
        master = subprocess.Popen(locust_cmd(locustfile, master_args), cwd=out, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        worker = subprocess.Popen(locust_cmd(locustfile, worker_args), cwd=out, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            m_out, m_err = master.communicate(timeout=90)
            w_out, w_err = worker.communicate(timeout=30)
        finally:
            for p in (master, worker):
                if p.poll() is None:
                    p.kill()
                    p.communicate(timeout=10)
        log_text = backend.log_path.read_text(errors="replace")

    texts = {"master stdout": m_out, "master stderr": m_err, "worker stdout": w_out, "worker stderr": w_err,
             "backend log": log_text, **_files(out)}
    # the run really was distributed, injected its fault and was judged
    assert master.returncode == 3, m_err[-3000:]
    report = json.loads(texts["file sla.json"])
    assert report["workers"] == 1 and report["samples"] > 0, report["verdict_reasons"]
    assert "Scenario fault applied: redis-pause" in texts["file master.log"], m_err[-3000:]  # via the admin API
    assert "REDIS" in texts["file run_stats.csv"] and texts["file worker.log"]
    hits = scan_for_secrets(texts, values)
    print(f"scanned {len(texts)} outputs ({sum(len(t) for t in texts.values())} chars): {len(hits)} hits")
    assert not hits, "\n".join(hits)
