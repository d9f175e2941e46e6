"""The scenario catalogue: every scenario of the seed test plan as a named, runnable load scenario.

A :class:`Scenario` bundles which users run (class names with weights or fixed counts), a load shape
(:mod:`scenarios.shapes`), a default duration, its thresholds (SLA expressions of docs/sla.md, on top of or instead
of the SLA profile's) and the reference backend faults that reproduce the degradation it is about, with their
schedule (after warm-up, for a set time, then cleared). Everything here is pure data: frozen dataclasses and
lookups, no I/O; :mod:`scenarios.plugin` turns a scenario into a Locust run.

Times in a scenario are *scenario seconds*: ``--scenario-duration`` rescales every phase of the shape and of the
fault schedule together (a 300 s scenario run for 10 s is the same run, 30 times faster). Fault intensities
(``ms``) and thresholds are never rescaled: a 3500 ms Redis pause stays a 3500 ms Redis pause.

How a scenario's thresholds and an SLA profile's make the thresholds of a run is one rule, in
:func:`scenarios.compose.compose`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Literal

from config.errors import UsageError
from contract.isolation import ISOLATION_LEVELS
from scenarios.shapes import Ramp, ShapeSpec, Soak, Spike, Steady, Step, Stepped
from sla_checks.tiers import tier_of

__all__ = [
    "CHAT",
    "CHAT_FLOW",
    "CH_PROBE",
    "FaultSpec",
    "HEALTH",
    "PG_PROBE",
    "REDIS_PROBE",
    "SCENARIOS",
    "SEED_PHASES",
    "SEED_PLAN",
    "SEED_TESTS",
    "Scenario",
    "SeedTest",
    "Threshold",
    "UnknownScenarioError",
    "UserMix",
    "get_scenario",
    "scenario_names",
    "seed_phase_tests",
    "seed_test_index",
]

# User class names as the locustfile exposes them (users/ package). Kept as names, not imports, so the catalogue
# stays pure and a missing class is reported by name when a scenario is activated.
CHAT = "ChatUser"
CHAT_FLOW = "ChatFlowUser"
REDIS_PROBE = "RedisProbeUser"
PG_PROBE = "PostgresProbeUser"
CH_PROBE = "ClickHouseProbeUser"
HEALTH = "HealthCheckUser"

FaultKind = Literal[
    "redis-pause",
    "redis-slow",
    "redis-memory-pressure",
    "pg-lock",
    "pg-pool-exhaustion",
    "pg-slow-query",
    "pg-hot-row",
    "clickhouse-stall",
    "agent-slow",
    "hang",
    "drop-event",
    "slow-pong",
]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]
TIER_OF_FAULT = {
    "redis-pause": "redis",
    "redis-slow": "redis",
    "redis-memory-pressure": "redis",
    "pg-lock": "postgres",
    "pg-pool-exhaustion": "postgres",
    "pg-slow-query": "postgres",
    "pg-hot-row": "postgres",
    "clickhouse-stall": "clickhouse",
}
ATTRIBUTED_TYPES = ("WS", "FLOW")
"""Request types whose failing thresholds the SLA engine attributes to a tier (sla_checks.report)."""


class UnknownScenarioError(UsageError, KeyError):
    """A scenario name that is not in the catalogue."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class UserMix:
    """One user class in a scenario: a weight (share of the shape's users) or a fixed count (always that many)."""

    user_class: str
    weight: int = 1
    fixed_count: int = 0

    def __post_init__(self) -> None:
        if self.weight < 0 or self.fixed_count < 0:
            raise ValueError(f"UserMix {self.user_class}: weight and fixed_count must be >= 0")
        if self.weight == 0 and self.fixed_count == 0:
            raise ValueError(f"UserMix {self.user_class}: give a weight > 0 or a fixed_count > 0")


@dataclass(frozen=True)
class Threshold:
    """One SLA threshold: ``metric`` is ``"TYPE name"`` (``*`` glob allowed), ``expr`` a docs/sla.md threshold expression."""

    metric: str
    expr: str
    description: str = ""
    abort_on_fail: bool = False
    # None: required unless a "count < N" line (see scenarios.compose.is_required); False: no samples is no failure
    required: bool | None = None


@dataclass(frozen=True)
class FaultSpec:
    """A ``contract.faults`` fault on the scenario's clock: applied at ``start_s``, expiring after ``for_s``.

    ``ms`` is the fault's intensity (pause length, added latency ...) and ``params`` its extra parameters
    (``drop-event``: ``(("event", "tool_completed"),)``).
    """

    kind: str
    start_s: float
    for_s: float
    ms: int | None = None
    params: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"FaultSpec kind {self.kind!r} is not a fault kind of contract.faults; use one of {FAULT_KINDS}")
        if self.start_s < 0 or self.for_s <= 0:
            raise ValueError(f"FaultSpec {self.kind}: start_s must be >= 0 and for_s > 0")

    @property
    def tier(self) -> str | None:
        return TIER_OF_FAULT.get(self.kind)


