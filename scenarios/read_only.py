"""Scenarios that measure writes, refused under ``--probe-read-only`` (pure: no Locust, no I/O).

``--probe-read-only`` keeps the probes to reads (a staging the suite must not write to). A scenario whose thresholds
judge only what writes produce (``redis-write-memory-pressure``: ``REDIS SET*``) would then measure nothing, and
should not look like a verdict on the target. It is a usage error, known before any user starts: the run is refused
with exit 2 and one line saying what conflicts and what to do (:func:`read_only_conflict`), on the command line and
in the web UI's start form alike.
"""

from __future__ import annotations

from scenarios.registry import Scenario

__all__ = ["MEASURES_WRITES", "read_only_conflict"]

MEASURES_WRITES: dict[str, str] = {
    "redis-write-memory-pressure": "cache writes (REDIS SET*) under memory pressure",
    "pg-isolation-levels": "read-modify-write transactions (PG txn *) on the probe's own hot row",
}
"""Scenario name → what it measures that only writes produce (each of its thresholds judges a write)."""


def read_only_conflict(scenario: Scenario, probe_read_only: bool) -> str | None:
    """Why ``scenario`` cannot run with ``--probe-read-only`` (one line: the conflict and the fix), or None."""
    writes = MEASURES_WRITES.get(scenario.name)
    if not probe_read_only or not writes:
        return None
    return (
        f"scenario {scenario.name} measures {writes}, but --probe-read-only disables the probes' writes, so it "
        "would measure nothing: run it without --probe-read-only, or leave it out on a target that must not be "
        "written to"
    )
