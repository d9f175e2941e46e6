"""Unit tests of the HTML SLA report (sla_checks.report_html): structure, escaping, tolerance of missing fields.

``example_report()`` builds a realistic failing report (PG lock in windows 2-3) in the JSON schema; the e2e
Chromium test reuses it. When the SLA core's committed example (tests/fixtures/sla_report_example.json) exists,
the tests run on it too.
"""

from __future__ import annotations

import copy
import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sla_checks.attribution import tier_of
from sla_checks.report_html import main, render, write_html_report

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sla_report_example.json"
FAULTED_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sla_report_faulted.json"
"""A real run's report: ``--scenario smoke --scenario-duration 20 --inject-faults`` against the reference backend
(agent-slow 2500 ms from 3.3 s to 16.7 s), its ``histograms`` left out; re-record it with
``tests/e2e/test_sla_report_screenshots.py`` (it writes artifacts/sla-report-faulted.json)."""
STAGES = (
    "agent_started→agent_thinking",
    "agent_thinking→tool_executing",
    "tool_executing→tool_completed",
    "tool_completed→agent_completed",
)


def _window_stats(p95: float, count: int = 120, failures: int = 0) -> dict[str, float]:
    return {
        "count": count,
        "failures": failures,
        "p50": p95 * 0.55,
        "p95": p95,
        "p99": p95 * 1.2,
        "max": p95 * 1.5,
    }


