"""Drive the web UI's ``POST /swarm`` in one order of events, in this process: the suite's locustfile, a real
``LocalRunner`` and Locust's real ``WebUI`` app (its ``/swarm`` view and the scenario plugin's ``before_request``
hook, called through Flask's test client; no browser, no web port), users against a real backend.

``python -m tests.integration.webui_swarm_driver HOST CASE`` (cwd: the repository) prints one JSON line: what each
test start was judged with (``starts``), the runner's states, the greenlets that failed. A fresh interpreter per
case: the plugins register their listeners on Locust's global events. Cases:

* ``form_twice``: smoke started with the start form's fields (``sla_config`` empty, ``sla_profile`` local), left
  to end by itself, started again the same way; then a plain start.
* ``start_after_judged``: a ``test_stop`` listener that takes 0.5 s (a plugin doing I/O at the stop); smoke is
  started again as soon as the SLA engine has judged the end of the first run, while Locust's stop (and its shape
  worker) are not done.
* ``start_during_cleanup``: a plain run whose users take 0.5 s to stop; smoke is started while they stop.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent
import locust
from locust.argument_parser import get_parser
from locust.env import Environment

import locustfile
from sla_checks.state import state_of

FORM = {
    "user_count": "1", "spawn_rate": "1", "run_time": "", "profile": "", "inject_faults": "false",
    "inject_tolerated_faults": "false", "probe_read_only": "false", "scenario": "smoke", "scenario_duration": "2",
    "scenario_scale": "1", "sla_config": "", "sla_profile": "local", "sla_warmup": "", "sla_window": "",
    "ws_arrival_rate": "", "ws_inflight": "1", "ws_think_time": "1",
}
"""What the start form sends (Locust 2.47's page, every suite field of the form)."""


def wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        gevent.sleep(0.02)
    return condition()


def main(host: str, case: str) -> dict[str, Any]:
    options = get_parser().parse_args(["-f", "locustfile.py", "-H", host, "--stop-timeout", "1",
                                       "--sla-eval-interval", "60"])
    classes: dict[str, Any] = {c.__name__: c for c in (
        locustfile.ChatUser, locustfile.ChatFlowUser, locustfile.RedisProbeUser, locustfile.PostgresProbeUser,
        locustfile.ClickHouseProbeUser, locustfile.HealthCheckUser)}
    env = Environment(user_classes=list(classes.values()), events=locust.events, parsed_options=options, host=host,
                      available_user_classes=classes, stop_timeout=1)
    runner = env.create_local_runner()
    web_ui = env.create_web_ui("127.0.0.1", 0, delayed_start=True)
    env.events.init.fire(environment=env, runner=runner, web_ui=web_ui)
    client = web_ui.app.test_client()
    sla = state_of(env).sla
    assert sla is not None
    starts: list[dict[str, Any]] = []
    stops: list[dict[str, Any]] = []
    failed: list[str] = []
    answers: list[Any] = []

    def on_start(**_kw: Any) -> None:  # added last: runs after the SLA engine's own test_start listener
        starts.append({"profile": sla.engine.profile, "scenario": (sla.scenario or {}).get("name"),
                       "at": time.time()})

    def on_stop(**_kw: Any) -> None:
        stops.append({"at": time.time(), "engine_ended": sla.engine.ended_at is not None})

    env.events.test_start.add_listener(on_start)
    env.events.test_stop.add_listener(on_stop)
    gevent.get_hub().exception_stream = None
    original_handle_error = gevent.get_hub().handle_error

    def handle_error(context: Any, kind: Any, value: Any, tb: Any) -> None:
        failed.append(f"{kind.__name__}: {value}")
        original_handle_error(context, kind, value, tb)

    gevent.get_hub().handle_error = handle_error  # type: ignore[method-assign]

    def post(**fields: str) -> None:
        answers.append(client.post("/swarm", data={**FORM, "host": host, **fields}).get_json())

    def judged() -> bool:
        return sla.engine.ended_at is not None

    if case == "form_twice":
        post()
        wait(lambda: len(starts) == 1 and judged(), 20)
        wait(lambda: runner.state == "stopped" and runner.shape_greenlet is None, 10)
        post()
        wait(lambda: len(starts) == 2 and judged(), 20)
        wait(lambda: runner.state == "stopped" and runner.shape_greenlet is None, 10)
        post(scenario="", scenario_duration="")
        wait(lambda: len(starts) == 3, 10)
    elif case == "start_after_judged":
        env.events.test_stop.add_listener(lambda **_kw: gevent.sleep(0.5))
        post()
        wait(lambda: len(starts) == 1 and judged(), 20)
        post()  # the moment the SLA tab says "finished"
        wait(lambda: len(starts) == 2, 10)
        gevent.sleep(0.5)
    elif case == "start_during_cleanup":
        stop_users = runner.stop_users

        def slow_stop_users(*args: Any, **kwargs: Any) -> Any:
            gevent.sleep(0.5)  # users finishing their request within --stop-timeout
            return stop_users(*args, **kwargs)

        runner.stop_users = slow_stop_users  # type: ignore[method-assign]
        post(scenario="", scenario_duration="", user_count="2", spawn_rate="2")
        wait(lambda: len(starts) == 1 and runner.state == "running", 10)
        stopping = gevent.spawn(runner.stop)  # the Stop button
        wait(lambda: runner.state == "cleanup", 5)
        stopped_in = runner.state
        post()
        wait(lambda: len(starts) == 2, 10)
        gevent.sleep(0.5)
        stopping.join(timeout=5)
        answers.append({"state when started": stopped_in})
    else:
        raise SystemExit(f"unknown case {case!r}")
    result = {
        "starts": list(starts), "stops": list(stops), "answers": answers, "failed": list(failed), "runner": runner.state,
        "engine_ended": sla.engine.ended_at is not None, "engine_started_at": sla.engine.started_at,
    }
    runner.quit()
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])), flush=True)
