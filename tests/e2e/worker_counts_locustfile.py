"""The project's locustfile plus test-only bookkeeping of what a worker sent its master.

On a worker, it counts the ``WS agent_completed`` samples the worker recorded (``events.request``) and the ones its
reports to the master carried (``num_requests`` of that entry in each report's Locust stats), and at ``quit`` (after
the final report) writes ``$SLA_COUNT_DIR/worker-<pid>.json``: ``{"recorded", "shipped", "reports"}``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events
from locust.runners import WorkerRunner

from locustfile import *  # noqa: F403  (every option, plugin and user class of the project)

_counts = {"recorded": 0, "shipped": 0, "reports": 0}


@events.request.add_listener
def _on_request(request_type: str, name: str, **_kw: Any) -> None:
    if request_type == "WS" and name == "agent_completed":
        _counts["recorded"] += 1


def _on_report_to_master(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    # registered at init, after Locust's own stats listener: data["stats"] is what this report ships
    _counts["reports"] += 1
    for entry in data.get("stats", ()):
        if entry.get("method") == "WS" and entry.get("name") == "agent_completed":
            _counts["shipped"] += int(entry.get("num_requests", 0))


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        environment.events.report_to_master.add_listener(_on_report_to_master)


@events.quit.add_listener
def _on_quit(**_kw: Any) -> None:
    out = os.environ.get("SLA_COUNT_DIR")
    if out and _counts["reports"]:
        with open(os.path.join(out, f"worker-{os.getpid()}.json"), "w", encoding="utf-8") as fh:
            json.dump(_counts, fh)
