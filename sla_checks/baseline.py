"""The baseline regression gate (pure, besides reading the baseline file): judge a run against a previous run's JSON
report (``--sla-baseline FILE``, ``python -m sla_checks compare OLD.json NEW.json``).

A **regression line** (:class:`~sla_checks.expressions.Regression`) is declared beside the thresholds of a profile or
scenario (``"WS agent_completed" = ["p(95) < 2000", "p(95) <= baseline * 1.10"]``) and judged on every matching metric
that has samples, on the exact histograms of both runs (the report's ``histograms`` field), with the tests of
:mod:`sla_checks.significance`. A line **fails** only when the run's value is beyond it *and* the test is at least
:data:`CONFIDENCE` sure of it; a value beyond the line that the test cannot tell from noise passes, marked
``beyond_line``. Without regression lines, :func:`default_lines` applies: p(95) and p(99) of every metric judged by a
latency threshold may rise at most 10 % plus :data:`DEFAULT_SLACK_MS`, and the throughput of every metric judged by
an ``rps`` threshold may fall at most 10 %.

Usage::

    baseline = load_baseline("artifacts/last-good.json")            # BaselineError (exit 2) when unusable
    section = judge(baseline, lines, metrics, duration_s, thresholds=[(metric, expression), ...])
    verdict, reasons = regression_verdict(section, verdict, reasons)
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.errors import UsageError
from sla_checks.evaluate import FAIL, NO_DATA, PASS, MetricData, ThresholdResult
from sla_checks.expressions import Expression, Regression, parse_regression
from sla_checks.formatting import format_value
from sla_checks.significance import percentile_regression, rate_regression

__all__ = [
    "CONFIDENCE",
    "DEFAULT_LATENCY_FACTOR",
    "DEFAULT_RPS_FACTOR",
    "DEFAULT_SLACK_MS",
    "NO_BASELINE",
    "REPORT_SCHEMA",
    "Baseline",
    "BaselineError",
    "Gate",
    "RegressionSpec",
    "baseline_from_report",
    "default_lines",
    "describe_row",
    "judge",
    "load_baseline",
    "regression_lines_text",
    "regression_verdict",
]

REPORT_SCHEMA = "ws-agent-loadtest/sla-report/1"
CONFIDENCE = 0.95
"""A regression line fails when its test is at least this sure that the run is beyond it."""
DEFAULT_LATENCY_FACTOR = 1.10
DEFAULT_RPS_FACTOR = 0.90
DEFAULT_SLACK_MS = 5.0
"""Absolute slack of the default latency lines. A fast metric (a Redis GET at 1-2 ms) moves by whole milliseconds:
the histogram's buckets are 1 ms wide (a 1.2 ms sample reads 2 ms) and a greenlet waits for the gevent loop while
another holds it (docs/sla.md gives the measured spread); 10 % of 2 ms would fail on that alone."""
NO_BASELINE = "no baseline"
"""Status of a line on a metric the baseline run did not measure."""
_LATENCY_STATS = ("p", "avg", "med", "min", "max", "within")


class BaselineError(UsageError, ValueError):
    """A baseline report that cannot be used (missing, unreadable, not an SLA report, no histograms): exit 2."""


@dataclass(frozen=True)
class RegressionSpec:
    """One configured regression line: ``metric`` (exact or glob) must keep to ``regression`` against the baseline."""

    metric: str
    regression: Regression
    description: str = ""
    source: str = ""

    @classmethod
    def of(cls, metric: str, text: str, **kw: Any) -> RegressionSpec:
        return cls(metric=metric, regression=parse_regression(text), **kw)

    @property
    def name(self) -> str:
        return f"{self.metric} {self.regression}"


@dataclass
class Baseline:
    """What the gate needs of a previous run's report."""

    path: str
    metrics: dict[str, MetricData]
    duration_s: float
    """The span its verdict covered (its ``rps`` denominators)."""
    profile: str = ""
    scenario: str | None = None
    started_at: str | None = None
    verdict: str | None = None


