"""The one composition rule of a scenario and an SLA profile (pure: no Locust, no I/O).

``compose(scenario, profile, user_classes)`` returns the :class:`~sla_checks.profiles.Profile` a scenario run is judged
with, and the notes (one line each) on what the rule left out and why. The rule:

* **The scenario says what is measured and its limits.** Each of its thresholds is judged, and is ``required`` (no
  samples at all fails the run: the scenario exists to measure it), except a ``count < N`` line, whose good outcome
  is no samples at all (``WS events missing count < 1``), and a line the catalogue marks ``required=False``.
* **The profile says how strict the environment is**: its warm-up, evaluation interval and window (a scenario's own
  SLA window wins), its abort lines, which metrics must have been measured (``required``) and the seed's global
  lines (``WS agent_completed max < 3000``, ``rps >= 10``). Which of its lines join the scenario's:

  - only lines on metrics the run's user classes can produce (:data:`PRODUCES`: ``ChatUser`` → ``WS`` and the
    cleanup check's ``BACKEND orphan runs``,
    ``ChatFlowUser`` → ``FLOW`` + ``WS`` + its login, ``RedisProbeUser`` → ``REDIS`` ...). A line on a metric no
    class of the run produces is dropped with a note, so ``staging``'s required ``FLOW`` line does not fail a
    scenario without ``ChatFlowUser``. A user class this table does not know may produce anything: nothing is
    dropped for it;
  - a line survives unless the scenario overrides that exact statistic: a scenario line on the same metric with the
    same left-hand side (``p(95)``, ``max``, ``fail_ratio`` ...) replaces it. Abort lines (``abort_on_fail``) always
    survive: they stop a plainly broken run early, beside the scenario's own line on that statistic;
  - with a scenario in ``extend`` mode, every other line of the profile survives; in ``replace`` mode (the scenario
    sets its own latency limits) only the environment's lines do: abort lines, ``required`` lines and the global
    lines on the worst case, throughput and failures (``max``, ``rps``, ``fail_ratio``, ``count``); the profile's
    percentile, ``avg``/``med``/``min`` and ``within`` lines are the scenario's business there;
  - an ``rps >= X`` line on the chat metric survives only where the scenario's offered load reaches X even with
    every reply as slow as the latency limit lets it be (``p(95)`` of ``WS agent_completed``, 2 s by default): a
    closed model of N chat users × in-flight messages thinking T s sends at most N × inflight / (T + reply) msg/s
    (:mod:`sla_checks.offered_load`). Below that it is dropped with a note giving the cap, since a healthy backend
    would fail it: the load, not the backend, keeps the run under X.

Usage::

    composed = compose(get_scenario("smoke"), load_profile("staging"), think_s=1.0)
    plugin.reconfigure(composed.profile)
    for note in composed.notes:
        logger.info("SLA: %s", note)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field

from scenarios.registry import Scenario, Threshold
from scenarios.shapes import Stepped
from sla_checks.baseline import RegressionSpec
from sla_checks.evaluate import ThresholdSpec
from sla_checks.expressions import is_regression_text, parse_expression, parse_regression
from sla_checks.offered_load import CHAT_METRIC, OfferedLoad, rps_cap
from sla_checks.profiles import Profile

__all__ = ["PRODUCES", "Composition", "compose", "is_required", "mean_chat_load", "producible"]

PRODUCES: dict[str, tuple[str, ...]] = {
    "ChatUser": ("WS *", "BACKEND orphan runs"),  # the latter with --cleanup-check (users.cleanup_check)
    "ChatFlowUser": ("FLOW *", "WS *", "HTTP /auth/login"),
    "RedisProbeUser": ("REDIS *",),
    "PostgresProbeUser": ("PG *",),
    "ClickHouseProbeUser": ("CH *",),
    "HealthCheckUser": ("HTTP *",),
}
"""User class → the metrics (``TYPE name`` globs) its samples can have."""

GLOBAL_STATS = ("max", "rps", "fail_ratio", "count")
"""Statistics of the profile's global lines (worst case, throughput, failures): kept by a ``replace`` scenario too."""
DEFAULT_REPLY_LIMIT_MS = 2000.0
"""Reply time assumed for the offered-load cap when no ``p(95)`` line judges the chat metric."""


@dataclass
class Composition:
    """The profile a scenario run is judged with, and one line per decision worth logging."""

    profile: Profile
    notes: list[str] = field(default_factory=list)


def producible(metric: str, user_classes: Iterable[str]) -> bool:
    """Whether one of ``user_classes`` can produce a sample matching ``metric`` (a name or a glob)."""
    patterns: list[str] = []
    for cls in user_classes:
        if cls not in PRODUCES:
            return True  # a class of the user's own: it may produce anything
        patterns.extend(PRODUCES[cls])
    return any(fnmatch.fnmatchcase(metric, p) or fnmatch.fnmatchcase(p, metric) for p in patterns)


def is_required(threshold: Threshold) -> bool:
    """A scenario line is required unless it says otherwise or it is a ``count < N`` (no samples is its pass)."""
    if threshold.required is not None:
        return threshold.required
    expr = parse_expression(threshold.expr)
    return not (expr.stat == "count" and expr.op in ("<", "<="))


