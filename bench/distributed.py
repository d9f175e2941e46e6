"""Distributed scaling: the same chat load from ``--master`` + 2 ``--worker`` processes vs one process.

50 users, no think time, against the bench server (2 server processes). Reported: the total rate of each setup and
their ratio, CPU µs per round trip of each worker vs the single process (goal: within 10 %), the master's own CPU as
a share of a worker's (goal < 5 %), and the SLA verdict of both runs (``--sla-report-json``; goal: identical).
On this 2-core machine the two workers, the master and the bench server share two cores, so the rate ratio says
little about more machines; the CPU per round trip per worker is the figure that carries over.

Usage::

    python -m bench distributed [--quick]
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from typing import Any

from bench.common import BenchServer, bench_main, chat_user_available, run_locust, save

logger = logging.getLogger(__name__)

USERS = 50


def _verdict(path: str) -> str | None:
    try:
        with open(path) as f:
            return json.load(f).get("verdict")
    except (OSError, ValueError):
        return None


def run(quick: bool = False) -> dict[str, Any]:
    warmup, window = (2.0, 4.0) if quick else (3.0, 10.0)
    chat = chat_user_available()
    files, classes = (["bench/chat_bench.py"], ["BenchChatUser"]) if chat else (["bench/naive_user.py"], None)
    res: dict[str, Any] = {"user": "ChatUser" if chat else "naive user (ChatUser pending)", "users": USERS}
    tmp = tempfile.mkdtemp(prefix="bench-dist-")
    with BenchServer(processes=2, max_seconds=600) as srv:
        for label, workers in (("single", 0), ("distributed", 2)):
            rep = os.path.join(tmp, f"{label}.json")
            extra = ["--sla-report-json", rep, "--sla-profile", "local"] if chat else []
            r = run_locust(files, srv.url, USERS, classes=classes, warmup=warmup, window=window, workers=workers,
                           env={"BENCH_SLA": "1"}, extra_args=extra)
            res[label] = {"meters": r.meters, "rate": r.rate, "exit_codes": r.exit_codes,
                          "sla_verdict": _verdict(rep) if chat else None}
    single = res["single"]["meters"][0]
    workers_ = [m for m in res["distributed"]["meters"] if m["role"] == "worker"]
    master = [m for m in res["distributed"]["meters"] if m["role"] == "master"]
    res["rate_ratio"] = res["distributed"]["rate"] / res["single"]["rate"]
    res["single_cpu_us_per_rt"] = single["cpu_us_per_rt"]
    res["worker_cpu_us_per_rt"] = [w["cpu_us_per_rt"] for w in workers_]
    res["worker_cpu_vs_single"] = [w["cpu_us_per_rt"] / single["cpu_us_per_rt"] - 1 for w in workers_
                                   if w["cpu_us_per_rt"]]
    if master and workers_:
        res["master_cpu_share_of_worker"] = master[0]["cpu_s"] / (sum(w["cpu_s"] for w in workers_) / len(workers_))
    save("distributed", res)
    return res


def rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    dev = res.get("worker_cpu_vs_single", [])
    within = bool(dev) and all(abs(d) <= 0.10 for d in dev)
    m = res.get("master_cpu_share_of_worker")
    v1, v2 = res["single"]["sla_verdict"], res["distributed"]["sla_verdict"]
    out = [
        (f"distributed: 1 process ({res['user']})",
         f"{res['single']['rate']:,.0f} rt/s, {res['single_cpu_us_per_rt']:.0f} µs CPU/rt", ""),
        ("distributed: master + 2 workers",
         f"{res['distributed']['rate']:,.0f} rt/s (ratio {res['rate_ratio']:.2f}), worker µs CPU/rt "
         + ", ".join(f"{x:.0f}" for x in res["worker_cpu_us_per_rt"]), ""),
        ("  worker CPU/rt vs single", ", ".join(f"{d:+.0%}" for d in dev), f"within 10 % {'MET' if within else 'MISSED'}"),
        ("  master CPU / a worker's", "n/a" if m is None else f"{m:.1%}",
         "< 5 % " + ("n/a" if m is None else "MET" if m < 0.05 else "MISSED")),
        ("  SLA verdict single / distributed", f"{v1} / {v2}",
         "identical " + ("MET" if v1 is not None and v1 == v2 else "n/a" if v1 is None else "MISSED")),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    return bench_main("distributed", __doc__, run, rows, argv, quick_help="short windows")


if __name__ == "__main__":
    sys.exit(main())
