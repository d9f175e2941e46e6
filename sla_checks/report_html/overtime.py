"""The report's charts over time: load (requests/s, failures/s, users), the chat reply's percentiles, its latency
distribution against the limits, and every threshold's value over time.

They share one time axis (:class:`RunAxis`): seconds since the test start, the run's length, the injected faults
(hatched), the failed windows (red), the warm-up (grey) and the window grid; every time chart of the report, the
windows' and the gauges' too, is drawn on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sla_checks.formatting import finite, format_ms, format_value
from sla_checks.report_html.markup import as_dict, as_list, badge, esc, status_class
from sla_checks.report_html.svg import Series, Span, histogram_chart, time_chart

__all__ = [
    "RunAxis",
    "distribution_section",
    "failing",
    "load_section",
    "run_axis",
    "threshold_order",
    "timestamp_of",
    "thresholds_over_time_section",
]


def timestamp_of(value: Any) -> float | None:
    """A unix time from a number or an ISO 8601 text (None: neither)."""
    number = finite(value)
    if number is not None:
        return number
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class RunAxis:
    """The time axis every chart of one report shares."""

    t0: float | None
    """Unix time of the test start (None: the report says nothing about time)."""
    x_range: tuple[float, float]
    spans: tuple[Span, ...]
    grid: tuple[float, ...]

    def offset(self, ts: Any) -> float | None:
        """Seconds since the test start of a unix time (None without one)."""
        value = finite(ts)
        return None if value is None or self.t0 is None else value - self.t0


def failing(item: Mapping[str, Any]) -> bool:
    """A threshold that failed over the run or in a window."""
    return status_class(item.get("status")) == "fail" or bool(as_list(item.get("failed_windows")))


def threshold_order(thresholds: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indexes of ``thresholds``: the failing ones first, then the rest, each group in report order."""
    return sorted(range(len(thresholds)), key=lambda i: not failing(thresholds[i]))


def run_axis(report: Mapping[str, Any]) -> RunAxis:
    timeline = as_dict(report.get("timeline"))
    windows = [as_dict(w) for w in as_list(report.get("windows"))]
    t0 = timestamp_of(timeline.get("t0"))
    if t0 is None:
        t0 = timestamp_of(report.get("started_at"))
    if t0 is None and windows:
        t0 = timestamp_of(windows[0].get("start_ts")) or timestamp_of(windows[0].get("start"))
    if t0 is None:
        return RunAxis(None, (0.0, 1.0), (), ())
    duration = finite(report.get("duration_s"))
    ended = timestamp_of(report.get("ended_at"))
    end = duration if duration is not None else (ended - t0 if ended is not None else None)
    times = [v for v in (finite(x) for x in as_list(timeline.get("t"))) if v is not None]
    step = finite(timeline.get("step_s")) or 0.0
    if end is None:
        end = max(times, default=0.0) + step / 2
    start = min(0.0, min(times, default=0.0) - step / 2)
    end = max(end, start + 1.0)
    spans: list[Span] = []
    warmup = finite(report.get("warmup_s"))
    if warmup:
        spans.append(Span(0.0, min(warmup, end), f"warm-up {warmup:g} s (not judged)", "warmup"))
    grid: list[float] = []
    judged = report.get("windows_judged") is not False
    for i, window in enumerate(windows):
        w_start = timestamp_of(window.get("start_ts")) or timestamp_of(window.get("start"))
        w_end = timestamp_of(window.get("end_ts")) or timestamp_of(window.get("end"))
        if w_start is None:
            continue
        a = w_start - t0
        if i and judged and start < a < end:  # display-only windows are no grid: just the points of a chart
            grid.append(a)
        failed = [str(f) for f in as_list(window.get("failed"))]
        if failed and w_end is not None:
            spans.append(Span(max(a, start), min(w_end - t0, end), f"W{window.get('index', i)} failed: "
                              + "; ".join(failed), "fail"))
    for fault in (as_dict(f) for f in as_list(report.get("faults"))):
        begin = finite(fault.get("start_s"))
        finish = finite(fault.get("end_s"))
        if begin is None:
            ts = timestamp_of(fault.get("start_ts")) or timestamp_of(fault.get("start"))
            begin = None if ts is None else ts - t0
        if finish is None:
            ts = timestamp_of(fault.get("end_ts")) or timestamp_of(fault.get("end"))
            finish = None if ts is None else ts - t0
        if begin is None or finish is None:
            continue
        label = str(fault.get("kind") or "fault") + (f" {fault.get('detail')}" if fault.get("detail") else "")
        spans.append(Span(begin, finish, label + (" (failed to apply)" if fault.get("error") else ""), "fault"))
    return RunAxis(t0, (start, end), tuple(spans), tuple(grid))


