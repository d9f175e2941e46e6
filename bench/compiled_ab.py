"""``python -m bench.compiled_ab``: what compiling the chat hot path with Cython would save (an experiment, not a mode
of the suite; not part of ``bench all``).

It copies the repository to a temporary directory, compiles :data:`HOT_MODULES` there with Cython (no source change:
Cython compiles the plain Python files), and runs ``ChatUser`` against one bench server, interleaved: the compiled
tree, then this one, ``--rounds`` times (50 connections, 10 s windows, SLA plug-in on, as ``bench overhead``).
``--artillery`` adds Artillery's ``ws`` engine (``bench artillery``) after the rounds, for the issue-17 comparison in
the same sitting. It prints µs CPU per round trip of every run and the medians; the JSON goes to
``bench/results/compiled_ab.json``.

Needs Cython (``pip install cython``) and a C compiler with the Python headers; without them it says what is missing
and exits 2. Usage::

    python -m bench.compiled_ab [--rounds 4] [--artillery] [--quick] [--also sla_checks/engine.py ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchServer, run_locust, save

logger = logging.getLogger("bench")

HOT_MODULES = ("tasks/timeline.py", "users/ws_session.py", "users/ws_client.py", "users/sample_sink.py",
               "users/ws_codec.py")
"""The modules a chat round trip runs through (py-spy: the reader, the timeline, the codec, the sample path)."""

_NOT_COPIED = (".git", ".venv", "node_modules", ".node", "results", "__pycache__", ".mypy_cache", ".ruff_cache",
               ".pytest_cache", "build")
CONNECTIONS = 50


def missing_tools() -> str | None:
    """What this benchmark needs and this machine lacks, as one sentence; None when nothing is missing."""
    if importlib.util.find_spec("Cython") is None:
        return f"Cython is not installed: {sys.executable} -m pip install cython"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc!r} is not on PATH): install gcc (Debian: apt-get install gcc)"
    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not header.exists():
        return f"the Python headers are missing ({header}): install the python3-dev package of this Python"
    return None


def ignore_for_copy(directory: str, names: list[str]) -> set[str]:
    """``shutil.copytree``'s ``ignore``: caches, virtualenvs, Node modules, results and compiled leftovers."""
    return {n for n in names if n in _NOT_COPIED or n.endswith((".so", ".c"))}


def compiled_tree(dst: Path, modules: tuple[str, ...] = HOT_MODULES) -> float:
    """Copy the repository to ``dst`` and compile ``modules`` in place; seconds the compile took."""
    shutil.copytree(ROOT, dst, ignore=ignore_for_copy, symlinks=True)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", "-j", "2", *modules],
                       cwd=dst, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"cythonize failed (exit {r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    missing = [m for m in modules if not list((dst / m).parent.glob(Path(m).stem + ".*.so"))]
    if missing:
        raise RuntimeError(f"cythonize built no extension for {missing}")
    return time.monotonic() - t0


def run(rounds: int = 4, artillery: bool = False, quick: bool = False, also: tuple[str, ...] = ()) -> dict[str, Any]:
    modules = HOT_MODULES + tuple(m for m in also if m not in HOT_MODULES)
    warmup, window = (1.0, 3.0) if quick else (2.0, 10.0)
    res: dict[str, Any] = {"modules": list(modules), "connections": CONNECTIONS, "window_s": window,
                           "compiled": [], "pure": []}
    with tempfile.TemporaryDirectory(prefix="bench-compiled-") as tmp:
        tree = Path(tmp) / "repo"
        res["compile_s"] = compiled_tree(tree, modules)
        with BenchServer(max_seconds=300 + rounds * 2 * (window + warmup + 30)) as srv:
            for i in range(rounds):
                for label, root in (("compiled", tree), ("pure", ROOT)):
                    r = run_locust(["bench/chat_bench.py"], srv.url, CONNECTIONS, classes=["BenchChatUser"],
                                   warmup=warmup, window=window, env={"BENCH_SLA": "1"}, root=root)
                    m = r.load[0]
                    res[label].append({"cpu_us_per_rt": m["cpu_us_per_rt"], "rate": m["rate"],
                                       "failures": m.get("failures", 0), "exit_code": r.exit_codes[0]})
                    logger.info("round %d %s: %.1f µs CPU/rt", i + 1, label, m["cpu_us_per_rt"])
    for label in ("compiled", "pure"):
        res[label + "_median"] = statistics.median(r["cpu_us_per_rt"] for r in res[label])
    if artillery:
        from bench import artillery_peer

        res["artillery"] = artillery_peer.run(quick)
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
            out.append(("peer: Artillery ws engine (same sitting)", f"{art['cpu_us_per_rt']:.0f} µs CPU/rt",
                        f"compiled ≤ it: {'MET' if c <= art['cpu_us_per_rt'] else 'MISSED'}"))
        else:
            out.append(("peer: Artillery ws engine", f"{art.get('status')}: {art.get('reason', '')}", ""))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.compiled_ab", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds (compiled, then pure), default 4")
    ap.add_argument("--artillery", action="store_true", help="also measure Artillery's ws engine afterwards")
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
    why = missing_tools()
    if why:
        print(f"bench.compiled_ab cannot run here: {why}", file=sys.stderr)
        return 2
    for fig, val, goal in rows(run(a.rounds, a.artillery, a.quick, tuple(a.also))):
        print(f"{fig:<42} {val:<60} {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