def example_report(windows: int = 6, lock_windows: tuple[int, ...] = (2, 3)) -> dict[str, Any]:
    """A failing report: a PG lock in ``lock_windows`` drags WS agent_completed p95 over 2000 ms."""
    start = datetime(2026, 11, 26, 16, 0, 0, tzinfo=UTC)
    win: list[dict[str, Any]] = []
    for i in range(windows):
        locked = i in lock_windows
        ws_p95 = 3120.0 - i * 7 if locked else 1200.0 + 35 * i
        metrics = {
            "WS agent_completed": _window_stats(ws_p95, failures=3 if locked else 0),
            "PG thread history": _window_stats(2900.0 if locked else 14.0 + i, count=60),
            "PG message insert": _window_stats(180.0 if locked else 6.0, count=60),
            "REDIS GET": _window_stats(0.9 + 0.1 * i, count=300),
            "CH agent stage summary": _window_stats(42.0, count=20),
            "HTTP ready:postgres": _window_stats(2500.0 if locked else 20.0, count=10),
        }
        failed = ["WS agent_completed p(95) < 2000", "PG * p(95) < 200"] if locked else []
        win.append(
            {
                "index": i,
                "start": (start + timedelta(seconds=60 * i)).isoformat(),
                "end": (start + timedelta(seconds=60 * (i + 1))).isoformat(),
                "metrics": metrics,
                "failed": failed,
            }
        )
    cpu = [[start.timestamp() + 2 * k, 20.0 + (k % 15) * 3.5] for k in range(30 * windows)]
    return {
        "schema": "ws-agent-loadtest/sla-report/1",
        "verdict": "fail",
        "exit_code": 3,
        "profile": "ci",
        "config_file": "config/ci.toml",
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(seconds=60 * windows)).isoformat(),
        "duration_s": 60.0 * windows,
        "workers": 2,
        "workers_lost": 1,
        "aborted": None,
        "thresholds": [
            {
                "metric": "WS agent_completed",
                "expression": "p(95) < 2000",
                "description": "95 % of agent replies complete within 2 s",
                "status": "fail",
                "value": 3120.0,
                "unit": "ms",
                "samples": 120 * windows,
                "abort_on_fail": False,
                "required": True,
                "failed_windows": list(lock_windows),
            },
            {
                "metric": "WS agent_completed",
                "expression": "within(2000) >= 95%",
                "description": "share of replies within 2 s",
                "status": "fail",
                "value": 88.4,
                "unit": "%",
                "samples": 120 * windows,
                "abort_on_fail": False,
                "required": False,
                "failed_windows": list(lock_windows),
            },
            {
                "metric": "PG *",
                "expression": "p(95) < 200",
                "description": "database queries under 200 ms",
                "status": "fail",
                "value": 2900.0,
                "unit": "ms",
                "samples": 120 * windows,
                "abort_on_fail": False,
                "required": False,
                "failed_windows": list(lock_windows),
            },
            {
                "metric": "REDIS *",
                "expression": "p(95) < 50",
                "description": "Redis operations under 50 ms",
                "status": "pass",
                "value": 1.4,
                "unit": "ms",
                "samples": 300 * windows,
                "abort_on_fail": True,
                "required": False,
                "failed_windows": [],
            },
            {
                "metric": "WS agent_completed",
                "expression": "rps >= 10",
                "description": "chat throughput",
                "status": "pass",
                "value": 12.5,
                "unit": "rps",
                "samples": 120 * windows,
                "abort_on_fail": False,
                "required": False,
                "failed_windows": [],
            },
            {
                "metric": "HTTP /health*",
                "expression": "p(99) < 1000",
                "description": "health checks answer within 1 s",
                "status": "no data",
                "value": None,
                "unit": "ms",
                "samples": 0,
                "abort_on_fail": False,
                "required": False,
                "failed_windows": [],
            },
        ],
        "metrics": {
            "WS agent_completed": {
                "request_type": "WS",
                "name": "agent_completed",
                "count": 120 * windows,
                "failures": 6,
                "p50": 900.0,
                "p90": 2700.0,
                "p95": 3120.0,
                "p99": 3400.0,
                "max": 4100.0,
                "avg": 1300.0,
                "rps": 12.5,
            },
            "PG thread history": {
                "request_type": "PG",
                "name": "thread history",
                "count": 60 * windows,
                "failures": 0,
                "p50": 15.0,
                "p90": 2500.0,
                "p95": 2900.0,
                "p99": 3000.0,
                "max": 3100.0,
                "avg": 600.0,
                "rps": 1.0,
            },
            "REDIS GET": {
                "request_type": "REDIS",
                "name": "GET",
                "count": 300 * windows,
                "failures": 0,
                "p50": 0.6,
                "p90": 1.1,
                "p95": 1.4,
                "p99": 2.0,
                "max": 9.0,
                "avg": 0.7,
                "rps": 5.0,
            },
        },
        "windows": win,
        "stages": {
            STAGES[3]: {"count": 700, "p50": 30.0, "p95": 80.0, "p99": 120.0, "max": 200.0},
            STAGES[0]: {"count": 700, "p50": 600.0, "p95": 2700.0, "p99": 2900.0, "max": 3000.0},
            STAGES[1]: {"count": 700, "p50": 100.0, "p95": 180.0, "p99": 240.0, "max": 400.0},
            STAGES[2]: {"count": 700, "p50": 150.0, "p95": 260.0, "p99": 300.0, "max": 500.0},
        },
        "attribution": [
            {
                "metric": "WS agent_completed",
                "expression": "p(95) < 2000",
                "summary": 'WS agent_completed p(95) 3120 ms > 2000 ms — coincides with PG "thread history" p95 '
                "2900 ms (threshold 200); Redis, ClickHouse within SLA; slowest stage: agent_started→agent_thinking",
                "tiers": [
                    {
                        "tier": "postgres",
                        "metric": "PG thread history",
                        "p95": 2900.0,
                        "baseline_p95": 15.0,
                        "threshold": "p(95) < 200",
                        "within_sla": False,
                        "score": 0.93,
                    },
                    {
                        "tier": "redis",
                        "metric": "REDIS GET",
                        "p95": 1.4,
                        "baseline_p95": 1.1,
                        "threshold": "p(95) < 50",
                        "within_sla": True,
                        "score": 0.01,
                    },
                    {
                        "tier": "clickhouse",
                        "metric": "CH agent stage summary",
                        "p95": 42.0,
                        "baseline_p95": None,
                        "threshold": None,
                        "within_sla": True,
                        "score": 0.0,
                    },
                ],
                "slowest_stage": STAGES[0],
            }
        ],
        "gauges": {
            "locust:cpu_percent": cpu,
            "redis:used_memory_mb": [[ts, 3.0 + k * 0.01] for k, (ts, _) in enumerate(cpu)],
        },
    }


