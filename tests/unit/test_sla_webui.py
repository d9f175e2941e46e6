"""Unit tests of the SLA web-UI tab (sla_checks.webui): rows, JSON safety, registration, the Flask hooks.

Flask's test client talks to the web UI's app in-process (no socket, no browser); the browser check is in
tests/e2e/test_sla_webui.py.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from flask import request
from locust import User, constant, task
from locust.argument_parser import get_parser
from locust.env import Environment

from sla_checks.state import state_of
from sla_checks.webui import (
    ATTRIBUTION_TAB_KEY,
    SLA_TAB_KEY,
    attribution_rows,
    json_safe,
    live_snapshot,
    register_web_ui,
    threshold_rows,
    trend_text,
)
from tests.unit.test_sla_html import example_report


class _IdleUser(User):
    wait_time = constant(1)

    @task
    def idle(self) -> None:
        pass


class _FakeEngine:
    """Stands in for the SLA core's live state: ``snapshot()`` returns a report-schema dict."""

    def __init__(self, report: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.report = report if report is not None else example_report()
        self.error = error
        self.calls = 0

    def snapshot(self) -> dict[str, Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.report


def _environment(web_base_path: str | None = None, runner: str = "local") -> Environment:
    options = get_parser().parse_args(["--web-base-path", web_base_path] if web_base_path else [])
    env = Environment(user_classes=[_IdleUser], parsed_options=options)
    if runner == "local":
        env.create_local_runner()
    env.create_web_ui("127.0.0.1", 0, web_base_path=web_base_path, delayed_start=True)
    return env


@pytest.fixture(autouse=True)
def _locust_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locust's update_template_args re-parses sys.argv (for extra UI options): give it a locust command line."""
    monkeypatch.setattr("sys.argv", ["locust"])


@pytest.fixture
def env() -> Iterator[Environment]:
    environment = _environment()
    yield environment
    if environment.runner is not None:
        environment.runner.quit()


def _extended(response: Any) -> dict[str, list[dict[str, str]]]:
    body = json.loads(response.get_data(as_text=True))  # strict: NaN would fail in the browser's JSON.parse
    return {entry["key"]: entry["data"] for entry in body.get("extended_stats", [])}


@pytest.mark.timeout(30)
def test_threshold_rows_verdict_first_then_report_order() -> None:
    report = example_report()
    rows = threshold_rows(report, now=0.0)
    assert rows[0]["status"] == "VERDICT: FAIL"
    assert rows[0]["value"] == "3 failing of 6, 1 no data"
    assert "updated 00:00:00 UTC" in rows[0]["description"] and "1 worker(s) lost" in rows[0]["description"]
    assert [r["metric"] for r in rows[1:]] == [t["metric"] for t in report["thresholds"]]
    # the web UI bundle sorts rows by "name" with plain string comparison: names must keep this order
    assert sorted(rows, key=lambda r: r["name"]) == rows
    first = rows[1]
    assert first["status"] == "✘ FAIL" and first["value"] == "3,120 ms" and first["samples"] == "720"
    assert first["windows"] == "W2, W3" and first["flags"] == "required"
    assert rows[-1]["status"] == "– no data" and rows[-1]["value"] == "–"
    assert all(isinstance(v, str) for row in rows for v in row.values())


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (3120.4, "ms", "3,120 ms"),
        (12.34, "ms", "12.3 ms"),
        (96.123, "%", "96.12 %"),
        (12.5, "rps", "12.50 rps"),
        (0.0123, "ratio", "0.0123 (1.23 %)"),
        (42, "count", "42"),
        (None, "ms", "–"),
        (math.nan, "ms", "–"),
        (True, "ms", "–"),
    ],
)
def test_threshold_rows_format_value_in_unit(value: Any, unit: str, shown: str) -> None:
    rows = threshold_rows(
        {"thresholds": [{"metric": "WS x", "expression": "e", "value": value, "unit": unit}]}
    )
    assert rows[1]["value"] == shown


@pytest.mark.timeout(30)
def test_threshold_rows_show_abort_and_pending_state() -> None:
    rows = threshold_rows(
        {"verdict": "fail", "aborted": {"threshold": "REDIS * p(95) < 50", "reason": "was 80 ms"}}
    )
    assert rows == [rows[0]] and "aborted by REDIS * p(95) < 50: was 80 ms" in rows[0]["description"]
    assert threshold_rows({})[0]["status"] == "VERDICT: PENDING"


