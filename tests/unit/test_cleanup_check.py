"""The cleanup check's pure rules (``users.cleanup_check``) and its thread scope (``users.run_threads``)."""

from __future__ import annotations

import pytest

from contract.schema import PG_DSN
from users import run_threads
from users.cleanup_check import OrphanRuns, check_dsn, orphan_failure, settle_seconds


def test_the_dsn_is_the_given_one_or_the_bundled_backends_on_loopback() -> None:
    staging = "postgresql://reader:s3cret@db.staging.example.com/chat"
    assert check_dsn(staging, "wss://chat.staging.example.com/ws") == (staging, "")
    assert check_dsn(PG_DSN, "ws://127.0.0.1:8765/ws") == (PG_DSN, "")
    assert check_dsn("", "ws://localhost:8765/ws") == (PG_DSN, "")
    dsn, why = check_dsn(PG_DSN, "wss://chat.staging.example.com/ws")
    assert dsn is None and "not on this machine and no --pg-dsn" in why
    assert check_dsn("", None)[0] is None


@pytest.mark.parametrize(("reply_timeout", "settle"), [(30.0, 10.0), (4.0, 4.0), (0.0, 0.5), (10.5, 10.0)])
def test_the_settle_time_is_the_reply_deadline_capped(reply_timeout: float, settle: float) -> None:
    assert settle_seconds(reply_timeout) == settle


def test_only_orphans_fail() -> None:
    assert orphan_failure(0, 10.0) is None
    failure = orphan_failure(2, 4.0)
    assert isinstance(failure, OrphanRuns)
    assert repr(failure) == "orphan runs: 2 run(s) of this test's threads still 'running' 4 s after its connections closed"


def test_threads_are_kept_once_bounded_and_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    run_threads.clear()
    monkeypatch.setattr(run_threads, "MAX_THREADS", 2)
    for thread in ("a", "b", "a", None, "b"):
        run_threads.note(thread)
    assert sorted(run_threads.threads()) == ["a", "b"] and not run_threads.overflowed()
    run_threads.note("c")
    assert sorted(run_threads.threads()) == ["a", "b"] and run_threads.overflowed()
    run_threads.clear()
    assert run_threads.threads() == [] and not run_threads.overflowed()


def test_the_orphan_count_reads_as_a_count_in_reports() -> None:
    """sla_checks (pure) names this metric a second time, to write its value as a count and not as ms: the two
    names must not drift apart."""
    from sla_checks.expressions import COUNT_VALUED_METRICS, parse_expression, unit_of
    from users import cleanup_check

    assert cleanup_check.METRIC in COUNT_VALUED_METRICS
    assert unit_of(parse_expression("max < 1"), cleanup_check.METRIC) == "count"
