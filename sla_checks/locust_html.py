"""The SLA summary in Locust's own HTML report (``--html``, and the web UI's ``/stats/report``).

Locust 2.47 has no hook into its HTML report: :func:`locust.html.get_html_report` renders a fixed template and
``main`` writes it to ``--html`` right before it fires ``quitting``. So the SLA plugin, at ``quitting`` (after the
verdict), rewrites that file: :func:`inject_summary` places a static block (the verdict, the thresholds, failing
first, the faults injected, a link to the SLA HTML report) right before the template's React root, and
:func:`add_summary_to_file` replaces the file atomically (temp file + rename), only when Locust wrote it during this
run (a file older than the test start is a stale one, left alone). The block carries its own inline styles and no
script; a second injection replaces the first.

Usage::

    text = inject_summary(locust_html_text, report, sla_html="sla-report.html")
    add_summary_to_file("locust.html", report, sla_html_path="sla.html", not_before=engine.started_at)
"""

from __future__ import annotations

import html
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sla_checks.formatting import format_value

__all__ = ["MARK_END", "MARK_START", "add_summary_to_file", "inject_summary", "relative_link", "summary_block"]

logger = logging.getLogger(__name__)

MARK_START = "<!-- ws-agent-loadtest SLA summary -->"
MARK_END = "<!-- /ws-agent-loadtest SLA summary -->"
_ROOT = '<div id="root"></div>'
_COLORS = {"pass": "#2b8a3e", "fail": "#c92a2a", "inconclusive": "#e67700"}
_TITLES = {"pass": "SLA PASSED", "fail": "SLA FAILED", "inconclusive": "SLA INCONCLUSIVE"}


def _esc(value: Any) -> str:
    return "" if value is None else html.escape(str(value), quote=True)


def relative_link(target: str | os.PathLike[str], from_file: str | os.PathLike[str]) -> str:
    """``target`` as a link relative to the directory of ``from_file`` (forward slashes)."""
    rel = os.path.relpath(os.path.abspath(target), os.path.dirname(os.path.abspath(from_file)))
    return rel.replace(os.sep, "/")


def _failing(item: Mapping[str, Any]) -> bool:
    return item.get("status") == "fail" or bool(item.get("failed_windows"))


