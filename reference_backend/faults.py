"""Fault-injection CLI. The faults themselves run inside the backend (``reference_backend.fault_injection``) and are
driven over its token-protected ``/admin/faults`` HTTP API through :class:`contract.faults.FaultsClient`.

CLI: ``python -m reference_backend.faults apply KIND [--ms N] [--for SECONDS] [--param key=value ...]``, ``list``, ``clear``;
URL from ``--url`` / ``TARGET_URL`` (default http://127.0.0.1:8765), token from ``TARGET_ADMIN_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from contract.faults import FAULT_KINDS, FaultsClient, FaultsError

__all__ = ["FAULT_KINDS", "FaultsClient", "FaultsError", "main"]


def _parse_param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param {text!r}: use key=value, e.g. --param event=agent_completed")
    k, v = text.split("=", 1)
    try:
        return k, json.loads(v)
    except ValueError:
        return k, v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reference_backend.faults", description="Inject faults into the reference backend.")
    p.add_argument("--url", default=os.environ.get("TARGET_URL", "http://127.0.0.1:8765"),
                   help="backend base URL (env TARGET_URL)")
    p.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout in s")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("apply", help="start a fault")
    a.add_argument("kind", help="one of: " + ", ".join(FAULT_KINDS))
    a.add_argument("extra", nargs="?", help="drop-event: the event name (same as --param event=NAME)")
    a.add_argument("--ms", type=int, default=None, help="strength in ms (pause length, added think time, ...)")
    a.add_argument("--for", dest="for_s", type=float, default=10.0, help="duration in s (expires by itself)")
    a.add_argument("--param", action="append", type=_parse_param, default=[], help="extra key=value")
    sub.add_parser("list", help="list active faults")
    sub.add_parser("clear", help="undo all faults")
    sub.add_parser("kinds", help="list fault kinds")
    args = p.parse_args(argv)
    if args.cmd == "kinds":
        for k, d in FAULT_KINDS.items():
            print(f"{k:24} {d}")
        return 0
    token = os.environ.get("TARGET_ADMIN_TOKEN", "")
    if not token:
        sys.stderr.write("reference_backend.faults: error: set TARGET_ADMIN_TOKEN to the backend's admin token\n")
        return 2
    client = FaultsClient(args.url, token, timeout=args.timeout)
    try:
        if args.cmd == "apply":
            if args.kind not in FAULT_KINDS:
                sys.stderr.write(f"reference_backend.faults: error: unknown fault kind {args.kind!r}; "
                                 f"use one of {', '.join(FAULT_KINDS)}\n")
                return 2
            params = dict(args.param)
            if args.extra:
                params.setdefault("event", args.extra)
            print(json.dumps(client.apply(args.kind, ms=args.ms, for_s=args.for_s, **params), indent=2))
        elif args.cmd == "list":
            print(json.dumps(client.list(), indent=2))
        else:
            client.clear()
            print("cleared")
    except FaultsError as e:
        sys.stderr.write(f"reference_backend.faults: error: {e}\n")
        return 2 if e.status in (400, 401, 403, 404) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
