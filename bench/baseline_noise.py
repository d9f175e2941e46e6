"""How noisy is the baseline regression gate? One healthy run of the reference backend writes a baseline; the same
healthy backend is then run ``--tries`` more times, each judged against that baseline with the default lines
(``--sla-baseline``: p95/p99 +10 % + 5 ms, rps -10 %). Prints, per try, the verdict, the exit code and each line's
old -> new value, change and confidence; then passes out of N and the spread of the p95 deltas.

    .venv/bin/python bench/baseline_noise.py                        # 10 tries of 10 s, chat + Redis/PG probes
    .venv/bin/python bench/baseline_noise.py --tries 3 --seconds 5 --no-probes

Starts its own reference backend (one uvicorn worker) on loopback; Redis, PostgreSQL and ClickHouse are the machine's
(``scripts/services up``), shared with whatever else runs: a run whose chat replies failed (another session's fault
on a shared tier) is counted and reported as disturbed, not hidden. Every Locust run has a deadline.
Writes the figures as JSON to bench/results/baseline_noise.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS  # noqa: E402
from reference_backend.process import BackendProcess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LOCUST = str(Path(sys.executable).parent / "locust")

PROFILE = """
description = "baseline noise bench: the chat line the gate's defaults follow, and the probed tiers"
[thresholds]
"WS agent_completed" = ["p(95) < 2000", "rps >= 1"]
"WS connect" = ["fail_ratio < 0.01"]
"REDIS *" = ["p(95) < 50"]
"PG *" = ["p(95) < 200"]
"""


def run(backend: BackendProcess, work: Path, name: str, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    cfg = work / "noise.toml"
    cfg.write_text(PROFILE, encoding="utf-8")
    report = work / f"{name}.json"
    users = ["ChatUser"] + ([] if args.no_probes else ["RedisProbeUser", "PostgresProbeUser"])
    cmd = [LOCUST, "-f", str(ROOT / "locustfile.py"), *users, "--headless", "--only-summary",
           "-u", str(args.users + (0 if args.no_probes else 2)), "-r", "50", "-t", f"{args.seconds}s",
           "--host", backend.ws_url, "--ws-think-time", str(args.think), "--sla-config", str(cfg),
           "--sla-report-json", str(report), "--exit-code-on-error", "0", *extra]
    env = {**os.environ, **backend.env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.seconds + 90)
    data = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
    return {"exit_code": proc.returncode, "report": data, "tail": (proc.stdout + proc.stderr)[-1500:]}


def summarise(i: int, result: dict[str, Any]) -> dict[str, Any]:
    report = result["report"]
    section = report.get("regression") or {}
    chat = (report.get("metrics") or {}).get("WS agent_completed") or {}
    lines = section.get("lines") or []
    p95 = next((r for r in lines if r["metric"] == "WS agent_completed" and r["expression"].startswith("p(95)")), {})
    return {
        "try": i,
        "exit_code": result["exit_code"],
        "verdict": report.get("verdict"),
        "failed_lines": [f"{r['metric']} {r['expression']}" for r in lines if r["status"] == "fail"],
        "disturbed": bool(chat.get("failures")),
        "chat_samples": chat.get("count"),
        "p95_old": p95.get("old"),
        "p95_new": p95.get("new"),
        "p95_delta_ms": None if p95.get("new") is None else round(p95["new"] - p95["old"], 1),
        "p95_change_pct": p95.get("change_pct"),
        "p95_confidence": p95.get("confidence"),
        "lines": [{k: r[k] for k in ("metric", "expression", "status", "old", "new", "change_pct", "confidence",
                                     "beyond_line", "samples_old", "samples_new")}
                  for r in lines],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tries", type=int, default=10)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--users", type=int, default=10, help="chat users (default 10)")
    p.add_argument("--think", type=float, default=0.2, help="--ws-think-time (default 0.2 s)")
    p.add_argument("--no-probes", action="store_true", help="chat users only (no Redis/PostgreSQL probe)")
    args = p.parse_args()
    if args.tries < 1 or args.seconds < 2:
        p.error("--tries >= 1 and --seconds >= 2")
    work = Path(tempfile.mkdtemp(prefix="baseline-noise-"))
    started = time.time()
    with BackendProcess.start(work, log_level="warning") as backend:
        base = run(backend, work, "base", args)
        if base["exit_code"] != 0:
            print(f"the baseline run did not pass (exit {base['exit_code']}):\n{base['tail']}", file=sys.stderr)
            return 1
        chat = base["report"]["metrics"]["WS agent_completed"]
        print(f"baseline: {chat['count']} chat replies, p95 {chat['p95']} ms, p99 {chat['p99']} ms, "
              f"{chat['rps']} rps")
        rows = []
        for i in range(1, args.tries + 1):
            row = summarise(i, run(backend, work, f"try{i}", args, "--sla-baseline", str(work / "base.json")))
            rows.append(row)
            worst = max((r for r in row["lines"] if r["confidence"] is not None), key=lambda r: r["confidence"],
                        default=None)
            print(f"try {i:2d}: exit {row['exit_code']} {row['verdict']:<5} chat p95 {row['p95_old']} -> "
                  f"{row['p95_new']} ms ({row['p95_change_pct']:+.1f} %, confidence {row['p95_confidence']})"
                  + (f"; highest confidence: {worst['metric']} {worst['expression']} {worst['confidence']}"
                     if worst else "")
                  + (" DISTURBED (failed replies)" if row["disturbed"] else "")
                  + (f" FAILED: {'; '.join(row['failed_lines'])}" if row["failed_lines"] else ""))
    passes = sum(1 for r in rows if r["exit_code"] == 0)
    deltas = [r["p95_delta_ms"] for r in rows if r["p95_delta_ms"] is not None]
    changes = [r["p95_change_pct"] for r in rows if r["p95_change_pct"] is not None]
    summary = {
        "tries": len(rows),
        "passes": passes,
        "disturbed": sum(1 for r in rows if r["disturbed"]),
        "p95_delta_ms": {"min": min(deltas), "median": statistics.median(deltas), "max": max(deltas)} if deltas else None,
        "p95_change_pct": {"min": min(changes), "max": max(changes)} if changes else None,
        "max_confidence": max((ln["confidence"] or 0.0 for r in rows for ln in r["lines"]), default=None),
        "lines_judged": sum(1 for r in rows for ln in r["lines"] if ln["confidence"] is not None),
        "beyond_line_within_noise": sum(1 for r in rows for ln in r["lines"] if ln["beyond_line"]
                                        and ln["status"] == "pass"),
        "seconds": args.seconds, "users": args.users, "think_s": args.think, "probes": not args.no_probes,
        "loadavg": list(os.getloadavg()), "wall_s": round(time.time() - started, 1),
        "baseline": {"p95": chat["p95"], "p99": chat["p99"], "count": chat["count"], "rps": chat["rps"]},
        "rows": rows,
    }
    print(f"passes: {passes} of {len(rows)}; chat p95 deltas (ms): {sorted(deltas)}; disturbed runs: "
          f"{summary['disturbed']}; lines beyond the line by their point value but within noise: "
          f"{summary['beyond_line_within_noise']} of {summary['lines_judged']}; highest confidence "
          f"{summary['max_confidence']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "baseline_noise.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if passes == len(rows) else 3


if __name__ == "__main__":
    sys.exit(main())
