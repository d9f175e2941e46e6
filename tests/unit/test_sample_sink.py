"""The chat connections' direct sample path (users.sample_sink) records exactly what one ``events.request.fire`` per
sample records, into real Locust stats and the real SLA plug-in, and steps aside for any other listener."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import locust.stats as locust_stats
import pytest
from locust import User
from locust.env import Environment
from locust.stats import StatsEntry

from sla_checks.histogram import Histogram
from sla_checks.plugin import SlaPlugin
from sla_checks.state import state_of
from users.sample_sink import SampleSink, bucket_tens, log_entries, log_entry

NAMES = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
FIELDS = ("num_requests", "num_none_requests", "num_failures", "total_response_time", "min_response_time",
          "max_response_time", "total_content_length", "last_request_timestamp")


class _Nobody(User):
    abstract = True


def _times(n: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    # every bucketing regime of Locust: < 100 ms (1 ms), < 1 s (10 ms), < 10 s (100 ms), beyond (1 s); exact ties too
    return [rng.choice([rng.uniform(0, 100), rng.uniform(100, 1000), rng.uniform(1000, 10_000),
                        rng.uniform(10_000, 70_000), 42.0, 0.0]) for _ in range(n)]


def _entry_state(entry: StatsEntry) -> dict[str, Any]:
    state = {f: getattr(entry, f) for f in FIELDS}
    state["response_times"] = dict(entry.response_times)
    state["num_reqs_per_sec"] = dict(entry.num_reqs_per_sec)
    state["cache"] = {t: (c.num_requests, dict(c.response_times)) for t, c in (entry.response_times_cache or {}).items()}
    return state


def test_log_entry_is_statsentry_log_field_by_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """Across second boundaries, with the response-times cache on (the web UI's current percentiles)."""
    clock = SimpleNamespace(now=1_700_000_000.25)
    monkeypatch.setattr(locust_stats, "time", SimpleNamespace(time=lambda: clock.now))
    stats_a, stats_b = locust_stats.RequestStats(), locust_stats.RequestStats()
    mine = StatsEntry(stats_a, "agent_started", "WS", use_response_times_cache=True)
    locusts = StatsEntry(stats_b, "agent_started", "WS", use_response_times_cache=True)
    for i, ms in enumerate(_times(3000)):
        clock.now += 0.004 if i % 50 else 1.3  # now and then a jump over a second (or two)
        locusts.log(ms, 0)
        log_entry(mine, ms, locust_stats.bucket_response_time(ms), clock.now, int(clock.now))
    assert _entry_state(mine) == _entry_state(locusts)
    assert len(mine.response_times_cache) > 10  # the cache was exercised


def test_log_entries_is_statsentry_log_of_each_at_one_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch (a message's samples for the ``Aggregated`` entry) logs what one ``log`` per sample logs, the sum in
    the same order; across second boundaries with the cache on; an empty batch logs nothing."""
    clock = SimpleNamespace(now=1_700_000_000.25)
    monkeypatch.setattr(locust_stats, "time", SimpleNamespace(time=lambda: clock.now))
    stats_a, stats_b = locust_stats.RequestStats(), locust_stats.RequestStats()
    mine = StatsEntry(stats_a, "Aggregated", "", use_response_times_cache=True)
    locusts = StatsEntry(stats_b, "Aggregated", "", use_response_times_cache=True)
    times = _times(3000, seed=11)
    rng = random.Random(3)
    i = 0
    while i < len(times):
        batch = times[i : i + rng.randint(0, 6)]
        i += max(len(batch), 1)
        clock.now += 0.004 if rng.random() < 0.95 else 1.3
        for ms in batch:
            locusts.log(ms, 0)
        log_entries(mine, [(ms, locust_stats.bucket_response_time(ms)) for ms in batch], clock.now, int(clock.now))
        assert _entry_state(mine) == _entry_state(locusts)
    assert len(mine.response_times_cache) > 10


def test_bucket_tens_is_locusts_bucket_for_every_time() -> None:
    """Ties (x5.0 ms) go to the even ten as ``round`` does; the floats next to each tie and to each ten, random
    times over every range, and the range's ends give Locust's own key."""
    rng = random.Random(17)
    times = [0.0, 99.49, 99.5, 99.99999999999999, 100.0, 999.9999999999999, 1000.0, 12345.6]
    for k in range(20, 201):
        for x in (k * 5.0, k * 10.0):
            times += [x, math.nextafter(x, 0.0), math.nextafter(x, math.inf)]
    times += [rng.uniform(0, 2000) for _ in range(50_000)] + [rng.uniform(100, 1000) for _ in range(50_000)]
    wrong = [(x, bucket_tens(x), locust_stats.bucket_response_time(x)) for x in times
             if bucket_tens(x) != locust_stats.bucket_response_time(x)]
    assert not wrong, wrong[:5]
    assert (bucket_tens(105.0), bucket_tens(115.0), bucket_tens(995.0)) == (100, 120, 1000)


def _environment(extra_listener: Any = None) -> Environment:
    env = Environment(user_classes=[_Nobody])
    env.create_local_runner()
    SlaPlugin.register(env)
    if extra_listener is not None:
        env.events.request.add_listener(extra_listener)
    return env


def _plugin(env: Environment) -> Any:
    plugin = state_of(env).sla
    assert plugin is not None
    return plugin


def _histograms(env: Environment) -> dict[str, Any]:
    """Every sample and stage histogram the SLA plug-in collected, merged over its time buckets."""
    payload = _plugin(env).engine.collector.drain() or {"b": []}
    merged: dict[str, Histogram] = {}
    for _start, bucket in payload["b"]:
        for key, m in bucket["m"].items():
            merged.setdefault(key, Histogram()).merge(Histogram.from_dict(m["h"]))
            if "f" in m:
                merged.setdefault(key + " failed", Histogram()).merge(Histogram.from_dict(m["f"]))
        for gap, h in bucket["s"].items():
            merged.setdefault("stage " + gap, Histogram()).merge(Histogram.from_dict(h))
    return {k: h.to_dict() for k, h in merged.items()}


def _stats_rows(env: Environment) -> list[tuple[Any, ...]]:
    rows = []
    for e in sorted(env.stats.entries.values(), key=lambda e: e.name):
        rows.append((e.name, e.method, e.num_requests, e.num_failures, round(e.total_response_time, 6),
                     e.min_response_time, e.max_response_time, dict(e.response_times)))
    t = env.stats.total
    rows.append(("total", t.num_requests, round(t.total_response_time, 6), dict(t.response_times)))
    return rows


def test_direct_path_records_what_fire_records_in_locust_and_the_sla_plugin() -> None:
    direct, fired = _environment(), _environment()
    sink, bystander = SampleSink.of(direct), SampleSink.of(fired)
    stages = {"agent_started→agent_thinking": 3.5, "agent_thinking→tool_executing": 1.25}
    fire = fired.events.request.fire
    for i, ms in enumerate(_times(500, seed=3)):
        name = NAMES[i % 5]
        st = stages if name == "agent_completed" else None
        assert sink.success("WS", name, ms, st)
        fire(request_type="WS", name=name, response_time=ms, response_length=0, exception=None,
             context={"stages": st} if st else {})
    assert bystander.direct  # the same two listeners there: it would go direct too (it was not asked to)
    assert _stats_rows(direct) == _stats_rows(fired)
    collected = _histograms(direct)
    assert collected == _histograms(fired)
    assert {"stage agent_started→agent_thinking", "WS agent_completed", "WS agent_started"} <= set(collected)
    assert collected["WS agent_started"]["n"] == 100 and direct.stats.total.num_requests == 500


def test_a_bucket_function_replaced_at_run_time_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locust documents replacing ``bucket_response_time`` (e.g. 3 significant digits): the direct path uses it."""
    env = _environment()
    monkeypatch.setattr(locust_stats, "bucket_response_time", lambda ms: int(ms))
    assert SampleSink.of(env).success("WS", "agent_started", 256.75)
    assert dict(env.stats.entries[("agent_started", "WS")].response_times) == {256: 1}
    assert dict(env.stats.total.response_times) == {256: 1}


def test_stages_go_only_with_agent_completed_as_on_request_takes_them() -> None:
    direct, fired = _environment(), _environment()
    stages = {"agent_started→agent_thinking": 3.5}
    SampleSink.of(direct).success("WS", "agent_started", 9.0, stages)
    fired.events.request.fire(request_type="WS", name="agent_started", response_time=9.0, response_length=0,
                              exception=None, context={"stages": stages})
    assert _histograms(direct) == _histograms(fired)
    assert not any(k.startswith("stage ") for k in _histograms(direct))


def test_a_listener_of_someone_else_gets_every_sample_through_fire() -> None:
    seen: list[str] = []

    def mine(name: str, **_kw: Any) -> None:
        seen.append(name)

    env = _environment(mine)
    sink = SampleSink.of(env)
    assert not sink.direct
    assert sink.success("WS", "agent_started", 1.0) is False  # the caller fires it
    assert env.stats.total.num_requests == 0  # and nothing was recorded twice
    env.events.request.remove_listener(mine)
    assert sink.success("WS", "agent_started", 1.0) is True  # noticed at the next sample
    env.events.request.add_listener(mine)
    assert not sink.direct
    assert env.stats.total.num_requests == 1 and seen == []


def test_no_runner_and_no_plugin_means_nothing_listens_and_nothing_is_recorded() -> None:
    env = Environment(user_classes=[_Nobody])
    sink = SampleSink.of(env)
    assert sink.direct and sink.success("WS", "agent_started", 1.0)
    assert env.stats.total.num_requests == 0


def test_a_failing_listener_is_logged_as_fire_logs_it_and_the_caller_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    env = _environment()
    plugin = _plugin(env)
    plugin.engine = None  # a broken plug-in state: record_success raises
    assert SampleSink.of(env).success("WS", "agent_started", 1.0)
    assert "Uncaught exception in event handler" in caplog.text
    assert env.stats.total.num_requests == 1  # Locust's stats took it before the plug-in failed


def test_a_message_s_samples_at_once_record_what_firing_each_records() -> None:
    """``successes`` (a message's events and its end in one call): the same Locust stats and SLA histograms as one
    ``fire`` each, the stages only with ``agent_completed``, and a recorder with ``record_success`` only (no
    ``record_successes``) gets every sample of the batch, in order, with its stages and intended latency."""
    direct, fired = _environment(), _environment()

    class OneAtATime:
        def __init__(self) -> None:
            self.got: list[tuple[Any, ...]] = []

        def on_request(self, **_kw: Any) -> None:
            raise AssertionError("the direct path must not fire")

        def record_success(self, request_type: str, name: str, response_time: float, wall: float,
                           stages: Any = None, intended_ms: float | None = None) -> None:
            self.got.append((request_type, name, response_time, stages, intended_ms))

    meter = OneAtATime()
    direct.events.request.add_listener(meter.on_request)
    sink = SampleSink.of(direct)
    stages = {"agent_started→agent_thinking": 3.5}
    fire = fired.events.request.fire
    times = _times(500, seed=5)
    expected = []
    for i in range(0, len(times), 5):
        batch = [(name, ms, stages if name == "agent_completed" else None, 7.0 if name == "agent_completed" else None)
                 for name, ms in zip(NAMES, times[i:i + 5], strict=True)]
        assert sink.successes("WS", batch)
        for name, ms, st, intended in batch:
            fire(request_type="WS", name=name, response_time=ms, response_length=0, exception=None,
                 context={"stages": st, "intended_ms": intended} if st else {})
            expected.append(("WS", name, ms, st, intended))
    assert _stats_rows(direct) == _stats_rows(fired)
    collected = _histograms(direct)
    assert collected == _histograms(fired) and "stage agent_started→agent_thinking" in collected
    assert meter.got == expected