class _Collector(HTMLParser):
    """Collects tags, attributes and text; fails on nothing (HTMLParser is lenient) but lets tests count."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@dataclass
class SeriesData:
    t: list[float | None]
    values: list[float | None]
    index: int | None


@dataclass
class Chart:
    """What one SVG chart of the page holds, read from its ``data-*`` attributes."""

    kind: str
    x0: float | None = None
    x1: float | None = None
    series: dict[str, SeriesData] = field(default_factory=dict)
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    limits: list[float] = field(default_factory=list)
    grid: list[float] = field(default_factory=list)
    bars: list[tuple[str, str, float]] = field(default_factory=list)
    bins: list[tuple[float, float, int]] = field(default_factory=list)
    markers: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def _numbers(text: str | None) -> list[float | None]:
    return [None if item == "-" else float(item) for item in (text or "").split()]


class _ChartReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.charts: dict[str, Chart] = {}
        self.current: Chart | None = None
        self.in_text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "svg" and "chart-svg" in classes:
            self.current = self.charts[a["id"]] = Chart(
                a.get("data-kind", ""),
                float(a["data-x0"]) if "data-x0" in a else None,
                float(a["data-x1"]) if "data-x1" in a else None,
            )
            return
        chart = self.current
        if chart is None:
            return
        if tag == "g" and "series" in classes:
            index = a.get("data-index")
            chart.series[a["data-series"]] = SeriesData(
                _numbers(a.get("data-t")), _numbers(a.get("data-values")), int(index) if index else None
            )
        elif tag == "rect" and "span" in classes:
            chart.spans.append((classes[1], float(a["data-start"]), float(a["data-end"])))
        elif tag == "line" and "limit" in classes:
            chart.limits.append(float(a["data-value"]))
        elif tag == "line" and "marker" in classes:
            chart.markers.append(float(a["data-value"]))
        elif tag == "line" and "wgrid" in classes:
            chart.grid.append(float(a["data-t"]))
        elif tag == "rect" and "bar" in classes:
            chart.bars.append((a["data-row"], a["data-bar"], float(a["data-value"])))
        elif tag == "rect" and "bin" in classes:
            chart.bins.append((float(a["data-lo"]), float(a["data-hi"]), int(a["data-count"])))
        self.in_text = tag == "text"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.in_text = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.current = None
        self.in_text = False

    def handle_data(self, data: str) -> None:
        if self.current is not None and self.in_text:
            self.current.texts.append(data)


def _charts(page: str) -> dict[str, Chart]:
    reader = _ChartReader()
    reader.feed(page)
    reader.close()
    return reader.charts


def _parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def _reports() -> list[Any]:
    params = [pytest.param(example_report(), id="synthetic")]
    if FIXTURE.exists():
        params.append(pytest.param(json.loads(FIXTURE.read_text(encoding="utf-8")), id="core-fixture"))
    if FAULTED_FIXTURE.exists():
        params.append(pytest.param(json.loads(FAULTED_FIXTURE.read_text(encoding="utf-8")), id="real-faulted-run"))
    return params


def _points_in(page: str, chart_id: str) -> int:
    match = re.search(rf'<svg id="{chart_id}".*?</svg>', page, re.S)
    assert match, f"chart {chart_id} missing"
    return len(re.findall(r'class="(?:bar )?pt"', match.group(0)))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("report", _reports())
def test_render_example_is_self_contained(report: dict[str, Any]) -> None:
    page = render(report)
    parsed = _parse(page)
    tags = [tag for tag, _ in parsed.tags]
    assert page.startswith("<!DOCTYPE html>")
    assert "script" not in tags
    for tag, attrs in parsed.tags:
        assert not attrs.get("src"), f"<{tag} src=...> would fetch a resource: the report must open offline"
        href = attrs.get("href") or ""
        if href:  # links only: in-page anchors and the sibling Locust report, never a fetched resource
            assert tag == "a" and "://" not in href and not href.startswith("//"), f"<{tag} href={href!r}>"
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert "Content-Security-Policy" in page


@pytest.mark.timeout(30)
def test_render_failing_report_shows_verdict_thresholds_and_attribution() -> None:
    report = example_report()
    page = render(report)
    text = re.sub(r"\s+", " ", "".join(_parse(page).text))
    assert 'class="banner fail"' in page
    assert "SLA FAILED" in text
    assert "exit code 3" in text
    for item in report["thresholds"]:
        assert item["description"] in text
    assert "3,120 ms" in text  # value of the failing threshold, formatted in its unit
    assert "88.40 %" in text and "12.50 rps" in text
    assert text.count("no data") >= 1
    assert 'coincides with PG "thread history" p95 2900 ms' in text
    assert "Slowest stage: agent_started→agent_thinking" in text
    assert "1 worker lost" in text


@pytest.mark.timeout(30)
@pytest.mark.parametrize("windows", [1, 6])
def test_render_windows_chart_has_one_point_per_window_and_series(windows: int) -> None:
    report = example_report(windows=windows, lock_windows=(0,) if windows == 1 else (2, 3))
    page = render(report)
    # WS agent_completed + redis, postgres, clickhouse tier lines
    assert _points_in(page, "chart-windows") == 4 * windows
    chart = re.search(r'<svg id="chart-windows".*?</svg>', page, re.S).group(0)
    for label in (
        "WS agent_completed p95",
        "postgres (worst p95",
        "redis (worst p95",
        "clickhouse (worst p95",
    ):
        assert f'data-series="{label}' in chart
    assert chart.count('class="span fail"') == (1 if windows == 1 else 2)
    assert 'class="limit"' in chart  # the p(95) < 2000 line


@pytest.mark.timeout(30)
def test_render_tier_line_is_worst_p95_of_the_tier() -> None:
    page = render(example_report())
    # window 2 is locked: postgres worst p95 = PG thread history 2900 ms, not HTTP ready:postgres 2500 ms
    assert 'title="PG thread history">2,900 ms</td>' in page
    charts = _charts(page)
    postgres = charts["chart-windows"].series["postgres (worst p95 of its metrics)"]
    assert postgres.values[2] == 2900.0


@pytest.mark.timeout(30)
def test_render_stages_in_pipeline_order_with_slowest_marked() -> None:
    page = render(example_report())
    assert _points_in(page, "chart-stages") == 2 * len(STAGES)  # p50 and p95 bars
    table = re.search(r'<table id="stages">.*?</table>', page, re.S).group(0)
    positions = [table.index(stage) for stage in STAGES]
    assert positions == sorted(positions)
    assert "agent_started→agent_thinking</code> <b>(slowest p95)</b>" in table


@pytest.mark.timeout(30)
def test_render_gauges_chart_cpu_first_with_points() -> None:
    report = example_report()
    page = render(report)
    (values,) = [s.values for s in _charts(page)["chart-gauge-0"].series.values()]
    assert values == [v for _, v in report["gauges"]["locust:cpu_percent"]]
    assert page.index("locust:cpu_percent") < page.index("redis:used_memory_mb")


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&"\''


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "path",
    [
        ("thresholds", 0, "description"),
        ("thresholds", 0, "metric"),
        ("thresholds", 0, "expression"),
        ("thresholds", 0, "status"),
        ("attribution", 0, "summary"),
        ("attribution", 0, "slowest_stage"),
        ("profile",),
        ("config_file",),
        ("verdict",),
    ],
)
def test_render_escapes_config_strings(path: tuple[Any, ...]) -> None:
    report = example_report()
    node: Any = report
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = HOSTILE
    page = render(report)
    parsed = _parse(page)
    assert "<script>" not in page
    assert not any(tag in ("script", "img") for tag, _ in parsed.tags)
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert HOSTILE in "".join(parsed.text)  # shown verbatim as text


@pytest.mark.timeout(30)
def test_render_escapes_metric_names_in_windows_stages_and_gauges() -> None:
    report = example_report()
    for window in report["windows"]:
        window["metrics"]['PG <b onmouseover="x">'] = _window_stats(5000.0)  # worst PG p95: the tier cell
        window["failed"] = [HOSTILE]
    report["stages"][HOSTILE] = {"count": 1, "p50": 1.0, "p95": 2.0}
    report["gauges"][HOSTILE] = [[1.0, 2.0]]
    report["metrics"][HOSTILE] = {"count": 1, "p95": 3.0}
    page = render(report)
    parsed = _parse(page)
    assert not any(tag in ("script", "img") for tag, _ in parsed.tags)
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    text = "".join(parsed.text)
    assert HOSTILE in text
    # the odd PG metric only shows as the tier cell's tooltip: an attribute value, verbatim
    assert any(v == 'PG <b onmouseover="x">' for _, attrs in parsed.tags for v in attrs.values())


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "report",
    [
        pytest.param({}, id="empty-dict"),
        pytest.param({"verdict": "pass", "exit_code": 0}, id="verdict-only"),
        pytest.param(
            {
                "verdict": "pass",
                "thresholds": [{}],
                "windows": [{}],
                "stages": {"x": {}},
                "metrics": {"WS a": {}},
                "attribution": [{}],
                "gauges": {"g": []},
            },
            id="empty-entries",
        ),
        pytest.param(
            {
                "verdict": "fail",
                "thresholds": None,
                "windows": None,
                "stages": None,
                "metrics": None,
                "attribution": None,
                "gauges": None,
                "aborted": None,
                "workers_lost": None,
            },
            id="nulls",
        ),
        pytest.param(
            {
                "verdict": "pass",
                "thresholds": "bogus",
                "windows": [1, "x", None],
                "metrics": [],
                "gauges": {"g": [[1], ["a", "b"], None, [float("nan"), 1.0]]},
                "duration_s": "n/a",
            },
            id="wrong-types",
        ),
    ],
)
def test_render_tolerates_missing_and_malformed_fields(report: dict[str, Any]) -> None:
    page = render(report)
    assert page.rstrip().endswith("</html>")
    for chart_id, chart in _charts(page).items():  # no empty charts drawn
        assert chart.series or chart.bars or chart.bins, chart_id


@pytest.mark.timeout(30)
def test_render_chat_only_run_without_tier_metrics_charts_ws_only() -> None:
    report = example_report()
    for window in report["windows"]:
        window["metrics"] = {"WS agent_completed": window["metrics"]["WS agent_completed"]}
    report["attribution"] = []
    report["gauges"] = {}
    page = render(report)
    assert _points_in(page, "chart-windows") == len(report["windows"])
    assert "worst p95" not in re.search(r'<svg id="chart-windows".*?</svg>', page, re.S).group(0)
    assert "No attribution" in page
    assert "No gauges recorded" in page


@pytest.mark.timeout(30)
def test_render_passing_report_has_pass_banner_and_abort_note() -> None:
    report = example_report(lock_windows=())
    report.update(verdict="pass", exit_code=0, workers_lost=0)
    report["aborted"] = {"threshold": "REDIS * p(95) < 50", "reason": "was 80 ms after 30 s"}
    page = render(report)
    assert 'class="banner pass"' in page and "SLA PASSED" in page
    assert "Run aborted early" in page and "was 80 ms after 30 s" in page
    assert "worker lost" not in page and 'class="span fail"' not in page


@pytest.mark.timeout(30)
def test_render_does_not_mutate_its_input() -> None:
    report = example_report()
    before = copy.deepcopy(report)
    render(report)
    assert report == before


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("metric", "tier"),
    [
        ("REDIS GET", "redis"),
        ("PG thread history", "postgres"),
        ("CH insert", "clickhouse"),
        ("HTTP ready:postgres", "postgres"),
        ("HTTP ready:redis", "redis"),
        ("HTTP /health", None),
        ("WS agent_completed", None),
        ("FLOW login→send→receive", None),
    ],
)
def test_tier_of_maps_request_types_to_tiers(metric: str, tier: str | None) -> None:
    assert tier_of(metric) == tier


@pytest.mark.timeout(30)
def test_write_html_report_and_cli_write_same_page(tmp_path: Path) -> None:
    report = example_report()
    direct = write_html_report(report, tmp_path / "sub" / "direct.html")
    source = tmp_path / "report.json"
    source.write_text(json.dumps(report), encoding="utf-8")
    assert main([str(source), "-o", str(tmp_path / "cli.html")]) == 0
    assert direct.read_text(encoding="utf-8") == (tmp_path / "cli.html").read_text(encoding="utf-8")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["direct.html"]  # no temp file left


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("content", "needle"), [(None, "cannot read"), ("{bad", "is not JSON"), ("[1]", "a JSON list")]
)
def test_cli_bad_input_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, needle: str
) -> None:
    source = tmp_path / "in.json"
    if content is not None:
        source.write_text(content, encoding="utf-8")
    assert main([str(source)]) == 2
    err = capsys.readouterr().err
    assert needle in err and str(source) in err


@pytest.mark.timeout(30)
def test_render_core_schema_extras_live_state_reasons_and_stage_drift() -> None:
    report = example_report()
    report["state"] = "running"
    report["verdict_reasons"] = ["SLA FAILED: WS agent_completed p(95) < 2000 was 3120 ms"]
    report["windows_judged"] = False
    report["window_s"] = 60.0
    report["thresholds"][2].update(
        metric="PG thread history", pattern="PG *", source='ci.toml: thresholds."PG *"[0]'
    )
    entry = report["attribution"][0]
    entry["tiers"][0].update(correlation=0.996, rise_ms=2885.0)
    entry["stages"] = [{"stage": STAGES[0], "p95": 2700.0, "baseline_p95": 600.0, "growth_ms": 2100.0}]
    entry.update(bad_p95=3120.0, baseline_p95=1250.0)
    for i, window in enumerate(report["windows"]):
        window["stages"] = {stage: {"p95": 100.0 + 50 * i} for stage in STAGES}
    page = render(report)
    text = re.sub(r"\s+", " ", "".join(_parse(page).text))
    assert "Live snapshot taken while the run was still going" in text
    assert "SLA FAILED: WS agent_completed p(95) < 2000 was 3120 ms" in text
    assert "6 × 60 s, drift only" in text and "not judged per window" in text
    assert "from PG *" in text and 'title="ci.toml: thresholds.&quot;PG *&quot;[0]"' in page
    assert "+1.00" in text and "2,885 ms" in text and "2,100 ms" in text
    assert "3,120 ms in the bad windows against 1,250 ms" in text
    assert _points_in(page, "chart-stage-windows") == len(STAGES) * len(report["windows"])


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("readings", "warned"), [([20, 95, 97, 30], True), ([400, 2, 1, 1], False), ([10, 20], False)]
)
def test_render_warns_only_on_sustained_generator_cpu(readings: list[float], warned: bool) -> None:
    report = example_report()
    report["gauges"] = {"locust:cpu_percent": [[1000.0 + 2 * k, v] for k, v in enumerate(readings)]}
    assert ('id="cpu-warning"' in render(report)) is warned


# --- every chart's data against the JSON report -----------------------------------------------------------------
def _json_reports() -> list[Any]:
    return [
        pytest.param(json.loads(path.read_text(encoding="utf-8")), id=name)
        for name, path in (("core-fixture", FIXTURE), ("real-faulted-run", FAULTED_FIXTURE))
    ]


def _same(a: list[float | None], b: list[Any]) -> bool:
    """Equal as the charts print them (6 significant digits)."""
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and x == pytest.approx(y, rel=1e-5, abs=1e-9))
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.timeout(30)
@pytest.mark.parametrize("report", _json_reports())
def test_load_and_latency_charts_hold_the_timeline(report: dict[str, Any]) -> None:
    charts = _charts(render(report))
    timeline = report["timeline"]
    load = charts["chart-load"]
    assert _same(load.series["requests/s"].t, timeline["t"])
    assert _same(load.series["requests/s"].values, timeline["requests_per_s"])
    assert _same(load.series["failures/s"].values, timeline["failures_per_s"])
    assert _same(load.series["users"].values, timeline["users"])
    latency = charts["chart-latency"]
    for q in ("p50", "p95", "p99"):
        assert _same(latency.series[q].values, timeline["latency"][q])
        assert _same(latency.series[q].t, timeline["t"])
    assert sorted(latency.limits) == sorted({lim["ms"] for lim in report["distribution"]["limits"]})
    assert load.x0 <= 0 and load.x1 == pytest.approx(report["duration_s"])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("report", _json_reports())
def test_distribution_chart_holds_the_bins_and_the_limits(report: dict[str, Any]) -> None:
    chart = _charts(render(report))["chart-distribution"]
    dist = report["distribution"]
    edges, counts = dist["edges_ms"], dist["counts"]
    expected = [(edges[i], edges[i + 1], n) for i, n in enumerate(counts) if n > 0]
    assert chart.bins == expected
    assert sum(n for *_, n in chart.bins) == dist["count"]
    assert sorted(chart.limits) == sorted({lim["ms"] for lim in dist["limits"]})
    assert chart.markers == pytest.approx([dist["percentiles"][q] for q in ("p50", "p95", "p99")])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("report", _json_reports())
def test_every_threshold_with_samples_is_charted_over_time_or_listed_as_steady(report: dict[str, Any]) -> None:
    page = render(report)
    charts = _charts(page)
    charted: dict[int, SeriesData] = {}
    limits: dict[int, list[float]] = {}
    for chart_id, chart in charts.items():
        if chart_id.startswith("chart-line-"):
            for series in chart.series.values():
                assert series.index is not None
                charted[series.index] = series
                limits[series.index] = chart.limits
    steady = re.search(r'<table id=steady-thresholds>.*?</table>', page, re.S)
    listed = {int(i) for group in re.findall(r'data-threshold="([\d ]+)"', steady.group(0) if steady else "")
              for i in group.split()}
    for i, (row, series) in enumerate(zip(report["thresholds"], report["timeline"]["thresholds"], strict=True)):
        assert (series["metric"], series["expression"]) == (row["metric"], row["expression"])
        values = series["values"]
        if all(v is None for v in values):
            assert i not in charted and i not in listed
        elif i in charted:
            assert _same(charted[i].values, values), row
            assert _same(charted[i].t, report["timeline"]["t"])
            assert limits[i] == [row["limit"]]
        else:
            assert i in listed, f"threshold {i} {row['metric']} {row['expression']} neither charted nor listed"
            assert len({v for v in values if v is not None}) == 1 and row["status"] != "fail"
    failing = [i for i, row in enumerate(report["thresholds"]) if row["status"] == "fail"]
    assert failing and all(i in charted for i in failing)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("report", _json_reports())
def test_faults_are_shaded_on_every_time_chart(report: dict[str, Any]) -> None:
    assert report["faults"], "the fixture records its injected fault"
    charts = _charts(render(report))
    time_charts = {k: c for k, c in charts.items() if c.kind == "time"}
    assert {"chart-load", "chart-latency", "chart-windows", "chart-gauge-0"} <= set(time_charts)
    expected = sorted((f["start_s"], f["end_s"]) for f in report["faults"])
    for chart_id, chart in time_charts.items():
        shaded = sorted((a, b) for kind, a, b in chart.spans if kind == "fault")
        assert shaded == expected, chart_id
    fail_spans = sorted((a, b) for kind, a, b in charts["chart-windows"].spans if kind == "fail")
    t0 = report["timeline"]["t0"]
    failed_windows = [w for w in report["windows"] if w["failed"]]
    assert len(fail_spans) == len(failed_windows)
    for (a, b), w in zip(fail_spans, failed_windows, strict=True):
        assert a == pytest.approx(max(w["start_ts"] - t0, charts["chart-windows"].x0), abs=1e-3)
        assert b == pytest.approx(min(w["end_ts"] - t0, report["duration_s"]), abs=1e-3)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("report", _json_reports())
def test_window_grid_and_points_lie_within_the_run(report: dict[str, Any]) -> None:
    chart = _charts(render(report))["chart-windows"]
    t0, end = report["timeline"]["t0"], report["duration_s"]
    assert chart.x0 <= 0 and chart.x1 == pytest.approx(end)
    for series in chart.series.values():
        assert all(chart.x0 <= t <= end for t in series.t if t is not None)
    if report["windows_judged"]:
        boundaries = [w["start_ts"] - t0 for w in report["windows"][1:]]
        assert chart.grid == pytest.approx([b for b in boundaries if 0 < b < end])
    else:
        assert chart.grid == []  # display windows are points, not a grid


@pytest.mark.timeout(30)
@pytest.mark.parametrize("report", _json_reports())
def test_gauges_on_a_time_axis_backend_first_by_relevance(report: dict[str, Any]) -> None:
    page = render(report)
    charts = _charts(page)
    t0 = report["timeline"]["t0"]
    order = re.findall(r'data-gauge="([^"]+)"', page)
    first = [g for g in ("target:cpu_percent", "target:rss_mb", "locust:cpu_percent", "locust:rss_mb")
             if g in report["gauges"]]
    assert order[: len(first)] == first
    for i, name in enumerate(order):
        (series,) = charts[f"chart-gauge-{i}"].series.values()
        readings = sorted(report["gauges"][name])
        assert _same(series.t, [ts - t0 for ts, _ in readings])
        assert _same(series.values, [v for _, v in readings])
    flat = [n for n, s in report["gauges"].items() if n not in first and len({v for _, v in s}) == 1]
    for name in flat:
        assert name not in order and name in page  # listed with its one value, not charted
    if len(report["gauges"]) - len(flat) > 12:
        assert len(order) == 12


@pytest.mark.timeout(30)
@pytest.mark.parametrize("report", _json_reports())
def test_thresholds_table_failing_first_marked_and_attribution_once_per_metric(report: dict[str, Any]) -> None:
    page = render(report)
    table = re.search(r'<table id="thresholds">.*?</table>', page, re.S).group(0)
    indexes = [int(i) for i in re.findall(r'<tr class="[^"]*" data-index="(\d+)"', table)]
    rows = report["thresholds"]
    failing = [i for i, t in enumerate(rows) if t["status"] == "fail" or t["failed_windows"]]
    assert indexes[: len(failing)] == failing and sorted(indexes) == list(range(len(rows)))
    assert table.count('class="mark"') == len(failing)
    metrics = {a["metric"] for a in report["attribution"]}
    assert len(re.findall(r'<div class="attr" data-metric=', page)) == len(metrics) < len(report["attribution"]) + 1
    block = re.search(r'<div class="attr".*?</div>', page, re.S).group(0)
    for a in report["attribution"]:
        assert html.escape(a["expression"]) in block


@pytest.mark.timeout(30)
@pytest.mark.parametrize("report", _json_reports())
def test_log_scale_bars_have_an_axis(report: dict[str, Any]) -> None:
    chart = _charts(render(report))["chart-metrics"]
    assert {row for row, _, _ in chart.bars} == set(report["metrics"])
    for row, _, value in chart.bars:
        assert value == pytest.approx(report["metrics"][row]["p95"])
    decades = [t for t in chart.texts if re.fullmatch(r"[\d.]+k?", t)]
    assert len(decades) >= 3 and "ms (log scale)" in chart.texts


@pytest.mark.timeout(30)
def test_render_links_the_locust_report_only_when_relative() -> None:
    report = example_report()
    report["locust_report"] = "locust.html"
    assert '<a href="locust.html">' in render(report)
    for bad in ("http://evil.example/x.html", "/etc/passwd", "//host/x"):
        report["locust_report"] = bad
        assert "locust-report-link" not in render(report)


@pytest.mark.timeout(30)
def test_report_size_stays_within_twice_the_previous_renderer() -> None:
    """The previous renderer (per-point markers, no time series) gave 70,133 bytes for the core fixture and 88,032
    for the real faulted run; the charts over time may not double that."""
    for path, before in ((FIXTURE, 70_133), (FAULTED_FIXTURE, 88_032)):
        size = len(render(json.loads(path.read_text(encoding="utf-8"))).encode())
        assert size <= 2 * before, (path.name, size)
