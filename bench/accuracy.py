"""Accuracy: does the generator report the latency the server really had?

The bench server holds every reply for exactly D = 250 ms (timer in the server's event loop, from the message's
arrival to the write of the five frames). The generator sends 50 % and 80 % of its own maximum rate with
``ChatUser``'s open model (``--ws-arrival-rate``, 100 connections: the rate is exact whatever the latency; without
``ChatUser`` a closed load of users = rate × D with the naive user); the measured ``WS agent_completed`` p50 and p99 (exact, from the raw samples) are
compared with D. Goal: p50 within 1 ms and p99 within 5 ms of D at both loads. The error printed is measured − D
(it includes loopback and the server's timer slack, so it is an upper bound of the generator's error); the server
also reports the hold time it really applied (its event loop's timers fire up to ≈ 1 ms late), printed beside it.

The generator's maximum rate comes from the overhead bench (``bench/results/overhead.json``) when present, else from
a short measurement here.

Usage::

    python -m bench accuracy [--quick]
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from typing import Any

from bench import common
from bench.common import RESULTS, BenchServer, bench_main, chat_user_available, run_locust, save
from config.arrival import MAX_RATE

logger = logging.getLogger(__name__)

DELAY_S = 0.250
OPEN_USERS = 100


def max_rate(chat: bool, files: list[str], classes: list[str] | None, quick: bool) -> tuple[float, str]:
    """The generator's max round trips/s with this user class (overhead result, or a 3 s measurement)."""
    try:
        prev = json.loads((RESULTS / f"overhead{common.SUFFIX}.json").read_text())
        r = prev["chat"]["rate"] if chat else prev["naive"]["rate"]
        if r:
            return float(r), f"bench/results/overhead{common.SUFFIX}.json"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with BenchServer(max_seconds=120) as srv:
        run_ = run_locust(files, srv.url, 50, classes=classes, warmup=1.0, window=3.0)
    return run_.rate, "measured here (3 s)"


def target_rate(peak: float, share: float, chat: bool) -> tuple[float, bool]:
    """The load for ``share`` of ``peak``, and whether it was capped: the open model schedules at most
    :data:`config.arrival.MAX_RATE` messages/s (``--ws-arrival-rate`` refuses more), which 80 % of a fast machine's
    closed-model maximum can exceed; the row then says so and gives the share it reached."""
    target = peak * share
    if chat and target > MAX_RATE:
        return MAX_RATE, True
    return target, False


def run(quick: bool = False) -> dict[str, Any]:
    chat = chat_user_available()
    files, classes = (["bench/chat_bench.py"], ["BenchChatUser"]) if chat else (["bench/naive_user.py"], None)
    peak, source = max_rate(chat, files, classes, quick)
    res: dict[str, Any] = {"user": "ChatUser" if chat else "naive user (ChatUser pending)", "delay_ms": DELAY_S * 1000,
                           "max_rate": peak, "max_rate_source": source, "loads": {}}
    warmup, window = (2.0, 5.0) if quick else (3.0, 12.0)
    res["model"] = "open (--ws-arrival-rate, 100 connections)" if chat else "closed (users = rate × D)"
    for share in (0.5, 0.8):
        target, capped = target_rate(peak, share, chat)
        if chat:  # the open model sends exactly the target rate whatever the latency
            users, cls = OPEN_USERS, ["ChatUser"]
            extra = ["--sla-off", "--ws-arrival-rate", f"{target:.0f}", "--ws-think-time", "1"]
        else:
            users, cls, extra = max(1, round(target * DELAY_S)), classes, []
        stats = os.path.join(tempfile.mkdtemp(prefix="bench-acc-"), "server")
        with BenchServer(delay=DELAY_S, max_seconds=300, stats_file=stats) as srv:
            r = run_locust(files, srv.url, users, classes=cls, warmup=warmup, window=window,
                           spawn_rate=min(users, 1000), env={"BENCH_SLA": "1"}, extra_args=extra)
        m = r.load[0]
        srv_stats = srv.stats()
        m["server_hold_p50_ms"] = srv_stats[0]["hold_p50_ms"] if srv_stats else None
        m["server_hold_p99_ms"] = srv_stats[0]["hold_p99_ms"] if srv_stats else None
        m["target_share"] = share
        m["capped_at"] = MAX_RATE if capped else None
        m["achieved_share"] = m["rate"] / peak
        m["p50_error_ms"] = None if m["p50_ms"] is None else m["p50_ms"] - DELAY_S * 1000
        m["p99_error_ms"] = None if m["p99_ms"] is None else m["p99_ms"] - DELAY_S * 1000
        res["loads"][f"{int(share * 100)}%"] = m
    save("accuracy", res)
    return res


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _capped(limit: float | None) -> str:
    return "" if not limit else f" (capped at the open model limit of {limit:,.0f}/s)"


def rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for label, m in res["loads"].items():
        e50, e99 = m["p50_error_ms"], m["p99_error_ms"]
        ok50 = e50 is not None and abs(e50) <= 1
        ok99 = e99 is not None and abs(e99) <= 5
        out.append((f"accuracy D=250 ms at {label} of max",
                    f"p50 {m['p50_ms']:.2f} ms (err {e50:+.2f}), p99 {m['p99_ms']:.2f} ms (err {e99:+.2f}); "
                    f"{m['users']} conns, {m['rate']:,.0f} rt/s = {m['achieved_share']:.0%} of max"
                    f"{_capped(m.get('capped_at'))}; server's "
                    f"actual hold p50 {_f(m.get('server_hold_p50_ms'))} / p99 {_f(m.get('server_hold_p99_ms'))} ms",
                    f"p50 ±1 ms {'MET' if ok50 else 'MISSED'}, p99 ±5 ms {'MET' if ok99 else 'MISSED'}"))
    out.append(("  accuracy user / max rate", f"{res['user']}, {res.get('model', 'closed')}, max "
                f"{res['max_rate']:,.0f} rt/s ({res['max_rate_source']})", ""))
    return out


def main(argv: list[str] | None = None) -> int:
    return bench_main("accuracy", __doc__, run, rows, argv, quick_help="short windows")


if __name__ == "__main__":
    sys.exit(main())
