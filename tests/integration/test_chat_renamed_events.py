"""A backend whose agent events have other names (``--ws-protocol``): the samples keep docs/protocol.md's metric names,
so the SLA thresholds (``WS agent_completed`` ...) and the stage breakdown judge it unchanged."""

from __future__ import annotations

import pytest

from tasks.timeline import OutcomeKind, ProtocolConfig
from tests.integration.test_chat_bad_input import FIVE, Run, ev

pytestmark = pytest.mark.timeout(60)

THEIRS = ("run_started", "run_thinking", "tool_start", "tool_end", "run_done")


def _one_message() -> Run:
    """One message against a backend speaking THEIRS; returns the finished run (its samples)."""
    protocol = ProtocolConfig(events=THEIRS, pairs=(("tool_start", "tool_end"),))
    with Run(lambda ids: [ev(k, ids) for k in THEIRS], protocol=protocol) as run:
        assert run.client.connect()
        (out,) = run.client.send_and_await(["x"])
    assert out.kind is OutcomeKind.COMPLETED and out.failure is None
    return run


def test_renamed_events_are_sampled_under_the_canonical_metric_names():
    run = _one_message()
    names = [s["name"] for s in run.samples if s["request_type"] == "WS" and s["name"] != "connect"]
    assert sorted(names) == sorted(FIVE), names
    (completed,) = [s for s in run.samples if s["name"] == "agent_completed"]
    assert completed["context"]["outcome"] == "completed" and completed["context"]["stages"]


def test_renamed_events_give_stage_gaps_under_the_canonical_names():
    # the stage breakdown, the attribution's "slowest stage" and the report's stage order key on these names
    run = _one_message()
    (completed,) = [s for s in run.samples if s["name"] == "agent_completed"]
    stages = completed["context"]["stages"]
    assert list(stages) == [f"{a}→{b}" for a, b in zip(FIVE, FIVE[1:], strict=False)], stages
    assert all(ms >= 0 for ms in stages.values())
