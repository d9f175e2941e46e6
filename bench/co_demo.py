"""Coordinated omission, shown: closed vs open model p99 when the server stalls for 2 s.

The bench server answers after D = 50 ms, and stalls every reply for 2 s once, inside the measured window. The same
rate (400 messages/s) is driven twice with ``ChatUser``:

* closed model (20 users, no think time, one message in flight each: 20 / 50 ms = 400/s): during the stall each user
  waits for its one message and sends nothing else, so only ~20 samples see the stall and the p99 hides it;
* open model (``--ws-arrival-rate 400``): messages keep being sent on schedule during the stall, and each one's
  latency is also recorded from its *intended* send time (``context["intended_ms"]``), so the corrected p99
  shows the stall.

Usage::

    python -m bench co [--quick]
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from bench.common import BenchServer, bench_main, chat_user_available, run_locust, save

logger = logging.getLogger(__name__)

DELAY_S = 0.05
RATE = 400
STALL_AT_S = 11.0
STALL_S = 2.0


def run(quick: bool = False) -> dict[str, Any]:
    if not chat_user_available():  # the check includes the --ws-arrival-rate option
        res = {"status": "pending", "reason": "ChatUser with --ws-arrival-rate (open model) is not loadable yet"}
        save("co_demo", res)
        return res
    users = round(RATE * DELAY_S)
    window = 14.0
    res: dict[str, Any] = {"status": "measured", "rate": RATE, "delay_ms": DELAY_S * 1000, "stall_s": STALL_S}
    # open model: plain ChatUser with a think time, so its (idle) task loop does not spin while the driver sends
    for label, cls, extra in (("closed", "BenchChatUser", []),
                              ("open", "ChatUser", ["--ws-arrival-rate", str(RATE), "--ws-think-time", "1"])):
        with BenchServer(delay=DELAY_S, stall_at=STALL_AT_S, stall_for=STALL_S, max_seconds=300) as srv:
            r = run_locust(["bench/chat_bench.py"], srv.url, users, classes=[cls], warmup=2.0,
                           window=window, env={"BENCH_SLA": "1"},
                           extra_args=["--sla-off", "--ws-reply-timeout", "30", *extra])
            stall_start = srv.started_at + STALL_AT_S
        m = r.load[0]
        m["stall_inside_window"] = m["wall_start"] <= stall_start and stall_start + STALL_S <= m["wall_end"]
        res[label] = m
    save("co_demo", res)
    return res


def rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    if res.get("status") != "measured":
        return [("coordinated omission (2 s stall)", "pending: " + res.get("reason", ""),
                 "corrected p99 shows the stall")]
    c, o = res["closed"], res["open"]
    shown = (o.get("intended_p99_ms") or 0) >= 0.5 * STALL_S * 1000 > (c.get("p99_ms") or 0)
    return [
        ("CO demo: closed model p99", f"{c['p99_ms']:.0f} ms ({c['count']} msgs, {c['rate']:.0f}/s, max "
         f"{c['max_ms']:.0f} ms; stall in window: {c['stall_inside_window']})", ""),
        ("CO demo: open model p99 from send", f"{o['p99_ms']:.0f} ms ({o['count']} msgs, {o['rate']:.0f}/s)", ""),
        ("CO demo: open model p99 from intended", "n/a" if o.get("intended_p99_ms") is None
         else f"{o['intended_p99_ms']:.0f} ms (stall in window: {o['stall_inside_window']})",
         f"shows the 2 s stall {'MET' if shown else 'MISSED'}"),
    ]


def main(argv: list[str] | None = None) -> int:
    return bench_main("co_demo", __doc__, run, rows, argv, quick_help="(same length: the stall needs its window)")


if __name__ == "__main__":
    sys.exit(main())
