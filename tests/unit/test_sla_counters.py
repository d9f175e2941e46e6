"""Counts beside the samples reach the SLA report: chat messages sent and in flight at the stop (``messages``,
``abandoned_at_stop``) and protocol anomalies per kind (``anomalies``), counted in each process, shipped with the
samples, summed on the master, shown in the JSON, terminal table, JUnit XML, HTML report and the web-UI tab."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.env import Environment
from locust.event import Events

from sla_checks.counters import ABANDONED_AT_STOP, ANOMALY_PREFIX, CHAT_SENT, count, in_flight_at_stop
from sla_checks.engine import Collector, Engine
from sla_checks.evaluate import ThresholdSpec
from sla_checks.plugin import SlaPlugin
from sla_checks.profiles import Profile
from sla_checks.report import build_report, render_junit, render_terminal
from sla_checks.report_html import render
from sla_checks.state import state_of
from sla_checks.webui import threshold_rows
from users.chat import ChatUser, abandoned_at_stop

pytestmark = pytest.mark.timeout(20)

T0 = 1_800_000_000.0
SPECS = [ThresholdSpec.of("WS agent_completed", "p(95) < 2000")]


def engine_with_workers(*workers: dict[str, int]) -> Engine:
    """An engine whose store absorbed one collector per worker, each with one sample and ``counts``."""
    eng = Engine(SPECS, profile="test")
    eng.start(T0)
    for i, counts in enumerate(workers):
        c = Collector()
        c.record("WS", "agent_completed", 500.0, False, T0 + 1)
        for name, n in counts.items():
            c.count(name, n)
        eng.store.absorb(json.loads(json.dumps(c.drain())), f"w{i}")  # as msgpack would: plain types only
    eng.stop(T0 + 10)
    return eng


def test_counts_of_every_worker_are_summed_into_the_report():
    eng = engine_with_workers(
        {ABANDONED_AT_STOP: 3, ANOMALY_PREFIX + "late frame": 2},
        {ABANDONED_AT_STOP: 4, ANOMALY_PREFIX + "late frame": 1, ANOMALY_PREFIX + "malformed json": 5},
    )
    rep = build_report(eng, T0 + 10)
    assert rep["abandoned_at_stop"] == 7
    assert rep["anomalies"] == {"late frame": 3, "malformed json": 5}
    assert rep["verdict"] == "pass"  # reported, not judged
    json.dumps(rep, allow_nan=False)


def test_collector_ships_counts_once_and_an_idle_collector_ships_nothing():
    c = Collector()
    assert c.drain() is None
    c.count(ABANDONED_AT_STOP, 2)
    c.count(ABANDONED_AT_STOP)
    assert c.drain()["c"] == {ABANDONED_AT_STOP: 3}  # a count alone is worth a payload (a worker's last report)
    assert c.drain() is None


def engine_with_messages_in_flight() -> Engine:
    """One worker: 10 messages sent, 1 answered (500 ms), 9 in flight at the stop: 4 past the 2000 ms limit of
    ``p(95) < 2000`` (judged as failures), 5 younger (counted)."""
    eng = Engine(SPECS, profile="test")
    eng.start(T0)
    c = Collector()
    c.record("WS", "agent_completed", 500.0, False, T0 + 1)
    c.count(CHAT_SENT, 10)
    c.count(ANOMALY_PREFIX + "unknown id", 2)
    env = Environment()
    state_of(env).sla = SimpleNamespace(engine=SimpleNamespace(collector=c))
    in_flight_at_stop(env, [(2500.0, 30000.0)] * 4 + [(300.0, 30000.0)] * 5, at=T0 + 9.5)
    eng.store.absorb(json.loads(json.dumps(c.drain())), "w0")
    eng.stop(T0 + 10)
    return eng


def test_terminal_junit_html_and_webui_account_for_every_message():
    rep = build_report(engine_with_messages_in_flight(), T0 + 10)
    assert rep["abandoned_at_stop"] == 9
    assert rep["messages"] == {"sent": 10, "completed": 1, "failed": 4, "failed_at_stop": 4, "in_flight": 5,
                               "in_flight_limit_ms": 2000.0, "not_sent": 0, "unaccounted": 0}
    text = render_terminal(rep)
    assert "chat messages: 10 sent = 1 completed + 4 failed + 5 in flight at stop" in text
    assert "4 of the failed were still in flight at the stop after waiting longer than 2000 ms" in text
    assert "5 in flight at stop had waited less than 2000 ms: counted, not judged" in text
    assert "protocol anomalies (each a failed WS protocol anomaly sample): unknown id 2" in text
    assert text.index("chat messages") < text.index("SLA verdict:")
    suite = ET.fromstring(render_junit(rep)).find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props == {"abandoned_at_stop": "9", "messages_sent": "10", "messages_completed": "1",
                     "messages_failed": "4", "messages_failed_at_stop": "4", "messages_in_flight": "5",
                     "messages_in_flight_limit_ms": "2000", "messages_not_sent": "0", "messages_unaccounted": "0",
                     "anomaly: unknown id": "2"}
    assert "10 sent = 1 completed + 4 failed + 5 in flight at stop" in suite.find("system-out").text
    page = render(rep)
    assert 'id="messages"' in page and "10 sent = 1 completed + 4 failed + 5 in flight at stop" in page
    assert 'id="abandoned-at-stop"' in page and "--stop-timeout" in page
    assert 'id="anomalies"' in page and "<code>unknown id</code> 2" in page
    verdict_row = threshold_rows(rep)[0]
    assert "10 sent = 1 completed + 4 failed (4 of them in flight at the stop" in verdict_row["description"]
    assert "protocol anomalies: unknown id 2" in verdict_row["description"]


def test_a_clean_run_reports_zero_and_prints_no_note():
    rep = build_report(engine_with_workers({}), T0 + 10)
    assert (rep["abandoned_at_stop"], rep["anomalies"], rep["messages"]["in_flight"]) == (0, {}, 0)
    assert "in flight at stop had" not in render_terminal(rep) and "anomal" not in render_terminal(rep)
    page = render(rep)
    assert 'id="abandoned-at-stop"' not in page and 'id="anomalies"' not in page


def new_env() -> Environment:
    env = Environment(events=Events())
    env.create_local_runner()
    return env


def test_worker_counts_reach_the_master_through_the_worker_report():
    worker_env, master_env = new_env(), new_env()
    worker = SlaPlugin(worker_env, None)
    state_of(worker_env).sla = worker
    master = SlaPlugin.register(master_env, Profile(name="t", path="t.toml", thresholds=SPECS), eval_interval_s=60)
    master.on_test_start(master_env)
    count(worker_env, ABANDONED_AT_STOP, 2)
    count(worker_env, ANOMALY_PREFIX + "duplicate completed")
    data: dict = {}
    worker.on_report_to_master("w1", data)
    master.on_worker_report("w1", json.loads(json.dumps(data)))
    count(master_env, ABANDONED_AT_STOP, 1)  # the master's (or local runner's) own users count too
    rep = master.snapshot()
    assert (rep["abandoned_at_stop"], rep["anomalies"]) == (3, {"duplicate completed": 1})


def test_count_without_a_plugin_waits_in_the_environment_state():
    env = Environment()
    count(env, ABANDONED_AT_STOP, 2)
    count(env, ABANDONED_AT_STOP, 0)
    assert state_of(env).pending_counts == {ABANDONED_AT_STOP: 2}
    assert not hasattr(env, "sla_counts")


def test_chat_user_stopped_mid_message_counts_it_in_the_sla_report():
    env = new_env()
    plugin = SlaPlugin.register(env, Profile(name="t", path="t.toml", thresholds=SPECS), eval_interval_s=60)
    plugin.on_test_start(env)
    user = ChatUser(env)
    # two messages still in flight when the user stopped: (age ms, reply deadline ms)
    user.client = SimpleNamespace(close=lambda: [(100.0, 30000.0), (2500.0, 30000.0)])
    before = abandoned_at_stop()
    user.on_stop()
    assert abandoned_at_stop() == before + 2  # the per-process counter stays as it was
    assert plugin.snapshot()["abandoned_at_stop"] == 2
    assert [(age, deadline) for _at, age, deadline in plugin.engine.store.in_flight] == [(100.0, 30000.0),
                                                                                          (2500.0, 30000.0)]


def test_end_of_run_warns_about_messages_in_flight_naming_stop_timeout(caplog):
    env = new_env()
    env.stop_timeout = 2.0
    plugin = SlaPlugin.register(env, Profile(name="t", path="t.toml", thresholds=SPECS), eval_interval_s=60)
    plugin.on_test_start(env)
    env.events.request.fire(request_type="WS", name="agent_completed", response_time=500.0, response_length=0,
                            exception=None, context=None)
    count(env, CHAT_SENT, 4)
    in_flight_at_stop(env, [(300.0, 30000.0)] * 3)
    plugin.on_test_stop(env)
    with caplog.at_level("WARNING"):
        env.events.quitting.fire(environment=env)
    warned = [r.getMessage() for r in caplog.records if "still in flight at stop" in r.getMessage()]
    assert warned == ["SLA: 3 message(s) were still in flight at stop (not judged: younger than their limit); a "
                      "longer --stop-timeout (now 2 s) lets them finish"]
    assert plugin.final_report["abandoned_at_stop"] == 3
    assert plugin.final_report["messages"]["in_flight"] == 3
    assert env.process_exit_code is None  # younger than the limit: counted, not judged


def test_counts_before_the_plugin_and_across_a_reconfigure_are_kept():
    env = new_env()
    count(env, ANOMALY_PREFIX + "late frame", 2)  # before the plugin is attached: waits on the environment
    plugin = SlaPlugin.register(env, Profile(name="t", path="t.toml", thresholds=SPECS), eval_interval_s=60)
    plugin.on_test_start(env)
    plugin.tick(T0)
    plugin.reconfigure(Profile(name="u", path="u.toml", thresholds=SPECS))
    count(env, ANOMALY_PREFIX + "late frame")
    assert plugin.snapshot()["anomalies"] == {"late frame": 3}
