"""How many messages/s the reference backend sustains (each with its full event stream), and at what latency.

Starts ``python -m reference_backend`` (one uvicorn worker = one core) unless ``--url`` points at a running one, opens
``--connections`` WebSockets (one seeded user each, rate limit off) and keeps ``--in-flight`` messages outstanding
on each (closed loop). After ``--warmup`` seconds it counts, for ``--duration`` seconds, completed messages
(``agent_completed`` received) and the latency send → ``agent_completed``; it also samples the backend's CPU.

    .venv/bin/python bench/backend_capacity.py                       # defaults: 60 connections x 4 in flight
    .venv/bin/python bench/backend_capacity.py --connections 80 --in-flight 5 --duration 20

The load generator is asyncio + ``websockets`` (installed with uvicorn[standard]) in this process; on a shared
2-core machine it competes with the backend and with everything else, so figures are noisy: run it twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402
import psutil  # noqa: E402
import websockets  # noqa: E402

from reference_backend.process import BackendProcess  # noqa: E402


def login(http_url: str, i: int, password: str) -> str:
    body = json.dumps({"email": f"loadtest{i}@example.com", "password": password}).encode()
    req = urllib.request.Request(http_url + "/auth/login", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["access_token"]


class Stats:
    def __init__(self) -> None:
        self.measuring = False
        self.latencies: list[float] = []
        self.completed = 0
        self.errors: dict[str, int] = {}
        self.events = 0
        self.samples: dict[str, str] = {}


async def connection(ws_url: str, token: str, in_flight: int, stats: Stats, stop: asyncio.Event) -> None:
    async with websockets.connect(ws_url, subprotocols=[f"jwt-auth.{token}"], max_size=2**20,
                                  open_timeout=30, ping_interval=None) as ws:
        hello = orjson.loads(await ws.recv())
        assert hello["type"] == "connection_established", hello
        sent: dict[str, float] = {}

        async def send_one() -> None:
            tid = uuid.uuid4().hex
            sent[tid] = time.perf_counter()
            await ws.send(orjson.dumps({"type": "user_message",
                                        "payload": {"content": "capacity bench", "thread_id": tid}}).decode())

        for _ in range(in_flight):
            await send_one()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            f = orjson.loads(raw)
            stats.events += 1
            t = f.get("type")
            if t in ("agent_completed", "agent_error", "error_message"):
                t0 = sent.pop(f.get("thread_id"), None)
                if stats.measuring and t0 is not None:
                    if t == "agent_completed":
                        stats.completed += 1
                        stats.latencies.append((time.perf_counter() - t0) * 1000)
                    else:
                        code = f.get("error_code") or f.get("data", {}).get("error_context", {}).get("error_code")
                        stats.errors[str(code)] = stats.errors.get(str(code), 0) + 1
                        text = f.get("error_message") or f.get("data", {}).get("error_message", "")
                        stats.samples.setdefault(str(code), str(text)[:160])
                if not stop.is_set():
                    await send_one()


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


async def run(ws_url: str, http_url: str, password: str, pid: int | None, args: argparse.Namespace) -> dict:
    tokens = [login(http_url, i % 100, password) for i in range(args.connections)]
    stats = Stats()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(connection(ws_url, t, args.in_flight, stats, stop)) for t in tokens]
    proc = psutil.Process(pid) if pid else None
    await asyncio.sleep(args.warmup)
    c0 = sum(proc.cpu_times()[:2]) if proc else 0.0
    stats.measuring = True
    t0 = time.perf_counter()
    await asyncio.sleep(args.duration)
    stats.measuring = False
    elapsed = time.perf_counter() - t0
    cpu_s = sum(proc.cpu_times()[:2]) - c0 if proc else None
    cpu = round(100 * cpu_s / elapsed, 1) if proc else None
    cpu_ms_per_msg = round(1000 * cpu_s / stats.completed, 3) if proc and stats.completed else None
    stop.set()
    done, pending = await asyncio.wait(tasks, timeout=10)
    for t in pending:
        t.cancel()
    failed = [t.exception() for t in done if not t.cancelled() and t.exception()]
    lat = stats.latencies
    return {
        "connections": args.connections, "in_flight_per_connection": args.in_flight,
        "duration_s": round(elapsed, 2), "messages_per_s": round(stats.completed / elapsed, 1),
        "events_per_s": round(stats.events / (elapsed + args.warmup), 1),
        "completed": stats.completed, "errors": stats.errors, "error_samples": stats.samples, "connection_failures": len(failed),
        "latency_ms": {"p50": round(pct(lat, 50), 1), "p95": round(pct(lat, 95), 1), "p99": round(pct(lat, 99), 1),
                       "max": round(max(lat), 1) if lat else None,
                       "mean": round(statistics.fmean(lat), 1) if lat else None},
        "backend_cpu_percent": cpu, "backend_cpu_ms_per_message": cpu_ms_per_msg,
        "one_core_ceiling_msg_per_s": round(1000 / cpu_ms_per_msg) if cpu_ms_per_msg else None, "loadavg": os.getloadavg(), "cpus": os.cpu_count(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="bench a running backend at this http URL instead of starting one")
    p.add_argument("--password", default=os.environ.get("TARGET_SEED_PASSWORD", "loadtest-password"))
    p.add_argument("--connections", type=int, default=60)
    p.add_argument("--in-flight", type=int, default=4)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--think-min-ms", type=float, default=300.0)
    p.add_argument("--think-max-ms", type=float, default=600.0)
    p.add_argument("--pg-pool-size", type=int, default=20)
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = p.parse_args()
    if args.connections < 1 or args.in_flight < 1:
        p.error("--connections and --in-flight must be >= 1")
    if args.url:
        http_url = args.url.rstrip("/")
        result = asyncio.run(run(http_url.replace("http", "ws", 1) + "/ws", http_url, args.password, None, args))
    else:
        log_dir = Path(tempfile.mkdtemp(prefix="target-capacity-"))
        with BackendProcess.start(log_dir, rate_limit_per_s=0, max_in_flight=max(32, args.in_flight),
                                  think_min_ms=args.think_min_ms, think_max_ms=args.think_max_ms,
                                  pg_pool_size=args.pg_pool_size, log_level="warning") as b:
            result = asyncio.run(run(b.ws_url, b.http_url, b.seed_password, b.pid, args))
            result["backend_log"] = str(b.log_path)
    result["think_ms"] = [args.think_min_ms, args.think_max_ms]
    if args.json:
        print(json.dumps(result))
    else:
        lat = result["latency_ms"]
        print(f"messages/s: {result['messages_per_s']} (each with its full event stream; "
              f"{result['connections']} connections x {result['in_flight_per_connection']} in flight, "
              f"{result['duration_s']} s)")
        print(f"latency send->agent_completed ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  "
              f"max {lat['max']}  (think time {args.think_min_ms:g}-{args.think_max_ms:g} ms)")
        for code, text in result["error_samples"].items():
            print(f"  e.g. {code}: {text}")
        print(f"errors: {result['errors'] or 'none'}  backend CPU: {result['backend_cpu_percent']} %  "
              f"load average: {', '.join(f'{x:.2f}' for x in result['loadavg'])} on {result['cpus']} CPUs")
        if result["backend_cpu_ms_per_message"]:
            print(f"backend CPU per message: {result['backend_cpu_ms_per_message']} ms -> one fully available core "
                  f"would carry ~{result['one_core_ceiling_msg_per_s']} messages/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
