"""Pure evaluation of SLA thresholds on histograms and counters.

A metric is named ``"TYPE name"`` (``"WS agent_completed"``, ``"PG thread history"``); a threshold's metric may be
a glob (``"PG *"``). A glob threshold is judged on each matching metric separately, except on a metric that has a
threshold of its own with the same statistic (``REDIS connect p(95) < 100`` overrides ``REDIS * p(95) < 50`` for
``REDIS connect``). A threshold whose metrics got no samples is ``no data`` (not a failure) unless it is
``required``, then it fails. ``count`` is the exception: on a metric without samples it is 0, judged like any value
(``WS events missing count < 1`` passes when nothing went missing), so ``required`` does not apply to it.

A result is *evidence* only when it was judged on samples (:func:`has_evidence`): a run whose thresholds were all
``no data``, or judged on nothing (``count`` of an empty metric), measured nothing, whatever the statuses say.

Statistics (see :mod:`sla_checks.expressions`): percentiles, avg, med, min, max over all samples of the metric
(successes and failures, as Locust's own table); ``count`` = samples; ``fail_ratio`` = failures / samples;
``rps`` = successful samples / run (or window) duration (throughput: a fast failure such as ``DEPENDENCY_TIMEOUT``
is no throughput); ``within(T)`` = successful samples ``<= T`` ms / all samples, in %.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sla_checks.expressions import Expression, parse_expression, unit_of
from sla_checks.formatting import format_value
from sla_checks.histogram import Histogram

__all__ = [
    "MetricData",
    "ThresholdSpec",
    "ThresholdResult",
    "statistic",
    "evaluate",
    "matching_metrics",
    "has_evidence",
    "closest_metrics",
    "PASS",
    "FAIL",
    "NO_DATA",
    "INCONCLUSIVE",
]

PASS, FAIL, NO_DATA = "pass", "fail", "no data"
INCONCLUSIVE = "inconclusive"
"""The run verdict when nothing failed but nothing was measured either (not a threshold status)."""


class MetricData:
    """All samples of one metric (in a run or a window): a histogram of every sample and one of the failures."""

    __slots__ = ("hist", "fails")

    def __init__(self, hist: Histogram | None = None, fails: Histogram | None = None) -> None:
        self.hist = hist if hist is not None else Histogram()
        self.fails = fails if fails is not None else Histogram()

    def record(self, response_time_ms: float, failed: bool) -> None:
        self.hist.record(response_time_ms)
        if failed:
            self.fails.record(response_time_ms)

    @property
    def count(self) -> int:
        return self.hist.count

    @property
    def failures(self) -> int:
        return self.fails.count

    def merge(self, other: MetricData) -> MetricData:
        self.hist.merge(other.hist)
        self.fails.merge(other.fails)
        return self

    def copy(self) -> MetricData:
        return MetricData().merge(self)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"h": self.hist.to_dict()}
        if self.fails.count:
            d["f"] = self.fails.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetricData:
        return cls(Histogram.from_dict(d["h"]), Histogram.from_dict(d["f"]) if "f" in d else None)

    @classmethod
    def merged(cls, items: Iterable[MetricData]) -> MetricData:
        out = cls()
        for m in items:
            out.merge(m)
        return out


@dataclass(frozen=True)
class ThresholdSpec:
    """One configured threshold: ``metric`` (exact or glob) must satisfy ``expression``."""

    metric: str
    expression: Expression
    description: str = ""
    abort_on_fail: bool = False
    delay_abort_eval_s: float = 0.0
    required: bool = False
    source: str = ""
    """Where it was declared (``config/ci.toml: thresholds."WS agent_completed"[0]``), for messages."""

    @classmethod
    def of(cls, metric: str, expression: str, **kw: Any) -> ThresholdSpec:
        """Convenience constructor for code and tests: ``ThresholdSpec.of("WS agent_completed", "p(95) < 2000")``."""
        return cls(metric=metric, expression=parse_expression(expression), **kw)

    @property
    def is_glob(self) -> bool:
        return any(c in self.metric for c in "*?[")

    @property
    def name(self) -> str:
        return f"{self.metric} {self.expression}"


@dataclass
class ThresholdResult:
    """A threshold judged on one concrete metric (or on its glob, when nothing matched)."""

    spec: ThresholdSpec
    metric: str
    status: str
    value: float | None
    samples: int
    failed_windows: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.metric} {self.spec.expression}"

    def describe(self) -> str:
        """``WS agent_completed p(95) < 2000 was 3,120 ms`` / ``... no data (required)``."""
        if self.value is None:
            return f"{self.name}: no data{' (required: the metric got no samples)' if self.spec.required else ''}"
        return (f"{self.name} was {format_value(self.value, unit_of(self.spec.expression, self.metric))}"
                f"{few_samples_note(self.spec.expression, self.samples)}")


def few_samples_note(expr: Expression, samples: int) -> str:
    """`` (over 3 samples: a p(95) of fewer than 20 is their slowest)`` when a percentile's rank is the last sample,
    so the reader knows one slow sample decided it (the value is the same nearest-rank percentile either way)."""
    if expr.stat not in ("p", "med") or samples < 1:
        return ""
    q = 50.0 if expr.stat == "med" else float(expr.arg or 0.0)
    if not 0 < q < 100 or math.ceil(q / 100.0 * samples - 1e-9) < samples:
        return ""
    fewer = math.ceil(1.0 / (1.0 - q / 100.0) - 1e-9)  # the smallest count whose rank is not the last sample
    return f" (over {samples} sample{'' if samples == 1 else 's'}: a p({q:g}) of fewer than {fewer} is their slowest)"


def statistic(expr: Expression, data: MetricData | None, duration_s: float) -> float | None:
    """The value of ``expr``'s statistic on ``data`` (None without samples, except ``count``: 0)."""
    if data is None or data.count == 0:
        return 0.0 if expr.stat == "count" else None
    h = data.hist
    stat = expr.stat
    if stat == "p":
        return h.percentile(expr.arg or 0.0)
    if stat == "med":
        return h.percentile(50)
    if stat == "avg":
        return h.mean
    if stat == "min":
        return h.min
    if stat == "max":
        return h.max
    if stat == "count":
        return float(h.count)
    if stat == "fail_ratio":
        return data.failures / h.count
    if stat == "rps":
        return (h.count - data.failures) / duration_s if duration_s > 0 else None
    if stat == "within":
        limit = expr.arg or 0.0
        ok = h.count_le(limit) - data.fails.count_le(limit)
        return 100.0 * ok / h.count
    raise ValueError(f"unknown statistic {stat!r}")  # pragma: no cover - the parser rejects it


