"""A scenario's thresholds on the statements the probe runs (scenarios.query_thresholds, via composed_profile), and
the scenarios refused under --probe-read-only (scenarios.read_only)."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest

from scenarios.query_thresholds import BUNDLED, on_query_files
from scenarios.read_only import MEASURES_WRITES, read_only_conflict
from scenarios.registry import CH_PROBE, SCENARIOS, Scenario, Threshold, UserMix, get_scenario
from scenarios.run_state import ScenarioError
from scenarios.shapes import Steady
from scenarios.sla_handoff import composed_profile


def metrics(scenario: Scenario) -> list[tuple[str, str]]:
    return [(t.metric, t.expr) for t in scenario.thresholds]


def test_without_a_query_file_every_scenario_is_unchanged() -> None:
    for scenario in SCENARIOS.values():
        assert on_query_files(scenario) == (scenario, [])


def test_pg_message_flow_queries_judges_each_query_of_the_file_instead_of_the_bundled_statements() -> None:
    scenario, notes = on_query_files(get_scenario("pg-message-flow-queries"), ("history", "mark read"))
    assert metrics(scenario) == [
        ("PG query history", "p(95) < 200"),
        ("PG query mark read", "p(95) < 200"),
        ("PG *", "fail_ratio < 0.01"),  # a glob stays: it matches the file's metrics too
    ]
    assert all(t.required is None for t in scenario.thresholds)  # required, as the lines they replace
    assert scenario.expected_breaches == ("PG query history", "PG query mark read")
    assert notes == [
        "--pg-queries: the probe runs the file's 2 statement(s), not the bundled backend's; the scenario's lines on "
        "PG message insert, PG thread history, PG thread update (p(95) < 200) judge PG query history, "
        "PG query mark read instead"
    ]


def test_every_bundled_pg_line_of_the_catalogue_moves_and_nothing_else_does() -> None:
    for scenario in SCENARIOS.values():
        moved, _ = on_query_files(scenario, ("q",))
        assert not [t for t in moved.thresholds if t.metric.split(" ", 1)[-1] in BUNDLED["PG"]
                    and t.metric.startswith("PG ")], scenario.name
        others = [(t.metric, t.expr) for t in scenario.thresholds if not t.metric.startswith("PG ")
                  or t.metric.split(" ", 1)[1] not in BUNDLED["PG"]]
        assert [m for m in metrics(moved) if m[0] != "PG query q"] == others, scenario.name
        if len(others) != len(scenario.thresholds):
            assert ("PG query q", "p(95) < 200") in metrics(moved), scenario.name


def test_clickhouse_lines_on_bundled_statements_move_to_the_file_queries() -> None:
    scenario = Scenario(
        name="ch-test", summary="", seed_tests=(), users=(UserMix(CH_PROBE, weight=1),),
        shape=Steady(users=1, spawn_rate=1, duration_s=10),
        thresholds=(Threshold("CH insert", "p(95) < 500"), Threshold("CH query agent stage summary", "p(95) < 1000"),
                    Threshold("CH *", "fail_ratio < 0.01")),
    )
    moved, notes = on_query_files(scenario, ch_queries=("daily",))
    assert metrics(moved) == [("CH query daily", "p(95) < 500"), ("CH query daily", "p(95) < 1000"),
                              ("CH *", "fail_ratio < 0.01")]
    assert notes and notes[0].startswith("--clickhouse-queries: the probe runs the file's 1 statement(s)")
    assert on_query_files(scenario, pg_queries=("x",)) == (scenario, [])  # a PG file leaves CH lines alone


def test_composed_profile_reads_the_query_file(tmp_path: Path) -> None:
    path = tmp_path / "q.toml"
    path.write_text('[queries.history]\nsql = "SELECT 1"\n[queries.purge]\nsql = "DELETE FROM t"\nwrite = true\n')
    options = Namespace(pg_queries=str(path), clickhouse_queries="", probe_read_only=False)
    composed = composed_profile(options, get_scenario("pg-message-flow-queries"))
    judged = [(t.metric, str(t.expression)) for t in composed.profile.thresholds]
    assert ("PG query history", "p(95) < 200") in judged and ("PG query purge", "p(95) < 200") in judged
    assert not [m for m, _ in judged if m == "PG thread history"]
    assert composed.notes[0].startswith("--pg-queries: the probe runs the file's 2 statement(s)")
    options.probe_read_only = True  # the probe would refuse the write query; it is not judged either
    judged = [t.metric for t in composed_profile(options, get_scenario("pg-message-flow-queries")).profile.thresholds]
    assert "PG query purge" not in judged and "PG query history" in judged
    options.pg_queries = str(tmp_path / "missing.toml")
    with pytest.raises(ScenarioError, match="--pg-queries"):
        composed_profile(options, get_scenario("pg-message-flow-queries"))


def test_only_a_write_scenario_is_refused_under_probe_read_only() -> None:
    refused = {name for name, s in SCENARIOS.items() if read_only_conflict(s, True)}
    assert refused == {"redis-write-memory-pressure", "pg-isolation-levels"}
    assert read_only_conflict(get_scenario("redis-write-memory-pressure"), False) is None
    text = read_only_conflict(get_scenario("redis-write-memory-pressure"), True)
    assert text is not None and "\n" not in text
    assert "--probe-read-only disables the probes' writes" in text and "run it without --probe-read-only" in text


def test_the_write_scenarios_judge_only_write_metrics() -> None:
    """A scenario in MEASURES_WRITES exists (a renamed one would silently lose its guard) and judges writes only."""
    for name in MEASURES_WRITES:
        assert all(t.metric.startswith(("REDIS SET", "PG txn ")) for t in get_scenario(name).thresholds), name
