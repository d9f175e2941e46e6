"""Reusable chat task logic (thin I/O over :class:`users.ws_client.ChatClient`), and the messages cut off by a stop.

- :func:`converse`: the closed-model task: (re)connect if needed, send ``--ws-inflight`` messages, await them all.
- :func:`login_send_receive`: the FLOW workflow: ``POST /auth/login`` → connect → send → ``agent_completed``, as one
  ``FLOW login→send→receive`` sample (plus the usual ``WS`` samples of its parts and an ``HTTP /auth/login`` one).
- :class:`OpenModelDriver`: the open model (``--ws-arrival-rate``): one greenlet per Locust process sends on the
  :class:`config.arrival.ArrivalScheduler`'s schedule, round-robin over the connected chat clients, never waiting for
  replies; records ``WS generator lag`` and the intended-time latency.
- :func:`count_abandoned` / :func:`abandoned_at_stop`: the messages still in flight when their users were stopped.
"""

from __future__ import annotations

import logging
import random
import time
import weakref
from collections import deque
from collections.abc import Sequence

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust.env import Environment

from config.arrival import ArrivalSchedule, ArrivalScheduler
from config.errors import SuiteError
from sla_checks.counters import CHAT_NOT_SENT, count, in_flight_at_stop
from sla_checks.state import state_of
from tasks.timeline import Outcome
from users.auth import LoginError, login
from users.recovery import RECOVERY_NAME, RecoveryWatch
from users.sample_sink import SampleSink
from users.ws_client import ChatClient
from users.ws_options import ChatSettings
from users.ws_session import ChatFailure

logger = logging.getLogger(__name__)

FLOW = "FLOW"
LAG_WARNING_MS = 100.0
"""Open model: a send this late behind its intended time logs a warning (at most one per ``LAG_WARNING_EVERY_S``)."""
LAG_WARNING_EVERY_S = 30.0
FLOW_NAME = "login→send→receive"
LOGIN_NAME = "/auth/login"

_abandoned = {"count": 0}
_recovery: weakref.WeakKeyDictionary[ChatClient, RecoveryWatch] = weakref.WeakKeyDictionary()
"""Each chat client's recovery watch (users.recovery)."""


def abandoned_at_stop() -> int:
    """Messages still in flight when their users were stopped in this process (no sample of their own here)."""
    return _abandoned["count"]


def count_abandoned(in_flight: Sequence[tuple[float, float]], environment: Environment | None = None) -> None:
    """Messages cut off by a user's stop, each ``(age_ms, deadline_ms)`` (:meth:`ChatClient.close
    <users.ws_client.ChatClient.close>`): added to :func:`abandoned_at_stop` and, given the user's ``environment``,
    handed to the SLA verdict, which fails the ones that already waited past their limit (merged over workers)."""
    _abandoned["count"] += len(in_flight)
    if environment is not None:
        in_flight_at_stop(environment, in_flight)


def pick_message(settings: ChatSettings) -> str:
    return random.choice(settings.messages)


def converse(client: ChatClient) -> list[Outcome]:
    """One closed-model round: ensure a connection, send ``inflight`` messages, wait for all of them to end."""
    if not client.ensure_connected():
        return []
    s = client.settings
    sent_at = time.monotonic()
    outcomes = client.send_and_await([pick_message(s) for _ in range(s.inflight)])
    if s.demand_dropped_at is not None:
        watch = _recovery.setdefault(client, RecoveryWatch())
        ms = watch.observe(s.demand_dropped_at, sent_at, [(o.failure is None, o.latency_ms) for o in outcomes])
        if ms is not None:
            client.environment.events.request.fire(request_type="WS", name=RECOVERY_NAME, response_time=ms,
                                                   response_length=0, exception=None, context={})
    return outcomes


class _FlowFailure(SuiteError):
    def __repr__(self) -> str:
        return str(self)


def login_send_receive(client: ChatClient) -> Outcome | None:
    """Login → connect → send → receive on a fresh connection, timed as one ``FLOW`` sample. Closes at the end."""
    env = client.environment
    fire = env.events.request.fire
    s = client.settings
    start = time.perf_counter()
    failure: str | None = None
    outcome: Outcome | None = None
    try:
        creds = s.login_users[client.user_number % len(s.login_users)] if s.login_users else None
        if creds is None:
            raise _FlowFailure("login: no users (give --users-file)")
        t0 = time.perf_counter()
        try:
            token = login(s.login_url or "", s.login_path, creds, timeout=s.connect_timeout,
                          ssl_context=s.login_ssl(), proxy=s.proxy)
        except LoginError as exc:
            fire(request_type="HTTP", name=LOGIN_NAME, response_time=(time.perf_counter() - t0) * 1000.0,
                 response_length=0, exception=_FlowFailure(str(exc)), context={})
            raise _FlowFailure(f"login: {exc}") from None
        fire(request_type="HTTP", name=LOGIN_NAME, response_time=(time.perf_counter() - t0) * 1000.0,
             response_length=0, exception=None, context={})
        if not client.connect(token=token.value):
            raise _FlowFailure("connect failed (see WS connect failures)")
        outcomes = client.send_and_await([pick_message(s)])
        if not outcomes:
            raise _FlowFailure("send failed: connection lost")
        outcome = outcomes[0]
        if outcome.failure is not None:
            failure = f"receive: {outcome.failure}"
    except _FlowFailure as exc:
        failure = str(exc)
    except BaseException:
        # stopped mid-flow (GreenletExit): abandon quietly, the stop cut it off, not the server
        if client.session is not None:
            client.session.on_outcome = None
            count_abandoned(client.session.dispatcher.in_flight_at(time.perf_counter()), client.environment)
        raise
    finally:
        if client.session is not None:
            client.session.close(reason="flow done")
            client.session = None
    fire(request_type=FLOW, name=FLOW_NAME, response_time=(time.perf_counter() - start) * 1000.0,
         response_length=0, exception=_FlowFailure(failure) if failure else None,
         context={"outcome": outcome.kind.value if outcome else "not sent"})
    return outcome


