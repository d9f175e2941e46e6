"""``python -m bench.compiled_ab``: what the compiled chat hot path (``scripts/build-accel``, :mod:`users.accel`)
saves per round trip, against the same source run as Python (not part of ``bench all``).

It builds the compiled hot path into a temporary directory (:func:`users.accel.build`, what ``scripts/build-accel``
does; ``--also`` compiles more modules) and runs ``ChatUser`` against one bench server, interleaved: with the build
(``WS_SUITE_ACCEL=on``), then without it, ``--rounds`` times (50 connections, 10 s windows, SLA plug-in on, as
``bench overhead``).
``--artillery`` adds a run of Artillery's ``ws`` engine (``bench artillery``) to every round, for the issue-17
comparison: interleaved, so a VM whose speed drifts within minutes (Artillery measured 170 and 226 µs per round trip
4 minutes apart on one) moves all three series alike. It prints µs CPU per round trip of every run and the medians;
the JSON goes to ``bench/results/compiled_ab.json``.

Needs Cython (``pip install cython``) and a C compiler with the Python headers; without them it says what is missing
and exits 2. Usage::

    python -m bench.compiled_ab [--rounds 4] [--artillery] [--quick] [--also sla_checks/engine.py ...]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import artillery_peer
from bench.common import ROOT, BenchServer, run_locust, save
from users import accel

logger = logging.getLogger("bench")

HOT_MODULES = tuple(str(Path(*name.split(".")).with_suffix(".py")) for name in accel.HOT_MODULES)
"""The modules a chat round trip runs through (:data:`users.accel.HOT_MODULES`, as repository paths)."""
CONNECTIONS = 50


def module_name(path: str) -> str:
    """``sla_checks/engine.py`` -> ``sla_checks.engine``."""
    return ".".join(Path(path).with_suffix("").parts)


def run(rounds: int = 4, artillery: bool = False, quick: bool = False, also: tuple[str, ...] = ()) -> dict[str, Any]:
    modules = HOT_MODULES + tuple(m for m in also if m not in HOT_MODULES)
    warmup, window = (1.0, 3.0) if quick else (2.0, 10.0)
    res: dict[str, Any] = {"modules": list(modules), "connections": CONNECTIONS, "window_s": window,
                           "compiled": [], "pure": []}
    with tempfile.TemporaryDirectory(prefix="bench-compiled-") as tmp:
        t0 = time.monotonic()
        accel.build(Path(tmp), ROOT, [module_name(m) for m in modules])  # what scripts/build-accel builds
        res["compile_s"] = time.monotonic() - t0
        turns = (("compiled", {"WS_SUITE_ACCEL": "on", "WS_SUITE_ACCEL_DIR": tmp}), ("pure", {"WS_SUITE_ACCEL": "off"}))
        with BenchServer(max_seconds=300 + rounds * 2 * (window + warmup + 30)) as srv:
            for i in range(rounds):
                for label, extra in turns:
                    r = run_locust(["bench/chat_bench.py"], srv.url, CONNECTIONS, classes=["BenchChatUser"],
                                   warmup=warmup, window=window, env={"BENCH_SLA": "1", **extra})
                    if label == "compiled" and "chat hot path: compiled" not in r.log_head:
                        raise RuntimeError(f"the compiled build was not used:\n{r.log_head}")
                    m = r.load[0]
                    res[label].append({"cpu_us_per_rt": m["cpu_us_per_rt"], "rate": m["rate"],
                                       "failures": m.get("failures", 0), "exit_code": r.exit_codes[0]})
                    logger.info("round %d %s: %.1f µs CPU/rt", i + 1, label, m["cpu_us_per_rt"])
                if artillery:
                    art = artillery_peer.run(quick)
                    res.setdefault("artillery_runs", []).append(art)
                    if art.get("status") != "measured":
                        break  # not installable here, or failed: said once, not every round
                    logger.info("round %d artillery: %.1f µs CPU/rt", i + 1, art["cpu_us_per_rt"])
    for label in ("compiled", "pure"):
        res[label + "_median"] = statistics.median(r["cpu_us_per_rt"] for r in res[label])
    if artillery:
        arts = res["artillery_runs"]
        measured = [a["cpu_us_per_rt"] for a in arts if a.get("status") == "measured"]
        res["artillery"] = ({"status": "measured", "cpu_us_per_rt": statistics.median(measured), "runs": measured}
                            if measured and len(measured) == len(arts) else arts[-1])
    save("compiled_ab", res)
    return res


def rows(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    def runs(label: str) -> str:
        return ", ".join(f"{r['cpu_us_per_rt']:.0f}" for r in res[label])

    c, p = res["compiled_median"], res["pure_median"]
    out = [
        (f"ChatUser, {len(res['modules'])} modules compiled (Cython)", f"median {c:.0f} µs CPU/rt (runs {runs('compiled')})", ""),
        ("ChatUser, pure Python (this tree)", f"median {p:.0f} µs CPU/rt (runs {runs('pure')})", ""),
        ("compiled vs pure", f"{(c - p) / p * 100:+.0f} % CPU per round trip", ""),
    ]
    art = res.get("artillery")
    if art is not None:
        if art.get("status") == "measured":
            a = art["cpu_us_per_rt"]
            each = ", ".join(f"{x:.0f}" for x in art.get("runs", [a]))
            out += [("peer: Artillery ws engine (interleaved)", f"median {a:.0f} µs CPU/rt (runs {each})", ""),
                    ("pure Python / Artillery", f"{p / a:.2f}x", f"≤ 1: {'MET' if p <= a else 'MISSED'}"),
                    ("compiled / Artillery", f"{c / a:.2f}x", f"≤ 1: {'MET' if c <= a else 'MISSED'}")]
        else:
            out.append(("peer: Artillery ws engine", f"{art.get('status')}: {art.get('reason', '')}", ""))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.compiled_ab", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds (compiled, then pure), default 4")
    ap.add_argument("--artillery", action="store_true", help="also measure Artillery's ws engine, in every round")
    ap.add_argument("--quick", action="store_true", help="short windows (a smoke)")
    ap.add_argument("--also", action="append", default=[], metavar="PATH",
                    help="compile this module too (a repository path, e.g. sla_checks/engine.py); repeatable")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    for path in a.also:
        if not (path.endswith(".py") and (ROOT / path).is_file()):
            ap.error(f"--also {path!r}: not a Python file of this repository (give a path like sla_checks/engine.py)")
    why = accel.missing_tools()
    if why:
        print(f"bench.compiled_ab cannot run here: {why}", file=sys.stderr)
        return 2
    for fig, val, goal in rows(run(a.rounds, a.artillery, a.quick, tuple(a.also))):
        print(f"{fig:<42} {val:<60} {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