def _values(items: Any) -> list[float | None]:
    return [finite(v) for v in as_list(items)]


def load_section(report: Mapping[str, Any], axis: RunAxis) -> str:
    """Requests/s, failures/s and users over time; the chat reply's p50/p95/p99 over time."""
    timeline = as_dict(report.get("timeline"))
    t = _values(timeline.get("t"))
    if not t or axis.t0 is None:
        return '<p class="empty">No time series in this report (written before it had one, or no sample yet).</p>'
    out = []
    series = [
        Series("requests/s", t, _values(timeline.get("requests_per_s"))),
        Series("failures/s", t, _values(timeline.get("failures_per_s")), color="#c92a2a"),
    ]
    users = _values(timeline.get("users"))
    if any(v is not None for v in users):
        series.append(Series("users", t, users, right=True, color="#2b8a3e", dashed=True))
    out.append(
        "<h3>Requests per second and users</h3>"
        + time_chart("chart-load", series, x_range=axis.x_range, unit="per second",
                     right_unit="users" if len(series) > 2 else "", spans=axis.spans, grid=axis.grid)
    )
    latency = as_dict(timeline.get("latency"))
    if latency:
        metric = str(latency.get("metric") or "")
        lat_series = [
            Series(q, t, _values(latency.get(q)), color=color)
            for q, color in (("p50", "#2b8a3e"), ("p95", "#1f5fbf"), ("p99", "#862e9c"))
        ]
        present = [v for s in lat_series for v in s.values if v is not None and v > 0]
        if present:
            limits = [
                (str(item.get("expression")), v)
                for item in (as_dict(x) for x in as_list(as_dict(report.get("distribution")).get("limits")))
                if (v := finite(item.get("ms"))) is not None
            ]
            hlines = _unique_lines(limits)
            log = max(present) / max(min(present), 1e-9) > 50
            out.append(
                f"<h3>Reply time of <code>{esc(metric)}</code> over time: p50, p95, p99 per "
                f"{esc(_step_text(timeline))}</h3>"
                + time_chart("chart-latency", lat_series, x_range=axis.x_range, unit="ms", log_scale=log,
                             hlines=hlines, spans=axis.spans, grid=axis.grid)
            )
    caption = (
        '<p class="muted">Each point covers '
        f"{esc(_step_text(timeline))} of the run (all samples, the warm-up's too); hatched: an injected fault"
        + (", red: a window that failed a threshold, dashed lines: window boundaries" if axis.grid else "")
        + ".</p>"
    )
    return caption + "".join(out)


def _step_text(timeline: Mapping[str, Any]) -> str:
    step = finite(timeline.get("step_s"))
    return f"{step:g} s" if step is not None else "a time bucket"


