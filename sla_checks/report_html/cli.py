"""``python -m sla_checks.report_html REPORT.json [-o OUT.html]``: render a saved JSON report as HTML."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sla_checks.report_html.page import write_html_report

__all__ = ["main"]


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

