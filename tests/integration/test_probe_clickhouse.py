"""ClickHouseProbeUser against the real ClickHouse (HTTP interface): inserts land, the analytics query sees them,
errors carry ClickHouse's message, and the clickhouse-stall fault raises CH latency."""

from __future__ import annotations

import time

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.env import Environment

from contract.faults import FaultsError
from contract.schema import CH_DATABASE, CH_TABLE
from sla_checks.state import state_of
from users.clickhouse_probe import ClickHouseProbeUser
from users.probe_options import ProbeConfig, clickhouse_request

pytestmark = pytest.mark.timeout(60)


def _user(**cfg: object) -> tuple[ClickHouseProbeUser, list[dict]]:
    env = Environment(user_classes=[ClickHouseProbeUser], host="ws://127.0.0.1:1/ws")
    state_of(env).probe_config = ProbeConfig(**cfg)
    samples: list[dict] = []
    env.events.request.add_listener(lambda **kw: samples.append(kw))
    user = ClickHouseProbeUser(env)
    user.on_start()
    return user, samples


def _count(user_id: str) -> int:
    q = f"SELECT count() FROM {CH_DATABASE}.{CH_TABLE} WHERE user_id = '{user_id}'"
    return int(clickhouse_request(ProbeConfig.clickhouse_url, q).strip())


def test_clickhouse_probe_insert_and_query_recorded_and_rows_land() -> None:
    user, samples = _user(clickhouse_batch_size=25)
    user.user_id = f"probe-test-{time.time_ns()}"
    user.insert_batch()
    user.analytics_queries()
    insert = [s for s in samples if s["name"] == "insert"]
    query = [s for s in samples if s["name"] == "query agent stage summary"]
    assert len(insert) == 1 and len(query) == 1
    for s in insert + query:
        assert s["request_type"] == "CH" and s["exception"] is None, s["exception"]
        assert 0 < s["response_time"] < 5000
    assert query[0]["response_length"] > 0, "the summary over the last 5 minutes includes the rows just inserted"
    assert _count(user.user_id) == 25


def test_clickhouse_probe_error_carries_clickhouse_message() -> None:
    user, samples = _user()
    user._post("/", "query broken", b"SELECT * FROM agentchat.no_such_table_for_probe_test")
    assert len(samples) == 1
    text = str(samples[0]["exception"])
    assert text.startswith("HTTP ") and "no_such_table_for_probe_test" in text


def test_clickhouse_probe_unreachable_is_a_failed_sample_not_a_crash() -> None:
    user, samples = _user(clickhouse_url="http://127.0.0.1:1", clickhouse_timeout=2.0)
    user.insert_batch()
    assert len(samples) == 1 and samples[0]["exception"] is not None


@pytest.mark.timeout(90)
def test_clickhouse_stall_fault_raises_ch_latency(faults) -> None:
    user, samples = _user(clickhouse_batch_size=10)
    for _ in range(3):
        user.insert_batch()
    baseline = max(s["response_time"] for s in samples)
    samples.clear()
    try:
        faults.apply("clickhouse-stall", ms=2000, for_s=3)
    except FaultsError as exc:
        if "not available" in str(exc):
            pytest.skip(f"the backend has no clickhouse-stall yet: {exc}")
        raise
    user.insert_batch()
    stalled = samples[0]["response_time"]
    print(f"CH insert: baseline max {baseline:.0f} ms, under clickhouse-stall {stalled:.0f} ms")
    assert stalled >= max(1000.0, 5 * baseline)