def _unique_lines(lines: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """One line per limit value: labels of equal limits joined (``p(95) < 2000 · within(2000) >= 95%``)."""
    merged: dict[float, list[str]] = {}
    for label, value in lines:
        merged.setdefault(value, []).append(label)
    return [(" · ".join(labels), value) for value, labels in merged.items()]


def distribution_section(report: Mapping[str, Any]) -> str:
    dist = as_dict(report.get("distribution"))
    edges = _values(dist.get("edges_ms"))
    counts = [int(c) if (c := finite(x)) is not None else 0 for x in as_list(dist.get("counts"))]
    if len(edges) < 2 or len(counts) != len(edges) - 1 or any(e is None for e in edges) or not any(counts):
        return '<p class="empty">No latency distribution in this report.</p>'
    clean = [float(e) for e in edges if e is not None]
    lines = []
    merged: dict[float, list[tuple[str, bool]]] = {}
    for item in (as_dict(x) for x in as_list(dist.get("limits"))):
        ms = finite(item.get("ms"))
        if ms is not None:
            merged.setdefault(ms, []).append((str(item.get("expression")), status_class(item.get("status")) == "fail"))
    for ms, entries in merged.items():
        lines.append((" · ".join(text for text, _ in entries), ms, any(bad for _, bad in entries)))
    percentiles = as_dict(dist.get("percentiles"))
    markers = [(q, v) for q in ("p50", "p95", "p99") if (v := finite(percentiles.get(q))) is not None]
    metric = str(dist.get("metric") or "")
    figures = ", ".join(f"{q} {format_ms(v)}" for q, v in markers)
    return (
        f"<h3>Distribution of <code>{esc(metric)}</code> reply times</h3>"
        f'<p class="muted">{esc(f"{sum(counts):,}")} judged samples (the warm-up left out); {esc(figures)}. '
        "Every limit is a bin edge: the bars left of a line are the samples within it.</p>"
        + histogram_chart("chart-distribution", clean, counts, lines=lines, markers=markers)
    )


def _line_key(row: Mapping[str, Any]) -> tuple[str, str]:
    """The threshold line as configured: its pattern (``PG *``) and expression; a glob's metrics share one chart."""
    return (str(row.get("pattern") or row.get("metric") or ""), str(row.get("expression") or ""))


def thresholds_over_time_section(report: Mapping[str, Any], axis: RunAxis) -> str:
    """Each threshold's value per time point against its limit, one chart per configured line (a glob's metrics
    together), failing lines first; a passing line whose value never changed is listed, not charted."""
    timeline = as_dict(report.get("timeline"))
    t = _values(timeline.get("t"))
    rows = [as_dict(x) for x in as_list(report.get("thresholds"))]
    series = [as_dict(x) for x in as_list(timeline.get("thresholds"))]
    if not t or not series or axis.t0 is None:
        return '<p class="empty">No per-threshold time series in this report.</p>'
    groups: dict[tuple[str, str], list[tuple[int, list[float | None]]]] = {}
    no_samples = 0
    for i in threshold_order(rows):
        values = _values(series[i].get("values")) if i < len(series) else []
        if not any(v is not None for v in values):
            no_samples += 1
            continue
        groups.setdefault(_line_key(rows[i]), []).append((i, values))
    charts: list[str] = []
    steady: list[str] = []
    for (pattern, expression), members in groups.items():
        bad = any(failing(rows[i]) for i, _ in members)
        present = {v for _, values in members for v in values if v is not None}
        if not bad and len(present) == 1:
            unit = str(rows[members[0][0]].get("unit") or "")
            names = ", ".join(str(rows[i].get("metric")) for i, _ in members)
            steady.append(
                f'<tr data-threshold="{" ".join(str(i) for i, _ in members)}"><td><code>{esc(names)}</code></td>'
                f"<td><code>{esc(expression)}</code></td><td class=num>{esc(format_value(present.pop(), unit))}</td></tr>"
            )
            continue
        charts.append(_line_chart(len(charts), pattern, expression, members, rows, t, axis, bad))
    if not charts and not steady:
        return '<p class="empty">No threshold had samples to chart.</p>'
    windows = ", and each window" if report.get("windows_judged") else ""
    out = (
        '<p class="muted">Each line judged on the samples of each time point alone (the verdict judges the whole '
        f"run{windows}): where and when it was crossed. A glob's metrics share its chart."
        + (f" {no_samples} without samples are not shown." if no_samples else "")
        + "</p>"
        + f'<div class="grid2">{"".join(charts)}</div>'
    )
    if steady:
        out += (
            "<h3>Held the same value at every point</h3><table id=steady-thresholds><thead><tr><th>Metric</th>"
            f"<th>Threshold</th><th class=num>Value</th></tr></thead><tbody>{''.join(steady)}</tbody></table>"
        )
    return out


def _line_chart(
    number: int,
    pattern: str,
    expression: str,
    members: Sequence[tuple[int, list[float | None]]],
    rows: Sequence[Mapping[str, Any]],
    t: Sequence[float | None],
    axis: RunAxis,
    bad: bool,
) -> str:
    first = rows[members[0][0]]
    unit = str(first.get("unit") or "")
    limit = finite(first.get("limit"))
    single = len(members) == 1
    series = [
        Series(
            expression if single else str(rows[i].get("metric")),
            t,
            values,
            color=("#c92a2a" if bad else "#1f5fbf") if single else None,
            index=i,
        )
        for i, values in members
    ]
    chart = time_chart(
        f"chart-line-{number}",
        series,
        x_range=axis.x_range,
        unit=unit,
        hlines=[(f"limit {format_value(limit, unit)}", limit)] if limit is not None else [],
        spans=axis.spans,
        grid=axis.grid,
        width=520,
        height=170 if single else 190,
        x_title="",
        hover=not single,
        legend=not single,
    )
    status = "fail" if bad else (first.get("status") if single else "pass")
    whole = (
        f'<span class="muted">whole run: {esc(format_value(first.get("value"), unit))}</span>' if single else
        f'<span class="muted">{len(members)} metrics</span>'
    )
    return (
        f'<div class="small {"fail" if bad else ""}" data-line="{esc(pattern)} {esc(expression)}">'
        f"<h4>{badge(status)} <code>{esc(pattern)}</code> <code>{esc(expression)}</code> {whole}</h4>{chart}</div>"
    )
