"""Plain helpers shared by the integration, e2e and reliability tests (no fixtures: those live in conftest.py)."""

from __future__ import annotations

import socket
import time
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago (bind port 0, read it, release it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds passed; its last value decides."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def shape_ticks(spec: Any, times: list[float], **kw: Any) -> list[Any]:
    """``tick()`` of the load shape built from ``spec`` at each of ``times`` (seconds after its start), on a fake
    clock (no sleeping)."""
    from scenarios.shapes import build_shape

    now = [100.0]
    shape = build_shape(spec, clock=lambda: now[0], **kw)
    shape.reset_time()
    out = []
    for t in times:
        now[0] = 100.0 + t
        out.append(shape.tick())
    return out


def kill_running(*procs: Any) -> None:
    """Kill each subprocess (``None`` allowed) that is still running and reap it (10 s deadline each)."""
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)
