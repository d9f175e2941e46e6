"""A small SVG chart engine for the HTML report: line charts (one x position per label, gaps for missing values,
shaded bands, dashed limit lines) and horizontal grouped bar charts, log or linear scale, each point with a tooltip."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from sla_checks.formatting import format_ms
from sla_checks.report_html.markup import esc

__all__ = ["bar_chart", "line_chart"]

_PALETTE = ("#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#e67700", "#0b7285", "#5c940d", "#495057")


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
    magnitude = 10.0 ** math.floor(math.log10(value))
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
        items.append(f'<span><i style="{style}"></i>{esc(label)}</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def line_chart(
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
        f'<svg id="{esc(chart_id)}" class="chart-svg" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-size="11" '
        f'font-family="system-ui,sans-serif">'
    ]
    band_w = plot_w / count if count > 1 else plot_w
    for i in sorted(set(bands)):
        if 0 <= i < count:
            x = x_of(i) - (band_w / 2 if count > 1 else plot_w / 2)
            parts.append(
                f'<rect class="band" x="{max(x, left):.1f}" y="{top}" width="{min(band_w, plot_w):.1f}" '
                f'height="{plot_h}" fill="#ffe3e3"><title>failed window {esc(x_labels[i])}</title></rect>'
            )
    for tick in ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e9ecef"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#495057">{esc(_fmt_axis(tick))}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#adb5bd"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#adb5bd"/>'
        f'<text transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="#495057">{esc(unit)}{" (log scale)" if log_scale else ""}</text>'
    )
    longest = max((len(label) for label in x_labels), default=1)
    fits = max(1, int(plot_w // (longest * 6.2 + 14)))  # ~6 px per character at font-size 11
    label_every = max(1, math.ceil(count / fits))
    for i, label in enumerate(x_labels):
        if i % label_every == 0:
            anchor = "end" if count > 1 and i == count - 1 else "middle"  # keep the right-most label inside
            parts.append(
                f'<text x="{x_of(i):.1f}" y="{top + plot_h + 16}" text-anchor="{anchor}" fill="#495057">{esc(label)}</text>'
            )
    if x_title:
        parts.append(
            f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" fill="#6c757d">{esc(x_title)}</text>'
        )
    for label, limit in hlines:
        y = y_of(limit)
        parts.append(
            f'<line class="limit" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c92a2a" '
            f'stroke-dasharray="6 4" stroke-width="1.5"><title>{esc(label)}</title></line>'
            f'<text x="{left + plot_w - 4}" y="{y - 4:.1f}" text-anchor="end" fill="#c92a2a">{esc(label)}</text>'
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
        parts.append(f'<g class="series" data-series="{esc(label)}" stroke="{color}" fill="{color}">')
        for seg in segments:
            if len(seg) > 1:
                parts.append(f'<polyline fill="none" stroke-width="2" points="{" ".join(seg)}"/>')
        radius = 3 if len(points) <= 120 else 1.5
        for i, value in enumerate(points):
            if value is None:
                continue
            x_label = x_labels[i] if i < len(x_labels) else str(i)
            shown = format_ms(value) if unit == "ms" else f"{value:,.4g} {unit}".strip()
            parts.append(
                f'<circle class="pt" cx="{x_of(i):.1f}" cy="{y_of(value):.1f}" r="{radius}">'
                f"<title>{esc(label)} · {esc(x_label)}: {esc(shown)}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    legend = [(label, _PALETTE[i % len(_PALETTE)], False) for i, (label, _) in enumerate(series)]
    legend += [(label, "#c92a2a", True) for label, _ in hlines]
    return f'<div class="chart">{"".join(parts)}{_legend(legend)}</div>'


def bar_chart(
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
        f'<svg id="{esc(chart_id)}" class="chart-svg" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-size="11" '
        f'font-family="system-ui,sans-serif">'
    ]
    for r, (label, vals) in enumerate(rows):
        y0 = top + r * group_h
        parts.append(
            f'<text x="{left - 8}" y="{y0 + group_h / 2 + 2:.1f}" text-anchor="end" fill="#212529">{esc(label)}</text>'
        )
        for b, value in enumerate(vals):
            if value is None:
                continue
            color = _PALETTE[b % len(_PALETTE)]
            y = y0 + 5 + b * 14
            width_px = w_of(value)
            shown = format_ms(value) if unit == "ms" else f"{value:,.4g} {unit}"
            parts.append(
                f'<rect class="bar pt" x="{left}" y="{y}" width="{width_px:.1f}" height="11" fill="{color}">'
                f"<title>{esc(label)} {esc(bar_labels[b])}: {esc(shown)}</title></rect>"
                f'<text x="{left + width_px + 4:.1f}" y="{y + 9}" fill="#495057">{esc(shown)}</text>'
            )
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - 10}" stroke="#adb5bd"/></svg>')
    legend = [
        (label + (" (log scale)" if log_scale and i == 0 else ""), _PALETTE[i % len(_PALETTE)], False)
        for i, label in enumerate(bar_labels)
    ]
    return f'<div class="chart">{"".join(parts)}{_legend(legend)}</div>'
