"""The top of the HTML report: the verdict banner, the run's facts, the notes (abort, lost workers, chat message
accounting, protocol anomalies) and the thresholds table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sla_checks.formatting import finite, format_count, format_time, format_value
from sla_checks.report_html.markup import as_dict, as_int, as_list, badge, esc, status_class
from sla_checks.report_html.overtime import failing, threshold_order

__all__ = ["banner", "faults_note", "locust_link", "meta", "notes", "thresholds_table"]


def banner(report: Mapping[str, Any]) -> str:
    verdict = str(report.get("verdict") or "unknown").lower()
    klass = status_class(verdict)
    title = {"pass": "SLA PASSED", "fail": "SLA FAILED", "inconclusive": "SLA INCONCLUSIVE"}.get(
        klass, f"SLA verdict: {verdict}"
    )
    thresholds = [as_dict(t) for t in as_list(report.get("thresholds"))]
    counts = {"pass": 0, "fail": 0, "nodata": 0}
    for item in thresholds:
        key = status_class(item.get("status"))
        if key in counts:
            counts[key] += 1
    exit_code = report.get("exit_code")
    bits = [f'<span class="verdict" id="verdict">{esc(title)}</span>']
    bits.append(
        f"<span>{counts['pass']} passed · {counts['fail']} failed · {counts['nodata']} no data</span>"
    )
    if exit_code is not None:
        bits.append(f"<span>exit code <b>{esc(exit_code)}</b></span>")
    if report.get("profile"):
        bits.append(f"<span>profile <b>{esc(report.get('profile'))}</b></span>")
    return f'<div class="banner {klass}" data-verdict="{esc(verdict)}">{"".join(bits)}</div>'


def meta(report: Mapping[str, Any]) -> str:
    duration = finite(report.get("duration_s"))
    items = [
        ("Config", report.get("config_file") or "–"),
        ("Started", format_time(report.get("started_at"))),
        ("Ended", format_time(report.get("ended_at"))),
        ("Duration", f"{duration:,.1f} s" if duration is not None else "–"),
        ("Workers", as_int(report.get("workers")) if report.get("workers") is not None else "–"),
        ("Samples", format_count(report.get("samples"))),
        ("Windows", _windows_meta(report)),
    ]
    warmup = finite(report.get("warmup_s"))
    if warmup:
        items.append(("Warm-up, not judged", f"{warmup:g} s, {format_count(report.get('warmup_samples'))} samples"))
    cells = "".join(f"<div>{esc(label)}: <b>{esc(value)}</b></div>" for label, value in items)
    return f'<div class="meta">{cells}</div>'


def _windows_meta(report: Mapping[str, Any]) -> str:
    count = len(as_list(report.get("windows")))
    window_s = finite(report.get("window_s"))
    text = f"{count}" + (f" × {window_s:g} s" if window_s else "")
    if count and report.get("windows_judged") is not None:
        text += ", judged" if report.get("windows_judged") else ", drift only"
    return text


def notes(report: Mapping[str, Any]) -> str:
    out = []
    if report.get("state") == "running":
        out.append(
            '<div class="note" id="live">Live snapshot taken while the run was still going: '
            "the verdict is what it would be if the run ended now.</div>"
        )
    reasons = [str(r) for r in as_list(report.get("verdict_reasons")) if r]
    if reasons:
        items = "".join(f"<li><code>{esc(r)}</code></li>" for r in reasons)
        out.append(f'<ul class="reasons" id="verdict-reasons">{items}</ul>')
    aborted = report.get("aborted")
    if aborted:
        info = as_dict(aborted)
        threshold = info.get("threshold") or (aborted if isinstance(aborted, str) else "?")
        reason = info.get("reason") or ""
        when = f" at {format_time(info.get('at'))}" if info.get("at") else ""
        out.append(
            f'<div class="note abort" id="aborted"><b>Run aborted early</b>{esc(when)} by threshold '
            f"<code>{esc(threshold)}</code>{': ' + esc(reason) if reason else ''}. "
            "Figures cover the run up to the abort.</div>"
        )
    lost = as_int(report.get("workers_lost"))
    if lost > 0:
        out.append(
            f'<div class="note" id="workers-lost"><b>{lost} worker{"s" if lost != 1 else ""} lost</b> during the run: '
            "their samples after the loss are missing, so throughput and counts are understated.</div>"
        )
    out.append(_messages_note(as_dict(report.get("messages")), report.get("state") == "finished"))
    kinds = {str(k): as_int(v) for k, v in as_dict(report.get("anomalies")).items() if as_int(v) > 0}
    if kinds:
        items = ", ".join(f"<code>{esc(k)}</code> {n:,}" for k, n in kinds.items())
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
    sent, completed, failed, in_flight = (as_int(m.get(k)) for k in ("sent", "completed", "failed", "in_flight"))
    limit = m.get("in_flight_limit_ms")
    limit_text = f"{limit:g} ms" if isinstance(limit, int | float) else "their reply deadline"
    where = "in flight at stop" if finished else "in flight now"
    parts = [f'<div class="note" id="messages"><b>Chat messages</b>: {sent:,} sent = {completed:,} completed + '
             f"{failed:,} failed + {in_flight:,} {where}"]
    if as_int(m.get("unaccounted")):
        parts.append(f" + {as_int(m.get('unaccounted')):,} unaccounted (lost with a worker)")
    parts.append(".")
    if as_int(m.get("failed_at_stop")):
        parts.append(f' <span id="abandoned-at-stop">{as_int(m.get("failed_at_stop")):,} of the failed were still in '
                     f"flight at the stop after waiting longer than {esc(limit_text)} (the longest latency limit of "
                     "<code>WS agent_completed</code>): judged as failures at the time they had waited.</span>")
    if in_flight and finished:
        parts.append(f" {in_flight:,} in flight at stop had waited less than {esc(limit_text)}: counted, not judged "
                     "(a longer <code>--stop-timeout</code> lets them finish).")
    if as_int(m.get("not_sent")):
        parts.append(f" {as_int(m.get('not_sent')):,} more were due but never sent (no connected chat user).")
    return "".join(parts) + "</div>"


def _pattern_note(item: Mapping[str, Any]) -> str:
    pattern = item.get("pattern")
    if pattern and pattern != item.get("metric"):
        return f'<br><span class="muted">from <code>{esc(pattern)}</code></span>'
    return ""


def thresholds_table(report: Mapping[str, Any]) -> str:
    """Every threshold, the failing ones first (failed over the run or in a window), each marked ✘."""
    thresholds = [as_dict(t) for t in as_list(report.get("thresholds"))]
    if not thresholds:
        return '<p class="empty">No thresholds in this report.</p>'
    rows = []
    for index in threshold_order(thresholds):
        item = thresholds[index]
        status = item.get("status") or "unknown"
        klass = status_class(status)
        flags = []
        if item.get("abort_on_fail"):
            flags.append("abort on fail")
        if item.get("required"):
            flags.append("required")
        windows = [str(w) for w in as_list(item.get("failed_windows"))]
        value = format_value(item.get("value"), item.get("unit"))
        guesses = [str(m) for m in as_list(item.get("did_you_mean"))]
        hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
        mark = ""
        if failing(item):
            mark = '<span class="mark" title="failing">✘</span> '
            if klass != "fail":
                klass = "fail-windows"
        rows.append(
            f'<tr class="{klass}" data-index="{index}"><td>{mark}{badge(status)}</td><td title="{esc(item.get("source"))}">'
            f"<code>{esc(item.get('metric'))}</code>{_pattern_note(item)}</td>"
            f'<td><code>{esc(item.get("expression"))}</code></td><td class="num">{esc(value)}</td>'
            f'<td class="num">{esc(format_count(item.get("samples")))}</td><td>{esc(str(item.get("description") or "") + hint)}</td>'
            f"<td>{esc(', '.join(flags))}</td><td>{esc(', '.join('W' + w for w in windows))}</td></tr>"
        )
    head = (
        "<tr><th>Status</th><th>Metric</th><th>Threshold</th><th class=num>Value</th><th class=num>Samples</th>"
        "<th>Description</th><th>Flags</th><th>Failed windows</th></tr>"
    )
    return f'<table id="thresholds"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def faults_note(report: Mapping[str, Any]) -> str:
    """The faults injected into the target during the run: kind, parameters, start and end ("" when none)."""
    faults = [as_dict(f) for f in as_list(report.get("faults"))]
    if not faults:
        return ""
    items = []
    for fault in faults:
        start, end = finite(fault.get("start_s")), finite(fault.get("end_s"))
        when = (
            f"from {start:,.1f} s to {end:,.1f} s after the start"
            if start is not None and end is not None
            else f"{format_time(fault.get('start'))} – {format_time(fault.get('end'))}"
        )
        error = f" <b>not applied</b>: {esc(fault.get('error'))}" if fault.get("error") else ""
        detail = f" {esc(fault.get('detail'))}" if fault.get("detail") else ""
        items.append(f"<li><code>{esc(fault.get('kind'))}</code>{detail} {esc(when)}{error}</li>")
    return (
        f'<div class="note fault" id="faults"><b>Faults injected</b> ({len(faults)}; hatched on every time chart):'
        f"<ul>{''.join(items)}</ul></div>"
    )


def locust_link(report: Mapping[str, Any]) -> str:
    """A link to Locust's own HTML report of the same run (``locust_report``, relative), "" without one."""
    target = report.get("locust_report")
    if not isinstance(target, str) or not target or "://" in target or target.startswith(("/", "\\")):
        return ""
    return (
        f'<p class="links" id="locust-report-link">Locust\'s own report of this run (requests, failures, charts): '
        f'<a href="{esc(target)}">{esc(target)}</a></p>'
    )