def baseline_from_report(report: Any, path: str = "") -> Baseline:
    """The :class:`Baseline` of a parsed JSON report; :class:`BaselineError` when it is not a usable one."""
    where = f"--sla-baseline {path!r}" if path else "baseline report"
    if not isinstance(report, Mapping) or report.get("schema") != REPORT_SCHEMA:
        raise BaselineError(f"{where}: not an SLA JSON report (schema {REPORT_SCHEMA}); give a file written by "
                            "--sla-report-json")
    histograms = report.get("histograms")
    if not isinstance(histograms, Mapping):
        raise BaselineError(f"{where}: the report carries no 'histograms' (written by an older version, or a live "
                            "snapshot); rerun the baseline with --sla-report-json")
    try:
        metrics = {str(k): MetricData.from_dict(v) for k, v in histograms.items()}
        duration = float(report.get("judged_duration_s", report.get("duration_s")) or 0.0)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise BaselineError(f"{where}: malformed 'histograms' ({e}); give a report written by --sla-report-json")\
            from None
    scenario = report.get("scenario")
    return Baseline(
        path=path,
        metrics=metrics,
        duration_s=duration,
        profile=str(report.get("profile") or ""),
        scenario=str(scenario.get("name")) if isinstance(scenario, Mapping) and scenario.get("name") else None,
        started_at=report.get("started_at"),
        verdict=report.get("verdict"),
    )


def load_baseline(path: str) -> Baseline:
    """Read and check the baseline report at ``path``; :class:`BaselineError` (one line) when it cannot be used."""
    where = f"--sla-baseline {path!r}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{where}: no such file; give the JSON report of an earlier run (--sla-report-json)")\
            from None
    except IsADirectoryError:
        raise BaselineError(f"{where}: is a directory; give the JSON report file of an earlier run") from None
    except UnicodeDecodeError:
        raise BaselineError(f"{where}: not UTF-8 text; give the JSON report of an earlier run") from None
    except OSError as e:
        raise BaselineError(f"{where}: cannot be read ({e.strerror}); give a readable JSON report") from None
    try:
        report = json.loads(text)
    except json.JSONDecodeError as e:
        raise BaselineError(f"{where}: not valid JSON ({e.msg} at line {e.lineno}); give the JSON report of an "
                            "earlier run (--sla-report-json)") from None
    return baseline_from_report(report, path)


def default_lines(thresholds: Iterable[tuple[str, Expression]]) -> list[RegressionSpec]:
    """The lines applied without any in the profile: for every metric judged by a latency threshold, p(95) and
    p(99) may rise at most 10 % + :data:`DEFAULT_SLACK_MS`; for every metric judged by an ``rps`` threshold, the
    throughput may fall at most 10 %. ``thresholds``: (concrete metric, expression) of the run's judged lines."""
    latency: list[str] = []
    rate: list[str] = []
    for metric, expr in thresholds:
        if expr.stat in _LATENCY_STATS and metric not in latency:
            latency.append(metric)
        elif expr.stat == "rps" and expr.op in (">", ">=") and metric not in rate:
            rate.append(metric)
    slack = f" + {DEFAULT_SLACK_MS:g}ms"
    out = []
    for metric in latency:
        for q in (95, 99):
            out.append(RegressionSpec.of(metric, f"p({q}) <= baseline * {DEFAULT_LATENCY_FACTOR:g}{slack}",
                                         source="default"))
    for metric in rate:
        out.append(RegressionSpec.of(metric, f"rps >= baseline * {DEFAULT_RPS_FACTOR:g}", source="default"))
    return out


def _matching(pattern: str, names: Iterable[str]) -> list[str]:
    if not any(c in pattern for c in "*?["):
        return [pattern] if pattern in set(names) else []
    return sorted(n for n in set(names) if fnmatch.fnmatchcase(n, pattern))


