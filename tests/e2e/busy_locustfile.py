"""The project's locustfile plus ``BusyUser``: a user whose greenlet is almost always the one running.

Each task spins the CPU for 50 ms without yielding, so a signal that Python delivers "wherever the main thread is"
lands in a user's greenlet, not in Locust's main one. ``on_start``/``on_stop`` write
``$CTRL_C_DIR/<event>-<pid>-<n>``: a user stopped gracefully leaves a ``stopped`` file.
"""

from __future__ import annotations

import itertools
import os
import time

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import User, constant, task

from locustfile import *  # noqa: F403  (every option, plugin and user class of the project)

_serial = itertools.count()


def _mark(event: str, n: int) -> None:
    out = os.environ["CTRL_C_DIR"]
    with open(os.path.join(out, f"{event}-{os.getpid()}-{n}"), "w", encoding="utf-8"):
        pass


class BusyUser(User):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.n = next(_serial)
        _mark("started", self.n)

    @task
    def spin(self) -> None:
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            pass

    def on_stop(self) -> None:
        _mark("stopped", self.n)
