"""Stepped scenarios at run time: each step's messages in flight per chat user (on the master and, by message, on
every worker) and the latency curve of WS ``agent_completed`` per step, logged at the stop and written to
``--scenario-curve-csv``."""

from __future__ import annotations

import logging
import time
from typing import Any

from locust.env import Environment
from locust.runners import MasterRunner

from scenarios.run_state import CurvePoint, ScenarioState
from scenarios.shapes import Step
from sla_checks.state import state_of

__all__ = ["INFLIGHT_MESSAGE", "finish_curve", "on_step", "on_worker_inflight", "set_inflight"]

logger = logging.getLogger("scenarios.plugin")  # the plugin's log lines keep its name

INFLIGHT_MESSAGE = "scenario_inflight"


def set_inflight(environment: Environment, inflight: int) -> None:
    """Messages in flight per chat user from now on (the chat users read the shared settings every round)."""
    from users.ws_options import ChatSettings  # late: a scenario without chat users does not load them

    options = environment.parsed_options
    if options is not None and hasattr(options, "ws_inflight"):
        options.ws_inflight = inflight
    settings = state_of(environment).chat_settings
    if isinstance(settings, ChatSettings):
        if inflight < settings.inflight:  # the demand drops: chat users measure their recovery from now
            settings.demand_dropped_at = time.monotonic()
        settings.inflight = inflight


def on_worker_inflight(environment: Environment, msg: Any, **_kwargs: Any) -> None:
    set_inflight(environment, int(msg.data))


def on_step(environment: Environment, state: ScenarioState, index: int, step: Step | None) -> None:
    if step is not None and step.inflight is not None:
        set_inflight(environment, step.inflight)
        if isinstance(environment.runner, MasterRunner):
            environment.runner.send_message(INFLIGHT_MESSAGE, step.inflight)  # type: ignore[arg-type]  # any msgpack value goes
    entry = environment.runner.stats.entries.get(("agent_completed", "WS")) if environment.runner else None
    snapshot = dict(entry.response_times) if entry else {}
    if state.step_marks and state.step_marks[-1][0] == index:
        state.step_marks.pop()  # the same step again (a master resets the shape's clock when the test starts)
    state.step_marks.append(
        (
            index,
            step,
            snapshot,
            entry.num_requests if entry else 0,
            entry.num_failures if entry else 0,
            entry.max_response_time if entry else 0.0,
        )
    )
    logger.info(
        "Scenario step %d: %s users%s",
        index + 1,
        step.users if step else "?",
        f", {step.inflight} in flight per user" if step and step.inflight else "",
    )


def finish_curve(environment: Environment, state: ScenarioState) -> None:
    from locust.stats import calculate_response_time_percentile, diff_response_time_dicts

    if not state.step_marks or environment.runner is None:
        return
    entry = environment.runner.stats.entries.get(("agent_completed", "WS"))
    final = (dict(entry.response_times), entry.num_requests, entry.num_failures) if entry else ({}, 0, 0)
    marks = [*state.step_marks, (-1, None, *final, 0.0)]
    curve = []
    for (index, step, before, _n0, f0, _), (_, _, after, _n1, f1, _) in zip(marks, marks[1:], strict=False):
        delta = diff_response_time_dicts(after, before)
        count = sum(delta.values())
        point = CurvePoint(step=index + 1, users=step.users if step else 0, inflight=step.inflight if step else None)
        point.count, point.failures = count, max(0, f1 - f0)
        if count:
            point.p50 = calculate_response_time_percentile(delta, count, 0.5)
            point.p95 = calculate_response_time_percentile(delta, count, 0.95)
            point.max = max(delta)
        curve.append(point)
    state.curve = curve
    state.step_marks = []
    lines = ["Latency curve (WS agent_completed per step; Locust buckets):", "step users inflight count fail p50 p95 max"]
    lines += [
        f"{p.step:>4} {p.users:>5} {p.inflight or '-':>8} {p.count:>5} {p.failures:>4} {p.p50:>5.0f} {p.p95:>5.0f} "
        f"{p.max:>5.0f}"
        for p in curve
    ]
    logger.info("\n".join(lines))
    path = getattr(environment.parsed_options, "scenario_curve_csv", "")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write("step,users,inflight,count,failures,p50_ms,p95_ms,max_ms\n")
            for p in curve:
                f.write(f"{p.step},{p.users},{p.inflight or ''},{p.count},{p.failures},{p.p50},{p.p95},{p.max}\n")
