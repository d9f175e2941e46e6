"""The SLA warm-up: the run's first seconds (connection set-up, spawn spikes) are kept out of the verdict, counted and
shown, never silently dropped; a warm-up covering the whole run fails instead of passing on nothing."""

from __future__ import annotations

import argparse

import pytest

from sla_checks.engine import Engine
from sla_checks.evaluate import ThresholdSpec
from sla_checks.plugin_options import load_from_options
from sla_checks.profiles import ConfigError, load_profile
from sla_checks.report import build_report, render_terminal

pytestmark = pytest.mark.timeout(20)

T0 = 1_800_000_000.0
SPECS = [
    ThresholdSpec.of("REDIS connect", "p(95) < 100"),
    ThresholdSpec.of("WS agent_completed", "rps >= 3"),
]


def run(warmup_s: float, seconds: int = 40, spike_s: int = 5, window_s: float = 0.0) -> Engine:
    """4 connects/s and 4 replies/s; connects take 900 ms during the first ``spike_s`` seconds, then 5 ms."""
    eng = Engine(SPECS, warmup_s=warmup_s, window_s=window_s)
    eng.start(T0 + 0.3)
    for s in range(seconds):
        for k in range(4):
            t = T0 + 0.3 + s + 0.2 * k
            eng.collector.record("REDIS", "connect", 900.0 if s < spike_s else 5.0, False, t)
            eng.collector.record("WS", "agent_completed", 500.0, False, t)
    eng.flush_local()
    eng.stop(T0 + 0.3 + seconds)
    return eng


def results(eng: Engine) -> dict[str, tuple[str, float | None]]:
    return {r.name: (r.status, r.value) for r in eng.evaluate(eng.ended_at)}  # type: ignore[arg-type]


def test_spawn_spike_fails_without_warmup_and_is_excluded_with_it():
    cold = results(run(0))
    assert cold["REDIS connect p(95) < 100"] == ("fail", 900.0)
    eng = run(10)
    warm = results(eng)
    assert warm["REDIS connect p(95) < 100"] == ("pass", 5.0)
    assert eng.verdict(eng.evaluate(eng.ended_at))[0] == "pass"  # type: ignore[arg-type]


def test_warmup_samples_are_counted_and_reported_not_dropped():
    eng = run(10)
    rep = build_report(eng, eng.ended_at)  # type: ignore[arg-type]
    # the warm-up ends at T0 + 10.3, rounded up to a whole collector bucket: samples from T0 + 11 on are judged
    judged_from = eng.store.judge_from
    assert judged_from == T0 + 11
    all_times = [T0 + 0.3 + s + 0.2 * k for s in range(40) for k in range(4)]
    excluded = 2 * sum(1 for t in all_times if t < judged_from)
    assert rep["warmup_s"] == 10 and rep["warmup_samples"] == excluded
    assert rep["samples"] + rep["warmup_samples"] == 2 * 4 * 40
    assert rep["metrics"]["REDIS connect"]["count"] == 4 * 40 - excluded // 2
    assert rep["metrics"]["REDIS connect"]["max"] == 5.0
    assert "first 10 s were warm-up: " + str(excluded) + " sample(s) not judged" in render_terminal(rep)
    # the display time series still shows the spike
    assert max(w["metrics"]["REDIS connect"]["max"] for w in rep["windows"] if "REDIS connect" in w["metrics"]) == 900


def test_rps_is_judged_over_the_span_after_the_warmup():
    eng = run(20, seconds=30)
    (status, rps) = results(eng)["WS agent_completed rps >= 3"]
    judged = sum(1 for s in range(30) for k in range(4) if T0 + 0.3 + s + 0.2 * k >= T0 + 21)
    assert rps == pytest.approx(judged / (30.3 - 21), rel=1e-6)
    assert status == "pass"


