"""Self-contained HTML SLA report: one file, opens offline, no scripts, charts drawn as inline SVG in Python.

Input is the JSON report dict (schema ``ws-agent-loadtest/sla-report/1``, docs/report-schema.md); every field is optional,
so a chat-only run (no tier metrics), a one-window run or an aborted run still renders. Every string that comes from
the report (metric names, expressions, descriptions, config paths) is HTML-escaped; the page also carries a
Content-Security-Policy that forbids scripts and any network fetch, so it stays inert even if opened from a mail.

Modules: :mod:`.page` (the page and its writer), :mod:`.summary` (banner, facts, notes, thresholds table),
:mod:`.sections` (windows, metrics, stages, attribution, gauges), :mod:`.svg` (the chart engine), :mod:`.markup`
(escaping, badges), :mod:`.style` (CSS and CSP), :mod:`.cli`; values are printed by :mod:`sla_checks.formatting`.

Usage::

    from sla_checks.report_html import render, write_html_report
    html_text = render(report)                    # str
    write_html_report(report, "sla-report.html")  # atomic write, returns the Path

    python -m sla_checks.report_html sla-report.json -o sla-report.html
"""

from __future__ import annotations

from sla_checks.report_html.cli import main
from sla_checks.report_html.page import SCHEMA, render, write_html_report

__all__ = ["SCHEMA", "main", "render", "write_html_report"]
