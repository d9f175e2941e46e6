"""Optional peer row: Artillery's built-in ``ws`` engine against the same bench server (needs Node.js).

Artillery is installed on first use into ``bench/.node`` (gitignored) with
``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install artillery`` (bounded; skipped cleanly when Node.js or the install
is missing). 50 virtual users each loop: ``send`` a ``user_message`` capturing the first reply frame, then four
``wait`` steps capturing the other four (Artillery JSON-parses each frame it captures), so one loop is one round
trip with every frame parsed, like the Python clients. The rate is the bench server's count of answered messages; the CPU is the
Node.js process tree's (psutil), so µs per round trip compares with the Python clients' on the same run.

Usage::

    python -m bench artillery [--quick]
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import ROOT, BenchServer, bench_main, save, stop_process

logger = logging.getLogger(__name__)

NODE_DIR = ROOT / "bench" / ".node"
ARTILLERY = NODE_DIR / "node_modules" / ".bin" / "artillery"
VUS = 50

SCENARIO = """\
config:
  target: "{url}"
  phases:
    - duration: 1
      arrivalCount: {vus}
  ws:
    subprotocols: ["jwt-auth.bench-token"]
scenarios:
  - engine: ws
    flow:
      - loop:
          - send:
              payload: '{{"type": "user_message", "payload": {{"content": "How can I lower the cost per request of my pipeline?", "thread_id": "{{{{ $uuid }}}}", "correlation_id": "{{{{ $uuid }}}}"}}}}'
              capture:
                json: "$.type"
                as: "t"
          - wait:
              capture: {{json: "$.type", as: "t"}}
          - wait:
              capture: {{json: "$.type", as: "t"}}
          - wait:
              capture: {{json: "$.type", as: "t"}}
          - wait:
              capture: {{json: "$.type", as: "t"}}
        whileTrue: "always"
"""

HOOK = "module.exports = { always: (ctx, next) => next(true) };\n"


def ensure_artillery(allow_install: bool) -> str | None:
    """None when Artillery is ready, else the reason it is not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js/npm not installed"
    if ARTILLERY.exists():
        return None
    if not allow_install:
        return "Artillery not installed in bench/.node (run `python -m bench artillery` once)"
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    try:
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR), "artillery"],
                           cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=420)
    except subprocess.TimeoutExpired:
        return "npm install artillery took over 7 minutes"
    if r.returncode != 0 or not ARTILLERY.exists():
        return f"npm install artillery failed: {r.stderr.strip()[-200:]}"
    return None


def _tree_cpu(p: psutil.Process) -> float:
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = q.cpu_times()
            total += t.user + t.system
    return total


def run(quick: bool = False) -> dict[str, Any]:
    reason = ensure_artillery(allow_install=not quick)
    if reason:
        res = {"status": "skipped", "reason": reason}
        save("artillery", res)
        return res
    warmup, window = (3.0, 4.0) if quick else (4.0, 10.0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-art-"))
    stats = str(tmp / "server")
    with BenchServer(max_seconds=300, stats_file=stats) as srv:
        (tmp / "hooks.js").write_text(HOOK)
        (tmp / "s.yml").write_text(SCENARIO.format(url=srv.url, vus=VUS).replace(
            "config:\n", "config:\n  processor: \"./hooks.js\"\n", 1))
        env = dict(os.environ, ARTILLERY_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
        with open(tmp / "artillery.log", "wb") as log:
            p = subprocess.Popen([str(ARTILLERY), "run", "--quiet", str(tmp / "s.yml")], cwd=tmp, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            proc = psutil.Process(p.pid)
            time.sleep(warmup)
            m0, c0, t0 = _server_messages(srv), _tree_cpu(proc), time.perf_counter()
            time.sleep(window)
            m1, c1, t1 = _server_messages(srv), _tree_cpu(proc), time.perf_counter()
        finally:
            stop_process(p)
    n = m1 - m0
    res = {"status": "measured" if n > 0 else "failed", "vus": VUS, "round_trips": n, "seconds": t1 - t0,
           "rate": n / (t1 - t0), "cpu_s": c1 - c0, "cpu_us_per_rt": (c1 - c0) / n * 1e6 if n else None,
           "log": str(tmp / "artillery.log")}
    save("artillery", res)
    return res


def _server_messages(srv: BenchServer) -> int:
    """Messages the bench server answered so far (SIGUSR1 makes each server process write its counters)."""
    for pid in srv.pids:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{srv.stats_file}.{pid}")
        os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    total = 0
    for pid in srv.pids:
        path = Path(f"{srv.stats_file}.{pid}")
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError, ValueError):
            total += json.loads(path.read_text())["messages"]
    return total


def rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    if res.get("status") != "measured":
        return [("peer: Artillery ws engine", f"{res.get('status')}: {res.get('reason', res.get('log', ''))}", "")]
    return [("peer: Artillery ws engine (50 VUs)",
             f"{res['rate']:,.0f} rt/s, {res['cpu_us_per_rt']:.0f} µs CPU/rt (send + 4 waits: all 5 frames JSON.parse'd)", "")]


def main(argv: list[str] | None = None) -> int:
    return bench_main("artillery_peer", __doc__, run, rows, argv, quick_help="short window; no install attempt")


if __name__ == "__main__":
    sys.exit(main())
