"""The isolation-level task's pure pieces: its option, its weight in the task list, the level cycle, the retry
back-off and texts, the metric names the SLA language accepts, and the scenario that judges them."""

from __future__ import annotations

import random

import pytest

from contract.faults import FAULT_KINDS
from contract.isolation import ISOLATION_LEVELS, RETRYABLE_SQLSTATES
from scenarios.registry import SCENARIOS, seed_test_index
from sla_checks.profiles import validate_metric
from users.pg_isolation import (
    BACKOFF_MS,
    LEVELS,
    MAX_ATTEMPTS,
    LevelCycle,
    backoff_s,
    retry_text,
    sqlstate_of,
)
from users.probe_options import ProbeConfig, ProbeConfigError


def test_option_is_off_by_default_and_bounded() -> None:
    assert ProbeConfig().pg_isolation_weight == 0
    assert ProbeConfig(pg_isolation_weight=30).pg_isolation_weight == 30
    with pytest.raises(ProbeConfigError, match="--pg-isolation-weight"):
        ProbeConfig(pg_isolation_weight=-1)


def test_weight_puts_the_task_that_many_times_in_the_users_task_list() -> None:
    from users.pg_isolation import with_isolation_weight
    from users.postgres_probe import PostgresProbeUser

    base = list(PostgresProbeUser.tasks)
    task = PostgresProbeUser.isolation_transaction
    assert task not in base, "not a task of the class: only --pg-isolation-weight adds it"
    tasks = with_isolation_weight(base, task, 30)
    assert tasks.count(task) == 30 and len(tasks) == len(base) + 30
    assert with_isolation_weight(tasks, task, 0) == base


def test_level_cycle_takes_the_three_levels_in_turn() -> None:
    cycle = LevelCycle(random.Random(7))
    drawn = [cycle() for _ in range(6)]
    assert sorted(drawn[:3]) == sorted(LEVELS) and drawn[3:] == drawn[:3]
    assert set(LEVELS) == set(ISOLATION_LEVELS) == {"read_committed", "repeatable_read", "serializable"}


def test_backoff_grows_with_the_attempt_and_stays_in_its_range() -> None:
    assert backoff_s(1, lambda lo, hi: lo) == BACKOFF_MS[0] / 1000
    assert backoff_s(2, lambda lo, hi: hi) == 2 * BACKOFF_MS[1] / 1000
    assert all(BACKOFF_MS[0] / 1000 <= backoff_s(1) <= BACKOFF_MS[1] / 1000 for _ in range(50))


def test_retry_texts_name_level_and_outcome() -> None:
    assert retry_text("40001", "serialization failure", "serializable", 1, "could not serialize access") == (
        "40001 serialization failure under serializable (retried): could not serialize access")
    assert "(gave up after 3 attempts)" in retry_text("40P01", "deadlock", "read_committed", MAX_ATTEMPTS, "x")
    assert RETRYABLE_SQLSTATES == {"40001": "serialization failure", "40P01": "deadlock"}


def test_sqlstate_comes_from_the_server_error() -> None:
    import psycopg

    assert sqlstate_of(psycopg.errors.SerializationFailure()) == "40001"
    assert sqlstate_of(psycopg.errors.DeadlockDetected()) == "40P01"
    assert sqlstate_of(ValueError()) is None


@pytest.mark.parametrize("metric", ["PG txn read_committed", "PG txn repeatable_read", "PG txn serializable",
                                    "PG txn *", "PG serialization failure", "PG deadlock"])
def test_the_sla_language_knows_the_metrics(metric: str) -> None:
    assert validate_metric(metric) is None


def test_scenario_judges_every_level_and_the_give_ups_and_is_the_seed_tests() -> None:
    scenario = SCENARIOS["pg-isolation-levels"]
    lines = {(t.metric, t.expr) for t in scenario.thresholds}
    assert {(f"PG txn {level}", "p(95) < 200") for level in LEVELS} <= lines
    assert ("PG txn *", "fail_ratio < 0.01") in lines
    assert dict(scenario.options)["pg_isolation_weight"] > 0
    assert [f.kind for f in scenario.faults] == ["pg-hot-row"] and "pg-hot-row" in FAULT_KINDS
    assert seed_test_index()["test_postgresql_transaction_isolation_performance"] == "pg-isolation-levels"
