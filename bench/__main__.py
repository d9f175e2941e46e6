"""``python -m bench``: run the benchmarks and print one table (each figure also as JSON under bench/results/).

Usage::

    python -m bench all            # everything, < 10 minutes on the 2-core machine
    python -m bench all --quick    # a smoke: short windows, 200/1,000 sessions (≈ 5-6 minutes; files <bench>-quick.json)
    python -m bench overhead|scale|distributed|accuracy|co|artillery [--quick]
    python -m bench soak [--minutes 20]   # not part of "all"
    python -m bench scale --sessions 100000 --processes 8   # one machine, many idle sessions (not part of "all")
    python -m bench scale --one-process 5000    # memory per idle session from one process, one size

All traffic is on loopback to the bench server (``bench/fast_server.py``); every run stops by itself. Figures are
noisy on a shared machine: the table prints the 1-minute load average at the start and the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench.common import machine, save

logger = logging.getLogger("bench")

Row = tuple[str, str, str]


def _sections() -> dict[str, tuple[Callable[[bool], dict[str, Any]], Callable[[dict[str, Any]], list[Row]]]]:
    from bench import accuracy, artillery_peer, co_demo, distributed, scale, ws_user_overhead

    return {
        "overhead": (ws_user_overhead.run, ws_user_overhead.rows),
        "scale": (scale.run, scale.rows),
        "distributed": (distributed.run, distributed.rows),
        "accuracy": (accuracy.run, accuracy.rows),
        "co": (co_demo.run, co_demo.rows),
        "artillery": (artillery_peer.run, artillery_peer.rows),
    }


def format_table(rows: list[Row]) -> str:
    """A plain-text table: figure | measured | goal."""
    w1 = max(len(r[0]) for r in rows)
    w2 = min(max(len(r[1]) for r in rows), 110)
    lines = [f"{'figure':<{w1}} | {'measured':<{w2}} | goal", f"{'-' * w1}-+-{'-' * w2}-+-{'-' * 24}"]
    for a, b, c in rows:
        lines.append(f"{a:<{w1}} | {b:<{w2}} | {c}")
    return "\n".join(lines)


def run_sections(names: list[str], quick: bool) -> tuple[list[Row], dict[str, Any]]:
    sections = _sections()
    rows: list[Row] = []
    results: dict[str, Any] = {}
    for name in names:
        fn, to_rows = sections[name]
        t = time.monotonic()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            res = fn(quick)
            results[name] = res
            rows.extend(to_rows(res))
        except Exception as e:  # noqa: BLE001 - one failed section must not hide the others' figures
            logger.error("bench %s failed:\n%s", name, traceback.format_exc())
            results[name] = {"error": f"{type(e).__name__}: {e}"}
            rows.append((name, f"ERROR {type(e).__name__}: {str(e)[:150]}", ""))
        print(f"[bench] {name} done in {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
    return rows, results


def print_saved_table() -> int:
    """Re-render the table from the JSON files of the last runs (``bench/results/<bench>.json``)."""
    import json

    from bench.common import RESULTS

    files = {"overhead": "overhead", "scale": "scale", "distributed": "distributed", "accuracy": "accuracy",
             "co": "co_demo", "artillery": "artillery"}
    rows: list[Row] = []
    for name, (_, to_rows) in _sections().items():
        path = RESULTS / f"{files[name]}.json"
        if path.exists():
            data = json.loads(path.read_text())
            rows.extend(to_rows(data))
            rows_at = data.get("at", "?")
            logger.info("%s from %s", name, rows_at)
        else:
            rows.append((name, "no result yet", ""))
    print(format_table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["all", "overhead", "scale", "distributed", "accuracy", "co", "artillery",
                                     "soak", "table"],
                    help="which benchmark (all = every one but soak; table = re-print the last results)")
    ap.add_argument("--quick", action="store_true", help="smoke mode: short windows, fewer sessions")
    ap.add_argument("--minutes", type=float, default=20.0, help="soak only: duration in minutes (default 20)")
    ap.add_argument("--sessions", type=int, default=0,
                    help="scale only: this many idle sessions from --processes Locust workers (e.g. 100000)")
    ap.add_argument("--processes", type=int, default=8, help="scale --sessions only: worker processes (default 8)")
    ap.add_argument("--one-process", type=int, default=0, metavar="N",
                    help="scale only: N idle sessions from one process (the figure to A/B a memory change by)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if a.what == "soak":
        from bench import soak

        return soak.main(["--minutes", str(a.minutes)])
    if a.what == "table":
        return print_saved_table()
    if a.what == "scale" and a.sessions:
        from bench import scale

        return scale.main(["--sessions", str(a.sessions), "--processes", str(a.processes)])
    if a.what == "scale" and a.one_process:
        from bench import scale

        return scale.main(["--one-process", str(a.one_process)])
    if a.quick:
        from bench import common

        common.SUFFIX = "-quick"
    names = list(_sections()) if a.what == "all" else [a.what]
    start = time.monotonic()
    m0 = machine()
    rows, results = run_sections(names, a.quick)
    m1 = machine()
    took = time.monotonic() - start
    header = (f"bench {a.what}{' --quick' if a.quick else ''} at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
              f" on {m0['cpus']} cores (Python {m0['python']}), load avg {m0['load_avg_1m']:.1f} → "
              f"{m1['load_avg_1m']:.1f}, took {took:.0f} s")
    table = format_table(rows)
    print(header)
    print(table)
    save("summary", {"what": a.what, "quick": a.quick, "took_s": took,
                                                     "header": header, "table": table,
                                                     "rows": [list(r) for r in rows], "sections": list(results)})
    return 1 if any("error" in r for r in results.values() if isinstance(r, dict)) else 0


if __name__ == "__main__":
    sys.exit(main())
