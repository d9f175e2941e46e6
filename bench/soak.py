"""Soak stability of the generator: ``ChatUser`` against the reference backend for 20 minutes (configurable).

Starts ``python -m reference_backend`` on a free loopback port (needs the Redis/PostgreSQL/ClickHouse services:
``scripts/services up``), runs ``locust --headless`` with ``ChatUser`` (default think time, heartbeats on, the SLA
plug-in on with the ``soak`` profile) and the soak sampler, then reports, after a warm-up (the first 20 % of the
run, at least 1 minute, at most 5 minutes):

* generator RSS growth from the end of the warm-up to the end (goal < 10 %), and the trend of the last half;
* open file descriptors, TCP connections and live greenlets: after warm-up vs end vs max (goal: no growth);
* messages completed and failed.

Not part of CI or ``python -m bench all``: it is long by design.

Usage::

    python -m bench soak                 # 20 minutes, 20 users
    python -m bench.soak --minutes 3 --users 10
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import PY, ROOT, child_env, free_port, save, stop_process

logger = logging.getLogger(__name__)


def start_backend(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as f:
        p = subprocess.Popen([PY, "-m", "reference_backend", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                             stdout=f, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"reference backend exited with {p.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return p
        except OSError:
            time.sleep(0.5)
    stop_process(p)
    raise RuntimeError(f"reference backend did not answer /health within 60 s; see {log}")


def analyse(samples: list[dict[str, Any]], minutes: float) -> dict[str, Any]:
    """Growth figures from the sampler's time series (pure)."""
    if len(samples) < 3:
        return {"error": f"only {len(samples)} samples"}
    warm = min(max(0.2 * minutes * 60, 60.0), 300.0)
    after = [s for s in samples if s["t"] >= warm] or samples[-2:]
    base, end = after[0], after[-1]
    half = [s for s in after if s["t"] >= (base["t"] + end["t"]) / 2] or [end]

    def growth(key: str) -> float:
        return (end[key] - base[key]) / base[key] if base[key] else 0.0

    return {
        "warmup_s": warm, "samples": len(samples), "duration_s": samples[-1]["t"],
        "rss_after_warmup": base["rss"], "rss_end": end["rss"], "rss_max": max(s["rss"] for s in after),
        "rss_growth": growth("rss"), "rss_growth_last_half": (end["rss"] - half[0]["rss"]) / half[0]["rss"],
        "fds": [base["fds"], end["fds"], max(s["fds"] for s in after)],
        "tcp": [base["tcp"], end["tcp"], max(s["tcp"] for s in after)],
        "greenlets": [base["greenlets"], end["greenlets"], max(s["greenlets"] for s in after)],
        "completed": end["completed"], "failures": end["failures"], "users": end["users"],
    }


def run(minutes: float = 20.0, users: int = 20, sample_s: float | None = None) -> dict[str, Any]:
    sample_s = sample_s or (30.0 if minutes >= 5 else 5.0)
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    env = child_env(JWT_SECRET_KEY=secrets.token_urlsafe(32), TARGET_ADMIN_TOKEN=secrets.token_urlsafe(16),
                    SOAK_OUT=str(tmp / "samples.jsonl"), SOAK_SAMPLE_S=str(sample_s))
    env.pop("LOCUST_WS_THINK_TIME", None)  # the soak uses ChatUser's default think time
    backend = start_backend(port, env, tmp / "backend.log")
    try:
        cmd = [PY, "-m", "locust", "-f", "locustfile.py,bench/soak_sampler.py", "--headless", "-u", str(users),
               "-r", str(max(1, users // 5)), "-t", f"{int(minutes * 60)}s", "--stop-timeout", "10",
               "--only-summary", "--host", f"ws://127.0.0.1:{port}", "--sla-profile", "soak", "ChatUser"]
        with open(tmp / "locust.log", "wb") as f:
            r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=minutes * 60 + 120)
    finally:
        stop_process(backend)
    lines = (tmp / "samples.jsonl").read_text().splitlines() if (tmp / "samples.jsonl").exists() else []
    samples = [json.loads(x) for x in lines]
    res = {"minutes": minutes, "users": users, "exit_code": r.returncode, "logs": str(tmp),
           **analyse(samples, minutes), "series": samples}
    save("soak", res)
    return res


def report(res: dict[str, Any]) -> str:
    if "error" in res:
        return f"soak: {res['error']} (logs in {res.get('logs')})"
    mib = 1 / (1 << 20)
    ok = res["rss_growth"] < 0.10
    return "\n".join([
        f"soak {res['minutes']:g} min, {res['users']} ChatUsers vs the reference backend (logs {res['logs']})",
        f"  messages completed {res['completed']:,}, failed {res['failures']:,}; locust exit code {res['exit_code']}",
        f"  RSS after {res['warmup_s']:.0f} s warm-up {res['rss_after_warmup'] * mib:.1f} MiB → end "
        f"{res['rss_end'] * mib:.1f} MiB (max {res['rss_max'] * mib:.1f}): growth {res['rss_growth']:+.1%} "
        f"(last half {res['rss_growth_last_half']:+.1%})  goal < 10 % {'MET' if ok else 'MISSED'}",
        f"  fds after warm-up/end/max {res['fds']}, TCP {res['tcp']}, greenlets {res['greenlets']}",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="duration (default 20)")
    ap.add_argument("--users", type=int, default=20, help="chat users (default 20)")
    ap.add_argument("--sample-s", type=float, default=None, help="sampling period (default 30 s, 5 s under 5 min)")
    a = ap.parse_args(argv)
    if a.minutes <= 0 or a.users < 1:
        print("error: --minutes must be > 0 and --users >= 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    res = run(a.minutes, a.users, a.sample_s)
    print(report(res))
    return 0 if "error" not in res else 1


if __name__ == "__main__":
    sys.exit(main())
