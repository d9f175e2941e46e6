"""Unit tests of the one value formatter (sla_checks.formatting) and of its use by every SLA output: the terminal
table, JUnit, the log line, the HTML report and the web-UI tab print a threshold's value the same way."""

from __future__ import annotations

import math
from typing import Any

import pytest

from sla_checks.formatting import finite, format_clock, format_count, format_ms, format_time, format_value
from sla_checks.report import render_junit, render_terminal
from sla_checks.report_html import render
from sla_checks.webui import threshold_rows
from tests.unit.test_sla_html import example_report


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (3120.4, "ms", "3,120 ms"),
        (100.0, "ms", "100 ms"),
        (99.94, "ms", "99.9 ms"),
        (12.34, "ms", "12.3 ms"),
        (1.396, "ms", "1.40 ms"),
        (-0.0, "ms", "0.00 ms"),
        (80.972, "%", "80.97 %"),
        (100, "%", "100.00 %"),
        (0.0123, "ratio", "0.0123 (1.23 %)"),
        (1, "ratio", "1.0000 (100.00 %)"),
        (1011.842, "rps", "1,011.84 rps"),
        (12.5, "rps", "12.50 rps"),
        (12000, "count", "12,000"),
        (0.0, "count", "0"),
        (0.51234, "MB", "0.5123 MB"),
        (7, "", "7"),
    ],
)
def test_format_value_one_rule_per_unit(value: Any, unit: str, shown: str) -> None:
    assert format_value(value, unit) == shown


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf, True, False, "fast", [], object()])
@pytest.mark.parametrize("unit", ["ms", "%", "ratio", "rps", "count", ""])
def test_format_value_missing_values_print_the_missing_marker(value: Any, unit: str) -> None:
    assert format_value(value, unit) == "–"
    assert format_value(value, unit, missing="no data") == "no data"


@pytest.mark.parametrize(("value", "number"), [("2.5", 2.5), (3, 3.0), (None, None), (math.nan, None), (True, None)])
def test_finite_accepts_numbers_only(value: Any, number: float | None) -> None:
    assert finite(value) == number


def test_format_ms_and_count_are_the_value_rules_of_their_units() -> None:
    for value in (0.5, 9.99, 10, 99.5, 100, 123456.7):
        assert format_ms(value) == format_value(value, "ms")
        assert format_count(value) == format_value(value, "count")
    assert format_ms(None, missing="n/a") == "n/a"


@pytest.mark.parametrize(
    ("iso", "shown", "clock"),
    [
        ("2026-01-01T16:02:00.123Z", "2026-01-01 16:02:00 UTC", "16:02:00"),
        ("2026-01-01T16:02:00+02:00", "2026-01-01 16:02:00 +0200", "16:02:00"),
        ("2026-01-01T16:02:00", "2026-01-01 16:02:00", "16:02:00"),
        ("not a time", "not a time", ""),
        (None, "–", ""),
    ],
)
def test_format_time_and_clock(iso: Any, shown: str, clock: str) -> None:
    assert format_time(iso) == shown
    assert format_clock(iso) == clock


@pytest.mark.parametrize(
    ("value", "unit"),
    [(3120.4, "ms"), (1.396, "ms"), (80.972, "%"), (0.0123, "ratio"), (11.842, "rps"), (12000, "count")],
)
def test_every_output_prints_a_threshold_value_alike(value: float, unit: str) -> None:
    report = example_report()
    report["thresholds"][0].update(value=value, unit=unit, status="fail", samples=12345)
    shown = format_value(value, unit)
    assert threshold_rows(report)[1]["value"] == shown  # the failing row comes first in the web-UI tab
    assert f'<td class="num">{shown}</td>' in render(report)
    report.update(duration_s=60.0, samples=12345, windows_judged=False, workers_lost=0, aborted=None,
                  config_file="x.toml", exit_code=3, started_at="2026-01-01T16:00:00Z")
    report.setdefault("attribution", [])
    terminal = render_terminal(report)
    assert f"  {shown}  " in terminal and "12,345" in terminal
    junit = render_junit(report)
    assert f"value: {shown}; samples: 12,345" in junit
