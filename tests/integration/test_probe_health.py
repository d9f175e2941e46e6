"""HealthCheckUser against the reference backend (and a static-body server); pg-pool-exhaustion seen by the probes;
the resource monitor sampling this process and the local backend."""

from __future__ import annotations

import http.server
import logging
import threading

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.env import Environment

from sla_checks.state import state_of
from users.health import HealthCheckUser
from users.probe_options import ProbeConfig
from users.resources import ResourceMonitor, local_target_pid

pytestmark = pytest.mark.timeout(60)


def _user(health_url: str, **cfg: object) -> tuple[HealthCheckUser, list[dict]]:
    env = Environment(user_classes=[HealthCheckUser], host="ws://127.0.0.1:1/ws")
    state_of(env).probe_config = ProbeConfig(health_url=health_url, health_timeout=5.0, **cfg)  # type: ignore[arg-type]
    samples: list[dict] = []
    env.events.request.add_listener(lambda **kw: samples.append(kw))
    return HealthCheckUser(env), samples


def test_health_probe_reference_backend_records_paths_and_tiers(backend) -> None:
    user, samples = _user(backend.http_url)
    user.check("/health")
    for _attempt in range(5):  # the services are shared by the team: wait out someone else's short fault
        del samples[1:]
        user.check("/health/ready")
        if all(s["exception"] is None for s in samples):
            break
        gevent.sleep(1.0)
    by = {s["name"]: s for s in samples}
    assert set(by) == {"/health", "/health/ready", "ready:redis", "ready:postgres", "ready:clickhouse"}
    for s in samples:
        assert s["request_type"] == "HTTP" and s["exception"] is None, (s["name"], s["exception"])
        assert 0 < s["response_time"] < 5000
    assert by["/health"]["response_length"] > 0


class _StaticHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b"OK"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_health_probe_static_body_gives_no_tier_samples() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StaticHandler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        user, samples = _user(f"http://127.0.0.1:{server.server_address[1]}")
        user.check("/health/ready")
        user.check("/health")
    finally:
        server.shutdown()
        server.server_close()
    assert [s["name"] for s in samples] == ["/health/ready", "/health"]
    assert all(s["exception"] is None for s in samples)


def test_health_probe_unreachable_target_fails_fast() -> None:
    user, samples = _user("http://127.0.0.1:1")
    user.check("/health/ready")
    assert [s["name"] for s in samples] == ["/health/ready"] and samples[0]["exception"] is not None


@pytest.mark.timeout(90)
def test_health_paths_option_polls_each_path_in_turn_under_its_own_name(backend) -> None:
    user, samples = _user(backend.http_url, health_paths="/health/live,/health/ready,/no-such-path")
    user.on_start()  # one reading of every path
    for _ in range(6):
        user.poll()
    names = [s["name"] for s in samples if not s["name"].startswith("ready:")]
    assert names == ["/health/live", "/health/ready", "/no-such-path"] * 3, names
    by = {s["name"]: s for s in samples}
    assert by["/health/live"]["exception"] is None
    assert "HTTP 404" in str(by["/no-such-path"]["exception"])
    assert {"ready:redis", "ready:postgres", "ready:clickhouse"} <= set(by)  # from /health/ready's body only
    assert "/health" not in by


def test_pg_pool_exhaustion_fault_shows_as_ready_postgres_timeout(backend, faults) -> None:
    """pg-pool-exhaustion holds the *backend's* pool: the probe sees it through /health/ready, whose postgres check
    must acquire from that pool (``ready:postgres`` fails with the backend's pool-acquire timeout)."""
    user, samples = _user(backend.http_url)
    faults.apply("pg-pool-exhaustion", for_s=4)
    user.check("/health/ready")
    by = {s["name"]: s for s in samples}
    print(f"under pg-pool-exhaustion: /health/ready -> {by['/health/ready']['exception']}; "
          f"ready:postgres {by['ready:postgres']['response_time']:.0f} ms: {by['ready:postgres']['exception']}")
    assert "pool acquire" in str(by["ready:postgres"]["exception"])
    assert by["ready:postgres"]["response_time"] >= 500, "the backend waited for its pool before giving up"
    # (other tiers are shared with the whole team: a concurrent fault may degrade them too, so only postgres counts)
    assert "postgres: postgres pool acquire" in str(by["/health/ready"]["exception"])


def test_resource_monitor_samples_generator_and_local_backend(backend, caplog: pytest.LogCaptureFixture) -> None:
    assert local_target_pid(backend.http_url) == backend.pid
    env = Environment()
    state_of(env).probe_config = ProbeConfig(health_url=backend.http_url)
    monitor = ResourceMonitor(env, interval=0.1, cpu_warning=-1.0).register()
    with caplog.at_level(logging.WARNING, logger="users.resources"):
        env.events.test_start.fire(environment=env)
        gevent.sleep(0.65)
        env.events.test_stop.fire(environment=env)
    names = [name for _ts, name, _v in state_of(env).pending_gauges]
    for name in ("locust:cpu_percent", "locust:rss_mb", "target:cpu_percent", "target:rss_mb"):
        assert names.count(name) >= 3, (name, names)
    rss = [v for _ts, n, v in state_of(env).pending_gauges if n == "locust:rss_mb"]
    assert all(10 < v < 10_000 for v in rss)
    warnings = [r for r in caplog.records if "CPU at" in r.getMessage()]
    assert len(warnings) == 1, "warned once per episode, not per sample"
    count = len(state_of(env).pending_gauges)
    gevent.sleep(0.3)
    assert len(state_of(env).pending_gauges) == count, "stopped on test_stop"
    assert monitor.target is not None and monitor.target.pid == backend.pid
