"""Live SLA tab in Locust's web UI, plus ``/sla/status`` (JSON) and ``/sla/report`` (HTML) routes.

Locust's web UI bundle shows extra tabs declared in ``web_ui.template_args["extendedTabs"]``; each tab is a table
whose columns come from ``["extendedTables"]`` and whose rows come from the ``extended_stats`` list of the
``/stats/requests`` JSON that the page polls every 2 s while a test runs. This module adds both, so the **SLA** tab
(one row per threshold: status, value, samples, plus a verdict row; failing rows first) and the **SLA
attribution** tab update live. The page stops polling when a test stops: its last ``/stats/requests`` answer waits
(bounded) until the SLA engine has judged the end of the run, so the tab shows the final verdict without a reload.
The rows are plain text (the bundle renders them as React text nodes, never as HTML).

The data comes from the SLA engine's live state: ``state_of(environment).sla.snapshot()`` returns a dict
in the JSON report schema (docs/report-schema.md). Without the engine the tab says so instead of failing.

Routes (under ``--web-base-path`` when set, behind ``--web-login`` when enabled):

- ``GET /sla/status``: the live snapshot as JSON (non-finite numbers as null);
- ``GET /sla/report``: the snapshot rendered by :mod:`sla_checks.report_html` (``?download=1`` to save it);
- ``GET /stats/report`` (Locust's own HTML report): the SLA summary is added on top (:mod:`sla_checks.locust_html`).

The SLA tab's trend column shows each threshold's value per time point of the report's ``timeline`` as a text
sparkline (failing rows first, as in the HTML report); the attribution tab has one row per metric.

Only the master or a local runner with a web UI registers anything; workers and ``--headless`` runs are skipped.

Usage::

    import sla_checks.webui  # noqa: F401  (registers on events.init)
    # or, from your own init listener:
    from sla_checks.webui import register_web_ui
    register_web_ui(environment)   # idempotent; returns True when the tab was added
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from flask import Blueprint, Response, make_response, request
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from sla_checks.formatting import format_count, format_ms, format_value
from sla_checks.locust_html import inject_summary
from sla_checks.report_html import render
from sla_checks.state import state_of

logger = logging.getLogger(__name__)

__all__ = [
    "ATTRIBUTION_TAB_KEY",
    "SLA_TAB_KEY",
    "attribution_rows",
    "json_safe",
    "live_snapshot",
    "register_web_ui",
    "threshold_rows",
    "trend_text",
    "verdict_text",
]

SLA_TAB_KEY = "sla"
ATTRIBUTION_TAB_KEY = "sla-attribution"

_TABS = [
    {"title": "SLA", "key": SLA_TAB_KEY},
    {"title": "SLA attribution", "key": ATTRIBUTION_TAB_KEY},
]
_TABLES = [
    {
        "key": SLA_TAB_KEY,
        "structure": [
            {"key": "status", "title": "Status"},
            {"key": "metric", "title": "Metric"},
            {"key": "expression", "title": "Threshold"},
            {"key": "value", "title": "Value"},
            {"key": "samples", "title": "Samples"},
            {"key": "description", "title": "Description"},
            {"key": "flags", "title": "Flags"},
            {"key": "windows", "title": "Failed windows"},
            {"key": "trend", "title": "Over time (per point, ! past the limit)"},
        ],
    },
    {
        "key": ATTRIBUTION_TAB_KEY,
        "structure": [
            {"key": "metric", "title": "Failing threshold"},
            {"key": "summary", "title": "Attribution"},
            {"key": "tiers", "title": "Tiers (p95 vs threshold)"},
            {"key": "stage", "title": "Slowest stage"},
        ],
    },
]
_LINKS = [
    {"href": "./sla/report", "title": "SLA report with charts (live snapshot)"},
    {"href": "./sla/report?download=1", "title": "Download SLA HTML report (live snapshot)"},
    {"href": "./sla/status", "title": "SLA live status (JSON)"},
]
_STATUS_TEXT = {"pass": "✔ pass", "fail": "✘ FAIL", "no data": "– no data"}
_SPARKS = "▁▂▃▄▅▆▇█"
#: Points of a threshold's time series shown in the tab's trend column (the latest ones).
TREND_POINTS = 24
#: Minimum seconds between two snapshots taken for the polled ``/stats/requests`` (one browser polls every 2 s).
_SNAPSHOT_MIN_INTERVAL_S = 1.0
#: Runner states in which Locust's page keeps polling ``/stats/requests``.
_POLLED_STATES = ("spawning", "running")
#: Seconds past ``--stop-timeout`` that the page's last poll waits for the SLA engine to judge the stopped run.
_FINAL_JUDGEMENT_GRACE_S = 10.0


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that strict JSON accepts: NaN/inf → None, tuples → lists, unknown objects → str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def live_snapshot(environment: Environment) -> dict[str, Any]:
    """The SLA engine's live state (report schema), or a placeholder saying why there is none."""
    sla = state_of(environment).sla
    snapshot: Callable[[], Any] | None = getattr(sla, "snapshot", None)
    if not callable(snapshot):
        return {
            "verdict": "inactive",
            "thresholds": [],
            "note": "SLA engine not loaded: import the SLA plugin in the locustfile (see docs/sla.md).",
        }
    try:
        data = snapshot()
    except Exception as exc:  # the UI must keep working while the engine misbehaves
        logger.exception("SLA web UI: the SLA plugin's snapshot() failed")
        return {"verdict": "error", "thresholds": [], "note": f"SLA snapshot failed: {type(exc).__name__}"}
    if not isinstance(data, Mapping):
        return {
            "verdict": "error",
            "thresholds": [],
            "note": f"SLA snapshot is a {type(data).__name__}, not a dict",
        }
    return dict(data)