def test_warmup_covering_the_whole_run_fails_naming_the_option():
    eng = run(60, seconds=30)
    eng.ended_at = None  # live, during the warm-up: nothing judged yet is no failure (and no evidence either)
    assert eng.verdict(eng.evaluate(T0 + 31))[0] == "inconclusive"
    eng.stop(T0 + 30.3)
    verdict, reasons = eng.verdict(eng.evaluate(eng.ended_at))  # type: ignore[arg-type]
    assert verdict == "fail"
    assert any("warm-up (60 s) covered every sample" in r and "--sla-warmup" in r for r in reasons), reasons


def test_judged_windows_start_where_the_warmup_ends():
    eng = run(10, seconds=70, window_s=20)
    windows = [w for w in eng.windows(eng.ended_at) if w.judged]  # type: ignore[arg-type]
    assert windows[0].start >= eng.store.judge_from  # type: ignore[operator]
    assert not any(w.failed for w in windows)
    assert all(w.bucket.metrics["REDIS connect"].hist.max <= 5.0 for w in windows)


def test_profile_key_and_option(tmp_path):
    base = tmp_path / "base.toml"
    base.write_text('warmup_s = "15s"\n[thresholds]\n"REDIS connect" = "p(95) < 100"\n', encoding="utf-8")
    child = tmp_path / "child.toml"
    child.write_text('extends = "base"\n[thresholds]\n"REDIS GET" = "p(95) < 50"\n', encoding="utf-8")
    assert load_profile(path=child).warmup_s == 15
    assert load_profile("ci").warmup_s == 0  # no shipped profile hides the start of a run unless asked

    def opts(**kw):
        return argparse.Namespace(**{"sla_config": str(child), "sla_profile": "local", **kw})

    assert load_from_options(opts())[4] == 15
    assert load_from_options(opts(sla_warmup="0"))[4] == 0  # the option overrides the profile, also to none
    assert load_from_options(opts(sla_warmup="1m"))[4] == 60
    with pytest.raises(ConfigError, match=r"--sla-warmup 'soon': expected a duration"):
        load_from_options(opts(sla_warmup="soon"))
    bad = tmp_path / "bad.toml"
    bad.write_text('warmup_s = -5\n[thresholds]\n"REDIS connect" = "p(95) < 100"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"warmup_s = -5: a duration cannot be negative"):
        load_profile(path=bad)


def test_scenario_reconfigure_takes_the_profiles_warmup_unless_the_option_is_set():
    import time

    import locust  # noqa: F401  (first: locust monkey-patches gevent)
    from locust.env import Environment
    from locust.event import Events

    from sla_checks.plugin import SlaPlugin
    from sla_checks.profiles import Profile

    env = Environment(events=Events())
    env.create_local_runner()
    env.parsed_options = argparse.Namespace(sla_warmup="")
    spec = ThresholdSpec.of("WS agent_completed", "p(95) < 2000")
    plugin = SlaPlugin.register(env, Profile(name="a", path="a.toml", thresholds=[spec]), eval_interval_s=60)
    plugin.on_test_start(env)
    env.events.request.fire(request_type="WS", name="agent_completed", response_time=2500.0, response_length=0,
                            exception=None, context=None)
    plugin.tick(time.time())
    plugin.reconfigure(Profile(name="b", path="b.toml", thresholds=[spec], warmup_s=3600))
    rep = plugin.snapshot()
    assert (rep["warmup_s"], rep["warmup_samples"], rep["samples"]) == (3600, 1, 0)  # the sample kept, not judged
    env.parsed_options.sla_warmup = "0"
    plugin.reconfigure(Profile(name="b", path="b.toml", thresholds=[spec], warmup_s=3600))
    rep = plugin.snapshot()
    assert (rep["warmup_s"], rep["samples"], rep["verdict"]) == (0, 1, "fail")


def test_scenario_profile_carries_the_base_warmup():
    from scenarios.compose import compose
    from scenarios.registry import get_scenario
    from sla_checks.profiles import Profile

    base = Profile(name="b", path="b.toml", warmup_s=20.0, thresholds=[])
    assert compose(get_scenario("smoke"), base).profile.warmup_s == 20.0
