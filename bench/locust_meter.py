"""A measuring plug-in for bench runs of Locust: loaded as an extra locustfile, it adds no users.

Each Locust process (standalone, master or worker) that loads it measures one steady window: it waits until its
runner is running (all users spawned), then ``BENCH_WARMUP`` seconds, then records for ``BENCH_WINDOW`` seconds:

* its own CPU time (user + system, ``getrusage``) and RSS;
* the number of ``BENCH_METER_TYPE`` ``BENCH_METER_NAME`` samples (default ``WS agent_completed``) fired in this
  process, their failures, and the raw response times (and ``context["intended_ms"]`` when present), so that
  percentiles are exact rather than Locust's 10 ms-wide buckets above 100 ms;
* live greenlets at the start and end of the window.

At the end of the window it writes ``BENCH_METER_DIR/<role>-<pid>.json``. The request listener is one comparison
and one list append per sample (well under 1 µs), the same for every user class the bench compares.

Usage::

    BENCH_METER_DIR=/tmp/m BENCH_WINDOW=10 locust -f bench/naive_user.py,bench/locust_meter.py --headless ...
"""

from __future__ import annotations

import gc
import logging
import math
import os
import resource
import time
import tracemalloc
from typing import Any

import gevent
import greenlet
import locust  # noqa: F401  (first: monkey-patches gevent)
import orjson
import psutil
from locust import events
from locust.env import Environment
from locust.runners import STATE_RUNNING, MasterRunner, WorkerRunner

from bench.fast_server import raise_fd_limit