@pytest.mark.timeout(30)
def test_attribution_rows_name_tiers_and_stage() -> None:
    rows = attribution_rows(example_report())
    assert len(rows) == 1
    assert rows[0]["metric"] == "WS agent_completed p(95) < 2000"
    assert "postgres: PG thread history p95 2,900 ms (OVER SLA)" in rows[0]["tiers"]
    assert "redis: REDIS GET p95 1.40 ms (within SLA)" in rows[0]["tiers"]
    assert rows[0]["stage"] == "agent_started→agent_thinking"
    assert "No attribution yet" in attribution_rows({"attribution": []})[0]["summary"]


@pytest.mark.timeout(30)
def test_json_safe_replaces_non_finite_numbers() -> None:
    data = {"a": [math.nan, math.inf, 1.5, (2, 3)], "b": {"c": -math.inf}, 4: object}
    safe = json_safe(data)
    json.dumps(safe, allow_nan=False)
    assert safe["a"] == [None, None, 1.5, [2, 3]] and safe["b"] == {"c": None} and isinstance(safe["4"], str)


@pytest.mark.timeout(30)
def test_live_snapshot_without_engine_or_with_failing_engine_says_why() -> None:
    def env_with(sla: Any) -> Environment:
        env = Environment()
        state_of(env).sla = sla
        return env

    assert live_snapshot(Environment())["verdict"] == "inactive"
    broken = live_snapshot(env_with(_FakeEngine(error=RuntimeError("secret=hunter2"))))
    assert broken["verdict"] == "error" and "hunter2" not in json.dumps(
        broken
    )  # exception text may hold secrets
    assert live_snapshot(env_with(SimpleNamespace(snapshot=lambda: [1])))["verdict"] == "error"


@pytest.mark.timeout(30)
def test_register_adds_tabs_tables_and_links_once(env: Environment) -> None:
    env.web_ui.template_args["extended_tabs"] = [{"title": "Other", "key": "other"}]  # another plugin's tab
    assert register_web_ui(env) is True
    assert register_web_ui(env) is True  # idempotent
    args = env.web_ui.template_args
    assert [t["key"] for t in args["extended_tabs"]] == ["other", SLA_TAB_KEY, ATTRIBUTION_TAB_KEY]
    assert "extendedTabs" not in args  # one spelling only: the bundle camel-cases both to the same key
    assert [t["key"] for t in args["extendedTables"]] == [SLA_TAB_KEY, ATTRIBUTION_TAB_KEY]
    assert [link["href"] for link in args["extendedCsvFiles"]] == [
        "./sla/report",
        "./sla/report?download=1",
        "./sla/status",
    ]
    env.web_ui.update_template_args()  # Locust refreshes its own args on every page load; ours must survive
    page = env.web_ui.app.test_client().get("/").get_data(as_text=True)
    assert '"key": "sla"' in page and '"title": "SLA attribution"' in page


@pytest.mark.timeout(30)
def test_register_skips_worker_and_headless() -> None:
    class _Worker(locust.runners.WorkerRunner):
        def __init__(self) -> None:  # a worker runner without its master connection
            pass

        def __del__(self) -> None:
            pass

    worker_like = SimpleNamespace(web_ui=SimpleNamespace(), runner=_Worker())
    assert register_web_ui(worker_like) is False
    assert register_web_ui(SimpleNamespace(web_ui=None, runner=None)) is False


@pytest.mark.timeout(30)
def test_stats_requests_carries_live_rows_and_keeps_other_extended_stats(env: Environment) -> None:
    engine = _FakeEngine()
    state_of(env).sla = engine
    app = env.web_ui.app
    register_web_ui(env)

    @app.after_request
    def other_plugin(response: Any) -> Any:  # registered later = runs first (Flask reverses after_request)
        if request.path == "/stats/requests":
            body = response.get_json()
            body["extended_stats"] = [{"key": "other", "data": [{"name": "x"}]}]
            response.set_data(json.dumps(body))
        return response

    client = app.test_client()
    tabs = _extended(client.get("/stats/requests"))
    assert set(tabs) == {"other", SLA_TAB_KEY, ATTRIBUTION_TAB_KEY}
    assert tabs[SLA_TAB_KEY][1]["status"] == "✘ FAIL"
    # the run turns green: the next poll (after the 1 s snapshot cache) shows it
    for item in engine.report["thresholds"]:
        item["status"] = "pass"
    engine.report["verdict"] = "pass"
    engine.report["thresholds"][0]["value"] = math.nan
    app.view_functions["locust.request_stats"].clear_cache()
    time.sleep(1.1)
    tabs = _extended(client.get("/stats/requests"))
    assert tabs[SLA_TAB_KEY][0]["status"] == "VERDICT: PASS"
    assert tabs[SLA_TAB_KEY][1]["value"] == "–"


