"""The project's locustfile plus test-only bookkeeping for the reliability suite.

At ``quit`` (the last event, after every user stopped, also after SIGTERM) it writes ``$RELIABILITY_OUT`` (JSON): every chat client's ``sent`` / ``ended`` counters (kept by
``users.ws_client.ChatClient`` itself), the messages abandoned at stop (``users.chat.abandoned_at_stop()``), the
``WS agent_completed`` stats entry, and a log of chosen samples ``[t, type, name, ok, response_time, failure]`` so a
test can see which failure reason every message ended with and that users reconnected after each fault.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events

from locustfile import *  # noqa: F403  (every option, plugin and user class of the project)
from users.chat import abandoned_at_stop
from users.ws_client import ChatClient

_clients: list[ChatClient] = []
_samples: list[list[Any]] = []
_LOGGED_TYPES = {"WS", "FLOW", "REDIS", "PG", "CH", "HTTP"}

_orig_init = ChatClient.__init__


def _init(self: ChatClient, *args: Any, **kwargs: Any) -> None:
    _orig_init(self, *args, **kwargs)
    _clients.append(self)


ChatClient.__init__ = _init  # type: ignore[method-assign]


@events.request.add_listener
def _on_request(request_type: str, name: str, response_time: float, exception: BaseException | None = None,
                **_kw: Any) -> None:
    if request_type not in _LOGGED_TYPES:
        return
    if request_type == "WS" and name not in ("connect", "agent_completed", "disconnect", "heartbeat"):
        return
    _samples.append([time.time(), request_type, name, exception is None, round(float(response_time or 0), 1),
                     None if exception is None else str(exception)[:300]])


_env: dict[str, Any] = {}


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    _env["environment"] = environment


@events.quit.add_listener
def _on_quit(exit_code: int, **_kw: Any) -> None:
    out = os.environ.get("RELIABILITY_OUT")
    environment = _env.get("environment")
    if not out or environment is None:
        return
    entry = environment.stats.get("agent_completed", "WS")
    data = {
        "sent": sum(c.sent for c in _clients),
        "ended": sum(c.ended for c in _clients),
        "abandoned": abandoned_at_stop(),
        "clients": len(_clients),
        "stats_completed_requests": entry.num_requests,
        "stats_completed_failures": entry.num_failures,
        "samples": _samples,
        "quit_at": time.time(),
        "exit_code": exit_code,
    }
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
