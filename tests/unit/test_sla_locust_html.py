"""The SLA summary in Locust's own HTML report (sla_checks.locust_html): placed before the page's React root, never
inside the bundled script, replaced on a second pass, written atomically, stale files left alone."""

from __future__ import annotations

import os
import time
from pathlib import Path

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.html import DEFAULT_BUILD_PATH

from sla_checks.locust_html import MARK_END, MARK_START, add_summary_to_file, inject_summary, relative_link
from tests.unit.test_sla_html import HOSTILE, example_report

TEMPLATE = (Path(DEFAULT_BUILD_PATH) / "report.html").read_text(encoding="utf-8")


@pytest.mark.timeout(30)
def test_summary_goes_before_the_react_root_not_into_the_script() -> None:
    assert TEMPLATE.count("<body") >= 2  # the bundle itself holds a '<body style=...>' string
    page = inject_summary(TEMPLATE, example_report(), "sla.html")
    assert page is not None
    at, end = page.index(MARK_START), page.index(MARK_END) + len(MARK_END)
    assert end == page.rindex('<div id="root"></div>')
    assert page[:at] + page[end:] == TEMPLATE  # Locust's page otherwise untouched
    block = page[at:end]
    assert "SLA FAIL" in block and 'href="sla.html"' in block and "<script" not in block
    assert block.index("✘") < block.index(">pass<")  # failing rows first, marked


@pytest.mark.timeout(30)
def test_second_injection_replaces_the_first_and_strings_are_escaped() -> None:
    report = example_report()
    report["thresholds"][0]["metric"] = HOSTILE
    once = inject_summary(TEMPLATE, report)
    assert once is not None
    twice = inject_summary(once, report)
    assert twice == once
    assert twice.count(MARK_START) == 1 and "<script>alert" not in twice


@pytest.mark.timeout(30)
def test_not_a_locust_report_is_left_alone(tmp_path: Path) -> None:
    assert inject_summary("plain text", example_report()) is None
    other = tmp_path / "other.html"
    other.write_text("not html at all", encoding="utf-8")
    assert add_summary_to_file(other, example_report()) is False
    assert other.read_text(encoding="utf-8") == "not html at all"


@pytest.mark.timeout(30)
def test_file_rewritten_atomically_with_its_mode_and_a_relative_link(tmp_path: Path) -> None:
    page = tmp_path / "out" / "locust.html"
    page.parent.mkdir()
    page.write_text(TEMPLATE, encoding="utf-8")
    os.chmod(page, 0o640)
    sla = tmp_path / "reports" / "sla.html"
    assert add_summary_to_file(page, example_report(), sla_html_path=str(sla), not_before=time.time() - 5)
    text = page.read_text(encoding="utf-8")
    assert 'href="../reports/sla.html"' in text
    assert oct(page.stat().st_mode & 0o777) == oct(0o640)
    assert sorted(p.name for p in page.parent.iterdir()) == ["locust.html"]  # no temp file left
    assert relative_link(sla, page) == "../reports/sla.html"


@pytest.mark.timeout(30)
def test_stale_or_missing_report_is_not_touched(tmp_path: Path) -> None:
    page = tmp_path / "locust.html"
    assert add_summary_to_file(page, example_report()) is False  # a stopped run: Locust wrote nothing
    page.write_text(TEMPLATE, encoding="utf-8")
    old = time.time() - 3600
    os.utime(page, (old, old))
    assert add_summary_to_file(page, example_report(), not_before=time.time()) is False
    assert page.read_text(encoding="utf-8") == TEMPLATE
