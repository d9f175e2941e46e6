"""Locust glue of the SLA engine: options, sample collection, shipping to the master, live evaluation, verdict.

Importing this module (``locustfile.py`` does) registers the ``--sla-*`` options and the hooks below.

* every process: a listener on ``environment.events.request`` records each sample into a
  :class:`~sla_checks.engine.Collector` (a dict lookup and a histogram increment, no sorting);
* worker: the collected buckets ride along in Locust's own worker report (``report_to_master``, every 3 s and a
  final one on quit); a worker that quits by itself (SIGTERM, or Ctrl-C reaching its process group) stops its users
  (within ``--stop-timeout``) and sends that final report before it tells the master it quits — Locust alone sends
  its ``quit`` first and no final report, so the samples of its last seconds and of the stop were lost;
* master / local runner: merges worker reports (``worker_report``), evaluates every ``--sla-eval-interval`` seconds
  (an ``abort_on_fail`` threshold past its ``delay_abort_eval`` stops the run and says which and why), tracks lost
  workers, and on ``quitting`` logs ``SLA FAILED: ...`` lines, prints the table, writes the reports and sets
  ``environment.process_exit_code`` to ``--sla-exit-code`` (3) on a breach, to ``--sla-inconclusive-exit-code`` (4)
  when nothing failed but nothing was measured (no user ran: the peak of the runner's user count, on a master the
  sum of its workers'; or no threshold judged on a metric with samples); it warns when messages were still in
  flight at the stop (``messages``, handed over by every process through :mod:`sla_checks.counters`; the ones that
  waited past their limit are judged as failures).
* master, when the run ends for good (headless ``--run-time`` / abort, SIGTERM or Ctrl-C): before judging, it asks the
  running workers to quit and waits (``--stop-timeout`` + 5 s at most) until each has sent its final report, so the
  samples of the last seconds and of the stop are judged. Locust's master alone judges first (the ``quitting``
  listeners run in reverse, the SLA's before the runner's) and waits only 0.5 s for the workers' last reports.

Live state for the web UI: :func:`sla_plugin` gives the environment's :class:`SlaPlugin`; its ``snapshot()`` returns the
report dict (schema in :mod:`sla_checks.report`, ``"state": "running"``), its ``final_report`` the one
written at the end.

The options and their checks live in :mod:`sla_checks.plugin_options`, the runner-level handling of workers' final
reports in :mod:`sla_checks.worker_reports`.

Usage (programmatic, e.g. a test with its own Environment)::

    plugin = SlaPlugin.register(environment, profile=load_profile("ci"))
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events
from locust import log as locust_log
from locust.env import Environment
from locust.runners import (
    STATE_INIT,
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    LocalRunner,
    MasterRunner,
    WorkerRunner,
)

from config.errors import exit_usage
from sla_checks.baseline import Baseline, BaselineError, Gate, load_baseline
from sla_checks.engine import Engine, FaultMark
from sla_checks.evaluate import FAIL, INCONCLUSIVE, ThresholdResult
from sla_checks.formatting import format_value
from sla_checks.load_watch import LoadWatch
from sla_checks.locust_html import add_summary_to_file, relative_link
from sla_checks.plugin_options import (
    DEFAULT_EVAL_INTERVAL_S,
    DEFAULT_EXIT_CODE,
    DEFAULT_INCONCLUSIVE_EXIT_CODE,
    baseline_option,
    check_report_paths,
    check_users,
    inconclusive_code_option,
    load_from_options,
    opt,
    warmup_option,
    window_option,
)
from sla_checks.profiles import ConfigError, Profile
from sla_checks.prometheus_server import PrometheusExporter, serve_prometheus
from sla_checks.report import build_report, render_terminal, write_reports
from sla_checks.state import state_of
from sla_checks.tiers import ATTRIBUTED_TYPES, tier_named_in
from sla_checks.worker_reports import collect_final_reports, send_final_report, serialize_stops

__all__ = ["SlaPlugin", "DEFAULT_EXIT_CODE", "DEFAULT_INCONCLUSIVE_EXIT_CODE", "sla_plugin"]

logger = logging.getLogger(__name__)
console = logging.getLogger("locust.stats_logger")  # Locust's plain console logger (the stats table uses it)

class SlaPlugin:
    """The SLA engine attached to one Locust environment (``state_of(environment).sla``)."""

    def __init__(
        self,
        environment: Environment,
        profile: Profile | None,
        *,
        window_s: float = 0.0,
        eval_interval_s: float = DEFAULT_EVAL_INTERVAL_S,
        exit_code: int = DEFAULT_EXIT_CODE,
        inconclusive_exit_code: int = DEFAULT_INCONCLUSIVE_EXIT_CODE,
        warmup_s: float = 0.0,
        report_json: str = "",
        report_junit: str = "",
        report_html: str = "",
    ) -> None:
        self.environment = environment
        self.profile = profile
        self.window_s = window_s
        self.warmup_s = warmup_s
        self.eval_interval_s = eval_interval_s
        self.exit_code = exit_code
        self.inconclusive_exit_code = inconclusive_exit_code
        self.peak_users: int | None = None
        """Most users running at once in the current test (all workers); None until a test starts."""
        self.scenario: dict[str, Any] | None = None
        """What the report says about the run's scenario (set by the scenario plugin; None: a plain run)."""
        self.report_paths = (report_json or None, report_junit or None, report_html or None)
        self.engine = self._new_engine()
        self.final_report: dict[str, Any] | None = None
        self.last_results: list[ThresholdResult] = []
        self._failing: set[str] = set()
        self._greenlet: gevent.Greenlet | None = None
        self._finished = False
        self._quitting = False
        self.options_key: tuple[Any, ...] | None = None
        """The --sla-* options the profile was loaded from (None: configured programmatically)."""
        self._pinned: tuple[Profile, float | None] | None = None
        """The profile (and window) :meth:`reconfigure` gave, which the --sla-* options do not replace."""
        self.load_watch = LoadWatch(environment)
        """The chat users running per second: what the offered load could reach, for a failing ``rps`` line."""
        self.baseline: Baseline | None = None
        """The ``--sla-baseline`` run the regression lines are judged against (None: no baseline gate)."""
        self.baseline_option = ""
        """The --sla-baseline value ``baseline`` was loaded from."""
        self.exporter: PrometheusExporter | None = None
        """The ``--prometheus-port`` endpoint (master / local runner; None: off)."""

    def _new_engine(self) -> Engine:
        p = self.profile
        engine = Engine(
            list(p.thresholds) if p else [],
            window_s=self.window_s,
            profile=p.name if p else "",
            config_file=p.path if p else "",
            exit_code=self.exit_code,
            inconclusive_exit_code=self.inconclusive_exit_code,
            warmup_s=self.warmup_s,
        )
        engine.scenario = self.scenario
        return engine

    def reconfigure(self, profile: Profile | None, window_s: float | None = None) -> None:
        """Judge with ``profile`` (a scenario's composed thresholds) instead of the --sla-* options, and with
        ``window_s`` when given (else ``--sla-window``, else the profile's); ``None``: back to the options.

        The profile holds for every test started from now on until the next call, whatever the web UI's form says
        about the profile (the form's ``--sla-window`` / ``--sla-warmup`` still apply). A test that is not running
        yet starts with it, afresh (see :meth:`on_test_start`); a running test is judged with it from now on, on
        the samples it has."""
        self._pinned = None if profile is None else (profile, window_s)
        if profile is None:
            self.options_key = ("reload",)  # the next test start loads the options again
            return
        self._apply_pinned()
        if self.engine.ended_at is None:  # not started yet, or running: judge what it holds with the new thresholds
            self.engine = self._carry_over(self.engine)
            self._failing.clear()

    def _apply_pinned(self) -> None:
        """Take the pinned profile, the window (given, else --sla-window, else the profile's) and the warm-up."""
        assert self._pinned is not None
        profile, window_s = self._pinned
        options = self.environment.parsed_options
        self.profile = profile
        try:
            option_window = window_option(options)
        except ConfigError as e:  # checked at start already; a bad value from the web UI's form keeps the profile's
            logger.error("SLA: %s", e)
            option_window = None
        self.window_s = float(option_window if option_window is not None else window_s or profile.window_s or 0.0)
        try:
            self.warmup_s = warmup_option(options, profile)
        except ConfigError as e:  # checked at start already; keep the warm-up judged so far
            logger.error("SLA: %s", e)
        self.options_key = self._option_key()

    def _carry_over(self, old: Engine) -> Engine:
        """A new engine with the current configuration, holding everything ``old`` recorded."""
        engine = self._new_engine()
        engine.collector = old.collector
        if old.started_at is not None:
            engine.start(old.started_at)
        for start, bucket in old.store.sorted_buckets():
            engine.store.add(start, bucket)
        engine.store.gauges = old.store.gauges
        engine.store.counts = old.store.counts
        engine.faults = list(old.faults)
        engine.users = list(old.users)
        if hasattr(old, "peak_users"):
            engine.peak_users = old.peak_users
        return engine

    # --- wiring -----------------------------------------------------------------------------------------------
    @classmethod
    def register(cls, environment: Environment, profile: Profile | None = None, **kw: Any) -> SlaPlugin:
        """Attach to ``environment``: listeners for samples and worker reports; evaluation unless on a worker."""
        plugin = cls(environment, profile, **kw)
        state = state_of(environment)
        state.sla = plugin
        ev = environment.events
        ev.request.add_listener(plugin.on_request)
        for ts, name, value in state.pending_gauges:
            plugin.engine.collector.record_gauge(name, value, ts)
        state.pending_gauges.clear()
        for name, n in state.pending_counts.items():
            plugin.engine.collector.count(name, n)
        state.pending_counts.clear()
        for at, age, deadline in state.pending_in_flight:
            plugin.engine.collector.in_flight([(age, deadline)], at)
        state.pending_in_flight.clear()
        if plugin.is_worker:
            ev.report_to_master.add_listener(plugin.on_report_to_master)
            # added after WorkerRunner's own listener, so it runs before that one sends ``quit`` (reverse order)
            ev.quitting.add_listener(plugin.on_worker_quitting)
            serialize_stops(environment.runner)  # type: ignore[arg-type]
        else:
            ev.worker_report.add_listener(plugin.on_worker_report)
            ev.test_start.add_listener(plugin.on_test_start)
            ev.test_stop.add_listener(plugin.on_test_stop)
            ev.quitting.add_listener(plugin.on_quitting)
            ev.test_start.add_listener(plugin.on_test_start_users)
            ev.spawning_complete.add_listener(plugin.note_users)
            ev.test_stopping.add_listener(plugin.note_users)  # before the users stop: those still running count
        return plugin

    @property
    def is_worker(self) -> bool:
        return isinstance(self.environment.runner, WorkerRunner)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        response_length: int = 0,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_kw: Any,
    ) -> None:
        stages = None
        if context and request_type == "WS" and name == "agent_completed":
            st = context.get("stages")
            if isinstance(st, dict):
                stages = st
        tier = None
        if exception is not None and request_type in ATTRIBUTED_TYPES:
            tier = tier_named_in(str(exception))
        self.engine.collector.record(
            request_type, name, response_time, exception is not None, time.time(), stages, tier
        )

    def record_success(self, request_type: str, name: str, response_time: float, wall: float,
                       stages: Mapping[str, float] | None = None, intended_ms: float | None = None) -> None:
        """What :meth:`on_request` records for a success whose ``context`` holds at most ``stages`` and
        ``intended_ms`` (which it does not read), at ``wall``: the chat connections' direct path
        (:mod:`users.sample_sink`) when no other listener needs the sample."""
        if stages is not None and (name != "agent_completed" or request_type != "WS"):
            stages = None
        self.engine.collector.record_success(request_type, name, response_time, wall, stages)

    def record_successes(self, request_type: str, samples: Sequence[tuple[str, float, Any, Any]],
                         wall: float) -> None:
        """:meth:`record_success` of each (name, response time, stages, intended_ms) of ``samples``, in one call."""
        self.engine.collector.record_successes(request_type, samples, wall,
                                               "agent_completed" if request_type == "WS" else None)

    def record_gauge(self, name: str, value: float, timestamp: float) -> None:
        self.engine.collector.record_gauge(name, value, timestamp)

    def record_fault(self, kind: str, start: float, end: float, detail: str = "", error: str | None = None) -> None:
        """Note a fault injected into the target from ``start`` to ``end`` (unix times; ``error``: it could not be
        applied): the report lists it and shades its span on every time chart."""
        self.engine.record_fault(FaultMark(kind, start, end, detail, error))

    def _locust_html(self) -> str | None:
        """Locust's own ``--html`` report of this run when Locust wrote it during the run (it does right before
        ``quitting``; not after a SIGTERM), else None."""
        path = opt(self.environment.parsed_options, "html_file", None)
        if not path or not isinstance(path, str) or not os.path.isfile(path):
            return None
        started = self.engine.started_at
        if started is not None and os.path.getmtime(path) < started - 1.0:
            return None  # a report of an earlier run under the same name
        return path

    def on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        payload = self.engine.collector.drain()
        if payload:
            data["sla"] = payload

    def on_worker_quitting(self, environment: Environment, **_kw: Any) -> None:
        """A worker quitting while its users run or stop: stop them and send the final report now.

        Locust's worker sends ``quit`` to the master first thing on its own ``quitting`` (SIGTERM, Ctrl-C in a
        terminal, which reaches the workers too) and a final report only on a ``quit`` from the master, which then
        comes after its own ``quit``: the master has judged by then. Here (before Locust's listener) the users stop
        within ``--stop-timeout`` and one report carries every sample left, so the master, which keeps a worker
        until its ``quit``, judges them. A stop already under way (the master's ``quit``) is waited for."""
        runner = environment.runner
        if self._finished or not isinstance(runner, WorkerRunner):
            return
        self._finished = True  # the SIGTERM path may fire ``quitting`` twice
        if runner.state in (STATE_INIT, STATE_STOPPED):
            return  # no users: the last report (the master's ``stop`` or ``quit``) carried the samples
        send_final_report(runner)

    def on_test_start_users(self, **_kw: Any) -> None:
        """A test starts: no user has run in it yet."""
        self.peak_users = 0
        self.engine.peak_users = 0
        self.engine.note_users(time.time(), 0)

    def note_users(self, user_count: int | None = None, **_kw: Any) -> None:
        """Raise the peak user count to the users running now (a master's runner sums its workers' reports)."""
        runner = self.environment.runner
        if self.peak_users is None or runner is None:
            return
        self.peak_users = max(self.peak_users, int(runner.user_count or 0), int(user_count or 0))
        self.engine.peak_users = self.peak_users
        self.engine.note_users(time.time(), int(runner.user_count or 0))

    def on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        self.note_users()
        payload = data.get("sla")
        if payload:
            try:
                self.engine.store.absorb(payload, client_id)
            except Exception:
                logger.exception("SLA: unreadable report from worker %s ignored", client_id)

    # --- lifecycle (master / local) ---------------------------------------------------------------------------
    def _option_key(self) -> tuple[Any, ...]:
        o = self.environment.parsed_options
        return tuple(opt(o, k, None) for k in ("sla_profile", "sla_config", "sla_window", "sla_warmup"))

    def _reload_if_options_changed(self) -> bool:
        """The web UI may change --sla-profile / --sla-config / --sla-window / --sla-warmup between tests: reload."""
        if self.options_key is None or self._option_key() == self.options_key:
            return False
        try:
            profile, window, _interval, _code, warmup = load_from_options(self.environment.parsed_options)
        except ConfigError as e:
            logger.error("SLA: options from the web UI rejected, keeping profile %r: %s", self.engine.profile, e)
            self.options_key = self._option_key()
            return False
        self.profile, self.window_s, self.warmup_s = profile, window, warmup
        self.options_key = self._option_key()
        logger.info("SLA: judging with profile %r (%s)", profile.name, profile.path)
        return True

    def gate(self) -> Gate | None:
        """The baseline gate of the run: the baseline with the profile's regression lines (none: the defaults)."""
        if self.baseline is None:
            return None
        return Gate(self.baseline, list(self.profile.regressions) if self.profile else [])

    def _reload_baseline_if_changed(self) -> None:
        """The web UI may change --sla-baseline between tests: load the new one (a bad file: logged, no gate)."""
        path = str(opt(self.environment.parsed_options, "sla_baseline", "") or "")
        if path == self.baseline_option:
            return
        self.baseline_option = path
        try:
            self.baseline = load_baseline(path) if path.strip() else None
        except BaselineError as e:
            logger.error("SLA: %s; this test runs without a baseline", e)
            self.baseline = None
            return
        if self.baseline is not None:
            logger.info("SLA: judging against baseline %s", path)

    def on_test_start(self, environment: Environment, **_kw: Any) -> None:
        """Every test starts afresh: no sample, count, window or start time of an earlier test (web UI) is kept;
        only a test's first start keeps what was recorded before it (counts and gauges of the set-up)."""
        if self._pinned is not None:
            self._apply_pinned()  # a scenario's thresholds; the form may have changed the window or the warm-up
        else:
            self._reload_if_options_changed()
        self._reload_baseline_if_changed()
        old = self.engine
        if old.started_at is None and old.ended_at is None:
            self.engine = self._carry_over(old)
        else:
            self.engine = self._new_engine()
            if hasattr(old, "peak_users"):
                self.engine.peak_users = self.peak_users
            # a fault of this test's schedule may have been noted a moment before this listener ran
            self.engine.faults = [f for f in old.faults if f.start >= time.time() - 1.0]
        self._failing.clear()
        self.last_results = []
        self.final_report = None
        self.engine.start(time.time())
        self.load_watch.start()
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._evaluate_loop)
        self._check_scenario_handed_over()

    def _check_scenario_handed_over(self) -> None:
        """Log an error when the run names a scenario (``--scenario``, the form's pick) whose thresholds this engine
        was not handed: its verdict judges the profile named in the report, not the scenario."""
        name = opt(self.environment.parsed_options, "scenario", "") or ""
        judged = (self.scenario or {}).get("name")
        if name and judged != name:
            logger.error("SLA: the run is scenario %r, but the SLA engine judges %s with profile %r: the scenario's "
                         "thresholds were not handed over", name, f"scenario {judged!r}" if judged else "no scenario",
                         self.engine.profile)

    def on_test_stop(self, environment: Environment, **_kw: Any) -> None:
        runner = environment.runner
        headless = bool(opt(environment.parsed_options, "headless", False))
        if isinstance(runner, MasterRunner) and (headless or self._quitting):
            # the run is over for good (a web-UI stop keeps its workers): judge their final reports too
            self._collect_final_reports(runner)
        self.tick(time.time())
        self.engine.stop(time.time())
        self.load_watch.stop()

    def _collect_final_reports(self, runner: MasterRunner) -> None:
        """Wait for the final report of every worker still connected (:func:`collect_final_reports`); the ones that
        sent none are lost workers."""
        self._track_workers()
        silent, limit = collect_final_reports(runner, self.environment.stop_timeout)
        for client_id in sorted(silent):
            self.engine.lost_workers.add(client_id)
            logger.warning(
                "SLA: worker %s sent no final report within %g s of the stop; its samples since its last report "
                "are lost",
                client_id,
                limit,
            )

    def _evaluate_loop(self) -> None:
        while self.engine.ended_at is None:
            gevent.sleep(self.eval_interval_s)
            try:
                self.tick(time.time())
            except Exception:
                logger.exception("SLA live evaluation failed")

    def _track_workers(self) -> None:
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            return
        clients = list(runner.clients.values())
        self.engine.workers = max(self.engine.workers, len(clients))
        for c in clients:
            if c.state == STATE_MISSING and c.id not in self.engine.lost_workers:
                self.engine.lost_workers.add(c.id)
                logger.warning(
                    "SLA: worker %s went missing; its samples since its last report are lost", c.id
                )

    def tick(self, now: float) -> list[ThresholdResult]:
        """One live evaluation: merge, judge, log changes, act on abort_on_fail."""
        self.engine.flush_local()
        self._track_workers()
        self.note_users()
        if self.engine.ended_at is not None:
            return self.last_results
        results = self.engine.evaluate(now)
        self.last_results = results
        failing = {r.name for r in results if r.status == FAIL}
        for r in results:
            if r.name in failing and r.name not in self._failing:
                logger.warning("SLA failing now: %s", r.describe())
        for name in self._failing - failing:
            logger.info("SLA back within threshold: %s", name)
        self._failing = failing
        if self.engine.aborted is None:
            abort = self.engine.check_abort(results, now)
            if abort is not None:
                logger.error("SLA ABORT: %s; stopping the run", abort.reason)
                gevent.spawn(self._stop_run)
        return results

    def _stop_run(self) -> None:
        runner = self.environment.runner
        if runner is None:
            return
        options = self.environment.parsed_options
        if options is not None and getattr(options, "headless", False):
            runner.quit()
        else:
            runner.stop()

    def snapshot(self) -> dict[str, Any]:
        """The report dict now (``state`` ``running`` while the test runs); cheap enough to poll every 2 s."""
        if self.final_report is not None:
            return self.final_report
        if self.is_worker:
            return {"state": "worker", "schema": "ws-agent-loadtest/sla-report/1"}
        self.engine.flush_local()
        now = time.time()
        return build_report(self.engine, now, final=False, other_exit_code=self._other_exit_code(),
                            load=self.load_watch.engine_facts(self.engine, now), gate=self.gate())

    def _other_exit_code(self) -> int:
        env = self.environment
        runner = env.runner
        if env.process_exit_code is not None:
            return int(env.process_exit_code)
        if runner is not None and (len(runner.errors) or len(runner.exceptions)):
            return int(opt(env.parsed_options, "exit_code_on_error", 1))
        if locust_log.unhandled_greenlet_exception:
            return 2
        return 0

    def on_quitting(self, environment: Environment, **_kw: Any) -> None:
        if self._finished:
            return
        self._finished = True
        runner = environment.runner
        if isinstance(runner, LocalRunner) and runner.state in (STATE_SPAWNING, STATE_RUNNING):
            # quitting mid-run (SIGTERM, Ctrl-C): Locust stops the users only after this event; stop them first
            # (within --stop-timeout) so the samples ending during the stop are judged, as Locust's stats count them
            runner.stop()
        elif isinstance(runner, MasterRunner) and runner.state in (STATE_SPAWNING, STATE_RUNNING):
            # the same on a master: its own quit (after this event) stops the run without telling the workers;
            # do that first, and on_test_stop waits for the workers' final reports
            self._quitting = True
            runner.stop(send_stop_to_client=False)
        now = time.time()
        self._track_workers()
        self.engine.flush_local()
        if self.engine.started_at is None and not self.engine.store.buckets:
            logger.info("SLA: no test ran, no verdict")
            return
        self.engine.stop(now)
        report = build_report(self.engine, now, final=True, other_exit_code=self._other_exit_code(),
                              load=self.load_watch.engine_facts(self.engine, now), gate=self.gate())
        self.final_report = report
        for t in report["thresholds"]:
            if t["status"] == FAIL and t["value"] is None:
                logger.error(
                    "SLA FAILED: %s %s had no samples, but it is required", t["metric"], t["expression"]
                )
            elif t["status"] == FAIL:
                value = format_value(t["value"], t["unit"])
                logger.error("SLA FAILED: %s %s was %s", t["metric"], t["expression"], value)
            elif t["failed_windows"]:
                windows = ", ".join(map(str, t["failed_windows"]))
                logger.error("SLA FAILED: %s %s in window(s) %s", t["metric"], t["expression"], windows)
        for a in report["attribution"]:
            logger.error("SLA attribution: %s", a["summary"])
        for line in report["verdict_reasons"]:
            if line.startswith("SLA REGRESSION"):
                logger.error("%s", line)
        for warning in (report.get("regression") or {}).get("warnings", ()):
            logger.warning("SLA baseline: %s", warning)
        messages = report.get("messages") or {}
        if messages.get("failed_at_stop"):
            logger.error(
                "SLA: %d message(s) were still in flight at stop after waiting past their limit: judged as failed "
                "WS agent_completed samples", messages["failed_at_stop"])
        if messages.get("in_flight"):
            logger.warning(
                "SLA: %d message(s) were still in flight at stop (not judged: younger than their limit); a longer "
                "--stop-timeout (now %g s) lets them finish",
                messages["in_flight"],
                float(environment.stop_timeout or 0.0),
            )
        console.info("\n%s\n", render_terminal(report))
        locust_html = self._locust_html()
        if locust_html and self.report_paths[2]:
            report["locust_report"] = relative_link(locust_html, self.report_paths[2])
        written = write_reports(report, *self.report_paths)
        for path in written:
            logger.info("SLA report written: %s", path)
        if locust_html and add_summary_to_file(locust_html, report, sla_html_path=self.report_paths[2]):
            logger.info("SLA summary added to Locust's HTML report %s", locust_html)
        if report["verdict"] in (FAIL, INCONCLUSIVE):
            environment.process_exit_code = report["exit_code"]
        logger.info("SLA verdict: %s (exit code %s)", report["verdict"].upper(), report["exit_code"])
        if self.exporter is not None:
            self.exporter.linger()  # a scrape reads the final verdict before the process ends


