"""A scenario's thresholds on the statements the probes actually run (pure: no Locust, no I/O).

The catalogue's probe scenarios name the bundled backend's statements (``PG thread history``, ``PG message insert``,
``PG thread update``, ``PG commit``; ``CH insert``, ``CH query agent stage summary``). With ``--pg-queries FILE`` /
``--clickhouse-queries FILE`` the probe runs the file's statements instead, sampled as ``PG query NAME`` /
``CH query NAME``, and the bundled ones get no samples: their (required) lines would fail the run for a statement
nobody ran. :func:`on_query_files` moves them onto the file's statements:

* every scenario line on an exact bundled metric of that type is dropped, and each distinct expression of those lines
  (``p(95) < 200``) is judged on every query of the file, one exact line per query (``PG query NAME p(95) < 200``),
  required like the line it replaces, so a query of the file that never ran fails the run as "no samples";
* glob lines (``PG *``, ``CH *``) stay: they match the file's metrics too;
* the scenario's expected breaches and robust metrics on a dropped metric name the file's queries instead;
* one note says what was moved, for the log.

Without a query file the scenario is returned as it is. Only the composition of a run uses the result
(:func:`scenarios.sla_handoff.composed_profile`); the catalogue stays as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from contract.schema import CH_QUERIES, PG_QUERIES
from scenarios.registry import Scenario, Threshold

__all__ = ["BUNDLED", "on_query_files"]

BUNDLED: dict[str, tuple[str, ...]] = {
    "PG": (*PG_QUERIES, "commit"),
    "CH": ("insert", *(f"query {name}" for name in CH_QUERIES)),
}
"""Request type → the bundled backend's statement names that a query file replaces (what the probe no longer runs)."""
OPTION = {"PG": "--pg-queries", "CH": "--clickhouse-queries"}


def _bundled(metric: str, rtype: str) -> bool:
    kind, _, name = metric.partition(" ")
    return kind == rtype and name in BUNDLED[rtype]


def _move(scenario: Scenario, rtype: str, names: Sequence[str], notes: list[str]) -> Scenario:
    dropped = [t for t in scenario.thresholds if _bundled(t.metric, rtype)]
    if not dropped:
        return scenario
    targets = tuple(f"{rtype} query {name}" for name in names)
    exprs: dict[str, Threshold] = {}
    for t in dropped:
        exprs.setdefault(t.expr, t)
    added: list[Threshold] = []
    for metric in targets:
        for expr, source in exprs.items():
            replaced = ", ".join(sorted({t.metric for t in dropped if t.expr == expr}))
            added.append(Threshold(
                metric, expr,
                f"{metric} {expr} ({OPTION[rtype]}: in place of the bundled backend's {replaced})",
                abort_on_fail=source.abort_on_fail, required=source.required,
            ))
    kept: list[Threshold] = []
    placed = False
    for t in scenario.thresholds:
        if _bundled(t.metric, rtype):
            if not placed:  # the file's lines where the first bundled one was: the report keeps the scenario's order
                kept.extend(added)
                placed = True
            continue
        kept.append(t)

    def renamed(metrics: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for m in metrics:
            for new in (targets if _bundled(m, rtype) else (m,)):
                if new not in out:
                    out.append(new)
        return tuple(out)

    notes.append(
        f"{OPTION[rtype]}: the probe runs the file's {len(names)} statement(s), not the bundled backend's; the "
        f"scenario's lines on {', '.join(sorted({t.metric for t in dropped}))} "
        f"({'; '.join(exprs)}) judge {', '.join(targets)} instead"
    )
    return replace(scenario, thresholds=tuple(kept), expected_breaches=renamed(scenario.expected_breaches),
                   holds_under_fault=renamed(scenario.holds_under_fault))


def on_query_files(
    scenario: Scenario, pg_queries: Sequence[str] = (), ch_queries: Sequence[str] = ()
) -> tuple[Scenario, list[str]]:
    """``scenario`` judged on the query files' statements (their names, in file order; empty: no file) instead of
    the bundled backend's, and the notes saying what moved (see the module docstring)."""
    notes: list[str] = []
    if pg_queries:
        scenario = _move(scenario, "PG", pg_queries, notes)
    if ch_queries:
        scenario = _move(scenario, "CH", ch_queries, notes)
    return scenario, notes