@dataclass(frozen=True)
class Scenario:
    """A named load scenario (see the module docstring)."""

    name: str
    summary: str
    seed_tests: tuple[str, ...]
    users: tuple[UserMix, ...]
    shape: ShapeSpec
    thresholds: tuple[Threshold, ...] = ()
    # "extend": every line of the SLA profile that these do not override joins them; "replace": only the profile's
    # environment lines do (abort, required, max/rps/fail_ratio/count): scenarios.compose has the rule.
    threshold_mode: Literal["extend", "replace"] = "replace"
    # Paired faults (--inject-faults): the scenario's thresholds must catch them (exit 3).
    faults: tuple[FaultSpec, ...] = ()
    # Legitimate delays the scenario must survive (--inject-tolerated-faults): thresholds still pass (exit 0).
    tolerated_faults: tuple[FaultSpec, ...] = ()
    # What a faulted run's report must name: failing metrics, and the tier behind them. With a WS/FLOW metric in
    # expected_breaches, the SLA attribution of that breach must rank expected_tier first; without one (a probe
    # scenario: the engine attributes only WS/FLOW breaches), the expected breaches must include a metric of that
    # tier and none of another (checked below), and the run must fail no other tier's threshold.
    expected_breaches: tuple[str, ...] = ()
    expected_tier: str | None = None
    # A scenario that faults a tier but names no expected_tier says why here (an explicit exception, not a skip).
    tier_exception: str = ""
    # Metrics whose thresholds must still pass in the faulted run (what the scenario shows to be robust).
    holds_under_fault: tuple[str, ...] = ()
    # Locust option overrides (parsed_options attribute names), e.g. (("ws_reply_timeout", 10.0),).
    options: tuple[tuple[str, object], ...] = ()
    sla_profile: str | None = None
    sla_window_s: float | None = None
    description: str = ""
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower() or " " in self.name:
            raise ValueError(f"Scenario name {self.name!r} must be lower-case, without spaces")
        if not self.users:
            raise ValueError(f"Scenario {self.name}: needs at least one UserMix")
        names = [u.user_class for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError(f"Scenario {self.name}: a user class is listed twice in {names}")
        if self.threshold_mode == "replace" and not self.thresholds:
            raise ValueError(f"Scenario {self.name}: threshold_mode 'replace' needs thresholds")
        if self.faults and not self.expected_breaches:
            raise ValueError(f"Scenario {self.name}: a faulted scenario must say which metric breaches")
        for fault in (*self.faults, *self.tolerated_faults):
            if fault.start_s + fault.for_s > self.duration_s:
                raise ValueError(
                    f"Scenario {self.name}: fault {fault.kind} ends at {fault.start_s + fault.for_s} s, "
                    f"after the scenario's {self.duration_s} s"
                )
        for metric in (*self.expected_breaches, *self.holds_under_fault):
            if not any(fnmatch.fnmatchcase(metric, t.metric) for t in self.thresholds) and (
                self.threshold_mode == "replace"
            ):
                raise ValueError(f"Scenario {self.name}: expected breach {metric!r} has no threshold")
        self._check_tier()

    def _check_tier(self) -> None:
        tier = self.expected_tier
        faulted_tiers = {f.tier for f in self.faults if f.tier}
        if tier is None:
            if faulted_tiers and not self.tier_exception:
                raise ValueError(
                    f"Scenario {self.name}: it faults {sorted(faulted_tiers)}; name expected_tier or say in "
                    "tier_exception why attribution cannot rank that tier first"
                )
            return
        if self.tier_exception:
            raise ValueError(f"Scenario {self.name}: give expected_tier or tier_exception, not both")
        if tier not in faulted_tiers:
            raise ValueError(f"Scenario {self.name}: expected_tier {tier!r} is not a tier its faults act on")
        if self.attributed_breaches:
            # a tier metric with no samples outside the bad buckets is measured against its own threshold; without
            # one it cannot score (a short run's probe may sample only while the fault is on)
            if not any(tier_of(t.metric) == tier and t.expr.startswith("p(") for t in self.thresholds):
                raise ValueError(
                    f"Scenario {self.name}: attribution to {tier} needs a p(..) threshold on a {tier} metric"
                )
        else:
            own = [m for m in self.expected_breaches if tier_of(m) == tier]
            other = [m for m in self.expected_breaches if tier_of(m) not in (None, tier)]
            if not own or other:
                raise ValueError(
                    f"Scenario {self.name}: without a WS/FLOW breach to attribute, expected_breaches must include "
                    f"a {tier} metric and none of another tier (got {self.expected_breaches})"
                )

    @property
    def duration_s(self) -> float:
        return self.shape.duration_s

    @property
    def attributed_breaches(self) -> tuple[str, ...]:
        """Expected breaches the SLA engine attributes to a tier (``WS``/``FLOW`` metrics)."""
        return tuple(m for m in self.expected_breaches if m.split(" ", 1)[0] in ATTRIBUTED_TYPES)

    @property
    def fixed_users(self) -> int:
        return sum(u.fixed_count for u in self.users)

    @property
    def user_classes(self) -> tuple[str, ...]:
        return tuple(u.user_class for u in self.users)

    def one_line(self) -> str:
        """``name  duration  shape  fault  summary``: the ``--list-scenarios`` line."""
        fault = "+".join(f.kind for f in self.faults) or "-"
        return f"{self.name:<28} {_fmt_duration(self.duration_s):>4}  {self.shape.kind:<8} {fault:<22} {self.summary}"


def _fmt_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


# ---------------------------------------------------------------------------------------------------------------
# Thresholds shared by several scenarios (the seed plan's SLAs)
WS_REPLY = Threshold("WS agent_completed", "p(95) < 2000", "WebSocket reply (agent_completed) p95 under the 2 s SLA")
WS_WITHIN = Threshold("WS agent_completed", "within(2000) >= 95%", "at least 95 % of messages answered within 2 s")
WS_OK = Threshold("WS agent_completed", "fail_ratio < 0.01", "replies complete: no error, timeout or hang")
WS_MISSING = Threshold("WS events missing", "count < 1", "every message got its agent events")
WS_NO_HANG = Threshold("WS hang", "count < 1", "no message hangs: each ends with a reply or an error frame")
WS_NO_TIMEOUT = Threshold("WS timeout", "count < 1", "no message is left to the client's reply deadline")
# no samples is its pass (a healthy run answers every message): an error frame only has to come in time
WS_ERROR_IN_TIME = Threshold("WS error", "max < 3000", "an error reply comes within the 3 s failure line, from the "
                             "backend's own deadline", required=False)
WS_CONNECT = Threshold("WS connect", "p(95) < 1000", "WebSocket connection established within 1 s")
# not required: a user connects once, at spawn, which a warm-up may cover; a refused connect retries (and is judged)
WS_CONNECT_OK = Threshold("WS connect", "fail_ratio < 0.01", "connections succeed", required=False)
REDIS_P95 = Threshold("REDIS *", "p(95) < 50", "Redis operation p95 under 50 ms")
REDIS_OK = Threshold("REDIS *", "fail_ratio < 0.01", "Redis operations succeed")
PG_HISTORY = Threshold("PG thread history", "p(95) < 200", "thread-history query p95 under 200 ms")
PG_INSERT = Threshold("PG message insert", "p(95) < 200", "message insert p95 under 200 ms")
PG_UPDATE = Threshold("PG thread update", "p(95) < 200", "thread update p95 under 200 ms")
PG_COMMIT = Threshold("PG commit", "p(95) < 200", "transaction commit p95 under 200 ms")
PG_FLOW = (PG_HISTORY, PG_INSERT, PG_UPDATE)
PG_OK = Threshold("PG *", "fail_ratio < 0.01", "database operations succeed")
CH_P95 = Threshold("CH *", "p(95) < 1000", "ClickHouse analytics insert/query p95 under 1 s")
HEALTH_P99 = Threshold("HTTP /health*", "p(99) < 1000", "health endpoints answer within 1 s")
HEALTH_OK = Threshold("HTTP /health*", "fail_ratio < 0.01", "health endpoints answer 200")
HEALTH_MAX = Threshold("HTTP /health*", "max < 1000", "every health check answers within 1 s")
HEALTH_TIERS_OK = Threshold("HTTP ready:*", "fail_ratio < 0.01", "every tier's readiness check in /health/ready passes")
FLOW_MAX = Threshold("FLOW login→send→receive", "max < 15000", "complete login → send → receive within 15 s")
FLOW_OK = Threshold("FLOW login→send→receive", "fail_ratio < 0.01", "complete workflows succeed")

EVENT_BUDGETS = (
    Threshold("WS agent_started", "p(95) < 500", "agent_started within 0.5 s of sending"),
    Threshold("WS agent_thinking", "p(95) < 1000", "first agent_thinking within 1 s"),
    Threshold("WS tool_executing", "p(95) < 1500", "first tool_executing within 1.5 s"),
    Threshold("WS tool_completed", "p(95) < 2000", "first tool_completed within 2 s"),
    WS_REPLY,
)

ALL_LIGHT = (
    UserMix(CHAT, weight=1),
    UserMix(REDIS_PROBE, fixed_count=1),
    UserMix(PG_PROBE, fixed_count=1),
    UserMix(CH_PROBE, fixed_count=1),
    UserMix(HEALTH, fixed_count=1),
)


def _s(
    name: str,
    summary: str,
    seeds: tuple[str, ...],
    users: tuple[UserMix, ...],
    shape: ShapeSpec,
    thresholds: tuple[Threshold, ...],
    **kwargs: object,
) -> Scenario:
    return Scenario(name=name, summary=summary, seed_tests=seeds, users=users, shape=shape, thresholds=thresholds,
                    **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# The catalogue. Default durations are for real use; proof tests shorten them with --scenario-duration.
_CATALOGUE: tuple[Scenario, ...] = (
    _s(
        "smoke",
        "everything light: chat + one probe per tier + health, all SLAs of the profile",
        (),
        ALL_LIGHT,
        Steady(users=3, spawn_rate=3, duration_s=30),
        (WS_REPLY, WS_OK, WS_MISSING),
        threshold_mode="extend",
        faults=(FaultSpec("agent-slow", start_s=5, for_s=20, ms=2500),),
        expected_breaches=("WS agent_completed",),
        description="A quick check that every user type runs and every SLA of the profile is met.",
    ),
    _s(
        "soak",
        "hours of steady chat + probes, thresholds judged per SLA window (drift)",
        (),
        ALL_LIGHT,
        Soak(users=20, ramp_s=120, duration_s=4 * 3600),
        (WS_REPLY, WS_WITHIN, WS_OK),
        threshold_mode="extend",
        sla_profile="soak",
        sla_window_s=300,
        faults=(FaultSpec("agent-slow", start_s=3600, for_s=1800, ms=2500),),
        expected_breaches=("WS agent_completed",),
        tags=("soak",),
        description="Steady load for hours; the SLA engine judges every --sla-window and lists failing windows.",
    ),
    # ----- Phase 1: infrastructure dependency tests ------------------------------------------------------------
    _s(
        "redis-connect-latency",
        "fresh Redis connections: REDIS connect p95 < 100 ms, trend over attempts",
        ("test_redis_connection_latency_sla_validation",),
        (UserMix(REDIS_PROBE, weight=1),),
        Steady(users=5, spawn_rate=5, duration_s=60),
        (
            Threshold("REDIS connect", "p(95) < 100", "Redis connection established within 100 ms"),
            Threshold("REDIS connect", "fail_ratio < 0.01", "Redis connections succeed"),
        ),
        faults=(FaultSpec("redis-slow", start_s=15, for_s=30, ms=1000),),
        expected_breaches=("REDIS connect",),
        expected_tier="redis",
        options=(("redis_connect_weight", 10),),  # half the probe's draws open a connection (default: 1 in 11)
    ),
    _s(
        "redis-cache-read-load",
        "Redis cache reads under ramping concurrent load: REDIS GET p95 < 50 ms",
        ("test_redis_cache_read_performance_under_load",),
        (UserMix(REDIS_PROBE, weight=1),),
        Ramp(start_users=2, end_users=20, duration_s=120),
        (
            Threshold("REDIS GET", "p(95) < 50", "cache read p95 under 50 ms at every load level"),
            Threshold("REDIS GET", "fail_ratio < 0.01", "cache reads succeed"),
        ),
        faults=(FaultSpec("redis-slow", start_s=30, for_s=75, ms=300),),
        expected_breaches=("REDIS GET",),
        expected_tier="redis",
    ),
    _s(
        "redis-write-memory-pressure",
        "Redis cache writes while memory fills up (maxmemory, eviction): REDIS SET p95 < 50 ms, no errors",
        ("test_redis_cache_write_performance_degradation",),
        (UserMix(REDIS_PROBE, weight=1), UserMix(CHAT, fixed_count=1)),
        Steady(users=4, spawn_rate=4, duration_s=120),
        (
            Threshold("REDIS SET*", "p(95) < 50", "cache writes (session values and large values) p95 under 50 ms"),
            Threshold("REDIS SET*", "fail_ratio < 0.01", "cache writes succeed (no OOM under maxmemory)"),
        ),
        faults=(FaultSpec("redis-memory-pressure", start_s=20, for_s=90, params=(("policy", "noeviction"),)),),
        expected_breaches=("REDIS SET*",),  # a refused write: the large value or the session one, whichever came
        expected_tier="redis",
        description="The probe's write task tracks used_memory / evicted_keys / maxmemory from INFO as gauges.",
    ),
    _s(
        "pg-message-flow-queries",
        "the message-flow queries (thread history, message insert, thread update): PG p95 < 200 ms",
        ("test_postgresql_query_response_time_sla",),
        (UserMix(PG_PROBE, weight=1),),
        Steady(users=4, spawn_rate=4, duration_s=60),
        (*PG_FLOW, PG_OK),
        faults=(FaultSpec("pg-slow-query", start_s=15, for_s=40, ms=800),),
        expected_breaches=("PG thread history",),
        expected_tier="postgres",
    ),
    _s(
        "pg-pool-exhaustion",
        "backend's PG pool held: replies must degrade gracefully (DEPENDENCY_TIMEOUT), never hang",
        ("test_postgresql_connection_pool_exhaustion",),
        (UserMix(CHAT, weight=1), UserMix(PG_PROBE, fixed_count=1)),
        Steady(users=4, spawn_rate=4, duration_s=60),
        (WS_OK, WS_REPLY, WS_MISSING, WS_NO_HANG, WS_NO_TIMEOUT,
         Threshold("PG pool acquire", "p(95) < 200", "pool acquire under 200 ms")),
        faults=(FaultSpec("pg-pool-exhaustion", start_s=15, for_s=35),),
        expected_breaches=("WS agent_completed",),
        holds_under_fault=("WS events missing", "WS hang", "WS timeout"),
        tier_exception="the backend's own pool is held; the probe's PostgreSQL connections stay fast, so no tier's "
        "latency rises and attribution (rightly) names none",
        description=(
            "Graceful degradation means the failures are quick 'error DEPENDENCY_TIMEOUT' replies, not 'hang'/"
            "'timeout': the failures tab tells them apart."
        ),
    ),
    _s(
        "pg-pool-demand",
        "real connection demand: in-flight messages x4 for a step, then back; the pool's waits and refusals show "
        "in replies, recovery judged",
        (),  # a variant of pg-pool-exhaustion for its seed test (docs/scenarios.md, item 5)
        (UserMix(CHAT, weight=1), UserMix(PG_PROBE, fixed_count=1), UserMix(HEALTH, fixed_count=1)),
        Stepped(
            steps=(
                Step(users=6, hold_s=15, inflight=1),
                Step(users=6, hold_s=15, inflight=4),  # the demand: 4x the messages, each needing a connection
                Step(users=6, hold_s=30, inflight=1),  # the demand drops: time to recover
            ),
            spawn_rate=20,
        ),
        (WS_OK, WS_REPLY, WS_MISSING, WS_NO_HANG, WS_NO_TIMEOUT,
         Threshold("WS recovery", "max < 5000", "after the demand drops, every user's replies are back within the "
                   "2 s SLA within 5 s")),
        options=(("ws_inflight", 1), ("tier_gauges_interval", 1.0)),
        description="No fault: the demand is the load itself. Each message needs a database connection for its "
        "unit of work, so the backend's pool (or the server's connection limit behind it) is exhausted by 4x the "
        "messages in flight. A pool sized for the peak passes; a smaller one answers with quick DEPENDENCY_TIMEOUT "
        "errors (WS agent_completed fails; the report's gauges show backend:pg_pool_waiting and "
        "backend:pg_pool_acquire_timeouts on the bundled backend, pg:connections against max_connections on any "
        "server). WS recovery: from the drop to each user's first reply within 2 s.",
    ),
    _s(
        "pg-lock-contention",
        "concurrent transactions on shared rows; a held table lock shows as commit/query time",
        (),  # lock contention in the backend's tables, beside pg-isolation-levels for its seed test (docs/scenarios.md, 6)
        (UserMix(PG_PROBE, weight=3), UserMix(CHAT, weight=1)),
        Steady(users=4, spawn_rate=4, duration_s=60),
        (PG_COMMIT, *PG_FLOW, PG_OK, WS_REPLY),
        faults=(FaultSpec("pg-lock", start_s=15, for_s=35),),
        expected_breaches=("PG thread history",),
        expected_tier="postgres",
    ),
    _s(
        "pg-isolation-levels",
        "read-modify-write of one hot row under READ COMMITTED / REPEATABLE READ / SERIALIZABLE: PG txn <level> "
        "p95 < 200 ms with retries; serialization failures retried and counted",
        ("test_postgresql_transaction_isolation_performance",),
        (UserMix(PG_PROBE, weight=1),),
        # six users, 7 in 8 draws a transaction: ~20 per level in an 8 s proof run, so one scheduling hiccup of a
        # loaded machine is not the p95
        Steady(users=6, spawn_rate=6, duration_s=60),
        (
            *(Threshold(f"PG txn {level}", "p(95) < 200", f"{sql} transaction (read-modify-write of the hot row, "
                        "retries included) p95 under 200 ms") for level, sql in ISOLATION_LEVELS.items()),
            Threshold("PG txn *", "fail_ratio < 0.01", "serialization failures (40001) and deadlocks (40P01) are "
                      "retried, at most 3 attempts: fewer than 1 % of transactions may give up"),
        ),
        faults=(FaultSpec("pg-hot-row", start_s=10, for_s=45, ms=600),),
        expected_breaches=("PG txn read_committed", "PG txn repeatable_read", "PG txn serializable"),
        expected_tier="postgres",
        # a retried serialization failure is a failed sample by design (healthy contention has a few): the verdict
        # judges, not Locust's "any request failed" exit code
        options=(("pg_isolation_weight", 60), ("exit_code_on_error", 0)),
        description="Six probe users write the same row, each transaction under the next isolation level (about 7 "
        "in 8 of their tasks; --pg-isolation-weight 60). Every attempt that hits a serialization failure or a "
        "deadlock is its own failed sample, PG serialization failure / PG deadlock, whose text names the level and "
        "whether it was retried: the failures table and the report's metrics count them. --inject-faults adds a "
        "concurrent writer (pg-hot-row: holds the row 600 ms, commits, again after 20 ms): READ COMMITTED waits, "
        "REPEATABLE READ and SERIALIZABLE fail with 40001 and retry, some until their 3 attempts run out.",
    ),
    # ----- Phase 2: WebSocket performance ---------------------------------------------------------------------
    _s(
        "ws-reply-2s",
        "chat replies: WS agent_completed p95 < 2 s and >= 95 % within 2 s",
        ("test_websocket_message_response_time_under_2_seconds",),
        (UserMix(CHAT, weight=1),),
        Steady(users=5, spawn_rate=5, duration_s=60),
        (WS_REPLY, WS_WITHIN, WS_OK),
        faults=(FaultSpec("agent-slow", start_s=10, for_s=45, ms=2500),),
        expected_breaches=("WS agent_completed",),
    ),
    _s(
        "ws-concurrent-degradation",
        "stepped users x in-flight messages; per-step latency curve of WS agent_completed",
        ("test_websocket_concurrent_message_performance_degradation",),
        (UserMix(CHAT, weight=1), UserMix(HEALTH, fixed_count=1)),
        Stepped(
            steps=(
                Step(users=2, hold_s=30, inflight=1),
                Step(users=4, hold_s=30, inflight=2),
                Step(users=6, hold_s=30, inflight=3),
                Step(users=8, hold_s=30, inflight=4),
            ),
            spawn_rate=10,
        ),
        (WS_REPLY, WS_OK),
        faults=(FaultSpec("agent-slow", start_s=60, for_s=55, ms=2500),),
        expected_breaches=("WS agent_completed",),
        options=(("ws_inflight", 1),),
        description="Each step sets the users and --ws-inflight; the step table (count, p50, p95, max) is logged "
        "at the end and written to --scenario-curve-csv.",
    ),
    _s(
        "ws-event-timing",
        "all five agent events delivered, each within its budget from send",
        ("test_websocket_agent_event_delivery_timing",),
        (UserMix(CHAT, weight=1),),
        Steady(users=4, spawn_rate=4, duration_s=60),
        (*EVENT_BUDGETS, WS_MISSING, WS_OK),
        faults=(FaultSpec("drop-event", start_s=10, for_s=45, params=(("event", "tool_completed"),)),),
        expected_breaches=("WS agent_completed",),
    ),
    _s(
        "ws-connect-under-stress",
        "connections keep being established fast while Redis stalls; replies fail fast, never hang",
        ("test_websocket_connection_timeout_under_infrastructure_stress",),
        (
            UserMix(CHAT, weight=1),
            UserMix(REDIS_PROBE, fixed_count=2),
            UserMix(PG_PROBE, fixed_count=2),
        ),
        Spike(base_users=2, peak_users=10, at_s=20, for_s=20, duration_s=60),
        (WS_CONNECT, WS_CONNECT_OK, WS_OK, WS_MISSING, WS_NO_HANG, REDIS_P95),
        faults=(FaultSpec("redis-slow", start_s=15, for_s=30, ms=1500),),
        expected_breaches=("WS agent_completed",),
        holds_under_fault=("WS connect",),
        expected_tier="redis",
        description="The spike makes users connect during the stall: WS connect must stay within 1 s and the "
        "replies must end as quick DEPENDENCY_TIMEOUT errors, not as hangs.",
    ),
    _s(
        "ws-heartbeat-slow-replies",
        "ping/pong heartbeat keeps working (and the connection alive) while replies are legitimately slow",
        ("test_websocket_heartbeat_failure_during_slow_responses",),
        (UserMix(CHAT, weight=1),),
        Steady(users=3, spawn_rate=3, duration_s=60),
        (
            Threshold("WS heartbeat", "p(95) < 500", "pong within 0.5 s even while an agent works"),
            Threshold("WS heartbeat", "fail_ratio < 0.01", "no missed pong / dropped connection"),
            WS_CONNECT_OK,
            # no samples is their pass (no heartbeat was lost); a loss must be followed by a working session
            Threshold("WS heartbeat recovery", "max < 5000", "after a lost heartbeat, a new connection answers a "
                      "ping within 5 s", required=False),
            Threshold("WS heartbeat recovery", "fail_ratio < 0.01", "every lost heartbeat is recovered from",
                      required=False),
        ),
        # pongs 1.5 s late against a 1 s heartbeat timeout: heartbeats are lost (the connection is closed after 2
        # misses) while the fault lasts, and must be recovered from once it ends (a third of the run after it)
        faults=(FaultSpec("slow-pong", start_s=10, for_s=30, ms=1500),),
        tolerated_faults=(FaultSpec("agent-slow", start_s=10, for_s=45, ms=2500),),
        expected_breaches=("WS heartbeat",),
        holds_under_fault=("WS heartbeat recovery",),
        options=(("ws_heartbeat_interval", 1.0), ("ws_heartbeat_timeout", 1.0)),
        description="--inject-tolerated-faults slows the agent (legitimate delay): the run must still pass; "
        "--inject-faults delays pongs past the heartbeat timeout: WS heartbeat fails, and WS heartbeat recovery "
        "(lost heartbeat -> a new connection's first pong) must hold.",
    ),
    # ----- Phase 3: message-flow integration ------------------------------------------------------------------
    _s(
        "pipeline-under-10s",
        "full Supervisor -> Triage -> Data -> Optimizer run: WS agent_completed max < 10 s",
        ("test_agent_execution_pipeline_timeout_reproduction",),
        (UserMix(CHAT, weight=1),),
        Steady(users=3, spawn_rate=3, duration_s=60),
        (
            Threshold("WS agent_completed", "max < 10000", "the whole pipeline completes within 10 s"),
            WS_OK,
        ),
        faults=(FaultSpec("agent-slow", start_s=10, for_s=35, ms=11000),),
        expected_breaches=("WS agent_completed",),
        options=(("ws_reply_timeout", 10.5),),
    ),
    _s(
        "pipeline-event-timing",
        "ramping load: gaps between the five events stay within budget; the slow stage is named",
        ("test_agent_websocket_event_timing_degradation",),
        (UserMix(CHAT, weight=1), UserMix(REDIS_PROBE, fixed_count=1), UserMix(PG_PROBE, fixed_count=1)),
        Ramp(start_users=2, end_users=8, duration_s=120),
        # PG_HISTORY: the probe may sample thread history only while the fault is on (no baseline); attribution
        # then measures its rise against this threshold (without it, the PG tier scored 0 in one proof run)
        (*EVENT_BUDGETS, WS_OK, PG_HISTORY),
        faults=(FaultSpec("pg-slow-query", start_s=30, for_s=75, ms=2500),),
        expected_breaches=("WS agent_completed",),
        expected_tier="postgres",
    ),
    _s(
        "three-tier-cascade",
        "one fault, Redis slow: the backend falls back to PostgreSQL, whose pool queues; attribution reports the "
        "chain in order of onset",
        ("test_redis_postgresql_clickhouse_cascade_timeout",),
        (
            UserMix(CHAT, weight=1),
            UserMix(REDIS_PROBE, fixed_count=2),
            UserMix(PG_PROBE, fixed_count=1),
            UserMix(CH_PROBE, fixed_count=1),
            UserMix(HEALTH, fixed_count=3),  # HTTP ready:<tier>: each tier as the backend sees it, pool included
        ),
        Steady(users=40, spawn_rate=40, duration_s=120),
        (WS_REPLY, WS_OK, REDIS_P95, *PG_FLOW, PG_OK, CH_P95),
        # Only Redis is faulted, in two steps: 150 ms pauses (Redis over its SLA; a few session reads miss their budget
        # and rebuild from PostgreSQL, the pool keeps up), then 1500 ms pauses (each fallback holds its
        # pooled connection while the cache refill waits: the pool queues, HTTP ready:postgres rises)
        faults=(
            FaultSpec("redis-slow", start_s=45, for_s=25, ms=150),
            FaultSpec("redis-slow", start_s=70, for_s=48, ms=1500),
        ),
        expected_breaches=("REDIS *",),
        tier_exception="a cascade: Redis is the cause and PostgreSQL's pool queues behind it, so both coincide "
        "with the WS breach and their rank depends on the size of each rise; the proof is the WS breach's "
        "attribution chain, redis before postgres by onset bucket (tests/e2e/test_cascade_e2e.py)",
        description="Against a backend with a cache fallback (the bundled one with --session-budget-ms 100: "
        "after 100 ms without its Redis session read it rebuilds the session from PostgreSQL and refills the "
        "cache on the same pooled connection; without a fallback a stalled cache fails messages fast and only "
        "Redis shows). The WS breach's attribution carries chain (each tier's onset bucket, in order): redis "
        "(REDIS *, HTTP ready:redis) first, then postgres (HTTP ready:postgres: the backend's pool). ClickHouse "
        "is not slowed by it (its writes are batched off the request path) and stays out of the chain.",
    ),
    # ----- Phase 4: timeout reproduction ----------------------------------------------------------------------
    _s(
        "reproduce-3s-timeout",
        "Issue #1032: a Redis stall turns replies into > 3 s; nothing may exceed 3 s",
        ("test_reproduce_3_second_plus_websocket_timeout",),
        (UserMix(CHAT, weight=1), UserMix(REDIS_PROBE, fixed_count=3)),
        Steady(users=4, spawn_rate=4, duration_s=60),
        (
            Threshold("WS agent_completed", "max < 3000", "no reply over the 3 s failure line of issue #1032"),
            WS_REPLY,
            WS_OK,
            REDIS_P95,
        ),
        faults=(FaultSpec("redis-pause", start_s=15, for_s=30, ms=3500),),
        expected_breaches=("WS agent_completed",),
        expected_tier="redis",
        sla_profile="ci",
    ),
    _s(
        "db-slow-queries-5s",
        "PG queries slowed > 5 s: replies must time out with an error, not hang",
        ("test_timeout_behavior_under_database_slow_queries",),
        (UserMix(CHAT, weight=1), UserMix(PG_PROBE, fixed_count=1)),
        Steady(users=3, spawn_rate=3, duration_s=60),
        (WS_REPLY, WS_OK, WS_MISSING, WS_NO_HANG,
         Threshold("PG thread history", "p(95) < 200", "history query < 200 ms")),
        faults=(FaultSpec("pg-slow-query", start_s=10, for_s=40, ms=5500),),
        expected_breaches=("WS agent_completed",),
        expected_tier="postgres",
    ),
    _s(
        "graceful-timeout-vs-hang",
        "errors are allowed, hangs are not: a dependency timeout answers with an error frame in time; a swallowed "
        "message fails WS hang",
        ("test_websocket_graceful_timeout_vs_hanging",),
        (UserMix(CHAT, weight=1),),
        Steady(users=3, spawn_rate=3, duration_s=60),
        (
            WS_NO_HANG,
            WS_NO_TIMEOUT,
            WS_MISSING,
            WS_ERROR_IN_TIME,
            Threshold("WS agent_completed", "fail_ratio < 0.9",
                      "errors are allowed (relaxed): while a dependency times out most replies may be error frames"),
            # required: a backend whose runs cannot be read fails as "no samples" (cleanup not checked), never passes
            Threshold("BACKEND orphan runs", "max < 1", "no agent run of this test's threads is left 'running' "
                      "after its connections closed (users.cleanup_check)", required=True),
        ),
        faults=(FaultSpec("hang", start_s=10, for_s=40),),
        tolerated_faults=(FaultSpec("pg-pool-exhaustion", start_s=10, for_s=40),),
        expected_breaches=("WS hang",),
        # errors are allowed: the verdict judges them, not Locust's "any request failed" exit code
        options=(("ws_hang_after", 3.0), ("exit_code_on_error", 0), ("cleanup_check", True)),
        description="--inject-tolerated-faults holds the backend's PostgreSQL pool: replies become quick "
        "'error DEPENDENCY_TIMEOUT' frames (WS error), and the run must pass; --inject-faults swallows messages "
        "(the backend's hang fault): WS hang must fail, whatever the fail ratio.",
    ),
    # ----- Phase 5: staging validation ------------------------------------------------------------------------
    _s(
        "health-endpoints",
        "health endpoints (/health, /health/ready with per-tier latency) answer within 1 s",
        ("test_staging_service_health_endpoints_response_time",),
        (UserMix(HEALTH, weight=1),),
        # Four pollers and a Redis stalled in 3 s pauses for the whole window: every /health/ready issued in the
        # first 2 s of a pause waits past the 1 s line. (One 2 s pause and two pollers missed it 1 run in 8.)
        Steady(users=4, spawn_rate=4, duration_s=60),
        (HEALTH_P99, HEALTH_MAX, HEALTH_OK, HEALTH_TIERS_OK),
        faults=(FaultSpec("redis-slow", start_s=15, for_s=30, ms=3000),),
        expected_breaches=("HTTP /health/ready", "HTTP ready:redis"),
        holds_under_fault=("HTTP ready:postgres", "HTTP ready:clickhouse"),
        expected_tier="redis",
    ),
    _s(
        "resource-correlation",
        "CPU / memory of generator and backend sampled next to latency; attribution gives each gauge's r with WS p95",
        ("test_staging_infrastructure_resource_monitoring",),
        (UserMix(CHAT, weight=1), UserMix(HEALTH, fixed_count=1)),
        Ramp(start_users=2, end_users=10, duration_s=120),
        (WS_REPLY, WS_OK),
        threshold_mode="extend",
        faults=(FaultSpec("agent-slow", start_s=40, for_s=60, ms=2500),),
        expected_breaches=("WS agent_completed",),
        description="Gauges (locust:cpu_percent, target:rss_mb, redis:used_memory_mb ...) land in the SLA reports; "
        "the attribution of a failing WS threshold gives each gauge's Pearson r with the WS p95 over the run's 2 s "
        "buckets (from 5 buckets with both values on) and names those with |r| >= 0.5: what moved together with "
        "the latency, not a cause.",
    ),
    _s(
        "login-send-receive",
        "the complete user workflow login -> connect -> send -> agent_completed within 15 s",
        ("test_staging_complete_user_workflow_performance",),
        (UserMix(CHAT_FLOW, weight=1),),
        Steady(users=3, spawn_rate=3, duration_s=60),
        (FLOW_MAX, FLOW_OK),
        faults=(FaultSpec("agent-slow", start_s=5, for_s=45, ms=15500),),
        expected_breaches=("FLOW login→send→receive",),
    ),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _CATALOGUE}
if len(SCENARIOS) != len(_CATALOGUE):  # pragma: no cover - guarded by a unit test too
    raise RuntimeError("duplicate scenario name in the catalogue")


def scenario_names() -> list[str]:
    """Catalogue names in catalogue order."""
    return list(SCENARIOS)


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; :class:`UnknownScenarioError` names the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        close = [n for n in SCENARIOS if name and (name in n or n in name)]
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownScenarioError(
            f"Unknown scenario {name!r}.{hint} Run `locust -f locustfile.py --list-scenarios` to see all "
            f"{len(SCENARIOS)} names."
        ) from None


def seed_test_index() -> dict[str, str]:
    """Seed test name → scenario name (every seed test of the plan is covered by exactly one scenario)."""
    return {seed: s.name for s in SCENARIOS.values() for seed in s.seed_tests}


@dataclass(frozen=True)
class SeedTest:
    """One test method of the seed test plan: its name, the phase it runs in and the file the plan puts it in."""

    name: str
    phase: int
    file: str


_REDIS_FILE = "tests/integration/infrastructure/test_redis_timeout_validation.py"
_PG_FILE = "tests/integration/infrastructure/test_postgresql_timeout_validation.py"
_WS_SLA_FILE = "tests/e2e/performance/test_websocket_response_time_sla.py"
_WS_CONN_FILE = "tests/integration/websocket/test_websocket_connection_timeout_behavior.py"
_PIPELINE_FILE = "tests/integration/agents/test_agent_pipeline_timeout_validation.py"
_TIERS_FILE = "tests/integration/persistence/test_three_tier_timeout_behavior.py"
_REPRO_FILE = "tests/critical/test_websocket_timeout_scenario_reproduction.py"
_GRACEFUL_FILE = "tests/integration/resilience/test_timeout_graceful_degradation.py"
_HEALTH_FILE = "tests/e2e/staging/test_gcp_staging_service_health_validation.py"
_E2E_FILE = "tests/e2e/staging/test_staging_websocket_timeout_e2e.py"

SEED_PLAN: tuple[SeedTest, ...] = (
    # Phase 1: infrastructure dependency tests
    SeedTest("test_redis_connection_latency_sla_validation", 1, _REDIS_FILE),
    SeedTest("test_redis_cache_read_performance_under_load", 1, _REDIS_FILE),
    SeedTest("test_redis_cache_write_performance_degradation", 1, _REDIS_FILE),
    SeedTest("test_postgresql_query_response_time_sla", 1, _PG_FILE),
    SeedTest("test_postgresql_connection_pool_exhaustion", 1, _PG_FILE),
    SeedTest("test_postgresql_transaction_isolation_performance", 1, _PG_FILE),
    # Phase 2: WebSocket performance tests
    SeedTest("test_websocket_message_response_time_under_2_seconds", 2, _WS_SLA_FILE),
    SeedTest("test_websocket_concurrent_message_performance_degradation", 2, _WS_SLA_FILE),
    SeedTest("test_websocket_agent_event_delivery_timing", 2, _WS_SLA_FILE),
    SeedTest("test_websocket_connection_timeout_under_infrastructure_stress", 2, _WS_CONN_FILE),
    SeedTest("test_websocket_heartbeat_failure_during_slow_responses", 2, _WS_CONN_FILE),
    # Phase 3: message-flow integration tests
    SeedTest("test_agent_execution_pipeline_timeout_reproduction", 3, _PIPELINE_FILE),
    SeedTest("test_agent_websocket_event_timing_degradation", 3, _PIPELINE_FILE),
    SeedTest("test_redis_postgresql_clickhouse_cascade_timeout", 3, _TIERS_FILE),
    # Phase 4: timeout behaviour reproduction tests
    SeedTest("test_reproduce_3_second_plus_websocket_timeout", 4, _REPRO_FILE),
    SeedTest("test_timeout_behavior_under_database_slow_queries", 4, _REPRO_FILE),
    SeedTest("test_websocket_graceful_timeout_vs_hanging", 4, _GRACEFUL_FILE),
    # Phase 5: staging environment validation tests
    SeedTest("test_staging_service_health_endpoints_response_time", 5, _HEALTH_FILE),
    SeedTest("test_staging_infrastructure_resource_monitoring", 5, _HEALTH_FILE),
    SeedTest("test_staging_complete_user_workflow_performance", 5, _E2E_FILE),
)
"""The seed plan's test methods in its order, each with its phase (1-5, the plan's "Execution Phases") and the file
the plan names for it (the seed test plan, docs/scenarios.md; the plan counts 19 scenarios, it lists these 20)."""

SEED_TESTS: tuple[str, ...] = tuple(t.name for t in SEED_PLAN)
"""The seed plan's test names, in its order."""

SEED_PHASES: tuple[int, ...] = tuple(sorted({t.phase for t in SEED_PLAN}))
"""The seed plan's phases: 1 infrastructure, 2 WebSocket performance, 3 message flow, 4 timeout reproduction,
5 staging validation."""


def seed_phase_tests(phase: int) -> tuple[SeedTest, ...]:
    """The seed tests of ``phase`` (1-5), in the plan's order; empty for a phase the plan does not have."""
    return tuple(t for t in SEED_PLAN if t.phase == phase)
