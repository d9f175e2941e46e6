"""Shared plumbing of the benchmarks: the bench server as a subprocess, Locust runs with the meter, results files.

Everything here is bounded in time: every subprocess has a deadline and is killed (by its own pid) when it passes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "bench" / "results")  # tests point it elsewhere
PY = sys.executable
# the bench server does not verify tokens; ChatUser still needs a secret to mint them
BENCH_JWT_SECRET = "bench-only-secret-not-used-for-anything-else"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("JWT_SECRET_KEY", BENCH_JWT_SECRET)
    env.setdefault("LOCUST_WS_THINK_TIME", "0")  # ChatUser: next message as soon as the reply completed
    env.update(extra)
    return env


def stop_process(p: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; only this process (by pid)."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait(5)


def proc_cpu(pids: list[int]) -> float:
    """Summed user+system CPU seconds of these pids (0 for ones already gone)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


@dataclass
class BenchServer:
    """``python -m bench.fast_server`` as a subprocess."""

    processes: int = 1
    hosts: int = 1
    """Loopback addresses to listen on (127.0.0.1 … 127.0.0.N, same port): more client connections than the
    ephemeral port range has ports."""
    delay: float = 0.0
    stall_at: float | None = None
    stall_for: float = 2.0
    max_seconds: float = 600.0
    stats_file: str | None = None
    started_at: float = 0.0
    port: int = 0
    pids: list[int] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def urls(self) -> list[str]:
        """One URL per listening address."""
        return [f"ws://127.0.0.{i + 1}:{self.port}/ws" for i in range(self.hosts)]

    def start(self) -> BenchServer:
        cmd = [PY, "-m", "bench.fast_server", "--processes", str(self.processes), "--hosts", str(self.hosts),
               "--delay", str(self.delay),
               "--max-seconds", str(self.max_seconds), "--stall-for", str(self.stall_for)]
        if self.stall_at is not None:
            cmd += ["--stall-at", str(self.stall_at)]
        if self.stats_file:
            cmd += ["--stats-file", self.stats_file]
        self.started_at = time.time()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY"):
                parts = dict(kv.split("=") for kv in line.split()[1:])
                self.port = int(parts["port"])
                self.pids = [int(x) for x in parts["pids"].split(",")]
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError("bench server did not start (no READY line within 30 s)")

    def cpu(self) -> float:
        return proc_cpu(self.pids)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def stats(self) -> list[dict[str, Any]]:
        """Per-process stats written at stop (needs ``stats_file``); call after :meth:`stop`."""
        if not self.stats_file:
            return []
        p = Path(self.stats_file)
        return [json.loads(f.read_text()) for f in sorted(p.parent.glob(p.name + ".*"))]

    def __enter__(self) -> BenchServer:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


