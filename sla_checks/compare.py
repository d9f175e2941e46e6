"""``python -m sla_checks compare OLD.json NEW.json``: judge a finished run's JSON report against an earlier one.

The same gate as ``--sla-baseline`` (:mod:`sla_checks.baseline`), after the fact: the regression lines of
``--sla-profile NAME`` / ``--sla-config FILE`` when given, else the default lines drawn from the thresholds NEW.json
was judged with. Prints the comparison, writes it as JSON (``--json``) and as a self-contained HTML page
(``--html``), and exits 0 when every line holds, 3 (``--exit-code``) when one fails, 2 on a usage error (a file that
is missing, unreadable or not a finished SLA report: one line on stderr).

    python -m sla_checks compare artifacts/last-good.json artifacts/sla.json --json artifacts/compare.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from config.errors import USAGE_EXIT_CODE, UsageError
from sla_checks.baseline import (
    BaselineError,
    RegressionSpec,
    baseline_from_report,
    judge,
    load_baseline,
    regression_lines_text,
)
from sla_checks.evaluate import FAIL, PASS
from sla_checks.expressions import ExpressionError, parse_expression

__all__ = ["COMPARE_SCHEMA", "compare_reports", "main"]

COMPARE_SCHEMA = "ws-agent-loadtest/sla-compare/1"
DEFAULT_EXIT_CODE = 3


def _read_report(path: str, role: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"compare {role} {path!r}: no such file; give a JSON report (--sla-report-json)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BaselineError(f"compare {role} {path!r}: cannot be read ({e}); give a JSON report") from None
    except json.JSONDecodeError as e:
        raise BaselineError(f"compare {role} {path!r}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise BaselineError(f"compare {role} {path!r}: not an SLA JSON report")
    return data


def compare_reports(
    old_path: str, new_path: str, lines: list[RegressionSpec] | None = None, *, exit_code: int = DEFAULT_EXIT_CODE
) -> dict[str, Any]:
    """The comparison document (``COMPARE_SCHEMA``) of the report at ``new_path`` against the one at ``old_path``;
    :class:`BaselineError` when either cannot be used."""
    baseline = load_baseline(old_path)
    new_report = _read_report(new_path, "NEW")
    new = baseline_from_report(new_report, new_path)
    thresholds = []
    for row in new_report.get("thresholds") or ():
        try:
            if row.get("samples"):
                thresholds.append((str(row["metric"]), parse_expression(str(row["expression"]))))
        except (ExpressionError, KeyError, AttributeError):
            continue  # a line this version cannot read draws no default
    section = judge(baseline, lines or [], new.metrics, new.duration_s, thresholds=thresholds,
                    profile=new.profile, scenario=new.scenario)
    section["new"] = {"file": new_path, "profile": new.profile, "scenario": new.scenario,
                      "started_at": new.started_at, "verdict": new.verdict}
    verdict = FAIL if section["failed"] else PASS
    return {
        "schema": COMPARE_SCHEMA,
        "verdict": verdict,
        "exit_code": exit_code if verdict == FAIL else 0,
        "regression": section,
    }


def render_text(doc: dict[str, Any]) -> str:
    section = doc["regression"]
    lines = [f"comparing {section['new']['file']} (started {section['new'].get('started_at') or '?'}) with its "
             "baseline", *regression_lines_text(section)]
    lines.append(f"regression gate: {doc['verdict'].upper()} (exit code {doc['exit_code']})")
    return "\n".join(lines)


def _lines_from_options(args: argparse.Namespace) -> list[RegressionSpec] | None:
    if not args.sla_profile and not args.sla_config:
        return None
    from sla_checks.profiles import load_profile

    profile = load_profile(name=args.sla_profile or None, path=args.sla_config or None)
    return list(profile.regressions)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sla_checks compare",
                                description="Judge NEW.json against the baseline OLD.json (SLA JSON reports).")
    p.add_argument("old", metavar="OLD.json", help="the baseline run's JSON report")
    p.add_argument("new", metavar="NEW.json", help="the run to judge")
    p.add_argument("--sla-profile", default="", help="take the regression lines of this profile (config/NAME.toml)")
    p.add_argument("--sla-config", default="", help="take the regression lines of this TOML file")
    p.add_argument("--json", default="", help="write the comparison as JSON to this path")
    p.add_argument("--html", default="", help="write the comparison as a self-contained HTML page to this path")
    p.add_argument("--exit-code", type=int, default=DEFAULT_EXIT_CODE,
                   help="exit code when a regression line fails (default 3, 1..255)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if not 1 <= args.exit_code <= 255:
            raise UsageError(f"--exit-code {args.exit_code}: expected 1..255 (0 would let a regression pass)")
        doc = compare_reports(args.old, args.new, _lines_from_options(args), exit_code=args.exit_code)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE_EXIT_CODE
    print(render_text(doc))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.html:
        from sla_checks.report_html.regression import regression_page

        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
        Path(args.html).write_text(regression_page(doc), encoding="utf-8")
    return int(doc["exit_code"])