def verdict_text(snapshot: Mapping[str, Any]) -> str:
    """The verdict row's status: PASS / FAIL / INCONCLUSIVE; while the run goes on, an inconclusive verdict (no
    evidence yet) reads NO DATA YET."""
    verdict = str(snapshot.get("verdict") or "pending")
    if verdict == "inconclusive" and snapshot.get("state") == "running":
        return "NO DATA YET"
    return verdict.upper()


def _failing(item: Mapping[str, Any]) -> bool:
    return item.get("status") == "fail" or bool(item.get("failed_windows"))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def trend_text(values: Any, limit: Any, op: str = "") -> str:
    """The latest :data:`TREND_POINTS` values of a threshold as a text sparkline (one block per time point, ``·``
    without samples), scaled from 0 to the larger of the values and the limit; a point past the limit is followed
    by ``!`` when ``op`` says which side is bad (``<``/``<=``: above it, ``>``/``>=``: below it)."""
    points = [_finite(v) for v in (values if isinstance(values, list) else [])][-TREND_POINTS:]
    present = [v for v in points if v is not None]
    if not present:
        return ""
    bound = _finite(limit)
    top = max(present + ([bound] if bound is not None else []))
    out = []
    for v in points:
        if v is None:
            out.append("·")
            continue
        out.append(_SPARKS[min(len(_SPARKS) - 1, int(len(_SPARKS) * v / top))] if top > 0 else _SPARKS[0])
        if bound is not None and ((op.startswith("<") and v > bound) or (op.startswith(">") and v < bound)):
            out.append("!")
    return "".join(out)


def _operator(expression: str) -> str:
    for op in ("<=", ">=", "<", ">", "=="):
        if f" {op} " in f" {expression} ":
            return op
    return ""


def _fault_note(snapshot: Mapping[str, Any]) -> str:
    faults = [f for f in snapshot.get("faults") or [] if isinstance(f, Mapping)]
    if not faults:
        return ""
    return "faults injected: " + "; ".join(
        f"{f.get('kind')} {f.get('detail') or ''} {_finite(f.get('start_s')) or 0:.0f}–"
        f"{_finite(f.get('end_s')) or 0:.0f} s".replace("  ", " ")
        for f in faults
    )