class OpenModelDriver:
    """Sends on an arrival schedule over the registered clients of one Locust process (``--ws-arrival-rate``).

    A message whose intended time has come while no client is connected waits (its lag grows); one that could not
    be sent within the reply timeout of its intended time is given up and reported as a failure of
    ``WS agent_completed`` and ``WS agent_completed (intended)`` (``not sent: no connected chat user``) — it did
    not get a reply in time, from the point of view of a user who wanted to send it.
    """

    def __init__(self, environment: Environment, settings: ChatSettings) -> None:
        assert settings.arrival is not None
        self.environment = environment
        self.settings = settings
        self.clients: list[ChatClient] = []
        self.scheduler: ArrivalScheduler | None = None
        self.greenlet: gevent.Greenlet | None = None
        self._rr = 0
        self.sent = 0
        self.given_up = 0
        self.max_lag_ms = 0.0
        self._lag_warned_at = -LAG_WARNING_EVERY_S
        # This process's share of the total rate: 1 alone, 1/N on each of N workers (set by the master).
        self.share = state_of(environment).chat_arrival_share

    def _schedule(self) -> ArrivalSchedule:
        assert self.settings.arrival is not None
        return self.settings.arrival if self.share == 1.0 else self.settings.arrival.scaled(self.share)

    def set_share(self, share: float) -> None:
        """Take ``share`` of the total rate from now on, without a burst: arrivals already due under the new rate
        since the schedule's start count as handed out."""
        self.share = share
        if self.scheduler is not None:
            start = self.scheduler.start
            scheduler = ArrivalScheduler(self._schedule(), start)
            scheduler.sent = int(scheduler.schedule.count_until(max(0.0, time.perf_counter() - start)))
            self.scheduler = scheduler

    @staticmethod
    def of(environment: Environment) -> OpenModelDriver | None:
        """``environment``'s driver, if a chat user of the open model has started in this process."""
        driver = state_of(environment).chat_open_model
        return driver if isinstance(driver, OpenModelDriver) else None

    @classmethod
    def for_environment(cls, environment: Environment, settings: ChatSettings) -> OpenModelDriver:
        driver = cls.of(environment)
        if driver is None:
            driver = cls(environment, settings)
            state_of(environment).chat_open_model = driver
        elif driver.settings is not settings and not driver.clients:
            # a new test (web UI) resolved the options again: send on its schedule, not the previous test's
            driver.settings = settings
        return driver

    def register(self, client: ChatClient) -> None:
        self.clients.append(client)
        if self.greenlet is None or self.greenlet.dead:
            self.scheduler = ArrivalScheduler(self._schedule(), time.perf_counter())
            self.greenlet = gevent.spawn(self._run)

    def unregister(self, client: ChatClient) -> None:
        if client in self.clients:
            self.clients.remove(client)
        if not self.clients and self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None

    def _next_client(self) -> ChatClient | None:
        clients = self.clients
        for _ in range(len(clients)):
            self._rr = (self._rr + 1) % len(clients)
            client = clients[self._rr]
            if client.connected:
                return client
        return None

    def _run(self) -> None:
        assert self.scheduler is not None
        backlog: deque[float] = deque()  # intended times due but not sent yet (popped from the left)
        fire = self.environment.events.request.fire
        success = SampleSink.of(self.environment).success  # straight to the stats while nobody else listens
        s = self.settings
        completed = s.protocol.completed
        while True:
            now = time.perf_counter()
            backlog.extend(self.scheduler.due(now))  # re-read: set_share may swap it
            while backlog:
                intended = backlog[0]
                client = self._next_client()
                now = time.perf_counter()
                if client is None:
                    if now - intended >= s.reply_timeout:
                        backlog.popleft()
                        self.given_up += 1
                        count(self.environment, CHAT_NOT_SENT)
                        exc = ChatFailure(f"not sent: no connected chat user for {s.reply_timeout:g} s")
                        ms = (now - intended) * 1000.0
                        fire(request_type="WS", name=completed, response_time=ms, response_length=0,
                             exception=exc, context={"outcome": "timeout", "stages": {}, "intended_ms": ms})
                        fire(request_type="WS", name=completed + " (intended)", response_time=ms,
                             response_length=0, exception=exc, context={})
                        continue
                    break
                backlog.popleft()
                lag_ms = (now - intended) * 1000.0
                if lag_ms > self.max_lag_ms:
                    self.max_lag_ms = lag_ms
                if lag_ms > LAG_WARNING_MS and now - self._lag_warned_at >= LAG_WARNING_EVERY_S:
                    self._lag_warned_at = now
                    logger.warning(
                        "open model: this generator sent a message %.0f ms after its intended time (%d more due, "
                        "%d connected chat users): it cannot keep the arrival rate, so WS agent_completed "
                        "(intended) includes its own delay; add users or workers, or lower --ws-arrival-rate",
                        lag_ms, len(backlog), sum(1 for c in self.clients if c.connected))
                if not success("WS", "generator lag", lag_ms):
                    fire(request_type="WS", name="generator lag", response_time=lag_ms, response_length=0,
                         exception=None, context={})
                client.send(pick_message(s), intended_at=intended)
                self.sent += 1
            now = time.perf_counter()
            wait = self.scheduler.next_at() - now
            if backlog:
                wait = min(wait, 0.05)  # waiting for a connected client
            gevent.sleep(max(0.0, min(wait, 1.0)))
