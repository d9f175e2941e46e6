"""Clients of the three storage tiers, each with a per-operation timeout and a ``check()`` for /health/ready."""

from __future__ import annotations


class TierTimeout(Exception):
    """A tier did not answer within its configured timeout; ``tier`` is redis, postgres or clickhouse."""

    def __init__(self, tier: str, operation: str, timeout_ms: float) -> None:
        super().__init__(f"{tier} {operation} timed out after {timeout_ms:.0f} ms")
        self.tier = tier
        self.operation = operation
        self.timeout_ms = timeout_ms


class TierError(Exception):
    """A tier failed (connection refused, error reply); the message names the tier and the operation."""

    def __init__(self, tier: str, operation: str, detail: str) -> None:
        super().__init__(f"{tier} {operation} failed: {detail}")
        self.tier = tier
        self.operation = operation
