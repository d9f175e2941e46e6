"""A web-UI start is judged by the thresholds it asks for, in every order of events around the previous test's stop.

Each case runs ``tests/integration/webui_swarm_driver.py`` in a fresh interpreter: the suite's locustfile, a real
``LocalRunner``, Locust's real ``/swarm`` view with the scenario plugin's hook (Flask's test client), users against
the session's reference backend. The orders are forced, not waited for: a ``test_stop`` listener that takes 0.5 s
(any plugin doing I/O at the stop), users that take 0.5 s to stop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reference_backend.process import BackendProcess

ROOT = Path(__file__).resolve().parents[2]
COMPOSED = "local × scenario smoke"


def drive(backend: BackendProcess, case: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "TARGET_", "JWT_"))}
    env.update(backend.env)
    res = subprocess.run([sys.executable, "-m", "tests.integration.webui_swarm_driver", backend.ws_url, case],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr[-4000:]
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def judged_with(result: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(s["profile"], s["scenario"]) for s in result["starts"]]


@pytest.mark.timeout(120)
def test_the_forms_fields_do_not_replace_the_scenarios_thresholds(backend: BackendProcess) -> None:
    result = drive(backend, "form_twice")
    assert judged_with(result) == [(COMPOSED, "smoke"), (COMPOSED, "smoke"), ("local", None)], result
    assert result["failed"] == [], result


@pytest.mark.timeout(120)
def test_a_start_as_soon_as_the_end_is_judged_starts_a_new_test(backend: BackendProcess) -> None:
    """The SLA engine judges the end (the tab says finished) before Locust's stop has returned; Locust ignores a
    shape start until then. The start waits for the stop and happens, judged afresh with the scenario's thresholds."""
    result = drive(backend, "start_after_judged")
    assert judged_with(result) == [(COMPOSED, "smoke"), (COMPOSED, "smoke")], result
    assert result["starts"][1]["at"] >= result["stops"][0]["at"], result
    assert not result["engine_ended"] and result["runner"] in ("spawning", "running"), result
    assert result["failed"] == [], result


@pytest.mark.timeout(120)
def test_a_start_while_the_users_stop_waits_for_the_stop(backend: BackendProcess) -> None:
    """Started during ``cleanup``, the scenario used to swap the user classes under the stop (KeyError, the first
    test never judged as ended) and leave the runner ``ready`` with the new test's engine."""
    result = drive(backend, "start_during_cleanup")
    assert result["answers"][-1] == {"state when started": "cleanup"}, result  # the order this case is about
    assert result["failed"] == [], result
    assert result["stops"] and result["stops"][0]["engine_ended"], result  # the plain test was judged to its end
    assert judged_with(result) == [("local", None), (COMPOSED, "smoke")], result
    assert result["starts"][1]["at"] >= result["stops"][0]["at"], result
    assert not result["engine_ended"] and result["runner"] in ("spawning", "running"), result