def threshold_rows(snapshot: Mapping[str, Any], now: float | None = None) -> list[dict[str, str]]:
    """Rows of the SLA tab: a verdict row, then one row per threshold (plain strings only)."""
    thresholds = [t for t in (snapshot.get("thresholds") or []) if isinstance(t, Mapping)]
    statuses = [str(t.get("status") or "") for t in thresholds]
    failing = statuses.count("fail")
    verdict = verdict_text(snapshot)
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%H:%M:%S UTC")
    state = str(snapshot.get("state") or "live")
    notes = [f"{state}, updated {moment}"]
    aborted = snapshot.get("aborted")
    if isinstance(aborted, Mapping) and aborted:
        notes.append(f"aborted by {aborted.get('threshold')}: {aborted.get('reason') or ''}".rstrip(": "))
    lost = snapshot.get("workers_lost")
    if isinstance(lost, int) and not isinstance(lost, bool) and lost > 0:
        notes.append(f"{lost} worker(s) lost")
    messages = snapshot.get("messages")
    if isinstance(messages, Mapping) and messages:
        where = "in flight at stop" if state == "finished" else "in flight now"
        notes.append(f"chat messages: {messages.get('sent')} sent = {messages.get('completed')} completed + "
                     f"{messages.get('failed')} failed ({messages.get('failed_at_stop')} of them in flight at the "
                     f"stop past their limit) + {messages.get('in_flight')} {where}")
    anomalies = snapshot.get("anomalies")
    if isinstance(anomalies, Mapping) and anomalies:
        notes.append("protocol anomalies: " + ", ".join(f"{k} {v}" for k, v in anomalies.items()))
    if snapshot.get("verdict") == "inconclusive" and state != "running":
        notes.extend(str(r) for r in snapshot.get("verdict_reasons") or [])
    if _fault_note(snapshot):
        notes.append(_fault_note(snapshot))
    if snapshot.get("note"):
        notes.append(str(snapshot["note"]))
    rows = [
        {
            "name": "0000 verdict",  # the bundle sorts rows by "name" (plain string order): verdict first
            "status": f"VERDICT: {verdict}",
            "metric": "(all thresholds)",
            "expression": "",
            "value": f"{failing} failing of {len(thresholds)}"
            + (f", {statuses.count('no data')} no data" if "no data" in statuses else ""),
            "samples": "",
            "description": "; ".join(notes),
            "flags": "",
            "windows": "",
            "trend": "",
        }
    ]
    timeline = snapshot.get("timeline")
    series = timeline.get("thresholds") if isinstance(timeline, Mapping) else None
    series = series if isinstance(series, list) else []
    # failing rows first (a failing threshold, or one that failed in a window), each group in report order
    order = sorted(enumerate(thresholds, start=1), key=lambda pair: not _failing(pair[1]))
    for position, item in order:
        points = series[position - 1] if position - 1 < len(series) else None
        values = points.get("values") if isinstance(points, Mapping) else None
        status = str(item.get("status") or "pending")
        flags = [
            f
            for f, on in (("abort on fail", item.get("abort_on_fail")), ("required", item.get("required")))
            if on
        ]
        samples = item.get("samples")
        windows = item.get("failed_windows") or []
        rows.append(
            {
                # "1…" sorts before "2…" (the bundle sorts by name): failing rows first, then report order
                "name": f"{1 if _failing(item) else 2}{position:04d} {item.get('metric')} {item.get('expression')}",
                "status": _STATUS_TEXT.get(status, status)
                + (" ✘ in windows" if status != "fail" and _failing(item) else ""),
                "metric": str(item.get("metric") or ""),
                "expression": str(item.get("expression") or ""),
                "value": format_value(item.get("value"), item.get("unit")),
                "samples": format_count(samples),
                "description": str(item.get("description") or ""),
                "flags": ", ".join(flags),
                "windows": ", ".join(f"W{w}" for w in windows) if isinstance(windows, list) else "",
                "trend": trend_text(values, item.get("limit"), _operator(str(item.get("expression") or ""))),
            }
        )
    return rows


