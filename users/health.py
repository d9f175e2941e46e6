"""HealthCheckUser: the target's health endpoints, plus the per-tier latencies a readiness body reports.

Samples (request_type ``HTTP``): one per path of ``--health-paths`` (default ``/health``, ``/health/ready``), polled in
turn, each its own metric ``HTTP <path>`` (a 503 "degraded" answer is a failure whose text names the failing tiers),
and, when a body carries ``{"tiers": {"redis": {"ok", "latency_ms", "error"}, ...}}`` as the reference backend's
``/health/ready`` does, one sample per tier: ``ready:redis``, ``ready:postgres``, ``ready:clickhouse`` with the latency
the server measured (failed when ``ok`` is false). A real server's static body (``{"status": "ok"}``, plain text)
simply yields no tier samples. "Every check under 1 s" is the threshold ``max < 1000`` on ``HTTP /health*``.
"""

from __future__ import annotations

import json
import logging

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import between, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from users.probe_base import ProbeFailure, TypedRequestEvent, fire
from users.probe_options import probe_config

logger = logging.getLogger(__name__)


def tier_readings(body: str | bytes | None) -> list[tuple[str, float, str | None]]:
    """``(tier, latency_ms, error or None)`` for each tier a ``/health/ready`` body reports; [] for a static body."""
    if not body:
        return []
    try:
        doc = json.loads(body)
    except (ValueError, TypeError):
        return []
    tiers = doc.get("tiers") if isinstance(doc, dict) else None
    if not isinstance(tiers, dict):
        return []
    out = []
    for tier, info in sorted(tiers.items()):
        if not isinstance(info, dict):
            continue
        latency = info.get("latency_ms")
        try:
            ms = float(latency) if latency is not None else 0.0
        except (TypeError, ValueError):
            ms = 0.0
        ok = bool(info.get("ok"))
        error = None if ok else str(info.get("error") or "not ok")
        out.append((str(tier), ms, error))
    return out


class HealthCheckUser(FastHttpUser):
    """Polls the target's health endpoints (``--health-paths``) and records the per-tier readiness latencies they
    report."""

    fixed_count = 1
    """One per run by default (``--health-probe-users``)."""
    wait_time = between(1.0, 2.0)

    def __init__(self, environment: Environment) -> None:
        self.cfg = probe_config(environment)
        self.host = self.cfg.health_url.rstrip("/")  # Locust's --host may be the ws:// chat URL
        self.network_timeout = self.cfg.health_timeout
        self.connection_timeout = min(self.cfg.health_timeout, 5.0)
        super().__init__(environment)
        self.client.request_event = TypedRequestEvent(environment.events.request, "HTTP")
        self._turn = 0

    def on_start(self) -> None:
        """One reading of every path (and the tiers a readiness body reports) in every run, whatever its length."""
        for path in self.cfg.health_paths:
            self.check(path)

    @task
    def poll(self) -> None:
        """The next path of ``--health-paths``, in turn."""
        paths = self.cfg.health_paths
        path = paths[self._turn % len(paths)]
        self._turn += 1
        self.check(path)

    def check(self, path: str) -> None:
        """GET ``path`` (sample ``HTTP <path>``): 200 passes, 503 is "degraded" naming the failing tiers the body
        reports, anything else fails with the status; then one ``HTTP ready:<tier>`` sample per tier in the body."""
        readings: list[tuple[str, float, str | None]] = []
        with self.client.get(path, name=path, catch_response=True) as resp:
            status = resp.status_code or 0
            try:
                readings = tier_readings(resp.text)
            except Exception:  # noqa: BLE001  (no readable body on a network error)
                readings = []
            if status == 200:
                resp.success()
            elif status == 503:
                bad = [f"{t}: {e}" for t, _ms, e in readings if e]
                resp.failure("degraded" + (": " + "; ".join(bad) if bad else ""))
            else:
                resp.failure(f"HTTP {status or 'error'}: {getattr(resp, 'error', '') or ''}".strip())
        for tier, ms, error in readings:
            fire(self.environment, "HTTP", f"ready:{tier}", ms,
                 exception=ProbeFailure(error[:200]) if error else None)
