"""The data sections of the HTML report: latency per window against the tiers, all metrics, the agent-event stage
timings, the attribution of failing thresholds (once per metric) and the gauges (the backend's and the load
generator's CPU and memory first). Time charts share the report's time axis (:func:`.overtime.run_axis`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sla_checks.formatting import finite, format_clock, format_count, format_ms, format_time
from sla_checks.report_html.markup import as_dict, as_list, esc
from sla_checks.report_html.overtime import RunAxis, run_axis, timestamp_of
from sla_checks.report_html.svg import Series, bar_chart, time_chart
from sla_checks.tiers import tier_of

__all__ = [
    "GAUGE_FIRST",
    "gauge_order",
    "window_times",
    "PRIMARY_METRIC",
    "STAGE_EVENTS",
    "attribution_section",
    "gauges_section",
    "metrics_section",
    "stages_section",
    "windows_section",
]

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
_MAX_GAUGES = 12
_MAX_GAUGE_POINTS = 600
#: Gauges charted before any other: the backend's CPU and memory, then the load generator's.
GAUGE_FIRST: tuple[str, ...] = ("target:cpu_percent", "target:rss_mb", "locust:cpu_percent", "locust:rss_mb")


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


def _window_series(report: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(the metric charted against the tiers, one label per window)."""
    windows = [as_dict(w) for w in as_list(report.get("windows"))]
    names: list[str] = []
    for window in windows:
        for name in as_dict(window.get("metrics")):
            if name not in names:
                names.append(name)
    primary: str | None = PRIMARY_METRIC if PRIMARY_METRIC in names else None
    if primary is None:
        primary = next((n for n in names if n.split(" ", 1)[0] in ("WS", "FLOW")), None)
    labels = []
    for i, window in enumerate(windows):
        index = window.get("index", i)
        clock = format_clock(window.get("start"))
        labels.append(f"W{index}" + (f" {clock}" if clock else ""))
    return primary, labels


def window_times(windows: Sequence[Mapping[str, Any]], axis: RunAxis) -> list[float | None]:
    """Each window's middle in seconds since the test start, the window cut to the run (a window that the run ended
    inside is drawn over the part that ran); the window index when the report has no times."""
    if axis.t0 is None:
        return [float(i) for i in range(len(windows))]
    out: list[float | None] = []
    for window in windows:
        start = timestamp_of(window.get("start_ts")) or timestamp_of(window.get("start"))
        end = timestamp_of(window.get("end_ts")) or timestamp_of(window.get("end"))
        if start is None:
            out.append(None)
            continue
        a = max(start - axis.t0, axis.x_range[0])
        b = min(end - axis.t0, axis.x_range[1]) if end is not None else a
        out.append((a + max(b, a)) / 2)
    return out


def _window_axis(windows: Sequence[Mapping[str, Any]], axis: RunAxis) -> RunAxis:
    """``axis``, or one counting windows when the report has no times."""
    if axis.t0 is not None:
        return axis
    return RunAxis(None, (-0.5, len(windows) - 0.5), (), ())


