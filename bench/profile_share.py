"""Reading py-spy's raw (collapsed-stack) output: where a Locust process spends its CPU.

``py-spy record -f raw`` writes one line per distinct stack: ``frame;frame;...;frame COUNT``. Samples of the idle
gevent threadpool thread (blocked in a lock, which py-spy still samples) and of module imports (start-up) are left
out, so the shares are of the steady-state work.

Usage::

    python -m bench.profile_share PROFILE.txt [--top 30]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

GROUPS = ("sla_checks/", "users/", "tasks/", "bench/", "locust/", "gevent/", "orjson", "other")
IDLE_MARKERS = ("_WorkerGreenlet.run (gevent/threadpool.py", "acquire_with_timeout (gevent/_threading.py")
STARTUP_MARKERS = ("<frozen importlib._bootstrap", "load_locustfile", "parse_locustfile")


def parse(lines: list[str]) -> list[tuple[list[str], int]]:
    out = []
    for line in lines:
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack or not n.isdigit():
            continue
        out.append((stack.split(";"), int(n)))
    return out


def shares(stacks: list[tuple[list[str], int]], top: int = 25) -> dict[str, Any]:
    """Innermost-owner shares, the share of stacks that pass through ``sla_checks/`` and the top self frames."""
    active = [(f, n) for f, n in stacks
              if not any(m in x for x in f for m in IDLE_MARKERS) and not any(m in x for x in f for m in STARTUP_MARKERS)]
    total = sum(n for _, n in active) or 1
    owner: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    sla = 0
    for frames, n in active:
        self_[frames[-1]] += n
        if any("sla_checks/" in x for x in frames):
            sla += n
        for x in reversed(frames):
            g = next((g for g in GROUPS[:-1] if g in x), None)
            if g:
                owner[g] += n
                break
        else:
            owner["other"] += n
    return {"samples": total, "sla_share": sla / total,
            "owners": {k: v / total for k, v in owner.most_common()},
            "top_self": [(k, v / total) for k, v in self_.most_common(top)]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_share", description=__doc__.split("\n\n")[0])
    ap.add_argument("profile", help="py-spy raw output file")
    ap.add_argument("--top", type=int, default=30, help="self frames to list")
    a = ap.parse_args(argv)
    with open(a.profile) as f:
        s = shares(parse(f.readlines()), a.top)
    print(f"active samples {s['samples']}, through sla_checks/: {s['sla_share']:.1%}")
    for k, v in s["owners"].items():
        print(f"  {v:6.1%}  {k}")
    print("top self frames:")
    for k, v in s["top_self"]:
        print(f"  {v:6.1%}  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
