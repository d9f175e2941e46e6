"""Generator resource monitoring: CPU% and RSS of this Locust process (and of a local target) as gauges.

Each Locust process (master, worker, local) runs one sampling greenlet between ``test_start`` and
``test_stop``/``quitting``; every ``interval`` s it records ``locust:cpu_percent`` and ``locust:rss_mb`` and, when the
target runs on this machine (its pid comes from ``GET /health``'s ``pid``), ``target:cpu_percent`` and
``target:rss_mb`` through ``sla_checks.gauges.record_gauge``. When the generator's CPU passes ``cpu_warning`` %
it logs a warning once per episode: its own latency figures are then unreliable.

A CPU percentage is CPU time over wall time since the previous reading, and the kernel counts CPU time in 10 ms
ticks: over the 2 ms between the monitor's creation (the last ``init`` listener) and ``test_start`` one tick reads
as 500 %. A CPU reading is therefore taken only once at least ``cpu_window_s`` have passed since the previous one;
the readings at ``test_start`` carry the memory gauges only.

Usage::

    from users.resources import ResourceMonitor
    ResourceMonitor(environment, interval=2.0).register()   # done for every run by this module's init listener
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import psutil
from locust import events
from locust.env import Environment

from sla_checks.gauges import record_gauge
from sla_checks.state import state_of
from users.probe_options import probe_config

logger = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
MIN_CPU_WINDOW_S = 0.5
"""CPU percentages are measured over at least this long (less when the sampling interval is shorter)."""


def local_target_pid(health_url: str, timeout: float = 2.0) -> int | None:
    """The target's pid from ``GET {health_url}/health`` when the target runs on this machine, else None."""
    host = (urlsplit(health_url).hostname or "").lower()
    if host not in LOCAL_HOSTS:
        return None
    try:
        with urllib.request.urlopen(health_url.rstrip("/") + "/health", timeout=timeout) as resp:
            pid = json.loads(resp.read()).get("pid")
    except (OSError, ValueError, AttributeError) as exc:
        logger.debug("no target pid from %s/health: %s", health_url, exc)
        return None
    if isinstance(pid, int) and pid > 0 and psutil.pid_exists(pid):
        return pid
    return None


class ResourceMonitor:
    """Samples CPU% and RSS of this process (and of ``target_pid``) into gauges every ``interval`` seconds."""

    def __init__(self, environment: Environment, interval: float = 2.0, cpu_warning: float = 90.0,
                 target_pid: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.environment = environment
        self.interval = interval
        self.cpu_warning = cpu_warning
        self.target_pid = target_pid
        self.cpu_window_s = min(MIN_CPU_WINDOW_S, 0.9 * interval)
        """Shortest wall time a CPU percentage is measured over."""
        self.own = psutil.Process(os.getpid())
        self.target: psutil.Process | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._warned = False
        self._clock = clock
        self._cpu_since: dict[int, float] = {}
        """pid → when its CPU times were last read (``cpu_percent`` measures from there)."""
        self._cpu_percent(self.own)  # prime: the first reading of cpu_percent(None) is always 0.0

    def _cpu_percent(self, process: psutil.Process) -> float | None:
        """CPU % of ``process`` since its previous reading, or None (and no new reading) when that was less than
        ``cpu_window_s`` ago: too short for 10 ms CPU-time ticks."""
        now = self._clock()
        since = self._cpu_since.get(process.pid)
        if since is not None and now - since < self.cpu_window_s:
            return None
        self._cpu_since[process.pid] = now
        value = process.cpu_percent(None)
        return None if since is None else value

    def _attach_target(self, pid: int | None) -> None:
        if pid is None or pid == self.own.pid:
            return
        try:
            self.target = psutil.Process(pid)
            self._cpu_percent(self.target)
        except psutil.Error as exc:
            logger.debug("cannot watch target pid %s: %s", pid, exc)
            self.target = None

    def sample_once(self) -> dict[str, float]:
        """Take one reading, record it as gauges, warn on high generator CPU; returns what was recorded."""
        readings: dict[str, float] = {}
        with self.own.oneshot():
            cpu = self._cpu_percent(self.own)
            if cpu is not None:
                readings["locust:cpu_percent"] = cpu
            readings["locust:rss_mb"] = self.own.memory_info().rss / 1048576
        if self.target is not None:
            try:
                with self.target.oneshot():
                    target_cpu = self._cpu_percent(self.target)
                    if target_cpu is not None:
                        readings["target:cpu_percent"] = target_cpu
                    readings["target:rss_mb"] = self.target.memory_info().rss / 1048576
            except psutil.Error:
                logger.info("target process %s is gone; no more target readings", self.target.pid)
                self.target = None
        for name, value in readings.items():
            record_gauge(self.environment, name, value)
        if cpu is None:
            return readings
        if cpu > self.cpu_warning and not self._warned:
            self._warned = True
            logger.warning("Locust process %s CPU at %.0f%% (> %.0f%%): its own response-time figures are "
                           "unreliable; add workers or reduce users", self.own.pid, cpu, self.cpu_warning)
        elif cpu <= self.cpu_warning * 0.8:
            self._warned = False
        return readings

    def _run(self) -> None:
        while True:
            gevent.sleep(self.interval)
            try:
                self.sample_once()
            except Exception:  # noqa: BLE001  (monitoring must never take the run down)
                logger.exception("resource sampling failed")

    def start(self) -> None:
        if self._greenlet is not None and not self._greenlet.dead:
            return
        if self.target is None:
            self._attach_target(self.target_pid)
        self.sample_once()
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None

    def register(self) -> ResourceMonitor:
        """Start on ``test_start`` (looking up a local target's pid first), stop on ``test_stop`` and ``quitting``."""
        ev = self.environment.events

        def on_test_start(**_kw: Any) -> None:
            if self.target_pid is None:
                try:
                    url = probe_config(self.environment).health_url
                except ValueError:
                    url = ""
                self.target_pid = local_target_pid(url) if url else None
            self.start()

        ev.test_start.add_listener(on_test_start)
        ev.test_stop.add_listener(lambda **_kw: self.stop())
        ev.quitting.add_listener(lambda **_kw: self.stop())
        state_of(self.environment).resource_monitor = self
        return self


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    if state_of(environment).resource_monitor is None:
        ResourceMonitor(environment).register()