logger = logging.getLogger(__name__)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list; None when empty."""
    if not sorted_values:
        return None
    rank = math.ceil(q * len(sorted_values) / 100.0 - 1e-9)  # nearest rank, 1-based
    k = max(0, min(len(sorted_values) - 1, rank - 1))
    return sorted_values[k]


class BenchMeter:
    """Counts one metric's samples and measures CPU/RSS over a steady window, then writes JSON."""

    def __init__(self, environment: Environment, out_dir: str, warmup: float, window: float,
                 req_type: str, name: str) -> None:
        self.env = environment
        self.out_dir = out_dir
        self.warmup = warmup
        self.window = window
        self.req_type = req_type
        self.name = name
        self.recording = False
        self.count = 0
        self.failures = 0
        self.times: list[float] = []
        self.intended: list[float] = []
        self.total_samples = 0
        self.connects_ok = 0
        self.connects_failed = 0
        self.wait_connected = int(os.environ.get("BENCH_WAIT_CONNECTED", "0"))
        self.rss_init = psutil.Process().memory_info().rss  # before any user is spawned
        self.trace = os.environ.get("BENCH_TRACEMALLOC") == "1"  # where per-session memory goes (slow)
        if self.trace:
            tracemalloc.start(8)
        self.gc_pauses: list[float] = []  # ms of each collection during the window (a pause for every greenlet)
        self._gc_t = 0.0
        gc.callbacks.append(self._on_gc)
        environment.events.request.add_listener(self.on_request)
        gevent.spawn(self._run)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t = time.perf_counter()
        elif self.recording:
            self.gc_pauses.append((time.perf_counter() - self._gc_t) * 1000)

    def on_request(self, request_type: str, name: str, response_time: float, response_length: int,
                   exception: Any = None, context: Any = None, **_: Any) -> None:
        if name == "connect":
            if exception is None:
                self.connects_ok += 1
            else:
                self.connects_failed += 1
        if not self.recording:
            return
        self.total_samples += 1
        if name != self.name or request_type != self.req_type:
            return
        self.count += 1
        if exception is not None:
            self.failures += 1
            return
        self.times.append(response_time)
        if context and "intended_ms" in context:
            self.intended.append(context["intended_ms"])

    def record_success(self, request_type: str, name: str, response_time: float, wall: float,
                       stages: Any = None, intended_ms: float | None = None) -> None:
        """A success from a chat connection's direct path (users.sample_sink): what :meth:`on_request` does with
        it."""
        self.on_request(request_type, name, response_time, 0,
                        context=None if intended_ms is None else {"intended_ms": intended_ms})

    def record_successes(self, request_type: str, samples: Any, wall: float) -> None:
        """A message's successes at once from the direct path (users.sample_sink): what :meth:`on_request` does with
        each (a meter called once per sample would charge its own calls to the generator's CPU per round trip)."""
        if not self.recording:
            return
        self.total_samples += len(samples)
        if request_type != self.req_type:
            return
        for name, response_time, _stages, intended_ms in samples:
            if name == self.name:
                self.count += 1
                self.times.append(response_time)
                if intended_ms is not None:
                    self.intended.append(intended_ms)

    def _role(self) -> str:
        r = self.env.runner
        return "master" if isinstance(r, MasterRunner) else "worker" if isinstance(r, WorkerRunner) else "local"

    def _run(self) -> None:
        proc = psutil.Process()
        # spawning may outlast 10 minutes (scale bench: 12,500 users a process at 15/s is 833 s): wait as long as the
        # run allows for it (BENCH_SPAWN_ALLOWANCE, set by bench.common.run_locust)
        allowance = float(os.environ.get("BENCH_SPAWN_ALLOWANCE", "0") or 0)
        deadline = time.monotonic() + max(600.0, allowance + 60.0)
        while time.monotonic() < deadline:
            r = self.env.runner
            if r is not None and r.state == STATE_RUNNING:
                break
            gevent.sleep(0.05)
        else:
            logger.error("bench meter: the runner never reached 'running'")
            return
        if self.wait_connected:  # scale bench: every session open (or failed) before the warm-up starts
            # -1: as many as this process runs users (a worker's share of a distributed run)
            want = self.wait_connected if self.wait_connected > 0 else getattr(self.env.runner, "user_count", 0)
            deadline = time.monotonic() + max(300.0, allowance)
            while self.connects_ok + self.connects_failed < want and time.monotonic() < deadline:
                gevent.sleep(0.1)
        gevent.sleep(self.warmup)
        g0 = _greenlets()  # walks the heap: keep this pause out of the measured window
        gevent.sleep(1.0)
        rss0, cpu0, t0, wall0 = proc.memory_info().rss, _cpu(), time.perf_counter(), time.time()
        connected0 = self.connects_ok
        self.recording = True
        gevent.sleep(self.window)
        self.recording = False
        cpu1, t1 = _cpu(), time.perf_counter()
        g1, rss1 = _greenlets(), proc.memory_info().rss
        secs = t1 - t0
        self.times.sort()
        self.intended.sort()
        r = self.env.runner
        out = {
            "role": self._role(), "pid": os.getpid(), "seconds": secs, "wall_start": wall0, "wall_end": time.time(), "users": getattr(r, "user_count", 0),
            "metric": f"{self.req_type} {self.name}", "count": self.count, "failures": self.failures,
            "rate": self.count / secs, "samples_all_metrics": self.total_samples,
            "cpu_s": cpu1 - cpu0, "cpu_share": (cpu1 - cpu0) / secs,
            "cpu_us_per_rt": (cpu1 - cpu0) / self.count * 1e6 if self.count else None,
            "connects_ok_at_start": connected0, "connects_ok_at_end": self.connects_ok,
            "connects_failed": self.connects_failed, "rss_init": self.rss_init, "rss_start": rss0, "rss_end": rss1, "greenlets_start": g0, "greenlets_end": g1,
            "p50_ms": percentile(self.times, 50), "p99_ms": percentile(self.times, 99),
            "max_ms": self.times[-1] if self.times else None,
            "intended_p50_ms": percentile(self.intended, 50), "intended_p99_ms": percentile(self.intended, 99),
            "intended_count": len(self.intended),
            "gc_collections": len(self.gc_pauses), "gc_pause_total_ms": sum(self.gc_pauses),
            "gc_pause_max_ms": max(self.gc_pauses, default=0.0),
        }
        if os.environ.get("BENCH_METER_RAW") == "1":  # the raw samples, for exact percentiles over processes
            out["times"] = self.times
        if self.trace:
            snap = tracemalloc.take_snapshot()
            out["tracemalloc_top"] = [
                {"where": str(st.traceback[0]), "kib": st.size / 1024, "count": st.count}
                for st in snap.statistics("lineno")[:25]]
            out["tracemalloc_total_kib"] = sum(st.size for st in snap.statistics("filename")) / 1024
        os.makedirs(self.out_dir, exist_ok=True)
        path = os.path.join(self.out_dir, f"{out['role']}-{os.getpid()}.json")
        with open(path, "wb") as f:
            f.write(orjson.dumps(out))
        logger.info("bench meter: wrote %s", path)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    raise_fd_limit()
    out_dir = os.environ.get("BENCH_METER_DIR")
    if not out_dir:
        logger.warning("bench meter loaded without BENCH_METER_DIR: not measuring")
        return
    environment.bench_meter = BenchMeter(  # type: ignore[attr-defined]
        environment, out_dir, float(os.environ.get("BENCH_WARMUP", "2")), float(os.environ.get("BENCH_WINDOW", "10")),
        os.environ.get("BENCH_METER_TYPE", "WS"), os.environ.get("BENCH_METER_NAME", "agent_completed"))
