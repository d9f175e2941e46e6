"""The baseline: a WebSocket Locust user written the way most people write one.

One websocket-client connection per user, opened in ``on_start``; the task sends a ``user_message`` and then
blocks in ``recv()`` until ``agent_completed`` arrives (no reader greenlet, no heartbeat, no timeline), parsing each
frame, and records one sample (``WS agent_completed``) per round trip. This is what a user would pick if the suite
did not exist; the bench compares ``ChatUser`` with it.

Usage::

    locust -f bench/naive_user.py --headless -u 50 -r 50 -t 20s --host ws://127.0.0.1:PORT/ws
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import locust  # noqa: F401  (first: monkey-patches gevent)
import orjson
import websocket
from locust import User, constant, task


class NaiveWSUser(User):
    """Blocking send/recv WebSocket user, one sample per round trip."""

    wait_time = constant(0)
    abstract = False

    def on_start(self) -> None:
        self.ws = websocket.create_connection(self.host, subprotocols=["jwt-auth.bench-token"], timeout=30)
        self.ws.recv()  # connection_established

    def on_stop(self) -> None:
        self.ws.close(timeout=1)

    @task
    def send_and_wait(self) -> None:
        cid = uuid.uuid4().hex
        body = orjson.dumps({"type": "user_message",
                             "payload": {"content": "How can I lower the cost per request of my pipeline?",
                                         "thread_id": uuid.uuid4().hex, "correlation_id": cid,
                                         "timestamp": datetime.now(UTC).isoformat()}})
        start = time.perf_counter()
        exc: Exception | None = None
        length = 0
        try:
            self.ws.send(body)
            while True:
                frame = self.ws.recv()
                length += len(frame)
                ev = orjson.loads(frame)
                if ev.get("type") == "agent_completed" and ev.get("correlation_id") == cid:
                    break
        except Exception as e:  # noqa: BLE001 - the baseline records any failure as a failed sample
            exc = e
        self.environment.events.request.fire(request_type="WS", name="agent_completed",
                                             response_time=(time.perf_counter() - start) * 1000,
                                             response_length=length, exception=exc, context={})
        if exc is not None:
            raise locust.exception.StopUser()
