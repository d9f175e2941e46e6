"""``PerformanceTracker``: the seed test plan's helper for scripts and pytest, over the same SLA engine.

Every ``record_latency`` goes into the engine's mergeable histograms (so ``percentile()``, ``evaluate()`` and
``report()`` judge the same expressions as a Locust run), and a single sample over its latency limit is also logged
in ``sla_violations`` as in the seed::

    tracker = PerformanceTracker()                       # 2000 ms per operation, >= 10 ops/s
    tracker.record_latency("websocket_message", 2350.0)
    tracker.record_throughput(8.5)
    tracker.sla_violations
    # [{"operation": "websocket_message", "value": 2350.0, "latency_ms": 2350.0, "threshold": 2000.0,
    #   "violation_type": "latency", "timestamp": datetime(..., tzinfo=UTC)},
    #  {"operation": "throughput", "value": 8.5, "ops_per_sec": 8.5, "threshold": 10.0,
    #   "violation_type": "throughput", "timestamp": ...}]
    tracker.assert_sla()                                 # AssertionError listing every violation / failed threshold

Operations named like Locust metrics (``"PG thread history"``) get the limit of the profile's latency threshold for
that metric when a profile is given (``PerformanceTracker(profile=load_profile("ci"))``): the smallest limit of its
``p(..)``/``max``/``avg``/``med`` thresholds. Other names use ``latency_sla_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sla_checks.engine import Engine
from sla_checks.evaluate import FAIL, ThresholdResult, ThresholdSpec, matching_metrics
from sla_checks.profiles import REQUEST_TYPES, Profile
from sla_checks.report import build_report

__all__ = ["PerformanceTracker"]

GENERIC_TYPE = "OP"


class PerformanceTracker:
    """Latency / throughput recorder with per-sample SLA violations and engine-based threshold evaluation."""

    def __init__(
        self,
        latency_sla_ms: float = 2000.0,
        throughput_sla_ops: float = 10.0,
        *,
        profile: Profile | None = None,
        thresholds: Sequence[ThresholdSpec] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.latency_sla_ms = float(latency_sla_ms)
        self.throughput_sla_ops = float(throughput_sla_ops)
        self.clock = clock
        specs = list(thresholds) if thresholds is not None else (list(profile.thresholds) if profile else [])
        if not specs:
            specs = [ThresholdSpec.of("*", f"max <= {self.latency_sla_ms:g}", description="seed latency SLA")]
        self.specs = specs
        self.engine = Engine(
            specs, profile=profile.name if profile else "tracker", config_file=profile.path if profile else ""
        )
        self.sla_violations: list[dict[str, Any]] = []
        self.throughput_samples: list[tuple[float, float]] = []
        self._limits: dict[str, float] = {}

    @staticmethod
    def metric_key(operation: str) -> tuple[str, str]:
        """``"PG thread history"`` -> ("PG", "thread history"); ``"login"`` -> ("OP", "login")."""
        rtype, _, name = operation.partition(" ")
        if rtype in REQUEST_TYPES and name:
            return rtype, name
        return GENERIC_TYPE, operation

    def latency_limit(self, operation: str) -> float:
        """The per-sample latency limit for ``operation`` (ms)."""
        if operation in self._limits:
            return self._limits[operation]
        key = " ".join(self.metric_key(operation))
        limits = [
            s.expression.limit
            for s in self.specs
            if s.expression.stat in ("p", "max", "avg", "med")
            and s.metric != "*"
            and matching_metrics(s.metric, [key])
        ]
        limit = min(limits) if limits else self.latency_sla_ms
        self._limits[operation] = limit
        return limit

    def _now(self) -> tuple[float, datetime]:
        t = self.clock()
        if self.engine.started_at is None:
            self.engine.start(t)
        return t, datetime.fromtimestamp(t, UTC)

    def record_latency(self, operation: str, latency_ms: float, failed: bool = False) -> None:
        """Record one operation's latency; over its limit it is also an ``sla_violations`` entry."""
        t, ts = self._now()
        rtype, name = self.metric_key(operation)
        self.engine.collector.record(rtype, name, float(latency_ms), failed, t)
        limit = self.latency_limit(operation)
        if latency_ms > limit:
            self.sla_violations.append(
                {
                    "operation": operation,
                    "value": float(latency_ms),
                    "latency_ms": float(latency_ms),
                    "threshold": limit,
                    "violation_type": "latency",
                    "timestamp": ts,
                }
            )

    def record_throughput(self, ops_per_sec: float, operation: str = "throughput") -> None:
        """Record a measured throughput; under ``throughput_sla_ops`` it is an ``sla_violations`` entry."""
        t, ts = self._now()
        self.throughput_samples.append((t, float(ops_per_sec)))
        self.engine.collector.record_gauge(f"tracker:{operation}", float(ops_per_sec), t)
        if ops_per_sec < self.throughput_sla_ops:
            self.sla_violations.append(
                {
                    "operation": operation,
                    "value": float(ops_per_sec),
                    "ops_per_sec": float(ops_per_sec),
                    "threshold": self.throughput_sla_ops,
                    "violation_type": "throughput",
                    "timestamp": ts,
                }
            )

    def percentile(self, operation: str, q: float) -> float | None:
        self.engine.flush_local()
        m = self.engine.store.total().metrics.get(" ".join(self.metric_key(operation)))
        return m.hist.percentile(q) if m else None

    def evaluate(self) -> list[ThresholdResult]:
        """The configured thresholds judged on everything recorded so far."""
        self.engine.flush_local()
        return self.engine.evaluate(self.clock())

    def report(self) -> dict[str, Any]:
        """The SLA report dict (same schema as a Locust run's), with ``sla_violations`` added."""
        self.engine.flush_local()
        rep = build_report(self.engine, self.clock(), final=False)
        rep["sla_violations"] = [{**v, "timestamp": v["timestamp"].isoformat()} for v in self.sla_violations]
        return rep

    def assert_sla(self) -> None:
        """Raise AssertionError naming every per-sample violation and every failed threshold."""
        problems = [
            f"{v['violation_type']} violation: {v['operation']} {v['value']:g} (limit {v['threshold']:g})"
            for v in self.sla_violations
        ]
        problems += [f"SLA FAILED: {r.describe()}" for r in self.evaluate() if r.status == FAIL]
        if problems:
            raise AssertionError("; ".join(problems))