def summary_block(report: Mapping[str, Any], sla_html: str | None = None) -> str:
    """The static SLA block: verdict, the failing thresholds (the others folded in a ``<details>``), faults, a link
    to the SLA report (``sla_html``, relative to the page)."""
    verdict = str(report.get("verdict") or "unknown")
    color = _COLORS.get(verdict, "#868e96")
    thresholds = [t for t in report.get("thresholds") or [] if isinstance(t, Mapping)]
    thresholds.sort(key=lambda t: not _failing(t))
    failing = sum(1 for t in thresholds if _failing(t))
    cell = "padding:3px 8px;border-bottom:1px solid #dee2e6;text-align:left"
    def rows(items: list[Mapping[str, Any]]) -> str:
        return "".join(
            f'<tr style="background:{"#fff5f5" if _failing(t) else "transparent"}">'
            f'<td style="{cell};color:{_COLORS.get(str(t.get("status")), "#868e96")};font-weight:600">'
            f'{"✘ " if _failing(t) else ""}{_esc(t.get("status"))}</td>'
            f'<td style="{cell}"><code>{_esc(t.get("metric"))}</code></td>'
            f'<td style="{cell}"><code>{_esc(t.get("expression"))}</code></td>'
            f'<td style="{cell};text-align:right">{_esc(format_value(t.get("value"), t.get("unit")))}</td>'
            f'<td style="{cell}">{_esc(", ".join(f"W{w}" for w in t.get("failed_windows") or []))}</td></tr>'
            for t in items
        )

    head = (
        f'<thead><tr><th style="{cell}">Status</th><th style="{cell}">Metric</th><th style="{cell}">Threshold</th>'
        f'<th style="{cell};text-align:right">Value</th><th style="{cell}">Failed windows</th></tr></thead>'
    )
    table = '<table style="border-collapse:collapse;width:100%;font-size:13px;margin:6px 0">'
    bad = [t for t in thresholds if _failing(t)]
    good = [t for t in thresholds if not _failing(t)]
    tables = f"{table}{head}<tbody>{rows(bad)}</tbody></table>" if bad else ""
    if good:
        tables += (
            f'<details style="margin:4px 0"><summary style="cursor:pointer">{len(good)} other thresholds (held or '
            f"no data)</summary>{table}{head}<tbody>{rows(good)}</tbody></table></details>"
        )
    faults = [f for f in report.get("faults") or [] if isinstance(f, Mapping)]
    fault_text = ""
    if faults:
        items = "; ".join(
            f"<code>{_esc(f.get('kind'))}</code> {_esc(f.get('detail') or '')} "
            f"{_esc(f.get('start_s'))}–{_esc(f.get('end_s'))} s" + (" (not applied)" if f.get("error") else "")
            for f in faults
        )
        fault_text = f'<p style="margin:6px 0">Faults injected: {items}</p>'
    link = ""
    if sla_html:
        link = (
            f' · <a href="{_esc(sla_html)}" style="color:#fff;text-decoration:underline">SLA report with charts '
            f"and attribution</a>"
        )
    reasons = "".join(f"<li><code>{_esc(r)}</code></li>" for r in report.get("verdict_reasons") or [])
    return (
        f'{MARK_START}<section id="sla-summary" style="font:14px/1.4 system-ui,sans-serif;color:#212529;'
        'background:#fff;max-width:1200px;margin:12px auto;padding:0 16px">'
        f'<div style="background:{color};color:#fff;border-radius:8px;padding:10px 16px">'
        f'<b style="font-size:20px">{_esc(_TITLES.get(verdict, "SLA " + verdict.upper()))}</b> · exit code {_esc(report.get("exit_code"))} · '
        f'profile {_esc(report.get("profile"))} · {failing} of {len(thresholds)} thresholds failing{link}</div>'
        + (f'<ul style="margin:6px 0">{reasons}</ul>' if reasons else "")
        + fault_text
        + f"{tables}</section>{MARK_END}"
    )


def inject_summary(page: str, report: Mapping[str, Any], sla_html: str | None = None) -> str | None:
    """``page`` (Locust's HTML report) with the SLA block before its React root (replacing an earlier one); None
    when the page is not Locust's report (no root element, no ``</body>``)."""
    start = page.find(MARK_START)
    if start >= 0:
        end = page.find(MARK_END, start)
        if end >= 0:
            page = page[:start] + page[end + len(MARK_END):]
    block = summary_block(report, sla_html)
    at = page.rfind(_ROOT)
    if at < 0:
        match = list(re.finditer(r"</body\s*>", page, re.I))
        if not match:
            return None
        at = match[-1].start()
    return page[:at] + block + page[at:]


def add_summary_to_file(
    path: str | os.PathLike[str],
    report: Mapping[str, Any],
    *,
    sla_html_path: str | None = None,
    not_before: float | None = None,
) -> bool:
    """Add the SLA block to Locust's HTML report at ``path`` (atomically); False (logged) when there is no such file,
    it is older than ``not_before`` (unix time: a stale report of an earlier run), or it is not Locust's report."""
    target = Path(path)
    try:
        if not target.is_file():
            logger.info("SLA: Locust's HTML report %s was not written (a stopped run); no SLA summary added", target)
            return False
        if not_before is not None and target.stat().st_mtime < not_before - 1.0:
            logger.warning("SLA: %s is older than this run; its SLA summary is left as it was", target)
            return False
        page = target.read_text(encoding="utf-8")
    except OSError as e:
        logger.warning("SLA: cannot read Locust's HTML report %s: %s", target, e)
        return False
    link = relative_link(sla_html_path, target) if sla_html_path else None
    text = inject_summary(page, report, link)
    if text is None:
        logger.warning("SLA: %s does not look like Locust's HTML report; no SLA summary added", target)
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, target.stat().st_mode & 0o777)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
