"""How much a WebSocket round trip costs the generator: raw client loops vs the naive Locust user vs ``ChatUser``.

Against the bench server (``bench/fast_server.py``: five event frames per message, immediately), with 50
connections and every frame JSON-parsed, for each client: round trips per second and the generator's CPU µs per
round trip over a steady window. Then the ratios: ``ChatUser`` rate / raw wsproto rate (goal ≥ 70 %), ``ChatUser`` /
naive user, and the SLA hooks' share of the generator's CPU (``ChatUser`` with the whole suite loaded, with and
without ``--sla-off``; goal < 5 %).

Usage::

    python -m bench overhead [--quick]
    python -m bench.ws_user_overhead [--quick]     # same
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from bench import profile_share
from bench.common import RESULTS, BenchServer, chat_user_available, run_locust, run_raw_client, save

logger = logging.getLogger(__name__)

RAW_CLIENTS = ("wsproto-plain", "wsproto-gevent", "websocket-client", "codec-gevent")
CONNECTIONS = 50


def run(quick: bool = False, profile_to: str | None = None) -> dict[str, Any]:
    warmup, window = (1.0, 3.0) if quick else (2.0, 10.0)
    res: dict[str, Any] = {"connections": CONNECTIONS, "window_s": window, "raw": {}}
    with BenchServer(max_seconds=900) as srv:
        for client in RAW_CLIENTS:
            s0 = srv.cpu()
            r = run_raw_client(srv.url, client, CONNECTIONS, warmup, window)
            r["server_cpu_us_per_rt"] = (srv.cpu() - s0) / max(1, r["round_trips"]) * 1e6 * (
                window / (window + warmup))  # approximate: the server also served the warm-up
            res["raw"][client] = r
        # the ceiling is the cheapest client per round trip (rates depend on what the other tenants left us)
        best = min(res["raw"].values(), key=lambda r: r["cpu_us_per_rt"])
        res["ceiling"] = {"client": best["client"], "rate": best["rate"], "cpu_us_per_rt": best["cpu_us_per_rt"]}

        naive = run_locust(["bench/naive_user.py"], srv.url, CONNECTIONS, warmup=warmup, window=window)
        res["naive"] = naive.load[0]

        if chat_user_available():
            chat = run_locust(["bench/chat_bench.py"], srv.url, CONNECTIONS, classes=["BenchChatUser"],
                              warmup=warmup, window=window, env={"BENCH_SLA": "1"}, profile_to=profile_to)
            res["chat"] = chat.load[0]
            res["chat"]["exit_code"] = chat.exit_codes[0]
            bare = run_locust(["bench/chat_bench.py"], srv.url, CONNECTIONS, classes=["BenchChatUser"],
                              warmup=warmup, window=window, env={"BENCH_SLA": "1"}, extra_args=["--sla-off"])
            res["chat_no_sla"] = bare.load[0]
            spy = Path(sys.executable).parent / "py-spy"
            if not quick and profile_to is None and spy.exists():
                # a third, profiled run: where the CPU goes, and the SLA hooks' share by sampling
                prof = str(RESULTS / "chat-profile.txt")
                RESULTS.mkdir(parents=True, exist_ok=True)
                run_locust(["bench/chat_bench.py"], srv.url, CONNECTIONS, classes=["BenchChatUser"],
                           warmup=warmup, window=window, env={"BENCH_SLA": "1"}, profile_to=prof)
                with open(prof) as f:
                    res["chat_profile"] = profile_share.shares(profile_share.parse(f.readlines()), 25)
                res["chat_profile"]["file"] = prof
        else:
            res["chat"] = None
            res["chat_pending"] = "users.chat.ChatUser is not importable yet (the chat dev is writing it)"
    wsp = res["raw"]["wsproto-gevent"]
    res["naive_ratio_to_wsproto"] = res["naive"]["rate"] / wsp["rate"]
    if res["chat"]:
        c, b = res["chat"], res["chat_no_sla"]
        res["chat_ratio_to_wsproto"] = c["rate"] / wsp["rate"]
        # the same ratio from CPU per round trip: on a saturated core rate = 1 / CPU per round trip, and this one
        # does not depend on how much of a core the other tenants of the machine left each run
        res["chat_cpu_ratio_to_wsproto"] = wsp["cpu_us_per_rt"] / c["cpu_us_per_rt"]
        res["chat_ratio_to_ceiling"] = c["rate"] / res["ceiling"]["rate"]
        res["chat_ratio_to_naive"] = c["rate"] / res["naive"]["rate"]
        if c["cpu_us_per_rt"] and b["cpu_us_per_rt"]:
            res["sla_hook_share"] = (c["cpu_us_per_rt"] - b["cpu_us_per_rt"]) / c["cpu_us_per_rt"]
    save("overhead", res)
    return res


def rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, measured, goal) rows for the summary table."""
    out = []
    for name, r in res["raw"].items():
        out.append((f"raw {name} (50 conns)", f"{r['rate']:,.0f} rt/s, {r['cpu_us_per_rt']:.0f} µs CPU/rt", ""))
    out.append(("raw ceiling", f"{res['ceiling']['client']}: {res['ceiling']['rate']:,.0f} rt/s, "
                f"{res['ceiling']['cpu_us_per_rt']:.0f} µs CPU/rt", ""))
    n = res["naive"]
    out.append(("naive Locust user", f"{n['rate']:,.0f} rt/s, {n['cpu_us_per_rt']:.0f} µs CPU/rt, "
                 f"{res['naive_ratio_to_wsproto']:.0%} of raw wsproto", ""))
    c = res.get("chat")
    if c:
        ok = res["chat_ratio_to_wsproto"] >= 0.70
        out.append(("ChatUser (timeline + SLA hooks)",
                    f"{c['rate']:,.0f} rt/s, {c['cpu_us_per_rt']:.0f} µs CPU/rt, failures {c['failures']}",
                    ""))
        ok_cpu = res["chat_cpu_ratio_to_wsproto"] >= 0.70
        out.append(("ChatUser / raw wsproto-gevent", f"rate {res['chat_ratio_to_wsproto']:.0%}; by CPU/rt "
                    f"{res['chat_cpu_ratio_to_wsproto']:.0%}",
                    f"≥ 70 % {'MET' if ok and ok_cpu else 'MET by rate only' if ok else 'MISSED'}"))
        out.append(("ChatUser / raw ceiling", f"rate {res['chat_ratio_to_ceiling']:.0%}; by CPU/rt "
                    f"{res['ceiling']['cpu_us_per_rt'] / c['cpu_us_per_rt']:.0%}", ""))
        out.append(("ChatUser / naive user", f"{res['chat_ratio_to_naive']:.2f}x", ""))
        share = res.get("sla_hook_share")
        prof = res.get("chat_profile")
        if share is not None:
            goal = f"< 5 % {'MET' if share < 0.05 else 'MISSED'}" if prof is None else ""
            out.append(("SLA hooks share (A/B --sla-off)", f"{share:+.1%} of CPU/rt (difference of two noisy "
                        "runs)", goal))
        if prof is not None:
            out.append(("SLA hooks share (py-spy profile)", f"{prof['sla_share']:.1%} of active samples "
                        f"({prof['samples']} samples)", f"< 5 % {'MET' if prof['sla_share'] < 0.05 else 'MISSED'}"))
            own = ", ".join(f"{k.rstrip('/')} {v:.0%}" for k, v in list(prof["owners"].items())[:6])
            out.append(("  ChatUser CPU by module (profile)", own, ""))
    else:
        out.append(("ChatUser", "pending: " + res.get("chat_pending", ""), "≥ 70 % of raw wsproto"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ws_user_overhead", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short windows (smoke)")
    ap.add_argument("--profile", metavar="FILE", help="py-spy raw profile of the ChatUser run to FILE")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    res = run(a.quick, a.profile)
    for fig, val, goal in rows(res):
        print(f"{fig:<40} {val:<60} {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
