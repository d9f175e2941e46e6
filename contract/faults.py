"""Client of the reference backend's fault-injection admin API (``/admin/faults``, token-protected), and the fault
kinds it knows. Stdlib only: usable from pytest, gevent/Locust (the scenarios' fault pairing) and the shell
(``python -m reference_backend.faults``).

Usage::

    from contract.faults import FaultsClient
    faults = FaultsClient("http://127.0.0.1:8765", admin_token)
    faults.apply("redis-pause", ms=3000, for_s=5)
    faults.list()
    faults.clear()
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["FAULT_KINDS", "FaultsClient", "FaultsError"]

FAULT_KINDS: dict[str, str] = {
    "redis-pause": "CLIENT PAUSE <ms> ALL on the backend's Redis (one pause; Redis defers even UNPAUSE until it ends)",
    "redis-slow": "repeated short CLIENT PAUSEs (ms each, every params.period_ms) for the duration",
    "redis-memory-pressure": "CONFIG SET maxmemory just above use + fill with TTL'd keys + eviction policy; restored",
    "pg-lock": "a separate connection holds LOCK TABLE messages IN ACCESS EXCLUSIVE MODE for the duration",
    "pg-pool-exhaustion": "the backend's own asyncpg pool connections are all checked out and held",
    "pg-slow-query": "messages locked ACCESS EXCLUSIVE in pulses of ms: the thread-history query waits inside PG",
    "pg-hot-row": "a concurrent writer on the PG probe's hot row (contract.isolation): holds its row lock ms, commits, "
    "again after params.gap_ms",
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
        fault: dict[str, Any] = self._call("POST", body)
        return fault

    def list(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self._call("GET")["faults"]
        return faults

    def clear(self) -> None:
        self._call("DELETE")
