"""A plain Locust HttpUser (no suite user classes) judged by the suite's SLA plugin: it polls ``GET /health`` of the
reference backend, so its samples are keyed ``GET /health`` (request_type = the HTTP method, name = the path), the
way any locustfile's HTTP requests are. Used by tests/e2e/test_sla_verdict_states.py."""

from __future__ import annotations

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import HttpUser, constant, task

import sla_checks.plugin  # noqa: F401  (--sla-* options and hooks)


class HealthPollUser(HttpUser):
    """Fetches /health ten times a second."""

    wait_time = constant(0.1)

    @task
    def health(self) -> None:
        self.client.get("/health", timeout=5)
