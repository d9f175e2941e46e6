"""The data sections of the HTML report: latency per window against the tiers, all metrics, the agent-event stage
timings, the attribution of failing thresholds and the gauges (the load generator's CPU)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sla_checks.attribution import tier_of
from sla_checks.formatting import finite, format_clock, format_count, format_ms, format_time
from sla_checks.report_html.markup import as_dict, as_list, esc
from sla_checks.report_html.svg import bar_chart, line_chart

__all__ = [
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


def windows_section(report: Mapping[str, Any]) -> str:
    windows = [as_dict(w) for w in as_list(report.get("windows"))]
    if not windows:
        return '<p class="empty">No per-window data in this report.</p>'
    primary, labels = _window_series(report)
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
    bands = set()
    for item in (as_dict(t) for t in as_list(report.get("thresholds"))):
        if primary and item.get("metric") == primary:
            limit = _threshold_limit(str(item.get("expression") or ""))
            if limit is not None:
                hlines.append((f"{primary} {item.get('expression')}", limit))
    for i, window in enumerate(windows):
        if as_list(window.get("failed")):
            bands.add(i)
    chart = line_chart(
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
        "(REDIS *, PG *, CH *, HTTP ready:&lt;tier&gt;). Shaded windows failed a threshold."
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
    _, labels = _window_series(report)
    bands = {i for i, w in enumerate(windows) if as_list(w.get("failed"))}
    chart = line_chart(
        "chart-stage-windows", labels, series, log_scale=True, unit="ms", bands=bands, x_title="window"
    )
    return "<h3>Stage p95 per window</h3>" + chart


def attribution_section(report: Mapping[str, Any]) -> str:
    entries = [as_dict(a) for a in as_list(report.get("attribution"))]
    if not entries:
        return (
            '<p class="empty">No attribution: it is computed when a WS or FLOW threshold fails '
            "(and needs tier probe metrics in the same run).</p>"
        )
    out = []
    for entry in entries:
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
        out.append(
            f'<div class="attr"><h3><code>{esc(entry.get("metric"))}</code> <code>{esc(entry.get("expression"))}</code></h3>'
            f'<p class="summary">{esc(entry.get("summary") or "No summary.")}</p>{figures}{table}'
            f"<p>Slowest stage: <code>{esc(slowest or '–')}</code></p>{stages}</div>"
        )
    return "".join(out)


def gauges_section(report: Mapping[str, Any]) -> str:
    gauges = as_dict(report.get("gauges"))
    if not gauges:
        return '<p class="empty">No gauges recorded (e.g. the load generator\'s CPU).</p>'
    names = sorted(gauges, key=lambda n: (n != "locust:cpu_percent", n))
    out = []
    t0 = None
    for name in names:
        for point in as_list(gauges[name]):
            ts = finite(as_list(point)[0]) if as_list(point) else None
            if ts is not None:
                t0 = ts if t0 is None else min(t0, ts)
    for index, name in enumerate(names[:_MAX_GAUGES]):
        points = []
        for point in as_list(gauges[name]):
            pair = as_list(point)
            if len(pair) >= 2 and finite(pair[0]) is not None and finite(pair[1]) is not None:
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
        chart = line_chart(
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
            f"<h3><code>{esc(name)}</code> <span class=muted>mean {mean:,.1f}{esc(unit)}, peak {peak:,.1f}{esc(unit)}"
            f"</span></h3>{warn}{chart}"
        )
    if len(names) > _MAX_GAUGES:
        out.append(f'<p class="muted">{len(names) - _MAX_GAUGES} more gauges not charted.</p>')
    return "".join(out) or '<p class="empty">The gauges hold no readings.</p>'
