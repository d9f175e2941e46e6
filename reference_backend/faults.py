"""Fault-injection client and CLI (stdlib only: usable from pytest, gevent/Locust and the shell).

The faults themselves run inside the backend (``reference_backend.fault_injection``) and are driven over its token-protected
``/admin/faults`` HTTP API::

    from reference_backend.faults import FaultsClient
    faults = FaultsClient("http://127.0.0.1:8765", admin_token)
    faults.apply("redis-pause", ms=3000, for_s=5)
    faults.list()
    faults.clear()

CLI: ``python -m reference_backend.faults apply KIND [--ms N] [--for SECONDS] [--param key=value ...]``, ``list``, ``clear``;
URL from ``--url`` / ``TARGET_URL`` (default http://127.0.0.1:8765), token from ``TARGET_ADMIN_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

FAULT_KINDS: dict[str, str] = {
    "redis-pause": "CLIENT PAUSE <ms> ALL on the backend's Redis (one pause; Redis defers even UNPAUSE until it ends)",
    "redis-slow": "repeated short CLIENT PAUSEs (ms each, every params.period_ms) for the duration",
    "redis-memory-pressure": "CONFIG SET maxmemory just above use + fill with TTL'd keys + eviction policy; restored",
    "pg-lock": "a separate connection holds LOCK TABLE messages IN ACCESS EXCLUSIVE MODE for the duration",
    "pg-pool-exhaustion": "the backend's own asyncpg pool connections are all checked out and held",
    "pg-slow-query": "messages locked ACCESS EXCLUSIVE in pulses of ms: the thread-history query waits inside PG",
    "clickhouse-stall": "the agent-event table is locked inside ClickHouse so inserts block",
    "agent-slow": "adds ms of think time to every message's pipeline",
    "hang": "the backend swallows user messages (no event at all)",
    "drop-event": "the backend never sends events of type params.event",
    "slow-pong": "pong answers are delayed by ms",
}


class FaultsError(Exception):
    """The admin API refused a request or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FaultsClient:
    """Client of ``/admin/faults``. Never puts the admin token into an exception text."""

    def __init__(self, http_base_url: str, admin_token: str, timeout: float = 5.0) -> None:
        self.base = http_base_url.rstrip("/")
        self._token = admin_token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"FaultsClient({self.base!r})"

    def _call(self, method: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + "/admin/faults", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read() or b"{}").get("detail", "")
            except ValueError:
                detail = ""
            raise FaultsError(f"{method} {self.base}/admin/faults answered HTTP {e.code}: {detail}", e.code) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise FaultsError(f"{method} {self.base}/admin/faults failed: {reason} (is the backend running?)") from None
        return json.loads(raw) if raw else None

    def apply(self, kind: str, ms: int | None = None, for_s: float = 10.0, **params: Any) -> dict[str, Any]:
        """Start a fault; it expires by itself after ``for_s`` seconds. Returns its description (id, expires_at)."""
        body: dict[str, Any] = {"kind": kind, "for_s": for_s, "params": params}
        if ms is not None:
            body["ms"] = ms
        return self._call("POST", body)

    def list(self) -> list[dict[str, Any]]:
        return self._call("GET")["faults"]

    def clear(self) -> None:
        self._call("DELETE")


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