def matching_metrics(pattern: str, metrics: Iterable[str]) -> list[str]:
    """Metrics matched by ``pattern`` (exact name or fnmatch glob), sorted."""
    if not any(c in pattern for c in "*?["):
        return [pattern] if pattern in set(metrics) else []
    return sorted(m for m in metrics if fnmatch.fnmatchcase(m, pattern))


def evaluate(
    specs: Iterable[ThresholdSpec],
    metrics: Mapping[str, MetricData],
    duration_s: float,
    *,
    judge_no_data: bool = True,
) -> list[ThresholdResult]:
    """Judge every threshold on ``metrics``.

    ``judge_no_data=False`` (used per window) leaves ``required`` thresholds without samples as ``no data``
    instead of failing them: a quiet window is not a missing probe.
    """
    specs = list(specs)
    exact = {(s.metric, s.expression.lhs) for s in specs if not s.is_glob}
    results: list[ThresholdResult] = []
    present = [m for m, d in metrics.items() if d.count > 0]
    for spec in specs:
        targets = matching_metrics(spec.metric, present)
        if spec.is_glob:
            targets = [m for m in targets if (m, spec.expression.lhs) not in exact]
        if not targets:
            value = statistic(spec.expression, None, duration_s)
            if value is None:
                status = FAIL if spec.required and judge_no_data else NO_DATA
            else:
                status = PASS if spec.expression.holds(value) else FAIL
            results.append(ThresholdResult(spec, spec.metric, status, value, 0))
            continue
        for m in targets:
            data = metrics[m]
            value = statistic(spec.expression, data, duration_s)
            if value is None:
                status = FAIL if spec.required and judge_no_data else NO_DATA
            else:
                status = PASS if spec.expression.holds(value) else FAIL
            results.append(ThresholdResult(spec, m, status, value, data.count))
    return results


def has_evidence(results: Iterable[ThresholdResult]) -> bool:
    """True when at least one threshold was judged (pass or fail) on a metric that had samples."""
    return any(r.status in (PASS, FAIL) and r.value is not None and r.samples > 0 for r in results)


def closest_metrics(pattern: str, produced: Iterable[str], n: int = 3) -> list[str]:
    """The metrics of ``produced`` close enough to ``pattern`` (a threshold's metric that got no samples) to be what
    it meant, best first: the same name under another request type (``POST /health`` -> ``GET /health``), a typo
    or a renamed request (``GET /helth`` -> ``GET /health``). Names that merely share a request type
    (``WS generator lag``, ``WS agent_completed``) are not close."""
    names = sorted(set(produced))
    name = pattern.split(" ", 1)[-1]
    same_name = [m for m in names if m != pattern and m.split(" ", 1)[-1] == name]
    close = difflib.get_close_matches(pattern, names, n=n, cutoff=0.8)
    return (same_name + [m for m in close if m not in same_name])[:n]
