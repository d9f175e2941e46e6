"""SLA engine: thresholds (k6-style expressions), exact mergeable percentiles, verdict, attribution and reports.

Pure core (no Locust import): :mod:`~sla_checks.expressions` (parser), :mod:`~sla_checks.histogram`,
:mod:`~sla_checks.evaluate`, :mod:`~sla_checks.engine` (collection, time buckets, windows, abort),
:mod:`~sla_checks.attribution`, :mod:`~sla_checks.report` (JSON schema, terminal, JUnit),
:mod:`~sla_checks.tracker` (``PerformanceTracker``). Locust glue: :mod:`~sla_checks.plugin` (imported by
``locustfile.py``); producers of time series call :func:`sla_checks.gauges.record_gauge`. HTML report and web-UI
tab: :mod:`~sla_checks.report_html`, :mod:`~sla_checks.webui`.
"""

from __future__ import annotations

from sla_checks.evaluate import MetricData, ThresholdResult, ThresholdSpec, evaluate
from sla_checks.expressions import Expression, ExpressionError, parse_expression
from sla_checks.histogram import Histogram
from sla_checks.report import SCHEMA, build_report, render_junit, render_terminal

__all__ = [
    "SCHEMA",
    "Expression",
    "ExpressionError",
    "Histogram",
    "MetricData",
    "ThresholdResult",
    "ThresholdSpec",
    "build_report",
    "evaluate",
    "parse_expression",
    "render_junit",
    "render_terminal",
]
