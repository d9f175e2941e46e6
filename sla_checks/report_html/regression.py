"""The baseline regression gate in HTML: :func:`regression_section` (the report's ``regression`` field, or a
``python -m sla_checks compare`` document, as one section) and :func:`regression_page` (that section as a whole
self-contained page, for ``compare --html``). No script, every string escaped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sla_checks.formatting import finite, format_value
from sla_checks.report_html.markup import as_dict, as_list, badge, esc, status_class
from sla_checks.report_html.style import CSP, CSS

__all__ = ["regression_page", "regression_section"]


def _confidence(value: Any) -> str:
    number = finite(value)
    if number is None:
        return "–"
    return "&gt; 99.99 %" if number >= 0.9999 else f"{100.0 * number:.1f} %"


def regression_section(report: Mapping[str, Any]) -> str:
    """The regression lines of ``report`` (an SLA report or a compare document), failing ones first; an empty string
    when the run had no baseline."""
    section = as_dict(report.get("regression"))
    if not section:
        return ""
    base = as_dict(section.get("baseline"))
    level = finite(section.get("confidence_level")) or 0.95
    what = "default lines" if section.get("defaults") else "the configured regression lines"
    head = (f'<p class="muted">Against <code>{esc(base.get("file"))}</code> (started {esc(base.get("started_at"))}, '
            f'profile {esc(base.get("profile"))}): {esc(what)}; a line fails when the run is beyond it with at '
            f"least {100 * level:g} % confidence.</p>")
    warnings = "".join(f'<div class="note">{esc(w)}</div>' for w in as_list(section.get("warnings")))
    rows = sorted((as_dict(r) for r in as_list(section.get("lines"))), key=lambda r: r.get("status") != "fail")
    body = []
    for r in rows:
        unit = str(r.get("unit") or "ms")
        change = finite(r.get("change_pct"))
        note = " (beyond the line, within noise)" if r.get("beyond_line") and r.get("status") == "pass" else ""
        body.append(
            f'<tr class="{status_class(r.get("status"))}"><td>{badge(r.get("status"))}</td>'
            f"<td>{esc(r.get('metric'))}</td><td><code>{esc(r.get('expression'))}</code>{esc(note)}</td>"
            f'<td class="num">{esc(format_value(r.get("old"), unit, missing="–"))}</td>'
            f'<td class="num">{esc(format_value(r.get("new"), unit, missing="–"))}</td>'
            f'<td class="num">{esc(f"{change:+.1f} %" if change is not None else "–")}</td>'
            f'<td class="num">{esc(format_value(r.get("limit"), unit, missing="–"))}</td>'
            f'<td class="num">{_confidence(r.get("confidence"))}</td></tr>'
        )
    table = ("<table><thead><tr><th>status</th><th>metric</th><th>line</th><th class=\"num\">baseline</th>"
             "<th class=\"num\">this run</th><th class=\"num\">change</th><th class=\"num\">limit</th>"
             f"<th class=\"num\">confidence</th></tr></thead><tbody>{''.join(body)}</tbody></table>")
    return head + warnings + table


def regression_page(doc: Mapping[str, Any]) -> str:
    """A ``compare`` document as a whole HTML page: verdict banner and the regression section."""
    verdict = str(doc.get("verdict") or "unknown")
    klass = status_class(verdict)
    new = as_dict(as_dict(doc.get("regression")).get("new"))
    title = f"Baseline comparison: {verdict.upper()}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>Baseline comparison</h1>"
        f'<div class="banner {klass}"><span class="verdict">{esc(title)}</span>'
        f"<span>exit code <b>{esc(doc.get('exit_code'))}</b></span>"
        f"<span>run <b>{esc(new.get('file'))}</b></span></div>"
        f'<section id="sec-regression"><h2>Against the baseline</h2>{regression_section(doc)}</section>'
        "</body></html>\n"
    )
