"""Locust plug-in for the soak bench: samples the generator process's health over time (no users).

Every ``SOAK_SAMPLE_S`` seconds (default 30) it appends one JSON line to ``SOAK_OUT``: seconds since start, RSS,
open file descriptors, TCP connections, live greenlets, and the running totals of ``WS agent_completed`` requests
and failures. Loaded only by ``python -m bench soak``.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from typing import Any

import gevent
import greenlet
import locust  # noqa: F401  (first: monkey-patches gevent)
import orjson
import psutil
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

logger = logging.getLogger(__name__)


def sample(environment: Environment, t0: float, proc: psutil.Process) -> dict[str, Any]:
    gc.collect()
    glets = sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)
    entry = environment.stats.get("agent_completed", "WS")
    return {"t": time.monotonic() - t0, "rss": proc.memory_info().rss, "fds": proc.num_fds(),
            "tcp": len(proc.net_connections(kind="tcp")), "greenlets": glets,
            "users": getattr(environment.runner, "user_count", 0),
            "completed": entry.num_requests, "failures": entry.num_failures}


def _loop(environment: Environment, out: str, every: float) -> None:
    proc = psutil.Process()
    t0 = time.monotonic()
    with open(out, "ab") as f:
        while True:
            f.write(orjson.dumps(sample(environment, t0, proc)) + b"\n")
            f.flush()
            gevent.sleep(every)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    out = os.environ.get("SOAK_OUT")
    if not out or isinstance(environment.runner, WorkerRunner):
        return
    gevent.spawn(_loop, environment, out, float(os.environ.get("SOAK_SAMPLE_S", "30")))