def _value(reg: Regression, data: MetricData, duration_s: float) -> float | None:
    if data.count == 0:
        return None
    if reg.stat == "rps":
        return (data.count - data.failures) / duration_s if duration_s > 0 else None
    return data.hist.percentile(reg.arg or 0.0)


def _confidence(reg: Regression, old: MetricData, old_s: float, new: MetricData, new_s: float) -> float | None:
    if reg.stat == "rps":
        return rate_regression(old.count - old.failures, old_s, new.count - new.failures, new_s, reg.factor)
    return percentile_regression(old.hist, new.hist, reg.arg or 0.0, reg.factor, reg.slack_ms, reg.op == "<")


def _row(spec: RegressionSpec, metric: str, baseline: Baseline, new: MetricData | None,
         duration_s: float) -> dict[str, Any]:
    reg = spec.regression
    old = baseline.metrics.get(metric)
    old_value = _value(reg, old, baseline.duration_s) if old is not None else None
    new_value = _value(reg, new, duration_s) if new is not None else None
    row: dict[str, Any] = {
        "metric": metric,
        "pattern": spec.metric,
        "expression": str(reg),
        "description": spec.description,
        "source": spec.source,
        "unit": reg.unit,
        "old": _round(old_value),
        "new": _round(new_value),
        "limit": None,
        "change_pct": None,
        "confidence": None,
        "beyond_line": False,
        "samples_old": old.count if old is not None else 0,
        "samples_new": new.count if new is not None else 0,
    }
    if new_value is None:
        row["status"] = NO_DATA
        return row
    if old_value is None or old is None or new is None:
        row["status"] = NO_BASELINE
        return row
    limit = reg.limit(old_value)
    beyond = not reg.holds(new_value, old_value)
    confidence = _confidence(reg, old, baseline.duration_s, new, duration_s)
    row.update(
        limit=_round(limit),
        change_pct=_round(100.0 * (new_value - old_value) / old_value, 1) if old_value else None,
        confidence=_round(confidence, 4),
        beyond_line=beyond,
        status=FAIL if beyond and confidence is not None and confidence >= CONFIDENCE else PASS,
    )
    return row


def _round(value: float | None, nd: int = 3) -> float | None:
    return None if value is None else round(float(value), nd)


def judge(
    baseline: Baseline,
    lines: Iterable[RegressionSpec],
    metrics: Mapping[str, MetricData],
    duration_s: float,
    *,
    thresholds: Iterable[tuple[str, Expression]] = (),
    profile: str = "",
    scenario: str | None = None,
) -> dict[str, Any]:
    """The report's ``regression`` section: every line judged on each metric it matches (with samples in the run or
    the baseline), against ``baseline``. Without ``lines``, :func:`default_lines` of ``thresholds`` apply."""
    specs = list(lines)
    defaults = not specs
    if defaults:
        specs = default_lines(thresholds)
    present = [m for m, d in metrics.items() if d.count]
    known = set(present) | {m for m, d in baseline.metrics.items() if d.count}
    rows = []
    for spec in specs:
        targets = _matching(spec.metric, known)
        for metric in targets or [spec.metric]:
            rows.append(_row(spec, metric, baseline, metrics.get(metric), duration_s))
    warnings = []
    if baseline.profile and profile and baseline.profile != profile:
        warnings.append(f"the baseline was judged with profile {baseline.profile!r}, this run with {profile!r}: "
                        "the runs may not be comparable")
    if (baseline.scenario or None) != (scenario or None):
        warnings.append(f"the baseline ran {_scenario_text(baseline.scenario)}, this run {_scenario_text(scenario)}: "
                        "the runs may not be comparable")
    if baseline.verdict == FAIL:
        warnings.append("the baseline run failed its own SLA verdict")
    return {
        "baseline": {
            "file": baseline.path,
            "profile": baseline.profile,
            "scenario": baseline.scenario,
            "started_at": baseline.started_at,
            "verdict": baseline.verdict,
            "duration_s": _round(baseline.duration_s),
        },
        "defaults": defaults,
        "confidence_level": CONFIDENCE,
        "warnings": warnings,
        "lines": rows,
        "failed": sum(1 for r in rows if r["status"] == FAIL),
    }


