"""Self-contained HTML SLA report: one file, opens offline, no scripts, charts drawn as inline SVG in Python.

Input is the JSON report dict (schema ``ws-agent-loadtest/sla-report/1``, see the README); every field is optional,
so a chat-only run (no tier metrics), a one-window run or an aborted run still renders. Every string that comes from
the report (metric names, expressions, descriptions, config paths) is HTML-escaped; the page also carries a
Content-Security-Policy that forbids scripts and any network fetch, so it stays inert even if opened from a mail.

Usage::

    from sla_checks.report_html import render, write_html_report
    html_text = render(report)                    # str
    write_html_report(report, "sla-report.html")  # atomic write, returns the Path

    python -m sla_checks.report_html sla-report.json -o sla-report.html
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["render", "write_html_report", "tier_of", "STAGE_EVENTS"]

SCHEMA = "ws-agent-loadtest/sla-report/1"

#: The five agent events in pipeline order; stage keys ``"a→b"`` are ordered by them.
STAGE_EVENTS: tuple[str, ...] = (
    "send",
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
)

#: Metric shown against the tiers in the time-series chart (falls back to the first WS/FLOW metric).
PRIMARY_METRIC = "WS agent_completed"

_TIER_ORDER = ("redis", "postgres", "clickhouse")
_TIER_BY_TYPE = {"REDIS": "redis", "PG": "postgres", "CH": "clickhouse"}
_PALETTE = ("#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#e67700", "#0b7285", "#5c940d", "#495057")
_MAX_GAUGES = 12
_MAX_GAUGE_POINTS = 600

_CSS = """
:root{--pass:#2b8a3e;--fail:#c92a2a;--nodata:#868e96;--warn:#e67700;--ink:#212529;--muted:#6c757d;--line:#dee2e6}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);
margin:0 auto;max-width:1100px;padding:16px 20px 40px}
h1{font-size:22px;margin:4px 0 12px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);
padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
.banner{border-radius:8px;padding:14px 18px;color:#fff;display:flex;flex-wrap:wrap;gap:8px 28px;align-items:baseline}
.banner.pass{background:var(--pass)}.banner.fail{background:var(--fail)}.banner.unknown{background:var(--nodata)}
.banner.inconclusive{background:var(--warn)}
.banner .verdict{font-size:24px;font-weight:700;letter-spacing:.5px}
.meta{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:4px 18px;margin:12px 0;
color:var(--muted)}.meta b{color:var(--ink);font-weight:600}
.note{border-left:4px solid var(--warn);background:#fff4e6;padding:8px 12px;margin:8px 0}
.note.abort{border-color:var(--fail);background:#fff5f5}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f8f9fa;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;color:#fff;font-size:12px;font-weight:600;
white-space:nowrap}.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}
.badge.nodata,.badge.unknown{background:var(--nodata)}
tr.fail td{background:#fff5f5}code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
.chart{margin:8px 0 4px}.chart svg{width:100%;max-width:980px;height:auto;background:#fff}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12.5px;margin:2px 0 10px}
.legend i{display:inline-block;width:14px;height:4px;margin-right:5px;vertical-align:middle}
.muted{color:var(--muted)}.empty{color:var(--muted);font-style:italic}
.attr{border:1px solid var(--line);border-radius:6px;padding:8px 12px;margin:8px 0}
footer{margin-top:30px;color:var(--muted);font-size:12px}
"""

# Scripts and every network fetch are forbidden: the report opens offline and stays inert.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


# --------------------------------------------------------------------------------------------------- helpers


def _e(value: Any) -> str:
    """HTML-escape anything (None → empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _num(value: Any) -> float | None:
    """A finite float, or None for missing / non-numeric / NaN / inf values."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any, default: int = 0) -> int:
    number = _num(value)
    return default if number is None else int(number)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, Mapping) else {}  # type: ignore[return-value]


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _fmt_ms(value: Any) -> str:
    number = _num(value)
    if number is None:
        return "–"
    number += 0.0  # -0.0 → 0.0
    if abs(number) >= 100:
        return f"{number:,.0f} ms"
    if abs(number) >= 10:
        return f"{number:.1f} ms"
    return f"{number:.2f} ms"


def _fmt_value(value: Any, unit: Any) -> str:
    """Format a threshold value in its unit ("ms", "%", "rps", "ratio", "count")."""
    number = _num(value)
    if number is None:
        return "–"
    if unit == "ms":
        return _fmt_ms(number)
    if unit == "%":
        return f"{number:.2f} %"
    if unit == "rps":
        return f"{number:,.2f} rps"
    if unit == "ratio":
        return f"{number:.4f} ({number * 100:.2f} %)"
    if unit == "count":
        return f"{number:,.0f}"
    return f"{number:,.4g}" + (f" {unit}" if unit else "")


def _fmt_count(value: Any) -> str:
    number = _num(value)
    return "–" if number is None else f"{number:,.0f}"


def _fmt_time(value: Any) -> str:
    """An ISO timestamp shortened for display (date and time to the second, UTC offset kept)."""
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    offset = moment.strftime("%z")
    if offset in ("+0000", "-0000"):
        return text + " UTC"
    return text + (f" {offset}" if offset else "")


def _clock(value: Any) -> str:
    """HH:MM:SS of an ISO timestamp, or '' when it cannot be parsed."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).strftime("%H:%M:%S")
    except (TypeError, ValueError):
        return ""


def _status_class(status: Any) -> str:
    text = str(status or "").lower()
    if text in ("pass", "passed", "ok"):
        return "pass"
    if text in ("fail", "failed"):
        return "fail"
    if text.replace(" ", "") == "nodata":
        return "nodata"
    if text == "inconclusive":
        return "inconclusive"
    return "unknown"


def _badge(status: Any) -> str:
    label = str(status) if status not in (None, "") else "unknown"
    return f'<span class="badge {_status_class(status)}">{_e(label)}</span>'


def tier_of(metric: str) -> str | None:
    """The tier a metric measures: ``REDIS *`` → redis, ``PG *`` → postgres, ``CH *`` → clickhouse,
    ``HTTP ready:<tier>`` → that tier; None for everything else (WS, FLOW, other HTTP paths)."""
    request_type, _, name = str(metric).partition(" ")
    if request_type in _TIER_BY_TYPE:
        return _TIER_BY_TYPE[request_type]
    if request_type == "HTTP" and name.startswith("ready:"):
        tier = name[len("ready:") :].strip()
        return {"pg": "postgres", "ch": "clickhouse"}.get(tier, tier) or None
    return None


def _tier_rank(tier: str) -> tuple[int, str]:
    return (_TIER_ORDER.index(tier) if tier in _TIER_ORDER else len(_TIER_ORDER), tier)


def _stage_rank(stage: str) -> tuple[int, int, str]:
    first, _, second = stage.partition("→")

    def position(event: str) -> int:
        event = event.strip()
        return STAGE_EVENTS.index(event) if event in STAGE_EVENTS else len(STAGE_EVENTS)

    return (position(first), position(second), stage)


def _threshold_limit(expression: str) -> float | None:
    """The limit of a ``p(95) < N`` / ``p(95) <= N`` expression, else None."""
    match = re.fullmatch(
        r"\s*p\(\s*95(?:\.0*)?\s*\)\s*<=?\s*([0-9]+(?:\.[0-9]+)?)\s*(?:ms)?\s*", expression or ""
    )
    return float(match.group(1)) if match else None


# --------------------------------------------------------------------------------------------------- SVG charts


def _nice_log_bounds(values: Iterable[float]) -> tuple[float, float]:
    positives = [v for v in values if v > 0]
    if not positives:
        return 1.0, 10.0
    low = 10 ** math.floor(math.log10(min(positives)))
    high = 10 ** math.ceil(math.log10(max(positives)))
    if high <= low:
        high = low * 10
    return low, high


def _nice_linear_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _fmt_axis(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _legend(labels: Sequence[tuple[str, str, bool]]) -> str:
    items = []
    for label, color, dashed in labels:
        style = (
            f"background:{color}"
            if not dashed
            else f"background:repeating-linear-gradient(90deg,{color} 0 5px,transparent 5px 8px)"
        )
        items.append(f'<span><i style="{style}"></i>{_e(label)}</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def _line_chart(
    chart_id: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    log_scale: bool,
    unit: str,
    hlines: Sequence[tuple[str, float]] = (),
    bands: Iterable[int] = (),
    x_title: str = "",
    width: int = 820,
    height: int = 300,
) -> str:
    """An inline SVG line chart: one x position per label, gaps where a value is None.

    Each data point is a ``<circle class="pt">`` with a ``<title>`` tooltip; ``bands`` shades x positions (failed
    windows); ``hlines`` draws dashed limit lines.
    """
    left, right, top, bottom = 64, 40, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, points in series for v in points if v is not None]
    values += [v for _, v in hlines]
    count = max(len(x_labels), 1)

    if log_scale:
        low, high = _nice_log_bounds(values)
        span = math.log10(high) - math.log10(low)

        def y_of(v: float) -> float:
            clamped = max(v, low)
            return top + plot_h - (math.log10(clamped) - math.log10(low)) / span * plot_h

        ticks = [low * 10**k for k in range(round(span) + 1)]
    else:
        high = _nice_linear_max(max(values) if values else 1.0)

        def y_of(v: float) -> float:
            return top + plot_h - max(v, 0.0) / high * plot_h

        ticks = [high * k / 4 for k in range(5)]

    def x_of(i: int) -> float:
        return left + (plot_w / 2 if count == 1 else i * plot_w / (count - 1))

    parts = [
        f'<svg id="{_e(chart_id)}" class="chart-svg" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-size="11" '
        f'font-family="system-ui,sans-serif">'
    ]
    band_w = plot_w / count if count > 1 else plot_w
    for i in sorted(set(bands)):
        if 0 <= i < count:
            x = x_of(i) - (band_w / 2 if count > 1 else plot_w / 2)
            parts.append(
                f'<rect class="band" x="{max(x, left):.1f}" y="{top}" width="{min(band_w, plot_w):.1f}" '
                f'height="{plot_h}" fill="#ffe3e3"><title>failed window {_e(x_labels[i])}</title></rect>'
            )
    for tick in ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e9ecef"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#495057">{_e(_fmt_axis(tick))}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#adb5bd"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#adb5bd"/>'
        f'<text transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="#495057">{_e(unit)}{" (log scale)" if log_scale else ""}</text>'
    )
    longest = max((len(label) for label in x_labels), default=1)
    fits = max(1, int(plot_w // (longest * 6.2 + 14)))  # ~6 px per character at font-size 11
    label_every = max(1, math.ceil(count / fits))
    for i, label in enumerate(x_labels):
        if i % label_every == 0:
            anchor = "end" if count > 1 and i == count - 1 else "middle"  # keep the right-most label inside
            parts.append(
                f'<text x="{x_of(i):.1f}" y="{top + plot_h + 16}" text-anchor="{anchor}" fill="#495057">{_e(label)}</text>'
            )
    if x_title:
        parts.append(
            f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" fill="#6c757d">{_e(x_title)}</text>'
        )
    for label, limit in hlines:
        y = y_of(limit)
        parts.append(
            f'<line class="limit" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c92a2a" '
            f'stroke-dasharray="6 4" stroke-width="1.5"><title>{_e(label)}</title></line>'
            f'<text x="{left + plot_w - 4}" y="{y - 4:.1f}" text-anchor="end" fill="#c92a2a">{_e(label)}</text>'
        )
    for index, (label, points) in enumerate(series):
        color = _PALETTE[index % len(_PALETTE)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, value in enumerate(points):
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{x_of(i):.1f},{y_of(value):.1f}")
        if segment:
            segments.append(segment)
        parts.append(f'<g class="series" data-series="{_e(label)}" stroke="{color}" fill="{color}">')
        for seg in segments:
            if len(seg) > 1:
                parts.append(f'<polyline fill="none" stroke-width="2" points="{" ".join(seg)}"/>')
        radius = 3 if len(points) <= 120 else 1.5
        for i, value in enumerate(points):
            if value is None:
                continue
            x_label = x_labels[i] if i < len(x_labels) else str(i)
            shown = _fmt_ms(value) if unit == "ms" else f"{value:,.4g} {unit}".strip()
            parts.append(
                f'<circle class="pt" cx="{x_of(i):.1f}" cy="{y_of(value):.1f}" r="{radius}">'
                f"<title>{_e(label)} · {_e(x_label)}: {_e(shown)}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    legend = [(label, _PALETTE[i % len(_PALETTE)], False) for i, (label, _) in enumerate(series)]
    legend += [(label, "#c92a2a", True) for label, _ in hlines]
    return f'<div class="chart">{"".join(parts)}{_legend(legend)}</div>'


def _bar_chart(
    chart_id: str,
    rows: Sequence[tuple[str, Sequence[float | None]]],
    bar_labels: Sequence[str],
    *,
    unit: str,
    log_scale: bool = False,
    width: int = 820,
) -> str:
    """Horizontal grouped bars (one group per row, one bar per ``bar_labels`` entry), as inline SVG."""
    left, right, top = 250, 90, 8
    group_h = 10 + 14 * len(bar_labels)
    height = top + group_h * len(rows) + 10
    plot_w = width - left - right
    values = [v for _, vals in rows for v in vals if v is not None]
    if log_scale:
        low, high = _nice_log_bounds(values)
        span = math.log10(high) - math.log10(low)

        def w_of(v: float) -> float:
            return max(0.0, (math.log10(max(v, low)) - math.log10(low)) / span * plot_w) + 2
    else:
        high = _nice_linear_max(max(values) if values else 1.0)

        def w_of(v: float) -> float:
            return max(v, 0.0) / high * plot_w + 1

    parts = [
        f'<svg id="{_e(chart_id)}" class="chart-svg" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-size="11" '
        f'font-family="system-ui,sans-serif">'
    ]
    for r, (label, vals) in enumerate(rows):
        y0 = top + r * group_h
        parts.append(
            f'<text x="{left - 8}" y="{y0 + group_h / 2 + 2:.1f}" text-anchor="end" fill="#212529">{_e(label)}</text>'
        )
        for b, value in enumerate(vals):
            if value is None:
                continue
            color = _PALETTE[b % len(_PALETTE)]
            y = y0 + 5 + b * 14
            width_px = w_of(value)
            shown = _fmt_ms(value) if unit == "ms" else f"{value:,.4g} {unit}"
            parts.append(
                f'<rect class="bar pt" x="{left}" y="{y}" width="{width_px:.1f}" height="11" fill="{color}">'
                f"<title>{_e(label)} {_e(bar_labels[b])}: {_e(shown)}</title></rect>"
                f'<text x="{left + width_px + 4:.1f}" y="{y + 9}" fill="#495057">{_e(shown)}</text>'
            )
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - 10}" stroke="#adb5bd"/></svg>')
    legend = [
        (label + (" (log scale)" if log_scale and i == 0 else ""), _PALETTE[i % len(_PALETTE)], False)
        for i, label in enumerate(bar_labels)
    ]
    return f'<div class="chart">{"".join(parts)}{_legend(legend)}</div>'


# --------------------------------------------------------------------------------------------------- sections


def _banner(report: Mapping[str, Any]) -> str:
    verdict = str(report.get("verdict") or "unknown").lower()
    klass = _status_class(verdict)
    title = {"pass": "SLA PASSED", "fail": "SLA FAILED", "inconclusive": "SLA INCONCLUSIVE"}.get(
        klass, f"SLA verdict: {verdict}"
    )
    thresholds = [_dict(t) for t in _list(report.get("thresholds"))]
    counts = {"pass": 0, "fail": 0, "nodata": 0}
    for item in thresholds:
        key = _status_class(item.get("status"))
        if key in counts:
            counts[key] += 1
    exit_code = report.get("exit_code")
    bits = [f'<span class="verdict" id="verdict">{_e(title)}</span>']
    bits.append(
        f"<span>{counts['pass']} passed · {counts['fail']} failed · {counts['nodata']} no data</span>"
    )
    if exit_code is not None:
        bits.append(f"<span>exit code <b>{_e(exit_code)}</b></span>")
    if report.get("profile"):
        bits.append(f"<span>profile <b>{_e(report.get('profile'))}</b></span>")
    return f'<div class="banner {klass}" data-verdict="{_e(verdict)}">{"".join(bits)}</div>'


def _meta(report: Mapping[str, Any]) -> str:
    duration = _num(report.get("duration_s"))
    items = [
        ("Config", report.get("config_file") or "–"),
        ("Started", _fmt_time(report.get("started_at"))),
        ("Ended", _fmt_time(report.get("ended_at"))),
        ("Duration", f"{duration:,.1f} s" if duration is not None else "–"),
        ("Workers", _int(report.get("workers")) if report.get("workers") is not None else "–"),
        ("Samples", _fmt_count(report.get("samples"))),
        ("Windows", _windows_meta(report)),
    ]
    warmup = _num(report.get("warmup_s"))
    if warmup:
        items.append(("Warm-up, not judged", f"{warmup:g} s, {_fmt_count(report.get('warmup_samples'))} samples"))
    cells = "".join(f"<div>{_e(label)}: <b>{_e(value)}</b></div>" for label, value in items)
    return f'<div class="meta">{cells}</div>'


def _windows_meta(report: Mapping[str, Any]) -> str:
    count = len(_list(report.get("windows")))
    window_s = _num(report.get("window_s"))
    text = f"{count}" + (f" × {window_s:g} s" if window_s else "")
    if count and report.get("windows_judged") is not None:
        text += ", judged" if report.get("windows_judged") else ", drift only"
    return text


def _notes(report: Mapping[str, Any]) -> str:
    out = []
    if report.get("state") == "running":
        out.append(
            '<div class="note" id="live">Live snapshot taken while the run was still going: '
            "the verdict is what it would be if the run ended now.</div>"
        )
    reasons = [str(r) for r in _list(report.get("verdict_reasons")) if r]
    if reasons:
        items = "".join(f"<li><code>{_e(r)}</code></li>" for r in reasons)
        out.append(f'<ul class="reasons" id="verdict-reasons">{items}</ul>')
    aborted = report.get("aborted")
    if aborted:
        info = _dict(aborted)
        threshold = info.get("threshold") or (aborted if isinstance(aborted, str) else "?")
        reason = info.get("reason") or ""
        when = f" at {_fmt_time(info.get('at'))}" if info.get("at") else ""
        out.append(
            f'<div class="note abort" id="aborted"><b>Run aborted early</b>{_e(when)} by threshold '
            f"<code>{_e(threshold)}</code>{': ' + _e(reason) if reason else ''}. "
            "Figures cover the run up to the abort.</div>"
        )
    lost = _int(report.get("workers_lost"))
    if lost > 0:
        out.append(
            f'<div class="note" id="workers-lost"><b>{lost} worker{"s" if lost != 1 else ""} lost</b> during the run: '
            "their samples after the loss are missing, so throughput and counts are understated.</div>"
        )
    out.append(_messages_note(_dict(report.get("messages")), report.get("state") == "finished"))
    kinds = {str(k): _int(v) for k, v in _dict(report.get("anomalies")).items() if _int(v) > 0}
    if kinds:
        items = ", ".join(f"<code>{_e(k)}</code> {n:,}" for k, n in kinds.items())
        out.append(
            f'<div class="note" id="anomalies"><b>Protocol anomalies</b> (each a failed <code>WS protocol anomaly</code> sample): '
            f"{items}.</div>"
        )
    return "".join(out)


def _messages_note(m: Mapping[str, Any], finished: bool) -> str:
    """The chat message accounting: sent = completed + failed + in flight, and what happened to those in flight at
    the stop ("" when the run sent no chat message)."""
    if not m:
        return ""
    sent, completed, failed, in_flight = (_int(m.get(k)) for k in ("sent", "completed", "failed", "in_flight"))
    limit = m.get("in_flight_limit_ms")
    limit_text = f"{limit:g} ms" if isinstance(limit, int | float) else "their reply deadline"
    where = "in flight at stop" if finished else "in flight now"
    parts = [f'<div class="note" id="messages"><b>Chat messages</b>: {sent:,} sent = {completed:,} completed + '
             f"{failed:,} failed + {in_flight:,} {where}"]
    if _int(m.get("unaccounted")):
        parts.append(f" + {_int(m.get('unaccounted')):,} unaccounted (lost with a worker)")
    parts.append(".")
    if _int(m.get("failed_at_stop")):
        parts.append(f' <span id="abandoned-at-stop">{_int(m.get("failed_at_stop")):,} of the failed were still in '
                     f"flight at the stop after waiting longer than {_e(limit_text)} (the longest latency limit of "
                     "<code>WS agent_completed</code>): judged as failures at the time they had waited.</span>")
    if in_flight and finished:
        parts.append(f" {in_flight:,} in flight at stop had waited less than {_e(limit_text)}: counted, not judged "
                     "(a longer <code>--stop-timeout</code> lets them finish).")
    if _int(m.get("not_sent")):
        parts.append(f" {_int(m.get('not_sent')):,} more were due but never sent (no connected chat user).")
    return "".join(parts) + "</div>"


def _pattern_note(item: Mapping[str, Any]) -> str:
    pattern = item.get("pattern")
    if pattern and pattern != item.get("metric"):
        return f'<br><span class="muted">from <code>{_e(pattern)}</code></span>'
    return ""


def _thresholds_table(report: Mapping[str, Any]) -> str:
    thresholds = [_dict(t) for t in _list(report.get("thresholds"))]
    if not thresholds:
        return '<p class="empty">No thresholds in this report.</p>'
    rows = []
    for item in thresholds:
        status = item.get("status") or "unknown"
        klass = _status_class(status)
        flags = []
        if item.get("abort_on_fail"):
            flags.append("abort on fail")
        if item.get("required"):
            flags.append("required")
        windows = [str(w) for w in _list(item.get("failed_windows"))]
        value = _fmt_value(item.get("value"), item.get("unit"))
        guesses = [str(m) for m in _list(item.get("did_you_mean"))]
        hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
        rows.append(
            f'<tr class="{klass}"><td>{_badge(status)}</td><td title="{_e(item.get("source"))}">'
            f"<code>{_e(item.get('metric'))}</code>{_pattern_note(item)}</td>"
            f'<td><code>{_e(item.get("expression"))}</code></td><td class="num">{_e(value)}</td>'
            f'<td class="num">{_e(_fmt_count(item.get("samples")))}</td><td>{_e(str(item.get("description") or "") + hint)}</td>'
            f"<td>{_e(', '.join(flags))}</td><td>{_e(', '.join('W' + w for w in windows))}</td></tr>"
        )
    head = (
        "<tr><th>Status</th><th>Metric</th><th>Threshold</th><th class=num>Value</th><th class=num>Samples</th>"
        "<th>Description</th><th>Flags</th><th>Failed windows</th></tr>"
    )
    return f'<table id="thresholds"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _window_series(report: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(the metric charted against the tiers, one label per window)."""
    windows = [_dict(w) for w in _list(report.get("windows"))]
    names: list[str] = []
    for window in windows:
        for name in _dict(window.get("metrics")):
            if name not in names:
                names.append(name)
    primary: str | None = PRIMARY_METRIC if PRIMARY_METRIC in names else None
    if primary is None:
        primary = next((n for n in names if n.split(" ", 1)[0] in ("WS", "FLOW")), None)
    labels = []
    for i, window in enumerate(windows):
        index = window.get("index", i)
        clock = _clock(window.get("start"))
        labels.append(f"W{index}" + (f" {clock}" if clock else ""))
    return primary, labels


def _timeseries_section(report: Mapping[str, Any]) -> str:
    windows = [_dict(w) for w in _list(report.get("windows"))]
    if not windows:
        return '<p class="empty">No per-window data in this report.</p>'
    primary, labels = _window_series(report)
    tiers: dict[str, list[tuple[str, float] | None]] = {}
    for i, window in enumerate(windows):
        for name, stats in _dict(window.get("metrics")).items():
            tier = tier_of(name)
            p95 = _num(_dict(stats).get("p95"))
            if tier is None or p95 is None:
                continue
            column = tiers.setdefault(tier, [None] * len(windows))
            current = column[i]
            if current is None or p95 > current[1]:
                column[i] = (name, p95)
    series: list[tuple[str, list[float | None]]] = []
    if primary:
        series.append(
            (
                f"{primary} p95",
                [_num(_dict(_dict(w.get("metrics")).get(primary)).get("p95")) for w in windows],
            )
        )
    for tier in sorted(tiers, key=_tier_rank):
        series.append((f"{tier} (worst p95 of its metrics)", [c[1] if c else None for c in tiers[tier]]))
    if not any(v is not None for _, points in series for v in points):
        return '<p class="empty">The windows hold no latency percentiles.</p>'
    hlines = []
    bands = set()
    for item in (_dict(t) for t in _list(report.get("thresholds"))):
        if primary and item.get("metric") == primary:
            limit = _threshold_limit(str(item.get("expression") or ""))
            if limit is not None:
                hlines.append((f"{primary} {item.get('expression')}", limit))
    for i, window in enumerate(windows):
        if _list(window.get("failed")):
            bands.add(i)
    chart = _line_chart(
        "chart-windows",
        labels,
        series,
        log_scale=True,
        unit="ms",
        hlines=hlines,
        bands=bands,
        x_title="window",
    )
    # window table
    tier_names = sorted(tiers, key=_tier_rank)
    head = "<tr><th>Window</th><th>Start</th><th>End</th>"
    if primary:
        head += f"<th class=num>{_e(primary)} p95</th><th class=num>count</th>"
    head += (
        "".join(f"<th class=num>{_e(t)} worst p95</th>" for t in tier_names)
        + "<th>Failed thresholds</th></tr>"
    )
    rows = []
    for i, window in enumerate(windows):
        failed = [str(f) for f in _list(window.get("failed"))]
        cells = [
            f"<td>W{_e(window.get('index', i))}</td>",
            f"<td>{_e(_fmt_time(window.get('start')))}</td>",
            f"<td>{_e(_fmt_time(window.get('end')))}</td>",
        ]
        if primary:
            stats = _dict(_dict(window.get("metrics")).get(primary))
            cells.append(f'<td class="num">{_e(_fmt_ms(stats.get("p95")))}</td>')
            cells.append(f'<td class="num">{_e(_fmt_count(stats.get("count")))}</td>')
        for tier in tier_names:
            entry = tiers[tier][i]
            if entry is None:
                cells.append('<td class="num">–</td>')
            else:
                cells.append(f'<td class="num" title="{_e(entry[0])}">{_e(_fmt_ms(entry[1]))}</td>')
        cells.append(f"<td>{'<br>'.join(f'<code>{_e(f)}</code>' for f in failed)}</td>")
        rows.append(f'<tr class="{"fail" if failed else ""}">{"".join(cells)}</tr>')
    table = f'<table id="windows"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
    judged = report.get("windows_judged")
    caption = (
        '<p class="muted">p95 per window; each tier line is the worst p95 among that tier\'s metrics '
        "(REDIS *, PG *, CH *, HTTP ready:&lt;tier&gt;). Shaded windows failed a threshold."
        + (
            " The thresholds were not judged per window in this run (drift view only)."
            if judged is False
            else ""
        )
        + "</p>"
    )
    return caption + chart + table


def _metrics_section(report: Mapping[str, Any]) -> str:
    metrics = _dict(report.get("metrics"))
    if not metrics:
        return '<p class="empty">No metrics recorded.</p>'
    names = sorted(metrics, key=lambda n: (n.split(" ", 1)[0] not in ("WS", "FLOW"), n))
    bar_rows = [(name, [_num(_dict(metrics[name]).get("p95"))]) for name in names]
    chart = ""
    if any(v[0] is not None for _, v in bar_rows):
        chart = _bar_chart("chart-metrics", bar_rows, ["p95 whole run"], unit="ms", log_scale=True)
    head = (
        "<tr><th>Metric</th><th class=num>count</th><th class=num>failures</th><th class=num>p50</th>"
        "<th class=num>p90</th><th class=num>p95</th><th class=num>p99</th><th class=num>max</th>"
        "<th class=num>avg</th><th class=num>rps</th></tr>"
    )
    rows = []
    for name in names:
        stats = _dict(metrics[name])
        rps = _num(stats.get("rps"))
        rows.append(
            f"<tr><td><code>{_e(name)}</code></td><td class=num>{_e(_fmt_count(stats.get('count')))}</td>"
            f"<td class=num>{_e(_fmt_count(stats.get('failures')))}</td>"
            + "".join(
                f"<td class=num>{_e(_fmt_ms(stats.get(k)))}</td>"
                for k in ("p50", "p90", "p95", "p99", "max", "avg")
            )
            + f"<td class=num>{'–' if rps is None else f'{rps:,.2f}'}</td></tr>"
        )
    return chart + f'<table id="metrics"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _stages_section(report: Mapping[str, Any]) -> str:
    stages = _dict(report.get("stages"))
    if not stages:
        return '<p class="empty">No agent-event stage timings in this report.</p>'
    names = sorted(stages, key=_stage_rank)
    rows = [
        (name, [_num(_dict(stages[name]).get("p50")), _num(_dict(stages[name]).get("p95"))]) for name in names
    ]
    chart = ""
    if any(v is not None for _, vals in rows for v in vals):
        chart = _bar_chart("chart-stages", rows, ["p50", "p95"], unit="ms")
    slowest = max(names, key=lambda n: _num(_dict(stages[n]).get("p95")) or -1.0)
    head = (
        "<tr><th>Stage (gap between events)</th><th class=num>count</th><th class=num>p50</th>"
        "<th class=num>p95</th><th class=num>p99</th><th class=num>max</th></tr>"
    )
    body = []
    for name in names:
        stats = _dict(stages[name])
        body.append(
            f"<tr><td><code>{_e(name)}</code>{' <b>(slowest p95)</b>' if name == slowest else ''}</td>"
            f"<td class=num>{_e(_fmt_count(stats.get('count')))}</td>"
            + "".join(f"<td class=num>{_e(_fmt_ms(stats.get(k)))}</td>" for k in ("p50", "p95", "p99", "max"))
            + "</tr>"
        )
    table = f'<table id="stages"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
    return chart + table + _stage_drift_chart(report, names)


def _stage_drift_chart(report: Mapping[str, Any], names: Sequence[str]) -> str:
    """p95 of each stage per window (when the windows carry stage percentiles)."""
    windows = [_dict(w) for w in _list(report.get("windows"))]
    if len(windows) < 2:
        return ""
    all_names = list(names) + sorted(
        {n for w in windows for n in _dict(w.get("stages")) if n not in names}, key=_stage_rank
    )
    series = [
        (f"{name} p95", [_num(_dict(_dict(w.get("stages")).get(name)).get("p95")) for w in windows])
        for name in all_names
    ]
    series = [(label, points) for label, points in series if any(v is not None for v in points)]
    if not series:
        return ""
    _, labels = _window_series(report)
    bands = {i for i, w in enumerate(windows) if _list(w.get("failed"))}
    chart = _line_chart(
        "chart-stage-windows", labels, series, log_scale=True, unit="ms", bands=bands, x_title="window"
    )
    return "<h3>Stage p95 per window</h3>" + chart


def _attribution_section(report: Mapping[str, Any]) -> str:
    entries = [_dict(a) for a in _list(report.get("attribution"))]
    if not entries:
        return (
            '<p class="empty">No attribution: it is computed when a WS or FLOW threshold fails '
            "(and needs tier probe metrics in the same run).</p>"
        )
    out = []
    for entry in entries:
        tiers = sorted(
            (_dict(t) for t in _list(entry.get("tiers"))), key=lambda t: -(_num(t.get("score")) or 0.0)
        )
        rows = []
        for tier in tiers:
            within = tier.get("within_sla")
            status = "within SLA" if within is True else ("over SLA" if within is False else "–")
            score = _num(tier.get("score"))
            correlation = _num(tier.get("correlation"))
            rows.append(
                f'<tr class="{"fail" if within is False else ""}"><td>{_e(tier.get("tier"))}</td>'
                f"<td><code>{_e(tier.get('metric'))}</code></td><td class=num>{_e(_fmt_ms(tier.get('p95')))}</td>"
                f"<td class=num>{_e(_fmt_ms(tier.get('baseline_p95')))}</td>"
                f"<td class=num>{_e(_fmt_ms(tier.get('rise_ms')))}</td>"
                f"<td><code>{_e(tier.get('threshold') or '–')}</code></td><td>{_e(status)}</td>"
                f"<td class=num>{'–' if correlation is None else f'{correlation:+.2f}'}</td>"
                f"<td class=num>{'–' if score is None else f'{score:.2f}'}</td></tr>"
            )
        table = ""
        if rows:
            table = (
                "<table class=tiers><thead><tr><th>Tier</th><th>Metric</th><th class=num>p95 (bad windows)</th>"
                "<th class=num>baseline p95</th><th class=num>rise</th><th>Threshold</th><th>Status</th>"
                "<th class=num>correlation</th><th class=num>score</th></tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>"
            )
        stage_rows = []
        for stage in sorted(
            (_dict(x) for x in _list(entry.get("stages"))), key=lambda x: _stage_rank(str(x.get("stage")))
        ):
            stage_rows.append(
                f"<tr><td><code>{_e(stage.get('stage'))}</code></td><td class=num>{_e(_fmt_ms(stage.get('p95')))}</td>"
                f"<td class=num>{_e(_fmt_ms(stage.get('baseline_p95')))}</td>"
                f"<td class=num>{_e(_fmt_ms(stage.get('growth_ms')))}</td></tr>"
            )
        stages = ""
        if stage_rows:
            stages = (
                "<table class=stage-growth><thead><tr><th>Stage</th><th class=num>p95 (bad windows)</th>"
                "<th class=num>baseline p95</th><th class=num>growth</th></tr></thead>"
                f"<tbody>{''.join(stage_rows)}</tbody></table>"
            )
        slowest = entry.get("slowest_stage")
        figures = ""
        if _num(entry.get("bad_p95")) is not None or _num(entry.get("baseline_p95")) is not None:
            figures = (
                f'<p class="muted">{_e(entry.get("metric"))} p95 {_e(_fmt_ms(entry.get("bad_p95")))} in the bad '
                f"windows against {_e(_fmt_ms(entry.get('baseline_p95')))} in the others.</p>"
            )
        out.append(
            f'<div class="attr"><h3><code>{_e(entry.get("metric"))}</code> <code>{_e(entry.get("expression"))}</code></h3>'
            f'<p class="summary">{_e(entry.get("summary") or "No summary.")}</p>{figures}{table}'
            f"<p>Slowest stage: <code>{_e(slowest or '–')}</code></p>{stages}</div>"
        )
    return "".join(out)


def _gauges_section(report: Mapping[str, Any]) -> str:
    gauges = _dict(report.get("gauges"))
    if not gauges:
        return '<p class="empty">No gauges recorded (e.g. the load generator\'s CPU).</p>'
    names = sorted(gauges, key=lambda n: (n != "locust:cpu_percent", n))
    out = []
    t0 = None
    for name in names:
        for point in _list(gauges[name]):
            ts = _num(_list(point)[0]) if _list(point) else None
            if ts is not None:
                t0 = ts if t0 is None else min(t0, ts)
    for index, name in enumerate(names[:_MAX_GAUGES]):
        points = []
        for point in _list(gauges[name]):
            pair = _list(point)
            if len(pair) >= 2 and _num(pair[0]) is not None and _num(pair[1]) is not None:
                points.append((float(pair[0]), float(pair[1])))
        if not points:
            continue
        points.sort()
        if len(points) > _MAX_GAUGE_POINTS:
            step = len(points) / _MAX_GAUGE_POINTS
            points = [points[int(k * step)] for k in range(_MAX_GAUGE_POINTS)] + [points[-1]]
        base = t0 if t0 is not None else points[0][0]
        labels = [f"{ts - base:.0f}s" for ts, _ in points]
        unit = "%" if name.endswith("percent") else ""
        peak = max(v for _, v in points)
        mean = sum(v for _, v in points) / len(points)
        chart = _line_chart(
            f"chart-gauge-{index}",
            labels,
            [(name, [v for _, v in points])],
            log_scale=False,
            unit=unit,
            x_title="seconds since start",
            height=200,
        )
        warn = ""
        busy = sum(1 for _, v in points if v >= 90)
        if name == "locust:cpu_percent" and busy >= 2:  # sustained, not one start-up reading
            warn = (
                f'<div class="note" id="cpu-warning">The load generator was at or over 90 % CPU in {busy} of '
                f"{len(points)} readings (peak {peak:.0f} %): latencies may be inflated by the generator itself.</div>"
            )
        out.append(
            f"<h3><code>{_e(name)}</code> <span class=muted>mean {mean:,.1f}{_e(unit)}, peak {peak:,.1f}{_e(unit)}"
            f"</span></h3>{warn}{chart}"
        )
    if len(names) > _MAX_GAUGES:
        out.append(f'<p class="muted">{len(names) - _MAX_GAUGES} more gauges not charted.</p>')
    return "".join(out) or '<p class="empty">The gauges hold no readings.</p>'


# --------------------------------------------------------------------------------------------------- public API


def render(report: Mapping[str, Any]) -> str:
    """Render the SLA JSON report dict as one self-contained HTML page (no scripts, no external resources)."""
    report = _dict(report)
    verdict = str(report.get("verdict") or "unknown")
    title = f"SLA report: {verdict.upper()}" + (
        f" ({report.get('profile')})" if report.get("profile") else ""
    )
    sections = [
        ("Thresholds", "sec-thresholds", _thresholds_table(report)),
        ("Attribution", "sec-attribution", _attribution_section(report)),
        ("Latency per window: WS reply against the tiers", "sec-windows", _timeseries_section(report)),
        ("Agent event timeline: gaps between the five events", "sec-stages", _stages_section(report)),
        ("All metrics (whole run)", "sec-metrics", _metrics_section(report)),
        ("Load generator and other gauges", "sec-gauges", _gauges_section(report)),
    ]
    body = "".join(
        f'<section id="{sid}"><h2>{_e(name)}</h2>{content}</section>' for name, sid, content in sections
    )
    schema = report.get("schema") or "unknown schema"
    if report.get("schema") not in (None, SCHEMA):
        logger.warning("SLA HTML report: rendering schema %r, written for %r", report.get("schema"), SCHEMA)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>WebSocket agent chat: SLA report</h1>{_banner(report)}{_meta(report)}{_notes(report)}{body}"
        f"<footer>Generated by ws-agent-loadtest (sla_checks.report_html) from report schema "
        f"<code>{_e(schema)}</code>.</footer></body></html>\n"
    )


def write_html_report(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Render ``report`` and write it to ``path`` atomically (temp file + rename); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = render(report)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a report is meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sla_checks.report_html REPORT.json [-o OUT.html]``: render a saved JSON report."""
    parser = argparse.ArgumentParser(description="Render an SLA JSON report as a self-contained HTML page.")
    parser.add_argument("report", help="path of the JSON report (written with --sla-report-json)")
    parser.add_argument("-o", "--output", help="HTML file to write (default: REPORT with .html)")
    args = parser.parse_args(argv)
    source = Path(args.report)
    try:
        report = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        print(
            f"error: cannot read report {source}: {exc.strerror}. Pass the path of a JSON report.",
            file=sys.stderr,
        )
        return 2
    except json.JSONDecodeError as exc:
        print(
            f"error: {source} is not JSON ({exc.msg} at line {exc.lineno}). Pass a --sla-report-json file.",
            file=sys.stderr,
        )
        return 2
    if not isinstance(report, dict):
        print(
            f"error: {source} holds a JSON {type(report).__name__}, expected an object (an SLA report).",
            file=sys.stderr,
        )
        return 2
    out = write_html_report(report, args.output or source.with_suffix(".html"))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
