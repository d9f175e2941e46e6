from __future__ import annotations

import argparse
import json
import time

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.env import Environment
from locust.event import Events

from sla_checks.evaluate import ThresholdSpec
from sla_checks.gauges import record_gauge
from sla_checks.plugin import SlaPlugin, sla_plugin
from sla_checks.profiles import Profile
from sla_checks.worker_reports import serialize_stops

pytestmark = pytest.mark.timeout(20)


def profile(*specs: ThresholdSpec) -> Profile:
    return Profile(name="test", path="test.toml", thresholds=list(specs))


def fire(
    env: Environment, ms: float, failed: bool = False, name: str = "agent_completed", rtype: str = "WS", **ctx
):
    env.events.request.fire(
        request_type=rtype,
        name=name,
        response_time=ms,
        response_length=0,
        exception=RuntimeError("timeout after 30000 ms") if failed else None,
        context=ctx or None,
    )


def new_env() -> Environment:
    env = Environment(events=Events())
    env.create_local_runner()
    return env


def test_breach_sets_exit_code_and_writes_reports(tmp_path, caplog):
    env = new_env()
    plugin = SlaPlugin.register(
        env,
        profile(ThresholdSpec.of("WS agent_completed", "p(95) < 2000")),
        report_json=str(tmp_path / "r.json"),
        report_junit=str(tmp_path / "r.xml"),
        eval_interval_s=60,
    )
    assert sla_plugin(env) is plugin and not hasattr(env, "sla")
    plugin.on_test_start(env)
    for i in range(20):
        fire(env, 3120.0 if i >= 10 else 100.0, stages={"agent_started→agent_thinking": 10.0})
    record_gauge(env, "locust:cpu_percent", 12.5)
    snap = plugin.snapshot()
    assert (snap["state"], snap["verdict"]) == ("running", "fail")
    plugin.on_test_stop(env)
    with caplog.at_level("ERROR"):
        env.events.quitting.fire(environment=env)
    assert env.process_exit_code == 3
    assert "SLA FAILED: WS agent_completed p(95) < 2000 was 3,120 ms" in caplog.text
    rep = json.loads((tmp_path / "r.json").read_text())
    assert (rep["verdict"], rep["exit_code"], rep["state"]) == ("fail", 3, "finished")
    assert rep["stages"]["agent_started→agent_thinking"]["count"] == 20
    assert rep["gauges"]["locust:cpu_percent"][0][1] == 12.5
    assert (tmp_path / "r.xml").exists()


def test_pass_leaves_locusts_exit_code_alone():
    env = new_env()
    plugin = SlaPlugin.register(
        env, profile(ThresholdSpec.of("WS agent_completed", "p(95) < 2000")), eval_interval_s=60
    )
    plugin.on_test_start(env)
    fire(env, 100.0)
    env.events.quitting.fire(environment=env)
    assert env.process_exit_code is None
    assert plugin.final_report["verdict"] == "pass"


def test_abort_on_fail_stops_the_runner_and_is_reported():
    env = new_env()
    spec = ThresholdSpec.of("WS agent_completed", "fail_ratio < 0.5", abort_on_fail=True)
    plugin = SlaPlugin.register(env, profile(spec), eval_interval_s=60)
    stopped = []
    env.runner.stop = lambda: stopped.append(True)  # the plugin stops the run through the runner
    plugin.on_test_start(env)
    for _ in range(4):
        fire(env, 50.0, failed=True)
    plugin.tick(time.time())
    gevent.sleep(0.05)
    assert stopped == [True]
    env.events.quitting.fire(environment=env)
    assert env.process_exit_code == 3
    assert plugin.final_report["aborted"]["threshold"] == "WS agent_completed fail_ratio < 0.5"


def test_worker_payload_reaches_master_through_report_dict():
    worker_env, master_env = new_env(), new_env()
    worker = SlaPlugin(worker_env, None)
    worker_env.events.request.add_listener(worker.on_request)
    master = SlaPlugin.register(
        master_env, profile(ThresholdSpec.of("PG *", "p(95) < 200")), eval_interval_s=60
    )
    master.on_test_start(master_env)
    for i in range(10):
        fire(worker_env, 10.0 + i, rtype="PG", name="thread history")
    data: dict = {}
    worker.on_report_to_master("w1", data)
    master.on_worker_report("w1", json.loads(json.dumps(data)))  # as msgpack would: plain types only
    worker.on_report_to_master("w1", data2 := {})
    assert "sla" not in data2  # nothing new: nothing shipped
    rep = master.snapshot()
    assert rep["metrics"]["PG thread history"]["count"] == 10
    assert rep["metrics"]["PG thread history"]["max"] == 19.0


def test_reconfigure_switches_profile_and_keeps_samples():
    env = new_env()
    plugin = SlaPlugin.register(
        env, profile(ThresholdSpec.of("WS agent_completed", "p(95) < 5000")), eval_interval_s=60
    )
    plugin.on_test_start(env)
    fire(env, 3000.0)
    plugin.tick(time.time())
    plugin.reconfigure(profile(ThresholdSpec.of("WS agent_completed", "p(95) < 2000")), window_s=10)
    fire(env, 3000.0)
    rep = plugin.snapshot()
    assert (rep["verdict"], rep["metrics"]["WS agent_completed"]["count"], rep["windows_judged"]) == (
        "fail",
        2,
        True,
    )