@dataclass
class Gate:
    """A baseline and the regression lines a run is judged with against it (none: :func:`default_lines`)."""

    baseline: Baseline
    lines: list[RegressionSpec]

    def judge(
        self,
        metrics: Mapping[str, MetricData],
        duration_s: float,
        results: Iterable[ThresholdResult],
        profile: str = "",
        scenario: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The report's ``regression`` section for the run's judged ``metrics`` and threshold ``results``."""
        judged = [(r.metric, r.spec.expression) for r in results if r.samples > 0]
        name = scenario.get("name") if scenario else None
        return judge(self.baseline, self.lines, metrics, duration_s, thresholds=judged, profile=profile,
                     scenario=str(name) if name else None)


def _scenario_text(name: str | None) -> str:
    return f"scenario {name!r}" if name else "no scenario"


def describe_row(row: Mapping[str, Any]) -> str:
    """``WS agent_completed p(95) <= baseline * 1.1 + 5ms: 612 ms -> 903 ms (+47.5 %, limit 678 ms), confidence
    99.9 %``."""
    unit = row.get("unit") or "ms"
    head = f"{row['metric']} {row['expression']}"
    if row.get("status") == NO_DATA:
        return f"{head}: no samples in this run"
    if row.get("status") == NO_BASELINE:
        return f"{head}: the baseline has no samples of it ({format_value(row.get('new'), unit)} now)"
    change = row.get("change_pct")
    change_text = f"{change:+.1f} %, " if change is not None else ""
    confidence = row.get("confidence")
    return (f"{head}: {format_value(row.get('old'), unit)} -> {format_value(row.get('new'), unit)} "
            f"({change_text}limit {format_value(row.get('limit'), unit)}), confidence {_percent(confidence)}")


def _percent(confidence: float | None) -> str:
    if confidence is None:
        return "n/a"
    if confidence >= 0.9999:
        return "> 99.99 %"
    return f"{100.0 * confidence:.1f} %" if confidence >= 0.001 else "0 %"


def regression_verdict(section: Mapping[str, Any] | None, verdict: str, reasons: list[str]) -> tuple[str, list[str]]:
    """``verdict`` and ``reasons`` with the failing regression lines: any makes the verdict ``fail`` (fail beats
    inconclusive beats pass), each with a ``SLA REGRESSION: ...`` reason naming old value, new value, confidence."""
    if not section:
        return verdict, reasons
    failing = [f"SLA REGRESSION: {describe_row(r)}" for r in section.get("lines", ()) if r.get("status") == FAIL]
    if not failing:
        return verdict, reasons
    kept = reasons if verdict == FAIL else []  # an inconclusive verdict's reasons give way to the failure
    return FAIL, [*kept, *failing]


def regression_lines_text(section: Mapping[str, Any] | None) -> list[str]:
    """The terminal block: one line per judged regression line (failing first), then the warnings."""
    if not section:
        return []
    base = section.get("baseline") or {}
    what = "default lines" if section.get("defaults") else "the profile's lines"
    lines = [f"baseline {base.get('file') or '?'} (started {base.get('started_at') or '?'}, profile "
             f"{base.get('profile') or '?'}): {what}, a line fails at confidence >= "
             f"{100 * float(section.get('confidence_level') or CONFIDENCE):g} %"]
    rows = sorted(section.get("lines", ()), key=lambda r: r.get("status") != FAIL)
    mark = {PASS: "pass", FAIL: "FAIL", NO_DATA: "no data", NO_BASELINE: "no baseline"}
    for r in rows:
        note = " (beyond the line, within noise)" if r.get("beyond_line") and r.get("status") == PASS else ""
        lines.append(f"  {mark.get(r.get('status', ''), r.get('status'))}  {describe_row(r)}{note}")
    for w in section.get("warnings", ()):
        lines.append(f"  warning: {w}")
    return lines
