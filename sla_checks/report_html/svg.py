"""A small SVG chart engine for the HTML report, no script: time charts, horizontal bar charts and a histogram.

* :func:`time_chart`: series on a real time axis (seconds since the test start), a left axis (linear or log) and an
  optional right one (e.g. users next to requests/s), shaded spans (injected faults, failed windows, the warm-up),
  a window grid and dashed limit lines;
* :func:`bar_chart`: horizontal grouped bars on a linear or log axis with its ticks;
* :func:`histogram_chart`: a latency distribution on a log-scaled millisecond axis with vertical limit lines.

Every drawn datum carries its numbers in ``data-*`` attributes (a series' ``data-t`` / ``data-values``, a span's
``data-start`` / ``data-end``, a bar's ``data-value``, a limit's ``data-value``) so the report can be checked
against its JSON without reading pixels; tooltips are SVG ``<title>`` elements.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sla_checks.formatting import format_ms
from sla_checks.report_html.markup import esc

__all__ = [
    "HATCH_ID",
    "PALETTE",
    "SHARED_DEFS",
    "Series",
    "Span",
    "bar_chart",
    "format_offset",
    "histogram_chart",
    "time_chart",
]

PALETTE = ("#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#e67700", "#0b7285", "#5c940d", "#495057")
_SPAN_FILL = {"fail": "#ffe3e3", "warmup": "#f1f3f5"}
_SPAN_LEGEND = {"fault": "#f59f00", "fail": "#ffc9c9", "warmup": "#dee2e6"}
_MAX_DOTS = 30
"""Series up to this many points get a dot per point; longer ones are a line only."""
_MAX_HOVER = 150
"""Charts with up to this many distinct times get a hover column per time with every series' value."""


@dataclass(frozen=True)
class Series:
    """One line of a :func:`time_chart`: ``values[i]`` at ``t[i]`` seconds (None: a gap)."""

    label: str
    t: Sequence[float | None]
    values: Sequence[float | None]
    right: bool = False
    """Drawn against the right axis."""
    color: str | None = None
    dashed: bool = False
    index: int | None = None
    """Which row of the report this line charts (``data-index``), when it charts one."""


@dataclass(frozen=True)
class Span:
    """A shaded stretch ``[start, end]`` seconds of a :func:`time_chart`: ``kind`` ``fault``, ``fail`` or ``warmup``."""

    start: float
    end: float
    label: str
    kind: str = "fault"


def _num(value: float) -> str:
    """The number for ``data-*`` attributes (10 significant digits: the report's values as they are)."""
    return f"{value:.10g}"


def _nums(values: Iterable[float | None]) -> str:
    return " ".join("-" if v is None else _num(v) for v in values)


def _nice_log_bounds(values: Iterable[float]) -> tuple[float, float]:
    positives = [v for v in values if v > 0]
    if not positives:
        return 1.0, 10.0
    low = 10 ** math.floor(math.log10(min(positives)))
    high = 10 ** math.ceil(math.log10(max(positives)))
    if high <= low:
        high = low * 10
    return low, high


def _nice_linear_ticks(value: float, count: int = 4) -> list[float]:
    """Ticks from 0 past ``value`` at a 1-2-5 step, about ``count`` intervals."""
    if value <= 0:
        return [0.0, 0.25, 0.5, 0.75, 1.0]
    raw = value / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw - 1e-12)
    top = math.ceil(value / step - 1e-9) * step
    return [round(k * step, 10) for k in range(round(top / step) + 1)]


