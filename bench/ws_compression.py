"""What permessage-deflate (``--ws-compression on``) costs the chat client: CPU µs per round trip with and without it.

A ``websockets`` server in a subprocess (it negotiates permessage-deflate when offered, and then sends every frame
compressed) answers each ``user_message`` with the five agent events (~400 bytes of JSON each, like a real agent's).
This process runs ``CONNECTIONS`` :class:`users.ws_client.ChatClient` connections on gevent, one message in flight
each, for a window; it prints round trips per second and this process's CPU time per round trip (process CPU, not
wall), compression off and on, and bytes on the wire per round trip. Figures, not a test.

Usage::

    python -m bench.ws_compression [--seconds 5] [--connections 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIVE = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
TEXT = "The agent looked at the thread history and the tool's answer before replying. " * 4


def serve(port: int) -> None:
    """The server process: five events per user message; compressed when the client negotiated it."""
    from websockets.asyncio.server import serve as ws_serve

    async def handler(ws: Any) -> None:
        await ws.send(json.dumps({"type": "connection_established", "data": {}}))
        async for text in ws:
            frame = json.loads(text)
            if frame.get("type") != "user_message":
                continue
            ids = {k: frame["payload"][k] for k in ("thread_id", "correlation_id")}
            for kind in FIVE:
                await ws.send(json.dumps({"type": kind, "run_id": "r", **ids, "data": {"status": kind, "text": TEXT}}))

    async def main() -> None:
        async with ws_serve(handler, "127.0.0.1", port, select_subprotocol=lambda c, offered: offered[0]
                            if offered else None, max_queue=None):
            print("READY", flush=True)
            await asyncio.sleep(600)  # the parent stops it long before

    asyncio.run(main())


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(url: str, compression: bool, connections: int, seconds: float) -> dict[str, Any]:
    import gevent
    from locust.env import Environment

    from users.chat import ChatUser
    from users.ws_client import ChatClient
    from users.ws_options import ChatSettings

    env = Environment(user_classes=[ChatUser])
    counts = {"ok": 0, "failed": 0}

    def on_request(name: str, exception: Any, **_kw: Any) -> None:
        if name == "agent_completed":
            counts["failed" if exception is not None else "ok"] += 1

    env.events.request.add_listener(on_request)
    settings = ChatSettings(heartbeat_interval=0.0, compression=compression, think_time=0.0)
    clients = [ChatClient(env, settings, url, n) for n in range(connections)]
    for c in clients:
        assert c.connect(), "connect failed"
    negotiated = all(c.session is not None and c.session.deflate is not None for c in clients)
    stop = {"at": 0.0}

    def loop(client: ChatClient) -> None:
        while time.perf_counter() < stop["at"]:
            client.send_and_await([settings.messages[0]])

    stop["at"] = time.perf_counter() + 1.0  # warm-up
    gevent.joinall([gevent.spawn(loop, c) for c in clients])
    done0, cpu0, t0 = counts["ok"], _cpu(), time.perf_counter()
    stop["at"] = t0 + seconds
    gevent.joinall([gevent.spawn(loop, c) for c in clients])
    elapsed, cpu, round_trips = time.perf_counter() - t0, _cpu() - cpu0, counts["ok"] - done0
    for c in clients:
        c.close()
    return {"compression": compression, "negotiated": negotiated, "round_trips": round_trips,
            "failed": counts["failed"], "rate": round_trips / elapsed,
            "cpu_us_per_rt": cpu / max(1, round_trips) * 1e6}


def wire_bytes(compression: bool) -> int:
    """Bytes of the five events of one reply as the server sends them (compressed with a shared window or not)."""
    import zlib

    events = [json.dumps({"type": k, "run_id": "r", "thread_id": "t" * 32, "correlation_id": "c" * 32,
                          "data": {"status": k, "text": TEXT}}).encode() for k in FIVE]
    if not compression:
        return sum(len(e) for e in events)
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    z.compress(b"warm the window " * 4)
    z.flush(zlib.Z_SYNC_FLUSH)
    return sum(len(z.compress(e) + z.flush(zlib.Z_SYNC_FLUSH)) - 4 for e in events)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ws_compression", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    import locust  # noqa: F401  (monkey-patches gevent before the client's sockets)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "bench.ws_compression", "--serve", str(port)], cwd=ROOT,
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert server.stdout is not None and server.stdout.readline().startswith(b"READY"), "server did not start"
        url = f"ws://127.0.0.1:{port}/ws"
        rows = [measure(url, c, args.connections, args.seconds) for c in (False, True, False, True)]
    finally:
        server.kill()
        server.wait(10)
    print(f"{args.connections} connections, one message in flight each, {args.seconds:g} s windows; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'compression':12} {'negotiated':10} {'rt/s':>8} {'client CPU µs/rt':>17} {'reply bytes':>12}")
    for r in rows:
        print(f"{'on' if r['compression'] else 'off':12} {str(r['negotiated']):10} {r['rate']:8.0f} "
              f"{r['cpu_us_per_rt']:17.0f} {wire_bytes(r['compression']):12d}")
    on = [r["cpu_us_per_rt"] for r in rows if r["compression"]]
    off = [r["cpu_us_per_rt"] for r in rows if not r["compression"]]
    print(f"compression adds {min(on) - min(off):.0f} µs of client CPU per round trip (best of 2 each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