def mean_chat_load(scenario: Scenario, *, inflight: int = 1, scale: float = 1.0, points: int = 2000) -> OfferedLoad:
    """The time average of the scenario's chat users and message slots over its shape (``think_s`` left at 1 s).

    Weighted users share the shape's users by weight; fixed-count users come on top. ``scale`` multiplies the
    shape's users; a stepped shape's per-step ``inflight`` replaces ``inflight``."""
    weighted = sum(m.weight for m in scenario.users if not m.fixed_count) or 1
    share = {m.user_class: (0.0 if m.fixed_count else m.weight / weighted) for m in scenario.users}
    fixed = {m.user_class: float(m.fixed_count) for m in scenario.users}
    shape = scenario.shape
    chat = flow = slots = 0.0
    peak = 0
    for i in range(points):
        t = (i + 0.5) * shape.duration_s / points
        users = shape.users_at(t) * scale
        n_chat = users * share.get("ChatUser", 0.0) + fixed.get("ChatUser", 0.0)
        n_flow = users * share.get("ChatFlowUser", 0.0) + fixed.get("ChatFlowUser", 0.0)
        step_inflight = inflight
        if isinstance(shape, Stepped):
            step_inflight = shape.steps[shape.step_at(t)].inflight or inflight
        chat += n_chat
        flow += n_flow
        slots += n_chat * step_inflight
        peak = max(peak, round(n_chat + n_flow))
    return OfferedLoad(chat_users=chat / points, flow_users=flow / points, peak_users=peak,
                       chat_concurrency=slots / points)


def _spec(t: Threshold, scenario: Scenario) -> ThresholdSpec:
    return ThresholdSpec(
        metric=t.metric,
        expression=parse_expression(t.expr),
        description=t.description,
        abort_on_fail=t.abort_on_fail,
        required=is_required(t),
        source=f"scenario {scenario.name}",
    )


def _reply_limit_ms(specs: Iterable[ThresholdSpec]) -> float:
    limits = [s.expression.limit for s in specs
              if s.metric == CHAT_METRIC and s.expression.lhs == "p(95)" and s.expression.op in ("<", "<=")]
    return min(limits) if limits else DEFAULT_REPLY_LIMIT_MS


def compose(
    scenario: Scenario,
    profile: Profile,
    user_classes: Iterable[str] | None = None,
    *,
    think_s: float = 1.0,
    inflight: int = 1,
    arrival_rate: float | None = None,
    scale: float = 1.0,
    window_s: float | None = None,
) -> Composition:
    """The profile judging ``scenario`` under ``profile`` (see the module docstring for the rule).

    ``user_classes`` default to the scenario's; ``think_s``, ``inflight`` (``--ws-think-time``, ``--ws-inflight``),
    ``arrival_rate`` (the open model's mean msg/s, None: closed model) and ``scale`` (users per shape user) describe
    the offered load; ``window_s`` overrides the SLA window (default: the scenario's, else the profile's)."""
    classes = tuple(user_classes if user_classes is not None else scenario.user_classes)
    own = [_spec(t, scenario) for t in scenario.thresholds if not is_regression_text(t.expr)]
    regressions = _regressions(scenario, profile, classes)
    overridden = {(s.metric, s.expression.lhs) for s in own}
    notes: list[str] = []
    kept: list[ThresholdSpec] = []
    unproducible: list[str] = []
    for spec in profile.thresholds:
        if not producible(spec.metric, classes):
            unproducible.append(f"{spec.metric} {spec.expression}")
            continue
        if not spec.abort_on_fail and (spec.metric, spec.expression.lhs) in overridden:
            continue  # the scenario's own line on this statistic replaces it
        environment_line = spec.abort_on_fail or spec.required or spec.expression.stat in GLOBAL_STATS
        if scenario.threshold_mode == "replace" and not environment_line:
            continue
        kept.append(spec)
    if unproducible:
        notes.append(
            f"profile {profile.name}: {len(unproducible)} line(s) left out, no user class of the run "
            f"({', '.join(classes)}) produces their metric: {'; '.join(unproducible)}"
        )
    specs = own + kept
    chat_load = mean_chat_load(scenario, inflight=inflight, scale=scale)
    load = OfferedLoad(
        chat_users=chat_load.chat_users,
        flow_users=chat_load.flow_users,
        peak_users=chat_load.peak_users,
        chat_concurrency=chat_load.chat_concurrency,
        think_s=think_s,
        arrival_rate=arrival_rate,
    )
    reply_ms = _reply_limit_ms(specs)
    judged: list[ThresholdSpec] = []
    for spec in specs:
        expr = spec.expression
        if expr.stat == "rps" and expr.op in (">", ">=") and spec.source != f"scenario {scenario.name}":
            cap = rps_cap(load, spec.metric, reply_ms)
            if cap is not None and cap.cap < expr.limit:
                notes.append(
                    f"profile {profile.name}: {spec.metric} {expr} left out: with every reply at the {reply_ms:g} ms "
                    f"limit, {cap.describe(expr.limit)}"
                )
                continue
        judged.append(spec)
    window = window_s if window_s is not None else (scenario.sla_window_s or profile.window_s)
    composed = Profile(
        name=f"{profile.name} × scenario {scenario.name}",
        path=profile.path,
        description=f"scenario {scenario.name} ({scenario.summary}) judged under profile {profile.name}",
        window_s=float(window or 0.0),
        eval_interval_s=profile.eval_interval_s,
        warmup_s=profile.warmup_s,
        thresholds=judged,
        regressions=regressions,
    )
    return Composition(composed, notes)


def _regressions(scenario: Scenario, profile: Profile, classes: tuple[str, ...]) -> list[RegressionSpec]:
    """The regression lines of a scenario run: the scenario's own, then the profile's on metrics the run's classes
    produce, unless the scenario has a line on the same metric and statistic."""
    own = [RegressionSpec(t.metric, parse_regression(t.expr), t.description, f"scenario {scenario.name}")
           for t in scenario.thresholds if is_regression_text(t.expr)]
    overridden = {(r.metric, r.regression.lhs) for r in own}
    kept = [r for r in profile.regressions
            if producible(r.metric, classes) and (r.metric, r.regression.lhs) not in overridden]
    return own + kept