def _fmt_axis(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def format_offset(seconds: float, step: float = 1.0) -> str:
    """Seconds since the start as an axis label: ``45s``, ``2m``, ``2m30s``, ``1h05m``."""
    s = int(round(seconds))
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s < 120 and step < 60:
        return f"{sign}{s}s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{sign}{m}m" + (f"{r:02d}s" if r else "")
    h, r = divmod(s, 3600)
    return f"{sign}{h}h{r // 60:02d}m"


def _time_ticks(low: float, high: float, max_ticks: int) -> tuple[list[float], float]:
    span = max(high - low, 1e-9)
    for step in (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span / step <= max_ticks:
            break
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    t = first
    while t <= high + 1e-9:
        ticks.append(float(t))
        t += step
    return ticks, float(step)


class _Scale:
    """A y scale: linear from 0 or log between decades; ``ticks`` for the axis."""

    def __init__(self, values: Sequence[float], log: bool, top: float, height: float, floor: float = 0.0) -> None:
        self.log, self.top, self.height = log, top, height
        if log:
            self.low, self.high = _nice_log_bounds(values)
            self.ticks = [self.low * 10**k for k in range(round(math.log10(self.high / self.low)) + 1)]
        else:
            self.low = floor
            self.ticks = _nice_linear_ticks(max(values, default=1.0))
            self.high = self.ticks[-1]

    def y(self, value: float) -> float:
        if self.log:
            clamped = min(max(value, self.low), self.high)
            share = math.log10(clamped / self.low) / math.log10(self.high / self.low)
        else:
            share = (min(max(value, self.low), self.high) - self.low) / ((self.high - self.low) or 1.0)
        return self.top + self.height * (1.0 - share)


def _legend(labels: Sequence[tuple[str, str, bool]]) -> str:
    items = []
    for label, color, dashed in labels:
        style = (
            f"background:{color}"
            if not dashed
            else f"background:repeating-linear-gradient(90deg,{color} 0 5px,transparent 5px 8px)"
        )
        items.append(f'<span><i style="{style}"></i>{esc(label)}</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def _svg_open(chart_id: str, width: int, height: int, kind: str, extra: str = "") -> str:
    return (
        f'<svg id="{esc(chart_id)}" class="chart-svg" data-kind="{kind}"{extra} xmlns="http://www.w3.org/2000/svg" '
        f'role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-size="11" '
        f'font-family="system-ui,sans-serif">'
    )



HATCH_ID = "fault-hatch"
SHARED_DEFS = (
    '<svg class="defs" width="0" height="0" aria-hidden="true" xmlns="http://www.w3.org/2000/svg">'
    f'<defs><pattern id="{HATCH_ID}" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff3bf"/>'
    '<rect width="2.5" height="6" fill="#ffc078"/></pattern></defs></svg>'
)
"""Put once in a page holding time charts: the diagonal hatch that shades an injected fault on every chart."""


def time_chart(
    chart_id: str,
    series: Sequence[Series],
    *,
    x_range: tuple[float, float],
    unit: str,
    right_unit: str = "",
    log_scale: bool = False,
    hlines: Sequence[tuple[str, float]] = (),
    spans: Sequence[Span] = (),
    grid: Sequence[float] = (),
    width: int = 820,
    height: int = 250,
    x_title: str = "time since the test start",
    hover: bool = True,
    legend: bool = True,
) -> str:
    """Series on a real time axis from ``x_range[0]`` to ``x_range[1]`` seconds: the x positions are the times, not
    the reading order. ``spans`` shade stretches (faults hatched, failed windows red, the warm-up grey), ``grid``
    draws a dashed vertical line at each window boundary inside the range, ``hlines`` dashed limit lines. With
    ``hover``, each distinct time gets a transparent column whose tooltip lists every series' value there."""
    left, right, top, bottom = 64, (56 if right_unit else 24), 16, (40 if x_title else 24)
    plot_w, plot_h = width - left - right, height - top - bottom
    x0, x1 = x_range
    if x1 <= x0:
        x1 = x0 + 1.0
    left_values = [v for s in series if not s.right for v in s.values if v is not None]
    left_values += [v for _, v in hlines]
    right_values = [v for s in series if s.right for v in s.values if v is not None]
    ly = _Scale(left_values, log_scale, top, plot_h)
    ry = _Scale(right_values, False, top, plot_h) if right_unit else None

    def x_of(t: float) -> float:
        return left + (min(max(t, x0), x1) - x0) / (x1 - x0) * plot_w

    parts = [_svg_open(chart_id, width, height, "time", f' data-x0="{_num(x0)}" data-x1="{_num(x1)}"')]
    for span in spans:
        a, b = x_of(span.start), x_of(max(span.end, span.start))
        if b < left or a > left + plot_w:
            continue
        parts.append(
            f'<rect class="span {esc(span.kind)}" data-start="{_num(span.start)}" data-end="{_num(span.end)}" '
            f'x="{a:.1f}" y="{top}" width="{max(b - a, 1.5):.1f}" height="{plot_h}" '
            f'fill="{f"url(#{HATCH_ID})" if span.kind == "fault" else _SPAN_FILL.get(span.kind, "#f1f3f5")}" '
            f'fill-opacity="{0.8 if span.kind == "fault" else 1}">'
            f"<title>{esc(span.label)}</title></rect>"
        )
        if span.kind == "fault":
            parts.append(
                f'<text x="{a + 3:.1f}" y="{top + 11}" fill="#a34700" font-size="10">{esc(span.label)}</text>'
            )
    for tick in ly.ticks:
        y = ly.y(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt_axis(tick)}</text>')
    if ry is not None:
        for tick in ry.ticks:
            parts.append(
                f'<text x="{left + plot_w + 6}" y="{ry.y(tick) + 4:.1f}">{_fmt_axis(tick)}</text>'
            )
        parts.append(
            f'<text transform="translate({width - 10} {top + plot_h / 2:.0f}) rotate(90)" text-anchor="middle" '
            f'fill="#495057">{esc(right_unit)}</text>'
        )
    for t in grid:
        if x0 < t < x1:
            parts.append(
                f'<line class="wgrid" data-t="{_num(t)}" x1="{x_of(t):.1f}" x2="{x_of(t):.1f}" y1="{top}" '
                f'y2="{top + plot_h}" stroke="#adb5bd" stroke-dasharray="2 3"/>'
            )
    ticks, step = _time_ticks(x0, x1, max(3, plot_w // 80))
    for tick in ticks:
        parts.append(
            f'<text x="{x_of(tick):.1f}" y="{top + plot_h + 15}" text-anchor="middle">'
            f"{esc(format_offset(tick, step))}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#adb5bd"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#adb5bd"/>'
        f'<text transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="#495057">{esc(unit)}{" (log scale)" if log_scale else ""}</text>'
        + (f'<text x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle" fill="#6c757d">{esc(x_title)}</text>'
           if x_title else "")
    )
    for label, limit in hlines:
        y = ly.y(limit)
        parts.append(
            f'<line class="limit" data-value="{_num(limit)}" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="#c92a2a" stroke-dasharray="6 4" stroke-width="1.5"><title>{esc(label)}</title></line>'
            f'<text x="{left + plot_w - 4}" y="{y - 4:.1f}" text-anchor="end" fill="#c92a2a">{esc(label)}</text>'
        )
    entries: list[tuple[str, str, bool]] = []
    for index, s in enumerate(series):
        color = s.color or PALETTE[index % len(PALETTE)]
        entries.append((s.label + (" (right axis)" if s.right and ry is not None else ""), color, s.dashed))
        scale = ry if s.right and ry is not None else ly
        pts = [(t, v) for t, v in zip(s.t, s.values, strict=False) if t is not None]
        segments: list[list[str]] = [[]]
        for t, v in pts:
            if v is None:
                segments.append([])
            else:
                segments[-1].append(f"{x_of(t):.0f},{scale.y(v):.0f}")
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        row = "" if s.index is None else f' data-index="{s.index}"'
        parts.append(
            f'<g class="series" data-series="{esc(s.label)}"{row} data-t="{_nums(t for t, _ in pts)}" '
            f'data-values="{_nums(v for _, v in pts)}" stroke="{color}" fill="{color}">'
        )
        for seg in segments:
            if len(seg) > 1:
                parts.append(f'<polyline fill="none" stroke-width="1.8"{dash} points="{" ".join(seg)}"/>')
            elif len(seg) == 1:
                cx, cy = seg[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2"/>')
        if len(pts) <= _MAX_DOTS:
            parts.extend(
                f'<circle class="pt" cx="{x_of(t):.1f}" cy="{scale.y(v):.1f}" r="2.5"/>' for t, v in pts if v is not None
            )
        parts.append("</g>")
    if hover:
        parts.extend(_hover_columns(series, unit, x_of, top, plot_h))
    parts.append("</svg>")
    if not legend:
        return f'<div class="chart">{"".join(parts)}</div>'
    entries += [(label, "#c92a2a", True) for label, _ in hlines]
    kinds = {s.kind for s in spans}
    entries += [
        (text, _SPAN_LEGEND[kind], False)
        for kind, text in (("fault", "injected fault"), ("fail", "failed window"), ("warmup", "warm-up (not judged)"))
        if kind in kinds
    ]
    return f'<div class="chart">{"".join(parts)}{_legend(entries)}</div>'


def _hover_columns(
    series: Sequence[Series], unit: str, x_of: Callable[[float], float], top: float, plot_h: float
) -> list[str]:
    """A transparent column per distinct time, its tooltip every series' value at that time (none past
    :data:`_MAX_HOVER` times)."""
    at: dict[float, list[str]] = {}
    for s in series:
        for t, v in zip(s.t, s.values, strict=False):
            if t is None or v is None:
                continue
            shown = format_ms(v) if unit == "ms" and not s.right else f"{v:,.4g}"
            at.setdefault(t, []).append(f"{s.label} {shown}")
    if not at or len(at) > _MAX_HOVER:
        return []
    times = sorted(at)
    xs = [x_of(t) for t in times]
    out = []
    for i, t in enumerate(times):
        a = (xs[i - 1] + xs[i]) / 2 if i else xs[i] - 4
        b = (xs[i] + xs[i + 1]) / 2 if i + 1 < len(xs) else xs[i] + 4
        out.append(
            f'<rect class="hover" x="{a:.1f}" y="{top}" width="{max(b - a, 1):.1f}" height="{plot_h}" '
            f'fill="transparent"><title>{esc(format_offset(t))}: {esc(", ".join(at[t]))}</title></rect>'
        )
    return out


def bar_chart(
    chart_id: str,
    rows: Sequence[tuple[str, Sequence[float | None]]],
    bar_labels: Sequence[str],
    *,
    unit: str,
    log_scale: bool = False,
    width: int = 820,
) -> str:
    """Horizontal grouped bars (one group per row, one bar per ``bar_labels`` entry) with a value axis, as SVG."""
    left, right, top, axis_h = 250, 90, 8, 34
    group_h = 10 + 14 * len(bar_labels)
    plot_h = group_h * len(rows)
    height = top + plot_h + axis_h
    plot_w = width - left - right
    values = [v for _, vals in rows for v in vals if v is not None]
    if log_scale:
        low, high = _nice_log_bounds(values)
        span = math.log10(high) - math.log10(low)
        ticks = [low * 10**k for k in range(round(span) + 1)]

        def w_of(v: float) -> float:
            return max(0.0, (math.log10(min(max(v, low), high)) - math.log10(low)) / span * plot_w)
    else:
        ticks = _nice_linear_ticks(max(values) if values else 1.0)
        high = ticks[-1]

        def w_of(v: float) -> float:
            return max(v, 0.0) / high * plot_w

    parts = [_svg_open(chart_id, width, height, "bars")]
    for tick in ticks:
        x = left + w_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" class="grid"/>'
            f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
            f"{_fmt_axis(tick)}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle" fill="#6c757d">'
        f'{esc(unit)}{" (log scale)" if log_scale else ""}</text>'
    )
    for r, (label, vals) in enumerate(rows):
        y0 = top + r * group_h
        parts.append(
            f'<text x="{left - 8}" y="{y0 + group_h / 2 + 2:.1f}" text-anchor="end" fill="#212529">{esc(label)}</text>'
        )
        for b, value in enumerate(vals):
            if value is None:
                continue
            color = PALETTE[b % len(PALETTE)]
            y = y0 + 5 + b * 14
            width_px = w_of(value) + 1.5
            shown = format_ms(value) if unit == "ms" else f"{value:,.4g} {unit}"
            parts.append(
                f'<rect class="bar pt" data-row="{esc(label)}" data-bar="{esc(bar_labels[b])}" '
                f'data-value="{_num(value)}" x="{left}" y="{y}" width="{width_px:.1f}" height="11" fill="{color}">'
                f"<title>{esc(label)} {esc(bar_labels[b])}: {esc(shown)}</title></rect>"
                f'<text x="{left + width_px + 4:.1f}" y="{y + 9}">{esc(shown)}</text>'
            )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#adb5bd"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#adb5bd"/></svg>'
    )
    legend = [(label, PALETTE[i % len(PALETTE)], False) for i, label in enumerate(bar_labels)]
    return f'<div class="chart">{"".join(parts)}{_legend(legend)}</div>'


def histogram_chart(
    chart_id: str,
    edges: Sequence[float],
    counts: Sequence[int],
    *,
    lines: Sequence[tuple[str, float, bool]] = (),
    markers: Sequence[tuple[str, float]] = (),
    width: int = 820,
    height: int = 260,
) -> str:
    """Samples per latency bin (``counts[i]`` in ``(edges[i], edges[i + 1]]`` ms) on a log ms axis; ``lines`` are
    the thresholds' limits ``(label, ms, failed)`` (red when failed, green when held), ``markers`` the measured
    percentiles ``(label, ms)``; the axis spans the bins and every line."""
    left, right, top, bottom = 64, 24, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    shown = [ms for _, ms, _ in lines] + [ms for _, ms in markers]
    low = max(min([edges[0], *shown]), 1.0)
    high = max([edges[-1] * 1.02, *(ms * 1.08 for ms in shown), low * 1.01])  # every limit inside the axis
    decade_low, decade_high = _nice_log_bounds([low, high])
    lo_log, hi_log = math.log10(low), math.log10(high)

    def x_of(ms: float) -> float:
        return left + (math.log10(min(max(ms, low), high)) - lo_log) / (hi_log - lo_log) * plot_w

    y = _Scale([float(c) for c in counts], False, top, plot_h)
    parts = [_svg_open(chart_id, width, height, "histogram")]
    for tick in y.ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y.y(tick):.1f}" y2="{y.y(tick):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y.y(tick) + 4:.1f}" text-anchor="end">{_fmt_axis(tick)}</text>'
        )
    ticks = [
        m * decade
        for decade in (decade_low * 10**k for k in range(round(math.log10(decade_high / decade_low)) + 1))
        for m in (1, 2, 5)
        if low <= m * decade <= high
    ]
    for tick in ticks:
        parts.append(
            f'<text x="{x_of(tick):.1f}" y="{top + plot_h + 15}" text-anchor="middle">'
            f"{_fmt_axis(tick)}</text>"
        )
    for i, count in enumerate(counts):
        a, b = x_of(edges[i]), x_of(edges[i + 1])
        if count <= 0:
            continue
        top_y = y.y(float(count))
        parts.append(
            f'<rect class="bin" data-lo="{_num(edges[i])}" data-hi="{_num(edges[i + 1])}" data-count="{count}" '
            f'x="{a + 0.4:.1f}" y="{top_y:.1f}" width="{max(b - a - 0.8, 0.8):.1f}" '
            f'height="{top + plot_h - top_y:.1f}" fill="#1f5fbf" fill-opacity="0.75">'
            f"<title>{esc(format_ms(edges[i]))} – {esc(format_ms(edges[i + 1]))}: {count:,}</title></rect>"
        )
    for index, (label, ms) in enumerate(markers):
        x = x_of(ms)
        parts.append(
            f'<line class="marker" data-value="{_num(ms)}" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="#495057" stroke-width="1"/><text x="{x + 3:.1f}" y="{top + 10 + 11 * index}">'
            f"{esc(label)}</text>"
        )
    for index, (label, ms, failed) in enumerate(lines):
        x = x_of(ms)
        color = "#c92a2a" if failed else "#2b8a3e"
        parts.append(
            f'<line class="limit" data-value="{_num(ms)}" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 14}" '
            f'y2="{top + plot_h}" stroke="{color}" stroke-dasharray="6 4" stroke-width="1.6">'
            f"<title>{esc(label)}</title></line>"
            f'<text x="{x - 4:.1f}" y="{top - 4 - 11 * (index % 2):.1f}" text-anchor="end" fill="{color}">'
            f"{esc(label)}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#adb5bd"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#adb5bd"/>'
        f'<text transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="#495057">samples</text><text x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle" '
        f'fill="#6c757d">reply time, ms (log scale)</text></svg>'
    )
    legend = [("samples per bin", "#1f5fbf", False)]
    legend += [("threshold limit (red: failed, green: held)", "#c92a2a", True)] if lines else []
    legend += [("measured percentile", "#495057", False)] if markers else []
    return f'<div class="chart">{"".join(parts)}{_legend(legend)}</div>'