def windows_section(report: Mapping[str, Any], axis: RunAxis | None = None) -> str:
    windows = [as_dict(w) for w in as_list(report.get("windows"))]
    if not windows:
        return '<p class="empty">No per-window data in this report.</p>'
    axis = _window_axis(windows, axis or run_axis(report))
    primary, _labels = _window_series(report)
    tiers: dict[str, list[tuple[str, float] | None]] = {}
    for i, window in enumerate(windows):
        for name, stats in as_dict(window.get("metrics")).items():
            tier = tier_of(name)
            p95 = finite(as_dict(stats).get("p95"))
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
                [finite(as_dict(as_dict(w.get("metrics")).get(primary)).get("p95")) for w in windows],
            )
        )
    for tier in sorted(tiers, key=_tier_rank):
        series.append((f"{tier} (worst p95 of its metrics)", [c[1] if c else None for c in tiers[tier]]))
    if not any(v is not None for _, points in series for v in points):
        return '<p class="empty">The windows hold no latency percentiles.</p>'
    hlines = []
    for item in (as_dict(t) for t in as_list(report.get("thresholds"))):
        if primary and item.get("metric") == primary:
            limit = _threshold_limit(str(item.get("expression") or ""))
            if limit is not None:
                hlines.append((f"{primary} {item.get('expression')}", limit))
    times = window_times(windows, axis)
    chart = time_chart(
        "chart-windows",
        [Series(label, times, points) for label, points in series],
        x_range=axis.x_range,
        unit="ms",
        log_scale=True,
        hlines=hlines,
        spans=axis.spans,
        grid=axis.grid,
        x_title="time since the test start (each point: one window)" if axis.t0 is not None else "window",
    )
    # window table
    tier_names = sorted(tiers, key=_tier_rank)
    head = "<tr><th>Window</th><th>Start</th><th>End</th>"
    if primary:
        head += f"<th class=num>{esc(primary)} p95</th><th class=num>count</th>"
    head += (
        "".join(f"<th class=num>{esc(t)} worst p95</th>" for t in tier_names)
        + "<th>Failed thresholds</th></tr>"
    )
    rows = []
    for i, window in enumerate(windows):
        failed = [str(f) for f in as_list(window.get("failed"))]
        cells = [
            f"<td>W{esc(window.get('index', i))}</td>",
            f"<td>{esc(format_time(window.get('start')))}</td>",
            f"<td>{esc(format_time(window.get('end')))}</td>",
        ]
        if primary:
            stats = as_dict(as_dict(window.get("metrics")).get(primary))
            cells.append(f'<td class="num">{esc(format_ms(stats.get("p95")))}</td>')
            cells.append(f'<td class="num">{esc(format_count(stats.get("count")))}</td>')
        for tier in tier_names:
            entry = tiers[tier][i]
            if entry is None:
                cells.append('<td class="num">–</td>')
            else:
                cells.append(f'<td class="num" title="{esc(entry[0])}">{esc(format_ms(entry[1]))}</td>')
        cells.append(f"<td>{'<br>'.join(f'<code>{esc(f)}</code>' for f in failed)}</td>")
        rows.append(f'<tr class="{"fail" if failed else ""}">{"".join(cells)}</tr>')
    table = f'<table id="windows"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
    judged = report.get("windows_judged")
    caption = (
        '<p class="muted">p95 per window; each tier line is the worst p95 among that tier\'s metrics '
        "(REDIS *, PG *, CH *, HTTP ready:&lt;tier&gt;). Red: a window that failed a threshold; hatched: an "
        "injected fault."
        + (
            " The thresholds were not judged per window in this run (drift view only)."
            if judged is False
            else ""
        )
        + "</p>"
    )
    return caption + chart + table


