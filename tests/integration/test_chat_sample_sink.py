"""Real sockets: ``ChatUser``s against the bench's WebSocket server, their success samples going straight to Locust's
stats and the SLA plug-in (users.sample_sink), or through ``events.request.fire`` when a listener of the test's own
is there. Either way Locust's stats, the SLA collector and that listener count every sample alike."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust import constant
from locust.env import Environment

from bench.common import BenchServer
from config.arrival import ArrivalSchedule
from sla_checks.plugin import SlaPlugin
from sla_checks.state import state_of
from users.auth import MintedTokens
from users.chat import ChatUser
from users.sample_sink import SampleSink
from users.ws_options import ChatSettings

pytestmark = [pytest.mark.timeout(90)]

EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


class _NoThinkChatUser(ChatUser):
    wait_time = constant(0)


def _run(url: str, listener: Any = None, seconds: float = 2.0,
         arrival: ArrivalSchedule | None = None) -> tuple[Environment, bool]:
    env = Environment(user_classes=[_NoThinkChatUser], host=url)
    state_of(env).chat_settings = ChatSettings(
        tokens=MintedTokens("bench-only-secret-" + "x" * 30), think_time=0.0, heartbeat_interval=0.0,
        reply_timeout=10.0, hang_after=5.0, arrival=arrival)
    runner = env.create_local_runner()
    SlaPlugin.register(env)
    if listener is not None:
        env.events.request.add_listener(listener)
    runner.start(5, spawn_rate=5)
    end = time.time() + seconds
    while time.time() < end:
        gevent.sleep(0.1)
    direct = SampleSink.of(env).direct
    runner.quit()
    gevent.sleep(0.2)
    return env, direct


def _sla_counts(env: Environment) -> Counter[str]:
    plugin = state_of(env).sla
    assert plugin is not None
    engine = plugin.engine  # type: ignore[attr-defined]
    engine.store.absorb(engine.collector.drain(), "local")  # what the stop had not taken in yet
    counts: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    for _start, bucket in engine.store.sorted_buckets():
        for key, m in bucket.metrics.items():
            counts[key] += m.hist.count
        for gap, h in bucket.stages.items():
            stages[gap] += h.count
    counts["stages"] = sum(stages.values())
    return counts


def _locust_counts(env: Environment) -> Counter[str]:
    return Counter({f"{e.method} {e.name}": e.num_requests for e in env.stats.entries.values()})


def test_direct_and_fired_samples_count_alike_in_locust_the_sla_plugin_and_a_listener() -> None:
    heard: Counter[str] = Counter()

    def listener(request_type: str, name: str, **_kw: Any) -> None:
        heard[f"{request_type} {name}"] += 1

    with BenchServer(max_seconds=60) as srv:
        plain, plain_direct = _run(srv.url)
        watched, watched_direct = _run(srv.url, listener)
    assert plain_direct and not watched_direct

    for env in (plain, watched):
        locust_counts, sla = _locust_counts(env), _sla_counts(env)
        completed = env.stats.entries[("agent_completed", "WS")]
        assert completed.num_requests - completed.num_failures > 100, locust_counts  # it really chatted
        for event in EVENTS:
            key = f"WS {event}"
            assert sla[key] == locust_counts[key] > 0, (key, sla, locust_counts)
        # one stage gap set per completed message (4 gaps each), the same in the plug-in whichever path
        assert sla["stages"] >= 4 * (completed.num_requests - completed.num_failures)
        assert env.stats.total.num_requests == sum(locust_counts.values())
    assert +heard == +_locust_counts(watched)


def test_the_open_model_s_own_samples_count_alike_direct_and_fired() -> None:
    """``generator lag`` and ``agent_completed (intended)`` (open model) go straight to the stats too."""
    heard: Counter[str] = Counter()

    def listener(request_type: str, name: str, **_kw: Any) -> None:
        heard[f"{request_type} {name}"] += 1

    with BenchServer(max_seconds=60) as srv:
        plain, plain_direct = _run(srv.url, arrival=ArrivalSchedule.parse("200"))
        watched, watched_direct = _run(srv.url, listener, arrival=ArrivalSchedule.parse("200"))
    assert plain_direct and not watched_direct
    for env in (plain, watched):
        locust_counts, sla = _locust_counts(env), _sla_counts(env)
        for key in ("WS generator lag", "WS agent_completed (intended)", "WS agent_completed", "WS agent_started"):
            assert sla[key] == locust_counts[key] > 200, (key, sla, locust_counts)  # 2 s at 200/s
        completed = env.stats.entries[("agent_completed", "WS")]
        assert sla["stages"] >= 4 * (completed.num_requests - completed.num_failures)  # the gaps, direct or fired
    assert +heard == +_locust_counts(watched)
