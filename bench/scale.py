"""Idle-session cost: N WebSocket sessions with heartbeats from one Locust process.

Opens 1,000 and 10,000 sessions (``--quick``: 200 and 1,000) against the bench server, each pinging every 15 s (ChatUser's default),
and reports the generator's memory per session (RSS once all sessions are open minus RSS before any user was
spawned, divided by N) and the heartbeat round-trip p99 (exact, from the raw samples). Uses ``ChatUser`` (sending
no messages) when it is importable, else ``bench/idle_user.py`` (websocket-client + reader greenlet), and says which.
Goal: ≤ 32 KiB per session, heartbeat p99 < 100 ms at 10,000 sessions.

Usage::

    python -m bench scale [--quick]
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from bench.common import BenchServer, bench_main, chat_user_available, run_locust, save

logger = logging.getLogger(__name__)

HEARTBEAT_S = 15.0  # ChatUser's default --ws-heartbeat-interval


def run(quick: bool = False) -> dict[str, Any]:
    sizes = (200, 1000) if quick else (1000, 10000)
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
        mem_ok = m["kib_per_session"] <= 32
        p99_ok = p99 is not None and p99 < 100
        out.append((f"{int(n):,} idle sessions, one process",
                    f"{m['kib_per_session']:.1f} KiB/session, heartbeat p99 "
                    f"{'n/a' if p99 is None else f'{p99:.1f} ms'} ({m['count']} pongs of "
                    f"{m['expected_pings']:.0f} due, {m['failures']} failed; {m['sessions']} sessions open, "
                    f"{m['connects_failed']} connects failed; generator CPU {m['cpu_share']:.0%} of a core, "
                    f"longest GC pause {m.get('gc_pause_max_ms', 0):.0f} ms)",
                    f"≤ 32 KiB {'MET' if mem_ok else 'MISSED'}, p99 < 100 ms {'MET' if p99_ok else 'MISSED'}"))
    out.append(("  scale user", res["user"], ""))
    return out


def main(argv: list[str] | None = None) -> int:
    return bench_main("scale", __doc__, run, rows, argv, quick_help="200 and 1,000 sessions")


if __name__ == "__main__":
    sys.exit(main())