def metrics_section(report: Mapping[str, Any]) -> str:
    metrics = as_dict(report.get("metrics"))
    if not metrics:
        return '<p class="empty">No metrics recorded.</p>'
    names = sorted(metrics, key=lambda n: (n.split(" ", 1)[0] not in ("WS", "FLOW"), n))
    bar_rows = [(name, [finite(as_dict(metrics[name]).get("p95"))]) for name in names]
    chart = ""
    if any(v[0] is not None for _, v in bar_rows):
        chart = bar_chart("chart-metrics", bar_rows, ["p95 whole run"], unit="ms", log_scale=True)
    head = (
        "<tr><th>Metric</th><th class=num>count</th><th class=num>failures</th><th class=num>p50</th>"
        "<th class=num>p90</th><th class=num>p95</th><th class=num>p99</th><th class=num>max</th>"
        "<th class=num>avg</th><th class=num>rps</th></tr>"
    )
    rows = []
    for name in names:
        stats = as_dict(metrics[name])
        rps = finite(stats.get("rps"))
        rows.append(
            f"<tr><td><code>{esc(name)}</code></td><td class=num>{esc(format_count(stats.get('count')))}</td>"
            f"<td class=num>{esc(format_count(stats.get('failures')))}</td>"
            + "".join(
                f"<td class=num>{esc(format_ms(stats.get(k)))}</td>"
                for k in ("p50", "p90", "p95", "p99", "max", "avg")
            )
            + f"<td class=num>{'–' if rps is None else f'{rps:,.2f}'}</td></tr>"
        )
    return chart + f'<table id="metrics"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def stages_section(report: Mapping[str, Any]) -> str:
    stages = as_dict(report.get("stages"))
    if not stages:
        return '<p class="empty">No agent-event stage timings in this report.</p>'
    names = sorted(stages, key=_stage_rank)
    rows = [
        (name, [finite(as_dict(stages[name]).get("p50")), finite(as_dict(stages[name]).get("p95"))]) for name in names
    ]
    chart = ""
    if any(v is not None for _, vals in rows for v in vals):
        chart = bar_chart("chart-stages", rows, ["p50", "p95"], unit="ms")
    slowest = max(names, key=lambda n: finite(as_dict(stages[n]).get("p95")) or -1.0)
    head = (
        "<tr><th>Stage (gap between events)</th><th class=num>count</th><th class=num>p50</th>"
        "<th class=num>p95</th><th class=num>p99</th><th class=num>max</th></tr>"
    )
    body = []
    for name in names:
        stats = as_dict(stages[name])
        body.append(
            f"<tr><td><code>{esc(name)}</code>{' <b>(slowest p95)</b>' if name == slowest else ''}</td>"
            f"<td class=num>{esc(format_count(stats.get('count')))}</td>"
            + "".join(f"<td class=num>{esc(format_ms(stats.get(k)))}</td>" for k in ("p50", "p95", "p99", "max"))
            + "</tr>"
        )
    table = f'<table id="stages"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
    return chart + table + _stage_drift_chart(report, names)


def _stage_drift_chart(report: Mapping[str, Any], names: Sequence[str]) -> str:
    """p95 of each stage per window (when the windows carry stage percentiles)."""
    windows = [as_dict(w) for w in as_list(report.get("windows"))]
    if len(windows) < 2:
        return ""
    all_names = list(names) + sorted(
        {n for w in windows for n in as_dict(w.get("stages")) if n not in names}, key=_stage_rank
    )
    series = [
        (f"{name} p95", [finite(as_dict(as_dict(w.get("stages")).get(name)).get("p95")) for w in windows])
        for name in all_names
    ]
    series = [(label, points) for label, points in series if any(v is not None for v in points)]
    if not series:
        return ""
    axis = _window_axis(windows, run_axis(report))
    times = window_times(windows, axis)
    chart = time_chart(
        "chart-stage-windows",
        [Series(label, times, points) for label, points in series],
        x_range=axis.x_range,
        unit="ms",
        log_scale=True,
        spans=axis.spans,
        grid=axis.grid,
        x_title="time since the test start (each point: one window)" if axis.t0 is not None else "window",
    )
    return "<h3>Stage p95 per window</h3>" + chart


def _summary_parts(summary: str) -> tuple[str, str]:
    """``("<metric> <stat> <value> > <limit>", "coincides with ...")`` of an attribution summary."""
    head, sep, tail = summary.partition(" — ")
    return (head, tail) if sep else (summary, "")