def run_raw_client(url: str, client: str, connections: int, warmup: float, duration: float) -> dict[str, Any]:
    cmd = [PY, "-m", "bench.raw_clients", "--url", url, "--client", client, "--connections", str(connections),
           "--warmup", str(warmup), "--duration", str(duration)]
    r = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True,
                       timeout=warmup + duration + 60)
    if r.returncode != 0:
        raise RuntimeError(f"raw client {client} failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


@dataclass
class LocustRun:
    """Result of one metered Locust run: the meter JSON of each process, exit codes, log tails."""

    meters: list[dict[str, Any]]
    exit_codes: list[int]
    log_tail: str
    wall_s: float
    log_head: str = ""
    """The first lines of each process's log (its startup: what the locustfile's import and ``init`` logged)."""

    def role(self, role: str) -> list[dict[str, Any]]:
        return [m for m in self.meters if m["role"] == role]

    @property
    def load(self) -> list[dict[str, Any]]:
        """Meters of the processes that ran users (local or workers)."""
        return [m for m in self.meters if m["role"] != "master"]

    @property
    def rate(self) -> float:
        return sum(m["rate"] for m in self.load)


def run_locust(locustfiles: list[str], host: str, users: int, *, classes: list[str] | None = None,
               spawn_rate: float | None = None, warmup: float = 2.0, window: float = 10.0,
               workers: int = 0, extra_args: list[str] | None = None, env: dict[str, str] | None = None,
               meter_name: str = "agent_completed", spawn_allowance: float | None = None,
               profile_to: str | None = None) -> LocustRun:
    """Run Locust headless (standalone, or master + ``workers`` workers) with the bench meter loaded.

    The run time covers spawning (``spawn_allowance``, default users/spawn_rate + 3 s), the warm-up and the
    window, plus 2 s; every process is killed if it outlives that by 60 s.
    """
    spawn_rate = spawn_rate or max(users, 1)
    allowance = spawn_allowance if spawn_allowance is not None else users / spawn_rate + 3
    run_time = int(allowance + warmup + window + 2 + 0.999)
    files = ",".join([*locustfiles, "bench/locust_meter.py"])
    meter_dir = tempfile.mkdtemp(prefix="bench-meter-")
    e = child_env(BENCH_METER_DIR=meter_dir, BENCH_WARMUP=str(warmup), BENCH_WINDOW=str(window),
                  BENCH_METER_NAME=meter_name, BENCH_SPAWN_ALLOWANCE=f"{allowance:g}", **(env or {}))
    common = ["-f", files, "--host", host, *(extra_args or []), *(classes or [])]
    logs = [tempfile.NamedTemporaryFile(prefix="bench-locust-", suffix=".log", delete=False) for _ in
            range(1 + workers)]
    procs: list[subprocess.Popen[bytes]] = []
    head = [PY, "-m", "locust"]
    if profile_to:
        spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
        head = [spy, "record", "-r", "200", "-f", "raw", "-o", profile_to, "--", PY, "-m", "locust"]
    t0 = time.monotonic()
    try:
        if workers == 0:
            procs.append(subprocess.Popen(
                [*head, "--headless", "-u", str(users), "-r", str(spawn_rate), "-t", f"{run_time}s",
                 "--stop-timeout", "3", "--only-summary", *common],
                cwd=ROOT, env=e, stdout=logs[0], stderr=subprocess.STDOUT))
        else:
            mport = free_port()
            procs.append(subprocess.Popen(
                [PY, "-m", "locust", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(mport),
                 "--expect-workers", str(workers), "--headless", "-u", str(users), "-r", str(spawn_rate),
                 "-t", f"{run_time}s", "--stop-timeout", "3", "--only-summary", *common],
                cwd=ROOT, env=e, stdout=logs[0], stderr=subprocess.STDOUT))
            for i in range(workers):
                procs.append(subprocess.Popen(
                    [PY, "-m", "locust", "--worker", "--master-host", "127.0.0.1", "--master-port", str(mport),
                     *common], cwd=ROOT, env=e, stdout=logs[1 + i], stderr=subprocess.STDOUT))
        deadline = time.monotonic() + run_time + 60
        codes = []
        for p in procs:
            try:
                codes.append(p.wait(max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                stop_process(p)
                codes.append(-9)
    finally:
        for p in procs:
            stop_process(p)
    wall = time.monotonic() - t0
    tail = head = ""
    for lf in logs:
        lf.close()
        text = Path(lf.name).read_text(errors="replace")
        tail += text[-3000:]
        head += text[:3000]
        os.unlink(lf.name)
    meters = []
    for f in sorted(Path(meter_dir).glob("*.json")):
        meters.append(json.loads(f.read_text()))
    shutil.rmtree(meter_dir, ignore_errors=True)
    if not meters:
        raise RuntimeError(f"Locust run produced no measurements; log tail:\n{tail[-2000:]}")
    return LocustRun(meters, codes, tail, wall, head)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_avg_1m": os.getloadavg()[0]}


SUFFIX = ""
"""Appended to result file names; ``python -m bench ... --quick`` sets ``-quick`` so a smoke never overwrites the
figures of a full run."""


def save(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name><SUFFIX>.json`` (gitignored) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}{SUFFIX}.json"
    data = {"bench": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **data}
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


_CHAT_OK: bool | None = None
_OPTIONS_CHECK = (
    "import locust, sys\n"
    "import bench.chat_bench\n"
    "from locust.argument_parser import get_parser\n"
    "p = get_parser()\n"
    "print(' '.join(o for a in p._actions for o in a.option_strings))\n"
)


def chat_user_available() -> bool:
    """True when Locust can load ``users.chat.ChatUser`` through ``bench/chat_bench.py`` (checked once).

    The chat user is written in parallel; until it loads, the benches fall back to their stand-ins and say so.
    """
    global _CHAT_OK
    if _CHAT_OK is None:
        r = subprocess.run([PY, "-m", "locust", "-f", "bench/chat_bench.py", "--list"], cwd=ROOT, env=child_env(),
                           capture_output=True, text=True, timeout=60)
        _CHAT_OK = r.returncode == 0 and "BenchChatUser" in r.stdout
        if _CHAT_OK:  # its options must register too (a listener error is only logged by Locust)
            r = subprocess.run([PY, "-c", _OPTIONS_CHECK], cwd=ROOT, env=child_env(), capture_output=True,
                               text=True, timeout=60)
            _CHAT_OK = r.returncode == 0 and "--ws-think-time" in r.stdout and "--ws-arrival-rate" in r.stdout \
                and "Traceback" not in r.stderr
        if not _CHAT_OK:
            logger.warning("ChatUser is not loadable yet, using stand-ins: %s", (r.stderr or r.stdout)[-300:])
    return _CHAT_OK


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    t = time.monotonic()
    yield
    logger.info("%s took %.1f s", label, time.monotonic() - t)


def bench_main(module: str, doc: str | None, run: Any, rows: Any, argv: list[str] | None,
               quick_help: str = "short windows") -> int:
    """The command line of one benchmark module: ``python -m bench.<module> [--quick]`` prints its table rows."""
    import argparse

    ap = argparse.ArgumentParser(prog=f"python -m bench.{module}", description=(doc or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for fig, val, goal in rows(run(a.quick)):
        print(f"{fig:<40} {val:<70} {goal}")
    return 0
