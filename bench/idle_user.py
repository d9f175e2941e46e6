"""An idle WebSocket session for the scale bench when ``ChatUser`` is not available: the cost floor of a session.

One websocket-client connection, one reader greenlet (as a real chat client needs), a ``ping`` every
``BENCH_HEARTBEAT_S`` seconds (default 15, as ``ChatUser``; first one at a random offset so 10,000 sessions do not ping in step),
each ``pong`` recorded as ``WS heartbeat`` (ping → pong round trip).
"""

from __future__ import annotations

import os
import random
import time

import gevent
import locust  # noqa: F401  (first: monkey-patches gevent)
import orjson
import websocket
from locust import User, constant, task


class IdleWSUser(User):
    """Holds one connection open, heartbeating, sending no chat messages."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.interval = float(os.environ.get("BENCH_HEARTBEAT_S", "15"))
        start = time.perf_counter()
        self.ws = websocket.create_connection(self.host, subprotocols=["jwt-auth.bench-token"], timeout=30,
                                              skip_utf8_validation=True)
        self.ws.settimeout(None)
        self.ws.recv()  # connection_established
        self.environment.events.request.fire(request_type="WS", name="connect", response_length=0, exception=None,
                                             response_time=(time.perf_counter() - start) * 1000, context={})
        self.sent: dict[float, float] = {}
        self.reader = gevent.spawn(self._read)
        gevent.sleep(random.random() * self.interval)

    def on_stop(self) -> None:
        self.reader.kill(block=False)
        self.ws.close(timeout=1)

    def _read(self) -> None:
        fire = self.environment.events.request.fire
        while True:
            try:
                frame = self.ws.recv()
            except Exception as e:  # noqa: BLE001 - a dropped connection ends the reader; recorded below
                fire(request_type="WS", name="disconnect", response_time=0, response_length=0, exception=e)
                return
            msg = orjson.loads(frame)
            if msg.get("type") == "pong":
                ts = (msg.get("data") or {}).get("timestamp")
                start = self.sent.pop(ts, None)
                if start is not None:
                    fire(request_type="WS", name="heartbeat", response_time=(time.perf_counter() - start) * 1000,
                         response_length=len(frame), exception=None, context={})

    @task
    def heartbeat(self) -> None:
        ts = time.time()
        self.sent[ts] = time.perf_counter()
        self.ws.send(orjson.dumps({"type": "ping", "timestamp": ts}))
        gevent.sleep(self.interval)