def attribution_section(report: Mapping[str, Any]) -> str:
    """One block per metric: its failing lines, the attribution once (tiers, stages, gauges), not once per line."""
    entries = [as_dict(a) for a in as_list(report.get("attribution"))]
    if not entries:
        return (
            '<p class="empty">No attribution: it is computed when a WS or FLOW threshold fails '
            "(and needs tier probe metrics in the same run).</p>"
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        groups.setdefault(str(entry.get("metric") or ""), []).append(entry)
    return "".join(_attribution_block(metric, group) for metric, group in groups.items())


def _attribution_block(metric: str, group: Sequence[Mapping[str, Any]]) -> str:
    entry = group[0]
    _, first_tail = _summary_parts(str(entry.get("summary") or ""))
    lines = []
    for item in group:
        head, tail = _summary_parts(str(item.get("summary") or "No summary."))
        text = head if tail == first_tail else f"{head} — {tail}" if tail else head
        lines.append(f"<li><code>{esc(item.get('expression'))}</code>: {esc(text)}</li>")
    tiers = sorted(
        (as_dict(t) for t in as_list(entry.get("tiers"))), key=lambda t: -(finite(t.get("score")) or 0.0)
    )
    rows = []
    for tier in tiers:
        within = tier.get("within_sla")
        status = "within SLA" if within is True else ("over SLA" if within is False else "–")
        score = finite(tier.get("score"))
        correlation = finite(tier.get("correlation"))
        rows.append(
            f'<tr class="{"fail" if within is False else ""}"><td>{esc(tier.get("tier"))}</td>'
            f"<td><code>{esc(tier.get('metric'))}</code></td><td class=num>{esc(format_ms(tier.get('p95')))}</td>"
            f"<td class=num>{esc(format_ms(tier.get('baseline_p95')))}</td>"
            f"<td class=num>{esc(format_ms(tier.get('rise_ms')))}</td>"
            f"<td><code>{esc(tier.get('threshold') or '–')}</code></td><td>{esc(status)}</td>"
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
        (as_dict(x) for x in as_list(entry.get("stages"))), key=lambda x: _stage_rank(str(x.get("stage")))
    ):
        stage_rows.append(
            f"<tr><td><code>{esc(stage.get('stage'))}</code></td><td class=num>{esc(format_ms(stage.get('p95')))}</td>"
            f"<td class=num>{esc(format_ms(stage.get('baseline_p95')))}</td>"
            f"<td class=num>{esc(format_ms(stage.get('growth_ms')))}</td></tr>"
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
    if finite(entry.get("bad_p95")) is not None or finite(entry.get("baseline_p95")) is not None:
        figures = (
            f'<p class="muted">{esc(entry.get("metric"))} p95 {esc(format_ms(entry.get("bad_p95")))} in the bad '
            f"windows against {esc(format_ms(entry.get('baseline_p95')))} in the others.</p>"
        )
    failing = "failing line" if len(group) == 1 else f"{len(group)} failing lines"
    return (
        f'<div class="attr" data-metric="{esc(metric)}"><h3><code>{esc(metric)}</code> '
        f'<span class="muted">{failing}</span></h3><ul class="attr-lines">{"".join(lines)}</ul>'
        f'<p class="summary">{esc(first_tail or entry.get("summary") or "No summary.")}</p>{figures}{table}'
        f"<p>Slowest stage: <code>{esc(slowest or '–')}</code></p>{stages}</div>"
    )


def _readings(series: Any) -> list[tuple[float, float]]:
    points = []
    for point in as_list(series):
        pair = as_list(point)
        if len(pair) >= 2 and finite(pair[0]) is not None and finite(pair[1]) is not None:
            points.append((float(pair[0]), float(pair[1])))
    return sorted(points)


def gauge_order(report: Mapping[str, Any]) -> list[str]:
    """The gauges by relevance: the backend's and the generator's CPU and memory (:data:`GAUGE_FIRST`), then those
    the attribution names (moving with a failing metric first), then the ones that moved, by name, then the flat
    ones (one value all run long)."""
    gauges = as_dict(report.get("gauges"))
    named: dict[str, float] = {}
    for entry in (as_dict(a) for a in as_list(report.get("attribution"))):
        for gauge in (as_dict(g) for g in as_list(entry.get("gauges"))):
            name = str(gauge.get("gauge") or "")
            r = abs(finite(gauge.get("detrended_correlation")) or finite(gauge.get("correlation")) or 0.0)
            score = r + (10.0 if gauge.get("moves_with") else 0.0)
            named[name] = max(named.get(name, -1.0), score)

    def rank(name: str) -> tuple[int, float, str]:
        if name in GAUGE_FIRST:
            return (0, float(GAUGE_FIRST.index(name)), name)
        if name in named:
            return (1, -named[name], name)
        flat = len({v for _, v in _readings(gauges[name])}) <= 1
        return (3 if flat else 2, 0.0, name)

    return sorted((str(n) for n in gauges), key=rank)


def gauges_section(report: Mapping[str, Any], axis: RunAxis | None = None) -> str:
    """A chart per gauge on the run's time axis, by :func:`gauge_order` (at most ``_MAX_GAUGES``); a flat gauge that
    is neither the backend's nor the generator's is listed with its value instead."""
    gauges = as_dict(report.get("gauges"))
    if not gauges:
        return '<p class="empty">No gauges recorded (e.g. the load generator\'s CPU).</p>'
    axis = axis or run_axis(report)
    names = gauge_order(report)
    readings = {name: _readings(gauges[name]) for name in names}
    t0 = axis.t0
    if t0 is None:
        t0 = min((points[0][0] for points in readings.values() if points), default=0.0)
    charts: list[str] = []
    flat: list[str] = []
    left_out: list[str] = []
    warn = ""
    for name in names:
        points = readings[name]
        if not points:
            continue
        unit = "%" if name.endswith("percent") else ("MB" if name.endswith("_mb") else "")
        values = [v for _, v in points]
        if name not in GAUGE_FIRST and len(set(values)) == 1:
            flat.append(f"<code>{esc(name)}</code> {values[0]:,.4g}{esc(unit)}")
            continue
        if len(charts) >= _MAX_GAUGES:
            left_out.append(name)
            continue
        if len(points) > _MAX_GAUGE_POINTS:
            step = len(points) / _MAX_GAUGE_POINTS
            points = [points[int(k * step)] for k in range(_MAX_GAUGE_POINTS)] + [points[-1]]
        peak, mean = max(values), sum(values) / len(values)
        x_range = axis.x_range if axis.t0 is not None else (0.0, max(points[-1][0] - t0, 1.0))
        chart = time_chart(
            f"chart-gauge-{len(charts)}",
            [Series(name, [ts - t0 for ts, _ in points], [v for _, v in points])],
            x_range=x_range,
            unit=unit,
            spans=axis.spans,
            grid=axis.grid,
            width=520,
            height=160,
            x_title="",
            hover=False,
            legend=False,
        )
        busy = sum(1 for v in values if v >= 90)
        if name == "locust:cpu_percent" and busy >= 2:  # sustained, not one start-up reading
            warn = (
                f'<div class="note" id="cpu-warning">The load generator was at or over 90 % CPU in {busy} of '
                f"{len(values)} readings (peak {peak:.0f} %): latencies may be inflated by the generator itself.</div>"
            )
        charts.append(
            f'<div class="small" data-gauge="{esc(name)}"><h4><code>{esc(name)}</code> <span class=muted>mean '
            f"{mean:,.1f}{esc(unit)}, peak {peak:,.1f}{esc(unit)}</span></h4>{chart}</div>"
        )
    out = warn + (f'<div class="grid2">{"".join(charts)}</div>' if charts else "")
    if flat:
        out += f'<p class="muted" id="flat-gauges">One value all run long: {"; ".join(flat)}.</p>'
    if left_out:
        out += f'<p class="muted">{len(left_out)} more gauges not charted: {esc(", ".join(left_out))}.</p>'
    return out or '<p class="empty">The gauges hold no readings.</p>'
