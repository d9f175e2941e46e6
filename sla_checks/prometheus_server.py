"""Serve the SLA engine's state to Prometheus while a run goes (Locust glue): ``--prometheus-port``.

Off by default. With ``--prometheus-port PORT`` the master (or the single process of a local run) listens on
``--web-host`` (default: every interface) at ``PORT`` and answers any path (``/metrics`` by convention) with the
families of :mod:`sla_checks.prometheus`, built from the SLA engine at scrape time by a custom ``prometheus_client``
collector in a registry of its own (no default process/platform collectors, no second accounting of samples). A
worker never serves: its samples reach the master in Locust's worker report as always, and the master exposes the
merged histograms.

At the end of a run the master keeps serving, after the verdict, until one scrape has read the final state (the
verdict, every final threshold state), at most ``--prometheus-linger`` (15 s by default: Prometheus' default scrape
interval; ``0``: exit at once), so a dashboard's last point is the verdict and not the state a scrape interval
before it.

A port that cannot be listened on (taken, privileged) is a usage error at start: exit 2, one line, before any load.

Usage (what ``sla_checks.plugin`` does on ``init``)::

    exporter = serve_prometheus(environment, plugin)   # None: off, or a worker
    ...
    exporter.linger()                                  # after the final verdict
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from gevent.pywsgi import WSGIServer
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.registry import Collector

from config.durations import parse_duration
from config.errors import UsageError, exit_usage
from config.options import add_option
from config.validate import bounded
from sla_checks.engine import Engine
from sla_checks.prometheus import metric_families

__all__ = ["PrometheusExporter", "serve_prometheus", "DEFAULT_LINGER"]

logger = logging.getLogger(__name__)

DEFAULT_LINGER = "15s"


class PrometheusConfigError(UsageError, ValueError):
    """A bad ``--prometheus-*`` option, or a port that cannot be listened on."""


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    add_option(parser, "--prometheus-port", type=int, default=0, group="SLA verdict and reports",
               help="Serve Prometheus metrics (per-metric latency histograms with edges at every threshold limit, "
                    "threshold values and states, the verdict, messages in flight, gauges) on this port of the "
                    "master or the local process, on --web-host's interface; 0 (default): off. See "
                    "docs/observability.md.")
    add_option(parser, "--prometheus-linger", default=DEFAULT_LINGER, group="SLA verdict and reports",
               help="With --prometheus-port: after the verdict, keep serving until a scrape has read the final state, "
                    "at most this long (default {default}; 0: exit at once).")


class _Judge(Protocol):
    """What the exporter reads of the SLA plugin (:class:`sla_checks.plugin.SlaPlugin`)."""

    final_report: dict[str, Any] | None

    @property
    def engine(self) -> Engine: ...


class SlaCollector(Collector):
    """A ``prometheus_client`` collector that turns the plugin's engine into metric families on every scrape."""

    def __init__(self, environment: Environment, judge: _Judge) -> None:
        self.environment = environment
        self.judge = judge
        self.saw_final = False
        """The last collection read the final report (set per scrape)."""

    def collect(self) -> Iterator[Any]:
        judge = self.judge
        final = judge.final_report
        engine = judge.engine
        runner = self.environment.runner
        try:
            if final is None and engine.ended_at is None:
                engine.flush_local()  # this process's own samples since the last evaluation
            families = metric_families(
                engine,
                now=time.time(),
                final_verdict=final["verdict"] if final else None,
                final_exit_code=final["exit_code"] if final else None,
                users=int(runner.user_count) if runner is not None else None,
            )
        except Exception:  # a scrape must never take the run down
            logger.exception("Prometheus: building the metrics failed; this scrape is empty")
            families = []
        self.saw_final = final is not None
        yield from families


class _Body:
    """A WSGI response body that calls ``on_close`` once the server has sent it (WSGI calls ``close()`` then)."""

    def __init__(self, chunks: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._chunks = chunks
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        self._on_close()


class PrometheusExporter:
    """The metrics endpoint of one environment: a gevent WSGI server around :class:`SlaCollector`."""

    def __init__(self, environment: Environment, judge: _Judge, host: str, port: int, linger_s: float) -> None:
        self.collector = SlaCollector(environment, judge)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.linger_s = linger_s
        self.scrapes = 0
        self.final_scraped = False
        """A scrape that read the final state has been sent in full."""
        self._app = make_wsgi_app(self.registry)
        self.server = WSGIServer((host, port), self._serve, log=None, error_log=None)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Listen (OSError when the port cannot be had) and serve in a greenlet."""
        self.server.start()

    def stop(self) -> None:
        self.server.stop(timeout=1)

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> _Body:
        body = self._app(environ, start_response)
        saw_final = self.collector.saw_final

        def sent() -> None:
            self.scrapes += 1
            if saw_final:
                self.final_scraped = True

        return _Body(body, sent)

    def linger(self) -> None:
        """Keep serving until a scrape has read the final state, at most ``linger_s`` seconds."""
        if self.linger_s <= 0 or self.final_scraped:
            return
        deadline = time.monotonic() + self.linger_s
        logger.info("Prometheus: waiting up to %g s for a scrape of the final state", self.linger_s)
        while not self.final_scraped and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if not self.final_scraped:
            logger.warning("Prometheus: no scrape read the final state within %g s (--prometheus-linger)",
                           self.linger_s)


def _port(options: Any) -> int:
    value = getattr(options, "prometheus_port", 0) if options is not None else 0
    return int(bounded("--prometheus-port", value, low=0, high=65535, integer=True,
                       hint="a free TCP port such as 9646; 0 = off", error=PrometheusConfigError))


def _linger(options: Any) -> float:
    value = getattr(options, "prometheus_linger", DEFAULT_LINGER) if options is not None else DEFAULT_LINGER
    try:
        return parse_duration(value)
    except ValueError as e:
        raise PrometheusConfigError(f"--prometheus-linger {value!r}: {e}") from None


def serve_prometheus(environment: Environment, judge: _Judge) -> PrometheusExporter | None:
    """Start the endpoint on a master or local runner when ``--prometheus-port`` asks for it (exit 2 on a bad
    option or a port that cannot be listened on); None when off or on a worker."""
    options = environment.parsed_options
    try:
        port = _port(options)
        linger_s = _linger(options)
    except PrometheusConfigError as e:
        exit_usage(e, logger=logger)
    if not port or isinstance(environment.runner, WorkerRunner):
        return None
    host = str(getattr(options, "web_host", "") or "")
    host = "" if host == "*" else host  # Locust's "every interface"
    exporter = PrometheusExporter(environment, judge, host, port, linger_s)
    try:
        exporter.start()
    except OSError as e:
        where = f"{host or '*'}:{port}"
        exit_usage(PrometheusConfigError(
            f"--prometheus-port {port}: cannot listen on {where} ({e.strerror or e}); choose a free port"),
            logger=logger)
    logger.info("Prometheus metrics on http://%s:%d/metrics", host or "0.0.0.0", port)
    return exporter