def sla_plugin(environment: Environment) -> SlaPlugin | None:
    """The SLA plugin attached to ``environment`` (None: not attached, ``--sla-off``, or another sink)."""
    sla = state_of(environment).sla
    return sla if isinstance(sla, SlaPlugin) else None


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    options = environment.parsed_options
    try:
        warning = check_users(environment)
    except ConfigError as e:
        exit_usage(e, logger=logger)
    if opt(options, "sla_off", False):
        logger.info("SLA evaluation is off (--sla-off)")
        if opt(options, "prometheus_port", 0):
            logger.warning("--prometheus-port is ignored with --sla-off: the metrics come from the SLA engine")
        return
    if warning:
        logger.warning("%s", warning)
    if state_of(environment).sla is not None:
        return  # registered programmatically
    is_worker = isinstance(environment.runner, WorkerRunner)
    profile: Profile | None = None
    window = interval = 0.0
    code = DEFAULT_EXIT_CODE
    inconclusive_code = DEFAULT_INCONCLUSIVE_EXIT_CODE
    warmup = 0.0
    baseline: Baseline | None = None
    try:
        profile, window, interval, code, warmup = load_from_options(options)
        inconclusive_code = inconclusive_code_option(options)
        check_report_paths(options)
        baseline = None if is_worker else baseline_option(options)
    except (ConfigError, BaselineError) as e:
        if not is_worker:
            exit_usage(e, prefix="SLA configuration error", logger=logger)
        # a worker only collects; the master judges and has already reported the error
    plugin = SlaPlugin.register(
        environment,
        None if is_worker else profile,
        window_s=window,
        eval_interval_s=interval or DEFAULT_EVAL_INTERVAL_S,
        exit_code=code,
        inconclusive_exit_code=inconclusive_code,
        warmup_s=warmup,
        report_json=opt(options, "sla_report_json", ""),
        report_junit=opt(options, "sla_report_junit", ""),
        report_html=opt(options, "sla_report_html", ""),
    )
    plugin.options_key = plugin._option_key()
    if not is_worker:
        plugin.baseline = baseline
        plugin.baseline_option = opt(options, "sla_baseline", "") or ""
    if not is_worker:
        plugin.exporter = serve_prometheus(environment, plugin)
