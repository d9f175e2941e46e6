"""Locustfile for the bench: the suite's ``ChatUser`` with no think time, with or without the SLA plug-in.

``BENCH_SLA=1`` (default) imports the project's ``locustfile`` first, so every hook and option of the suite is
registered exactly as in a real run; ``BENCH_SLA=0`` imports only ``users.chat``. Run the class ``BenchChatUser``.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import locust  # noqa: F401  (first: monkey-patches gevent)
from locust import constant

if os.environ.get("BENCH_SLA", "1") == "1":
    import locustfile  # noqa: F401  (registers the suite's hooks and options)

from users.chat import ChatUser

if os.environ.get("BENCH_GC_THRESHOLD"):  # experiment knob: e.g. "50000,50,1000" (see bench/results/profile-notes.md)
    import gc

    gc.set_threshold(*(int(x) for x in os.environ["BENCH_GC_THRESHOLD"].split(",")))


class BenchChatUser(ChatUser):
    """``ChatUser`` sending its next message as soon as the previous one completed."""

    wait_time = constant(0)


def _idle(user: ChatUser) -> None:
    import gevent

    gevent.sleep(3600.0)  # Locust kills it at stop; a short sleep would add 1 wake-up per session per period


_HOSTS = [h for h in os.environ.get("BENCH_HOSTS", "").split(",") if h]
_host_turn = itertools.count()


class IdleChatUser(ChatUser):
    """``ChatUser`` holding its session open (heartbeats running) and sending no chat message.

    ``BENCH_HOSTS`` (comma-separated URLs): the users of each process take them in turn, so that more sessions than
    the ephemeral port range has ports reach the bench server (one address per ≈ 20,000 sessions).
    """

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if _HOSTS:
            self.host = _HOSTS[next(_host_turn) % len(_HOSTS)]


# assigned after the class statement: Locust's metaclass would otherwise add the inherited ``chat`` task
IdleChatUser.tasks = [_idle]
