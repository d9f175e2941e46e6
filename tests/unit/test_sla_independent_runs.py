"""Every test started from the web UI is judged afresh, and a scenario's composed profile is not replaced by the
start form's SLA options (SlaPlugin.reconfigure / on_test_start); the SLA tab's last poll waits for the verdict."""

from __future__ import annotations

import argparse
import time

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.env import Environment
from locust.event import Events

from sla_checks.counters import ANOMALY_PREFIX, count
from sla_checks.evaluate import ThresholdSpec
from sla_checks.plugin import SlaPlugin
from sla_checks.profiles import Profile
from sla_checks.webui import _await_final_judgement

pytestmark = pytest.mark.timeout(20)

SCENARIO = Profile(name="local × scenario smoke", path="local.toml",
                   thresholds=[ThresholdSpec.of("WS agent_completed", "p(95) < 2000", required=True)])


def new_env() -> Environment:
    env = Environment(events=Events())
    env.create_local_runner()
    env.parsed_options = argparse.Namespace(sla_profile="local", sla_config="", sla_window="", sla_warmup="",
                                            sla_eval_interval=60.0, sla_exit_code=3)
    return env


def fire(env: Environment, ms: float, rtype: str = "WS", name: str = "agent_completed") -> None:
    env.events.request.fire(request_type=rtype, name=name, response_time=ms, response_length=0, exception=None,
                            context=None)


def plugin_for(env: Environment) -> SlaPlugin:
    plugin = SlaPlugin.register(env, Profile(name="local", path="local.toml",
                                             thresholds=[ThresholdSpec.of("FLOW *", "max < 15000")]),
                                eval_interval_s=60)
    plugin.options_key = plugin._option_key()
    return plugin


def test_a_new_test_keeps_nothing_of_the_previous_one() -> None:
    env = new_env()
    plugin = plugin_for(env)
    plugin.on_test_start(env)
    first_start = plugin.engine.started_at
    for _ in range(5):
        fire(env, 300.0, rtype="FLOW", name="login→send→receive")
        fire(env, 400.0)
    count(env, ANOMALY_PREFIX + "late frame", 2)
    plugin.on_test_stop(env)
    assert plugin.snapshot()["metrics"]["WS agent_completed"]["count"] == 5
    plugin.reconfigure(SCENARIO)  # the web UI picks a scenario between tests
    time.sleep(0.01)
    plugin.on_test_start(env)
    fire(env, 2500.0)
    rep = plugin.snapshot()
    assert set(rep["metrics"]) == {"WS agent_completed"}, rep["metrics"]  # no FLOW sample of the first test
    assert rep["metrics"]["WS agent_completed"]["count"] == 1
    assert rep["anomalies"] == {} and rep["state"] == "running"
    assert plugin.engine.started_at > first_start
    assert [t["expression"] for t in rep["thresholds"]] == ["p(95) < 2000"]
    assert rep["verdict"] == "fail"


def test_the_scenario_profile_survives_the_forms_sla_options_until_released() -> None:
    env = new_env()
    plugin = plugin_for(env)
    plugin.reconfigure(SCENARIO)
    for _ in range(2):  # the form sends sla_config "" and sla_profile "local" with every start
        env.parsed_options.sla_config, env.parsed_options.sla_profile = "", "local"
        plugin.on_test_start(env)
        assert plugin.engine.profile == "local × scenario smoke"
        plugin.on_test_stop(env)
    env.parsed_options.sla_window = 30.0  # the form's window still applies
    plugin.on_test_start(env)
    assert plugin.engine.window_s == 30.0
    plugin.on_test_stop(env)
    env.parsed_options.sla_window = ""
    plugin.reconfigure(None)  # back to a plain run: the options decide again
    plugin.on_test_start(env)
    assert plugin.engine.profile == "local" and "WS agent_completed" in {s.metric for s in plugin.engine.specs}


def test_the_first_start_keeps_what_was_recorded_before_it() -> None:
    env = new_env()
    count(env, ANOMALY_PREFIX + "late frame", 1)  # before the plugin is attached
    plugin = plugin_for(env)
    plugin.reconfigure(SCENARIO)  # a headless scenario: handed over at init, before the start
    plugin.on_test_start(env)
    assert plugin.snapshot()["anomalies"] == {"late frame": 1}


def test_the_tabs_last_poll_waits_until_the_stopped_test_is_judged() -> None:
    env = new_env()
    plugin = plugin_for(env)
    plugin.on_test_start(env)
    env.runner.state = "stopped"  # what Locust reports before its test_stop listeners have run
    gevent.spawn_later(0.3, plugin.on_test_stop, env)
    began = time.monotonic()
    assert _await_final_judgement(env) is True
    assert 0.2 < time.monotonic() - began < 3 and plugin.snapshot()["state"] == "finished"
    assert _await_final_judgement(env) is False  # judged: no wait


def test_a_scenario_run_without_the_scenarios_thresholds_says_so(caplog: pytest.LogCaptureFixture) -> None:
    env = new_env()
    env.parsed_options.scenario = "smoke"  # picked in the form, but nothing handed the SLA engine its thresholds
    plugin = plugin_for(env)
    plugin.on_test_start(env)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["SLA: the run is scenario 'smoke', but the SLA engine judges no scenario with profile 'local': "
                      "the scenario's thresholds were not handed over"], errors
    plugin.on_test_stop(env)
    caplog.clear()
    plugin.reconfigure(SCENARIO)
    plugin.scenario = {"name": "smoke"}  # what the scenario plugin hands over with its thresholds
    plugin.on_test_start(env)
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
