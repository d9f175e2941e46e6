"""Synthetic Locust users for the SLA engine's end-to-end tests: fire known samples, no I/O.

Each user fires the same fixed, deterministic list of samples (``SLA_SYNTH_SAMPLES`` per user, latencies from a
fixed formula) and then idles, so the run's total sample set is identical whatever the number of users per process
or of worker processes: a master + 2 workers run must give exactly the verdict and percentiles of a local run.

Environment: ``SLA_SYNTH_MODE`` = ``healthy`` (WS replies 100-1900 ms, PG 2-40 ms), ``slow`` (a quarter of the WS
replies at 2500-3400 ms, from sample ``SLA_SYNTH_SLOW_FROM`` on, up to ``SLA_SYNTH_SLOW_UNTIL``) or ``failing``
(every other message fails);
``SLA_SYNTH_SAMPLES`` per user (default 400), ``SLA_SYNTH_PAUSE`` seconds between samples (default 0.005).
"""

from __future__ import annotations

import os

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import User, constant, task

import sla_checks.plugin  # noqa: F401  (--sla-* options and hooks)
from sla_checks.gauges import record_gauge

MODE = os.environ.get("SLA_SYNTH_MODE", "healthy")
SAMPLES = int(os.environ.get("SLA_SYNTH_SAMPLES", "400"))
SLOW_FROM = int(os.environ.get("SLA_SYNTH_SLOW_FROM", "0"))
SLOW_UNTIL = int(os.environ.get("SLA_SYNTH_SLOW_UNTIL", str(10**9)))
PAUSE_S = float(os.environ.get("SLA_SYNTH_PAUSE", "0.005"))
STAGES = ("agent_started→agent_thinking", "agent_thinking→tool_executing", "tool_completed→agent_completed")


def ws_latency(i: int) -> float:
    base = 100.0 + (i * 7919 % 1800) + (i % 10) / 10.0  # 100 .. 1900.9 ms, sub-ms parts included
    if MODE == "slow" and i % 4 == 0 and SLOW_FROM <= i < SLOW_UNTIL:
        return 2500.0 + (i * 31 % 900)
    return base


class SyntheticChatUser(User):
    """Fires ``SAMPLES`` WS agent_completed + PG thread history samples, then idles."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.i = 0

    @task
    def fire(self) -> None:
        if self.i >= SAMPLES:
            gevent.sleep(3600)
            return
        i = self.i
        self.i += 1
        ms = ws_latency(i)
        failed = MODE == "failing" and i % 2 == 0
        fire = self.environment.events.request.fire
        fire(
            request_type="WS",
            name="agent_completed",
            response_time=ms,
            response_length=0,
            exception=RuntimeError("error DEPENDENCY_TIMEOUT: synthetic") if failed else None,
            context={"outcome": "error" if failed else "completed", "stages": {s: ms / 3 for s in STAGES}},
        )
        fire(request_type="PG", name="thread history", response_time=2.0 + i % 39, response_length=0, exception=None)
        if i % 50 == 0:
            record_gauge(self.environment, "synthetic:progress", float(i))
        gevent.sleep(PAUSE_S)
