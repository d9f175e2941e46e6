"""Accuracy: does the generator report the latency the server really had?

The bench server holds every reply for exactly D = 250 ms (timer in the server's event loop, from the message's
arrival to the write of the five frames). The generator sends 50 % and 80 % of its own maximum rate with
``ChatUser``'s open model (``--ws-arrival-rate``, 100 connections: the rate is exact whatever the latency; without
``ChatUser`` a closed load of users = rate × D with the naive user); the measured ``WS agent_completed`` p50 and p99
(exact, from the raw samples) are compared with D. Goal: p50 within 1 ms and p99 within 5 ms of D at both loads. The
error printed is measured − D (it includes loopback and the server's timer slack, so it is an upper bound of the
generator's error); the server also reports the hold time it really applied (its event loop's timers fire up to
≈ 1 ms late), printed beside it.

**Which maximum.** The open model does more per message than the closed one the overhead bench measures (an
arrival schedule, the send time it intended, two more samples: ``generator lag`` and ``agent_completed
(intended)``, replies of 250 ms instead of ≈ 0), so it costs ≈ 1.2–1.4× the CPU per round trip, and 80 % of the
closed model's maximum overloads it: its sends lag their schedule and the p99 measures the overload (the suite
warns of exactly that in a real run). The maximum here is therefore the open model's own: one calibration run at
80 % of the closed model's maximum (capped at :data:`config.arrival.MAX_RATE`) measures its CPU per round trip, and
one process's maximum is one core's worth of that (``1 s / CPU per round trip``; at that load the cost per round
trip is at its lowest, so the maximum is the highest estimate). Both maxima are printed. The closed model's
maximum comes from the overhead bench (``bench/results/overhead.json``) when present, else from a short
measurement here.

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


def open_max(rate: float, cpu_us_per_rt: float | None) -> float:
    """The open model's maximum (round trips/s of one process): one core's worth of the CPU per round trip measured
    at ``rate``; the rate reached itself when the measurement has no CPU figure."""
    return 1e6 / cpu_us_per_rt if cpu_us_per_rt else rate


def _open_run(srv_url: str, rate: float, warmup: float, window: float) -> Any:
    return run_locust(["bench/chat_bench.py"], srv_url, OPEN_USERS, classes=["ChatUser"], warmup=warmup,
                      window=window, spawn_rate=OPEN_USERS, env={"BENCH_SLA": "1"},
                      extra_args=["--sla-off", "--ws-arrival-rate", f"{rate:.0f}", "--ws-think-time", "1"])


def run(quick: bool = False) -> dict[str, Any]:
    chat = chat_user_available()
    files, classes = (["bench/chat_bench.py"], ["BenchChatUser"]) if chat else (["bench/naive_user.py"], None)
    closed_peak, source = max_rate(chat, files, classes, quick)
    res: dict[str, Any] = {"user": "ChatUser" if chat else "naive user (ChatUser pending)", "delay_ms": DELAY_S * 1000,
                           "max_rate": closed_peak, "max_rate_source": source, "loads": {}}
    warmup, window = (2.0, 5.0) if quick else (3.0, 12.0)
    res["model"] = "open (--ws-arrival-rate, 100 connections)" if chat else "closed (users = rate × D)"
    peak = closed_peak
    if chat:  # the open model's own maximum: its CPU per round trip at 80 % of the closed model's
        probe, _ = target_rate(closed_peak, 0.8, chat)
        with BenchServer(delay=DELAY_S, max_seconds=300) as srv:
            m = _open_run(srv.url, probe, 2.0, 3.0 if quick else 6.0).load[0]
        peak = open_max(m["rate"], m.get("cpu_us_per_rt"))
        res["open_max_rate"] = peak
        res["open_calibration"] = {"target": probe, "rate": m["rate"], "cpu_share": m.get("cpu_share"),
                                   "cpu_us_per_rt": m.get("cpu_us_per_rt")}
    for share in (0.5, 0.8):
        target, capped = target_rate(peak, share, chat)
        stats = os.path.join(tempfile.mkdtemp(prefix="bench-acc-"), "server")
        with BenchServer(delay=DELAY_S, max_seconds=300, stats_file=stats) as srv:
            if chat:  # the open model sends exactly the target rate whatever the latency
                r = _open_run(srv.url, target, warmup, window)
            else:
                users = max(1, round(target * DELAY_S))
                r = run_locust(files, srv.url, users, classes=classes, warmup=warmup, window=window,
                               spawn_rate=min(users, 1000), env={"BENCH_SLA": "1"})
        m = r.load[0]
        srv_stats = srv.stats()  # written when the server stops
        m["server_hold_p50_ms"] = srv_stats[0]["hold_p50_ms"] if srv_stats else None
        m["server_hold_p99_ms"] = srv_stats[0]["hold_p99_ms"] if srv_stats else None
        m["target_share"] = share
        m["capped_at"] = MAX_RATE if capped else None
        m["achieved_share"] = m["rate"] / peak
        m["closed_share"] = m["rate"] / closed_peak if closed_peak else None
        m["p50_error_ms"] = None if m["p50_ms"] is None else m["p50_ms"] - DELAY_S * 1000
        m["p99_error_ms"] = None if m["p99_ms"] is None else m["p99_ms"] - DELAY_S * 1000
        res["loads"][f"{int(share * 100)}%"] = m
    save("accuracy", res)
    return res


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _closed(res: dict[str, Any], m: dict[str, Any]) -> str:
    """What share of the closed model's maximum the load was, when the maximum was the open model's own."""
    share = m.get("closed_share")
    return f" ({share:.0%} of the closed model's)" if res.get("open_calibration") and share else ""


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
                    f"{_capped(m.get('capped_at'))}{_closed(res, m)}; server's "
                    f"actual hold p50 {_f(m.get('server_hold_p50_ms'))} / p99 {_f(m.get('server_hold_p99_ms'))} ms",
                    f"p50 ±1 ms {'MET' if ok50 else 'MISSED'}, p99 ±5 ms {'MET' if ok99 else 'MISSED'}"))
    cal = res.get("open_calibration")
    if cal:
        share = f", {cal['cpu_share']:.0%} of a core" if cal.get("cpu_share") is not None else ""
        cpu = f"{cal['cpu_us_per_rt']:.0f} µs CPU/rt" if cal.get("cpu_us_per_rt") else "no CPU figure"
        maxima = (f"max {res['open_max_rate']:,.0f} rt/s (the open model's own: {cpu} at {cal['rate']:,.0f} rt/s"
                  f"{share}); closed model's max {res['max_rate']:,.0f} rt/s ({res['max_rate_source']})")
    else:
        maxima = f"max {res['max_rate']:,.0f} rt/s ({res['max_rate_source']})"
    out.append(("  accuracy user / max rate", f"{res['user']}, {res.get('model', 'closed')}, {maxima}", ""))
    return out


def main(argv: list[str] | None = None) -> int:
    return bench_main("accuracy", __doc__, run, rows, argv, quick_help="short windows")


if __name__ == "__main__":
    sys.exit(main())
