"""Idle-session cost: N WebSocket sessions with heartbeats from one Locust process.

Opens 1,000 and 10,000 sessions (``--quick``: 200 and 1,000) against the bench server, each pinging every 15 s (ChatUser's default),
and reports the generator's memory per session (RSS once all sessions are open minus RSS before any user was
spawned, divided by N) and the heartbeat round-trip p99 (exact, from the raw samples). Uses ``ChatUser`` (sending
no messages) when it is importable, else ``bench/idle_user.py`` (websocket-client + reader greenlet), and says which.
Goal: ≤ 16 KiB per session, heartbeat p99 < 100 ms at 10,000 sessions.

With ``--sessions N --processes P`` it runs one size instead: N idle sessions from P Locust processes started
together (standalone, N/P users each) against a bench server of P processes listening on one loopback address per 20,000
sessions (127.0.0.1 … 127.0.0.K: each destination address has the ≈ 28,000 ports of the ephemeral range), each
process under its RLIMIT_NOFILE (raised to the hard limit). Memory per session = the processes' summed RSS growth /
N; heartbeat p99 exact over all processes' raw samples. Goal: 100,000 sessions, ≤ 16 KiB each, p99 < 100 ms, no
failed connect. ``--one-process N``: only N sessions from one process (the figure to A/B a memory change by).

Usage::

    python -m bench scale [--quick]
    python -m bench scale --one-process 5000
    python -m bench scale --sessions 100000 --processes 8
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from bench.common import BenchServer, bench_main, chat_user_available, run_locust, save
from bench.locust_meter import percentile

logger = logging.getLogger(__name__)

HEARTBEAT_S = 15.0  # ChatUser's default --ws-heartbeat-interval
SESSIONS_PER_ADDRESS = 20_000  # below the ≈ 28,000 ephemeral ports per destination address
KIB_GOAL = 16


def kernel_limits() -> dict[str, Any]:
    """The kernel's and this process's limits that bound how many connections one machine holds."""
    import resource

    out: dict[str, Any] = {"rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE))}
    for key, path in (("ip_local_port_range", "/proc/sys/net/ipv4/ip_local_port_range"),
                      ("somaxconn", "/proc/sys/net/core/somaxconn"), ("file_max", "/proc/sys/fs/file-max"),
                      ("nr_open", "/proc/sys/fs/nr_open"), ("max_map_count", "/proc/sys/vm/max_map_count"),
                      ("nf_conntrack_max", "/proc/sys/net/netfilter/nf_conntrack_max")):
        try:
            with open(path) as f:
                out[key] = f.read().split()
        except OSError:
            out[key] = None
    return out


def run_many(sessions: int, processes: int) -> dict[str, Any]:
    """``sessions`` idle ChatUser sessions from ``processes`` Locust processes (see the module docstring).

    Each process is a standalone Locust run with its share of the users, started together: a Locust master hands a
    spawn to the workers unevenly when they are busy connecting (one worker got every user in a trial run).
    """
    from concurrent.futures import ThreadPoolExecutor

    hosts = max(1, -(-sessions // SESSIONS_PER_ADDRESS))
    share = -(-sessions // processes)
    spawn_rate = 15  # per process (120/s from 8): at 200/s 2,726 of 50,000 upgrades took > 10 s on 2 cores
    env = {"BENCH_HEARTBEAT_S": str(HEARTBEAT_S), "LOCUST_WS_HEARTBEAT_INTERVAL": str(HEARTBEAT_S), "BENCH_SLA": "1",
           "BENCH_WAIT_CONNECTED": "-1", "BENCH_METER_RAW": "1"}
    with BenchServer(processes=processes, hosts=hosts, max_seconds=share / spawn_rate + 900) as srv:
        env["BENCH_HOSTS"] = ",".join(srv.urls)
        with ThreadPoolExecutor(processes) as pool:
            runs = list(pool.map(lambda _: run_locust(
                ["bench/chat_bench.py"], srv.url, share, classes=["IdleChatUser"], spawn_rate=spawn_rate,
                warmup=10.0, window=HEARTBEAT_S, meter_name="heartbeat", env=env,
                spawn_allowance=share / spawn_rate + 60), range(processes)))
    load = [m for r in runs for m in r.load]
    exit_codes = [c for r in runs for c in r.exit_codes]
    tail = runs[0].log_tail if runs else ""
    if not load:
        raise RuntimeError(f"no process measured; log tail:\n{tail[-2500:]}")
    times = sorted(t for m in load for t in m.pop("times", []))
    users = sum(m["users"] for m in load)
    growth = sum(m["rss_start"] - m["rss_init"] for m in load)
    seconds = max(m["seconds"] for m in load)
    m = {"processes": processes, "addresses": hosts, "users": users,
         "sessions": sum(m["connects_ok_at_start"] for m in load),
         "connects_failed": sum(m["connects_failed"] for m in load),
         "count": sum(m["count"] for m in load), "failures": sum(m["failures"] for m in load),
         "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "max_ms": times[-1] if times else None,
         "kib_per_session": growth / max(1, users) / 1024, "seconds": seconds,
         "cpu_share": sum(m["cpu_share"] for m in load),
         "gc_pause_max_ms": max(m.get("gc_pause_max_ms", 0) for m in load),
         "rss_mib_per_worker": [round(m["rss_start"] / 2**20) for m in load],
         "processes_reporting": len(load), "exit_codes": exit_codes}
    m["expected_pings"] = m["sessions"] * seconds / HEARTBEAT_S
    res = {"user": "ChatUser (idle)", "heartbeat_interval_s": HEARTBEAT_S, "limits": kernel_limits(),
           "sizes": {str(sessions): m}}
    save(f"scale-{sessions}", res)
    return res


def run(quick: bool = False, sizes: tuple[int, ...] = ()) -> dict[str, Any]:
    sizes = sizes or ((200, 1000) if quick else (1000, 10000))
    chat = chat_user_available()
    if chat:
        files, classes, user = ["bench/chat_bench.py"], ["IdleChatUser"], "ChatUser (idle)"
    else:
        files, classes, user = ["bench/idle_user.py"], ["IdleWSUser"], "bench idle websocket-client user"
    res: dict[str, Any] = {"user": user, "heartbeat_interval_s": HEARTBEAT_S, "sizes": {}}
    base_env = {"BENCH_HEARTBEAT_S": str(HEARTBEAT_S), "LOCUST_WS_HEARTBEAT_INTERVAL": str(HEARTBEAT_S),
                "BENCH_SLA": "1"}
    for n in sizes:
        env = {**base_env, "BENCH_WAIT_CONNECTED": str(n)}
        spawn_rate = 1000 if n > 1000 else n
        with BenchServer(max_seconds=600) as srv:
            run_ = run_locust(files, srv.url, n, classes=classes, spawn_rate=spawn_rate, warmup=5.0,
                              window=HEARTBEAT_S, meter_name="heartbeat", env=env,
                              spawn_allowance=n / spawn_rate + 60)
        m = run_.load[0]
        m["kib_per_session"] = (m["rss_start"] - m["rss_init"]) / max(1, m["users"]) / 1024
        m["sessions"] = m["connects_ok_at_start"]
        m["expected_pings"] = m["sessions"] * m["seconds"] / HEARTBEAT_S
        res["sizes"][str(n)] = m
    save("scale", res)
    return res


def rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for n, m in res["sizes"].items():
        p99 = m["p99_ms"]
        mem_ok = m["kib_per_session"] <= KIB_GOAL
        p99_ok = p99 is not None and p99 < 100
        where = f"{m['processes']} Locust processes" if m.get("processes") else "one process"
        out.append((f"{int(n):,} idle sessions, {where}",
                    f"{m['kib_per_session']:.1f} KiB/session, heartbeat p99 "
                    f"{'n/a' if p99 is None else f'{p99:.1f} ms'} ({m['count']} pongs of "
                    f"{m['expected_pings']:.0f} due, {m['failures']} failed; {m['sessions']} sessions open, "
                    f"{m['connects_failed']} connects failed; generator CPU {m['cpu_share']:.0%} of a core, "
                    f"longest GC pause {m.get('gc_pause_max_ms', 0):.0f} ms)",
                    f"≤ {KIB_GOAL} KiB {'MET' if mem_ok else 'MISSED'}, p99 < 100 ms {'MET' if p99_ok else 'MISSED'}"
                    + (f", no failed connect {'MET' if not m['connects_failed'] else 'MISSED'}"
                       if m.get("processes") else "")))
    out.append(("  scale user", res["user"], ""))
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import logging

    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--sessions", type=int)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--one-process", type=int, metavar="N",
                    help="N sessions from one process at 1,000 connects/s (the memory A/B of docs/benchmarks.md)")
    a, rest = ap.parse_known_args(argv)
    if a.one_process:
        for fig, val, goal in rows(run(sizes=(a.one_process,))):
            print(f"{fig:<40} {val:<70} {goal}")
        return 0
    if a.sessions:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        for fig, val, goal in rows(run_many(a.sessions, a.processes)):
            print(f"{fig:<40} {val:<70} {goal}")
        return 0
    return bench_main("scale", __doc__, run, rows, rest, quick_help="200 and 1,000 sessions")


if __name__ == "__main__":
    sys.exit(main())