def attribution_rows(snapshot: Mapping[str, Any]) -> list[dict[str, str]]:
    """Rows of the SLA attribution tab: one per metric with attributed failing WS/FLOW thresholds (its failing
    lines together; the attribution once, not once per line)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for entry in snapshot.get("attribution") or []:
        if isinstance(entry, Mapping):
            groups.setdefault(str(entry.get("metric") or ""), []).append(entry)
    rows = []
    for position, (metric, entries) in enumerate(groups.items(), start=1):
        first = entries[0]
        tiers = []
        for tier in first.get("tiers") or []:
            if not isinstance(tier, Mapping):
                continue
            state = {True: "within SLA", False: "OVER SLA"}.get(tier.get("within_sla"), "?")  # type: ignore[arg-type]
            tiers.append(
                f"{tier.get('tier')}: {tier.get('metric')} p95 {format_ms(tier.get('p95'))} ({state})"
            )
        heads, tail = [], ""
        for entry in entries:
            head, sep, rest = str(entry.get("summary") or "").partition(" — ")
            heads.append(head)
            tail = tail or (rest if sep else "")
        rows.append(
            {
                "name": f"{position:04d} {metric}",
                "metric": f"{metric} " + ", ".join(str(e.get("expression") or "") for e in entries),
                "summary": "; ".join(heads) + (f" — {tail}" if tail else ""),
                "tiers": "; ".join(tiers),
                "stage": str(first.get("slowest_stage") or "–"),
            }
        )
    if not rows:
        rows.append(
            {
                "name": "none",
                "metric": "–",
                "summary": "No attribution yet: computed when a WS or FLOW threshold fails.",
                "tiers": "",
                "stage": "",
            }
        )
    return rows


def _extend_template_arg(args: dict[str, Any], camel: str, snake: str, items: list[dict[str, Any]]) -> None:
    """Append ``items`` to ``args[camel]`` (or to ``args[snake]`` if another plugin used that spelling; the bundle
    camel-cases keys, so both land in the same place), skipping entries with a key/href already present."""
    key = snake if snake in args and camel not in args else camel
    current = list(args.get(key) or [])
    present = {item.get("key") or item.get("href") for item in current if isinstance(item, Mapping)}
    current += [item for item in items if (item.get("key") or item.get("href")) not in present]
    args[key] = current


def _judging_the_end(environment: Environment) -> bool:
    """The test has stopped (or is stopping) and the SLA engine has not judged its end yet."""
    runner = environment.runner
    engine = getattr(state_of(environment).sla, "engine", None)  # any sink: the web UI keeps working
    if runner is None or engine is None or getattr(engine, "started_at", None) is None:
        return False
    return runner.state not in _POLLED_STATES and getattr(engine, "ended_at", None) is None


def _await_final_judgement(environment: Environment) -> bool:
    """Wait (gevent, at most ``--stop-timeout`` + a grace) until the SLA engine has judged the end of a stopping
    test; True when there was a wait.

    Locust's page polls ``/stats/requests`` only while a test spawns or runs: the answer that reports ``cleanup``
    or ``stopped`` is the last one it renders until a reload. Held until the engine has judged the run (users
    stopped, ``test_stop`` listeners done), that answer carries the final verdict, for a run that ended by itself
    (a scenario's shape, ``--run-time``) as for one stopped with the Stop button."""
    if not _judging_the_end(environment):
        return False
    limit = float(getattr(environment, "stop_timeout", None) or 0.0) + _FINAL_JUDGEMENT_GRACE_S
    deadline = time.monotonic() + limit
    while _judging_the_end(environment) and time.monotonic() < deadline:
        gevent.sleep(0.1)
    return True


def register_web_ui(environment: Environment) -> bool:
    """Add the SLA tabs, the ``/sla/*`` routes and the ``extended_stats`` hook to ``environment.web_ui``.

    Returns False (and does nothing) on a worker or without a web UI; idempotent.
    """
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None or isinstance(getattr(environment, "runner", None), WorkerRunner):
        return False
    if getattr(web_ui, "_sla_tab_registered", False):
        return True
    web_ui._sla_tab_registered = True
    app = web_ui.app
    _extend_template_arg(web_ui.template_args, "extendedTabs", "extended_tabs", _TABS)
    _extend_template_arg(web_ui.template_args, "extendedTables", "extended_tables", _TABLES)
    _extend_template_arg(web_ui.template_args, "extendedCsvFiles", "extended_csv_files", _LINKS)

    options = getattr(environment, "parsed_options", None)
    base_path = (getattr(options, "web_base_path", None) or "").rstrip("/")
    auth = getattr(web_ui, "auth_required_if_enabled", lambda view: view)
    blueprint = Blueprint("sla_checks_webui", __name__, url_prefix=base_path or None)
    cache: dict[str, Any] = {"at": -math.inf, "snapshot": None}

    def snapshot(max_age_s: float = 0.0) -> dict[str, Any]:
        now = time.monotonic()
        if cache["snapshot"] is None or now - cache["at"] >= max_age_s:
            cache["snapshot"] = json_safe(live_snapshot(environment))
            cache["at"] = now
        return cache["snapshot"]

    @blueprint.route("/sla/status")
    @auth
    def sla_status() -> Response:
        response = make_response(json.dumps(snapshot(), ensure_ascii=False, allow_nan=False))
        response.headers["Content-Type"] = "application/json; charset=utf-8"
        response.headers["Cache-Control"] = "no-store"
        return response

    @blueprint.route("/sla/report")
    @auth
    def sla_report() -> Response:
        response = make_response(render(snapshot()))
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        response.headers["Cache-Control"] = "no-store"
        if request.args.get("download"):
            response.headers["Content-Disposition"] = "attachment; filename=sla-report.html"
        return response

    app.register_blueprint(blueprint)

    @app.after_request
    def add_sla_to_locust_report(response: Response) -> Response:
        """Locust's own HTML report (``/stats/report``) gets the SLA summary and, viewed in the browser, a link to
        the SLA report with charts."""
        if request.path != f"{base_path}/stats/report" or response.status_code != 200:
            return response
        try:
            page = response.get_data(as_text=True)
            link = None if request.args.get("download") else "../sla/report"
            text = inject_summary(page, snapshot(_SNAPSHOT_MIN_INTERVAL_S), link)
            if text is not None:
                response.set_data(text)
        except Exception:  # never break Locust's own report
            logger.exception("SLA web UI: could not add the SLA summary to /stats/report")
        return response

    @app.after_request
    def add_sla_extended_stats(response: Response) -> Response:
        if (
            request.path != f"{base_path}/stats/requests"
            or response.status_code != 200
            or not response.is_json
        ):
            return response
        try:
            body = response.get_json()
            if not isinstance(body, dict):
                return response
            max_age = _SNAPSHOT_MIN_INTERVAL_S
            if body.get("state") not in _POLLED_STATES and _await_final_judgement(environment):
                # the page polls no more after this answer: it carries the judged end of the run
                body["state"] = getattr(environment.runner, "state", body.get("state"))
                max_age = 0.0
            data = snapshot(max_age)
            ours = {SLA_TAB_KEY, ATTRIBUTION_TAB_KEY}
            extended = [
                e
                for e in body.get("extended_stats") or []
                if not (isinstance(e, dict) and e.get("key") in ours)
            ]
            extended.append({"key": SLA_TAB_KEY, "data": threshold_rows(data)})
            extended.append({"key": ATTRIBUTION_TAB_KEY, "data": attribution_rows(data)})
            body["extended_stats"] = extended
            response.set_data(json.dumps(json_safe(body), allow_nan=False))
        except Exception:  # never break Locust's own stats endpoint
            logger.exception("SLA web UI: could not add the SLA rows to /stats/requests")
        return response

    logger.info("SLA web UI: tab 'SLA' and %s/sla/status, %s/sla/report registered", base_path, base_path)
    return True


@events.init.add_listener
def _register_on_init(environment: Environment, **_kwargs: Any) -> None:
    register_web_ui(environment)
