"""The offered-load facts of a running test, for the attribution of a failing ``rps`` line (Locust glue).

Once a second while a test runs (master or local runner) :class:`LoadWatch` notes how many chat users run: a local
runner's own users per class, a master's as its workers report them (``reported_user_classes_count``), and the
messages each keeps in flight (``--ws-inflight``, which a stepped scenario changes). At report time
:meth:`LoadWatch.facts` turns that into an :class:`~sla_checks.offered_load.OfferedLoad` over the judged span,
with the think time (``--ws-think-time``) and the open model's mean scheduled rate (``--ws-arrival-rate``).

Chat users are told apart by class name in their MRO (``ChatUser``, ``ChatFlowUser`` and their subclasses), so this
module does not import the user classes (the load side imports the SLA side, not the other way round). A subclass
with its own ``wait_time`` is not seen as such: the cap then does not fit the measured rate and is not claimed.

Usage::

    watch = LoadWatch(environment)
    watch.start()                            # test_start
    ...
    load = watch.engine_facts(engine, now)   # OfferedLoad | None
    watch.stop()                             # test_stop
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust.env import Environment
from locust.runners import MasterRunner

from config.arrival import ArrivalSchedule, ScheduleError
from sla_checks.engine import Engine
from sla_checks.offered_load import OfferedLoad, time_average
from sla_checks.state import state_of

__all__ = ["LoadWatch"]

logger = logging.getLogger(__name__)

SAMPLE_EVERY_S = 1.0
_FLOW, _CHAT = "ChatFlowUser", "ChatUser"


class LoadWatch:
    """Samples the chat user counts of one environment's runner while a test runs."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.samples: list[tuple[float, int, int, int]] = []
        """``(unix time, chat users, flow users, chat users × in flight)`` whenever a per-second reading differs from
        the last one (a step series: a day-long soak at a steady load keeps a handful)."""
        self._kinds: dict[str, str | None] = {}
        self._greenlet: gevent.Greenlet | None = None
        # a spawn ends between two samples: note its counts at once (3 users spawned in 0.3 s were 0 for a second)
        environment.events.spawning_complete.add_listener(self._on_spawning_complete)

    def _on_spawning_complete(self, **_kw: Any) -> None:
        if self._greenlet is not None:
            self.sample()

    def start(self) -> None:
        """Start afresh (a new test) and sample every second until :meth:`stop`."""
        self.stop()
        self.samples = []
        self.sample()
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self.sample()
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _loop(self) -> None:
        while True:
            gevent.sleep(SAMPLE_EVERY_S)
            try:
                self.sample()
            except Exception:  # the facts are a help to the attribution, never worth the run
                logger.exception("SLA: sampling the user counts failed")

    def sample(self, now: float | None = None) -> None:
        runner = self.environment.runner
        if runner is None:
            return
        if isinstance(runner, MasterRunner):
            counts = dict(runner.reported_user_classes_count)
        else:
            counts = runner.user_classes_count
        chat = flow = 0
        for name, n in counts.items():
            kind = self._kind(name)
            if kind == _CHAT:
                chat += int(n)
            elif kind == _FLOW:
                flow += int(n)
        reading = (chat, flow, chat * self._inflight())
        if not self.samples or self.samples[-1][1:] != reading:
            self.samples.append((time.time() if now is None else now, *reading))

    def _kind(self, class_name: str) -> str | None:
        if class_name not in self._kinds:
            kind = None
            for cls in self.environment.user_classes or ():
                if cls.__name__ == class_name:
                    names = [c.__name__ for c in cls.__mro__]
                    kind = _FLOW if _FLOW in names else (_CHAT if _CHAT in names else None)
                    break
            self._kinds[class_name] = kind
        return self._kinds[class_name]

    def _setting(self, attr: str, option: str, default: Any) -> Any:
        settings = state_of(self.environment).chat_settings
        if settings is not None and hasattr(settings, attr):
            return getattr(settings, attr)
        options = self.environment.parsed_options
        value = getattr(options, option, None) if options is not None else None
        return default if value in (None, "") else value

    def _inflight(self) -> int:
        try:
            return max(1, int(self._setting("inflight", "ws_inflight", 1)))
        except (TypeError, ValueError):
            return 1

    def _arrival_rate(self, since_start: float, until: float) -> float | None:
        """The open model's mean scheduled rate over ``[since_start, until]`` seconds of the schedule; None:
        closed model (or a schedule that cannot be read)."""
        schedule = self._setting("arrival", "ws_arrival_rate", None)
        if schedule is None:
            return None
        if isinstance(schedule, str):
            try:  # the options' text: a web-UI master
                schedule = ArrivalSchedule.parse(schedule)
            except ScheduleError:
                return None
        if until <= since_start:
            return float(schedule.rate_at(since_start))
        return (schedule.count_until(until) - schedule.count_until(since_start)) / (until - since_start)

    def engine_facts(self, engine: Engine, now: float) -> OfferedLoad | None:
        """:meth:`facts` over ``engine``'s judged span (after its warm-up, until its end or ``now``)."""
        end = engine.ended_at if engine.ended_at is not None else now
        return self.facts(engine.started_at, engine.store.judge_from, end)

    def facts(self, started_at: float | None, start: float | None, end: float) -> OfferedLoad | None:
        """The load offered over ``[start, end]`` (the judged span; ``started_at``: the test start, where an
        arrival schedule begins); None before a test or without samples."""
        if started_at is None or not self.samples:
            return None
        start = started_at if start is None else start
        averages = [
            time_average([(s[0], float(s[i])) for s in self.samples], start, end) or 0.0 for i in (1, 2, 3)
        ]
        held = [s for s in self.samples if s[0] <= start][-1:]  # the counts holding as the span begins
        in_span = held + [s for s in self.samples if start < s[0] <= end] or self.samples[:1]
        think = self._setting("think_time", "ws_think_time", 1.0)
        try:
            think = max(float(think), 0.0)
        except (TypeError, ValueError):
            think = 1.0
        return OfferedLoad(
            chat_users=averages[0],
            flow_users=averages[1],
            peak_users=max(s[1] + s[2] for s in in_span),
            chat_concurrency=averages[2],
            think_s=think,
            arrival_rate=self._arrival_rate(start - started_at, end - started_at),
        )