@pytest.mark.timeout(30)
def test_stats_requests_survives_failing_engine(env: Environment) -> None:
    state_of(env).sla = _FakeEngine(error=ValueError("boom"))
    register_web_ui(env)
    response = env.web_ui.app.test_client().get("/stats/requests")
    assert response.status_code == 200
    rows = _extended(response)[SLA_TAB_KEY]
    assert rows[0]["status"] == "VERDICT: ERROR" and "ValueError" in rows[0]["description"]


@pytest.mark.timeout(30)
def test_sla_routes_serve_status_json_and_html_report(env: Environment) -> None:
    state_of(env).sla = _FakeEngine()
    register_web_ui(env)
    client = env.web_ui.app.test_client()
    status = client.get("/sla/status")
    assert status.status_code == 200 and status.headers["Cache-Control"] == "no-store"
    assert json.loads(status.get_data(as_text=True))["verdict"] == "fail"
    report = client.get("/sla/report?download=1")
    assert report.status_code == 200 and report.mimetype == "text/html"
    assert "attachment" in report.headers["Content-Disposition"]
    assert "SLA FAILED" in report.get_data(as_text=True)


@pytest.mark.timeout(30)
def test_routes_follow_web_base_path() -> None:
    env = _environment(web_base_path="/locust")
    state_of(env).sla = _FakeEngine()
    register_web_ui(env)
    client = env.web_ui.app.test_client()
    assert client.get("/locust/sla/status").status_code == 200
    assert SLA_TAB_KEY in _extended(client.get("/locust/stats/requests"))
    env.runner.quit()


@pytest.mark.timeout(30)
def test_attribution_rows_one_per_metric_with_its_failing_lines() -> None:
    report = example_report()
    second = dict(report["attribution"][0])
    second.update(expression="within(2000) >= 95%", summary="WS agent_completed within(2000) 88.40 % < 95.00 % — "
                  + report["attribution"][0]["summary"].partition(" — ")[2])
    report["attribution"].append(second)
    rows = attribution_rows(report)
    assert len(rows) == 1
    assert rows[0]["metric"] == "WS agent_completed p(95) < 2000, within(2000) >= 95%"
    assert rows[0]["summary"].count("coincides with") == 1
    assert "88.40 %" in rows[0]["summary"] and "3120 ms" in rows[0]["summary"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("values", "limit", "op", "text"),
    [
        ([100, 200, 300, 400], 400, "<", "▃▅▇█"),
        ([100, None, 900], 400, "<", "▁·█!"),
        ([100.0, 90.0, 40.0], 95.0, ">=", "██!▄!"),
        ([], 1, "<", ""),
        ([0, 0, 0], 1, "<", "▁▁▁"),
    ],
)
def test_trend_text_marks_points_past_the_limit(values: list[Any], limit: float, op: str, text: str) -> None:
    assert trend_text(values, limit, op) == text


@pytest.mark.timeout(30)
def test_threshold_rows_trend_column_follows_the_timeline() -> None:
    report = example_report()
    report["thresholds"][0]["limit"] = 2000.0
    report["timeline"] = {"t": [1.0, 3.0], "thresholds": [{"values": [1000.0, 3000.0]}] + [{"values": []}] * 5}
    rows = {row["name"][1:]: row for row in threshold_rows(report, now=0.0)[1:]}
    assert rows["0001 WS agent_completed p(95) < 2000"]["trend"] == "▃█!"
    assert rows["0002 WS agent_completed within(2000) >= 95%"]["trend"] == ""


@pytest.mark.timeout(30)
def test_locust_report_page_gets_the_sla_summary(env: Environment) -> None:
    state_of(env).sla = _FakeEngine()
    register_web_ui(env)
    client = env.web_ui.app.test_client()
    page = client.get("/stats/report").get_data(as_text=True)
    summary = page.index('id="sla-summary"')
    assert summary < page.rindex('<div id="root"></div>')
    assert 'href="../sla/report"' in page and "SLA FAIL" in page
    download = client.get("/stats/report?download=1").get_data(as_text=True)
    assert 'id="sla-summary"' in download and "../sla/report" not in download