def test_web_ui_option_change_reloads_profile_at_next_test_start(tmp_path):
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text('[thresholds]\n"WS agent_completed" = "p(95) < 5000"\n', encoding="utf-8")
    second.write_text('[thresholds]\n"WS agent_completed" = "p(95) < 1000"\n', encoding="utf-8")
    env = new_env()
    env.parsed_options = argparse.Namespace(
        sla_profile="local", sla_config=str(first), sla_window="", sla_eval_interval=60.0, sla_exit_code=3
    )
    plugin = SlaPlugin.register(env, None, eval_interval_s=60)
    plugin.options_key = ("stale",)
    plugin.on_test_start(env)
    assert [s.name for s in plugin.engine.specs] == ["WS agent_completed p(95) < 5000"]
    fire(env, 2000.0)
    plugin.on_test_stop(env)
    env.parsed_options.sla_config = str(second)
    plugin.on_test_start(env)
    fire(env, 2000.0)
    rep = plugin.snapshot()
    assert [t["expression"] for t in rep["thresholds"]] == ["p(95) < 1000"]
    assert (rep["verdict"], rep["metrics"]["WS agent_completed"]["count"]) == ("fail", 1)
    env.parsed_options.sla_config = str(tmp_path / "missing.toml")  # rejected: keeps the last good profile
    plugin.on_test_stop(env)
    plugin.on_test_start(env)
    assert [s.name for s in plugin.engine.specs] == ["WS agent_completed p(95) < 1000"]


class _Worker:
    def __init__(self, id: str) -> None:
        self.id, self.state = id, "running"


class _Master:
    """Stand-in for the parts of ``MasterRunner`` that the final-report wait uses: ``clients``, ``send_message``."""

    def __init__(self, *ids: str) -> None:
        self.clients = {i: _Worker(i) for i in ids}
        self.sent: list[tuple[str, str]] = []

    def send_message(self, msg_type: str, data=None, client_id: str | None = None) -> None:
        self.sent.append((msg_type, client_id))


def test_final_reports_wait_ends_when_every_worker_quit_and_marks_silent_ones_lost(monkeypatch, caplog):
    monkeypatch.setattr("sla_checks.worker_reports.FINAL_REPORT_GRACE_S", 0.5)
    env = new_env()
    env.stop_timeout = 0
    plugin = SlaPlugin.register(env, profile(ThresholdSpec.of("WS agent_completed", "p(95) < 2000")))
    master = _Master("w1", "w2")
    gevent.spawn_later(0.1, master.clients.pop, "w1")  # w1's quit (after its final report) arrives; w2 stays silent
    t0 = time.monotonic()
    plugin._collect_final_reports(master)  # type: ignore[arg-type]
    assert 0.45 <= time.monotonic() - t0 < 2.0
    assert sorted(master.sent) == [("quit", "w1"), ("quit", "w2")]
    assert plugin.engine.lost_workers == {"w2"}
    assert "worker w2 sent no final report within 0.5 s" in caplog.text

    monkeypatch.setattr("sla_checks.worker_reports.FINAL_REPORT_GRACE_S", 10.0)
    master = _Master("w3")
    gevent.spawn_later(0.1, master.clients.pop, "w3")
    t0 = time.monotonic()
    plugin._collect_final_reports(master)  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 5.0  # returns when the last worker quit, not at the deadline
    assert plugin.engine.lost_workers == {"w2"}



class _StoppingRunner:
    """Stand-in for a worker runner: each ``stop()`` takes the next of ``stop_s`` (its users finishing) and records
    how many were under way when it began."""

    def __init__(self, stop_timeout: float, *stop_s: float) -> None:
        self.environment = argparse.Namespace(stop_timeout=stop_timeout)
        self.stop_s, self.active, self.calls = list(stop_s), 0, []

    def stop(self) -> None:
        self.active += 1
        self.calls.append(self.active)  # 1: no other stop() under way
        try:
            gevent.sleep(self.stop_s.pop(0))
        finally:
            self.active -= 1


def test_second_worker_stop_waits_for_the_one_under_way_within_its_bound(monkeypatch):
    runner = _StoppingRunner(1.0, 0.3, 0.3)
    serialize_stops(runner)  # type: ignore[arg-type]
    t0 = time.monotonic()
    gevent.joinall([gevent.spawn(runner.stop), gevent.spawn(runner.stop)], timeout=5)
    assert runner.calls == [1, 1]  # the master's ``quit`` arriving mid-stop does not stop the users a second time
    assert 0.55 <= time.monotonic() - t0 < 3.0

    monkeypatch.setattr("sla_checks.worker_reports.FINAL_REPORT_GRACE_S", 0.2)
    runner = _StoppingRunner(0.0, 5.0, 0.0)  # a stop that outlives --stop-timeout + the grace
    serialize_stops(runner)  # type: ignore[arg-type]
    first = gevent.spawn(runner.stop)
    gevent.sleep(0)
    t0 = time.monotonic()
    second = gevent.spawn(runner.stop)
    second.join(timeout=3)
    assert second.dead and runner.calls == [1, 2]  # waited for the grace only, then ran anyway
    assert 0.15 <= time.monotonic() - t0 < 1.5
    first.kill()
