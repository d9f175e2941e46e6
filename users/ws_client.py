"""The chat client of one Locust user: a :class:`users.ws_session.ChatSession` plus samples, heartbeat and reconnect.

Samples (metric names of docs/protocol.md), through the injected ``environment.events.request``; a message's success
samples go straight to Locust's stats and the SLA plug-in while no other listener is there (:mod:`users.sample_sink`):

============  =========================  ==================================================================
type          name                       measured as / failure text
============  =========================  ==================================================================
``WS``        ``connect``                TCP + TLS + upgrade until ``connection_established``; failure texts
                                         ``auth refused at upgrade: HTTP 403 ...``, ``auth failed: AUTH_FAILED:
                                         ...``, ``TCP connect to h:p failed: ...``, ``no connection_established
                                         within 10 s`` ...
``WS``        ``agent_started`` …        send → first event of that type (successes; one per type per message)
``WS``        ``agent_completed``        send → ``agent_completed``; failures ``timeout after 30000 ms``,
                                         ``error DEPENDENCY_TIMEOUT: ...``, ``hang: no event for 10 s``,
                                         ``order: tool_completed before tool_executing``, ``duplicate: ...``,
                                         ``missing: ...``, ``error DISCONNECTED: ...``; ``context`` =
                                         ``{"outcome", "stages", ["intended_ms"]}``
``WS``        ``events missing``         a timeout/hang with no agent event at all (failure)
``WS``        ``hang``                   a message that hung: no frame for ``--ws-hang-after`` (failure, response
                                         time = its wait)
``WS``        ``timeout``                no ``agent_completed`` within ``--ws-reply-timeout`` (failure)
``WS``        ``error``                  the server answered a message with an error frame (``agent_error``,
                                         ``error_message``; failure ``error CODE: text``, response time =
                                         send → error frame); a dropped connection is not one
``WS``        ``heartbeat``              ``ping`` → ``pong``; failure ``heartbeat: no pong within 5 s``
``WS``        ``disconnect``             the connection dropped with messages in flight, with a close code that is not
                                         a planned one, or without a close frame and the reconnect then failed
                                         (failure; reconnect follows with backoff); a close by the client itself
                                         (user stopped, flow done) is planned: no sample
``WS``        ``reconnect``              a planned reconnect succeeded (success; close → connected again): the server
                                         closed with 1000/1001/1012/1013, or without a close frame (a balancer's
                                         timeout), with nothing in flight, or ``--ws-max-age`` retired the
                                         connection; its cause counted per kind (``reconnects`` of the report)
``WS``        ``heartbeat recovery``     the connection was closed for lost heartbeats (``--ws-heartbeat-misses``
                                         pongs missed): success at the first pong on a new connection, response
                                         time = the latest such loss → that pong; failure ``heartbeat recovery: no
                                         working session N s after the heartbeat was lost`` when the user stops
                                         with the loss unrecovered for longer than an interval + timeout + 1 s
``WS``        ``protocol anomaly``       a frame or event the protocol does not allow (failure, response time 0;
                                         the text names the kind: ``protocol anomaly: duplicate completed``,
                                         ``malformed json``, ``binary frame``, ``invalid utf-8``, ``unknown id``,
                                         ``order violation``, ``duplicate event`` ...)
``WS``        ``agent_completed (intended)``  open model only: intended send → end (coordinated-omission corrected)
``WS``        ``generator lag``          open model only: intended → actual send
============  =========================  ==================================================================
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust.env import Environment

from sla_checks.counters import ANOMALY_PREFIX, CHAT_SENT, RECONNECT_PREFIX, count
from sla_checks.state import state_of
from tasks.timeline import (
    DEFAULT_EVENTS,
    DUPLICATE_EVENT,
    ORDER_VIOLATION,
    InFlight,
    MessageTimeline,
    Outcome,
    OutcomeKind,
)
from users.auth import TokenError
from users.run_threads import note as note_thread
from users.sample_sink import Sample, SampleSink
from users.ws_options import ChatSettings
from users.ws_session import (
    EOF_CLOSE,
    PLANNED_CLOSE_CODES,
    ChatFailure,
    ChatSession,
    ConnectError,
    HeartbeatError,
    proxy_for,
)

logger = logging.getLogger(__name__)

WS = "WS"
CONNECT = "connect"
EVENTS_MISSING = "events missing"
HANG = "hang"
TIMEOUT = "timeout"
ERROR = "error"
ABORT_CODE = "DISCONNECTED"
"""Error code of a message ended by the client (connection lost, send failed): not the server's error frame."""
HEARTBEAT = "heartbeat"
DISCONNECT = "disconnect"
RECONNECT = "reconnect"
HEARTBEAT_RECOVERY = "heartbeat recovery"
HEARTBEAT_LOST = "heartbeat:"
"""How the reason of a connection the client closed for lost heartbeats starts (users.ws_session)."""
RECOVERY_SLACK_S = 1.0
"""A recovery still pending at the user's stop fails once its loss is older than one heartbeat interval + timeout + this
(time enough for a working reconnect to answer its first ping); a younger one is not judged."""
MAX_AGE_CAUSE = "max age"
EOF_CAUSE = "eof"
PLANNED_DELAY_S = (0.05, 0.5)
"""A planned reconnect waits a random delay in this range first, so a balancer closing every connection at once
does not get every reconnect in the same instant."""
PROTOCOL_ANOMALY = "protocol anomaly"
GENERATOR_LAG = "generator lag"
INTENDED_SUFFIX = " (intended)"

_EMPTY: dict[str, Any] = {}
_OUTCOME_METRIC = {OutcomeKind.HANG: HANG, OutcomeKind.TIMEOUT: TIMEOUT, OutcomeKind.ERROR: ERROR}
_anomalies_logged: set[str] = set()


class _SessionHooks:
    """The callbacks of one connection that need to know which connection called (two lambdas with their closures
    cost 0.4 KiB per idle session, this 0.2)."""

    __slots__ = ("client", "session")

    def __init__(self, client: ChatClient, session: ChatSession) -> None:
        self.client, self.session = client, session

    def heartbeat(self, rtt_ms: float | None, error: str | None) -> None:
        self.client._on_heartbeat(rtt_ms, error, self.session)

    def closed(self, reason: str) -> None:
        self.client._on_closed(self.session, reason)


class ChatClient:
    """One user's chat connection with measurement. Create per user; :meth:`close` in ``on_stop``."""

    # slots: one client per user, so its instance dict (~0.3 KiB) is paid by every idle session (issue 17);
    # "__dict__" keeps any other attribute possible
    __slots__ = (
        "environment", "settings", "url", "user_number", "session", "failures_in_row", "next_attempt_at", "sent",
        "ended", "_reconnect", "_draining", "_max_age_at", "_recovery", "_fire", "_metric", "_wire_completed",
        "_completed", "_sink", "__dict__", "__weakref__",
    )

    def __init__(self, environment: Environment, settings: ChatSettings, url: str, user_number: int) -> None:
        self.environment = environment
        self.settings = settings
        self.url = url
        self.user_number = user_number
        self.session: ChatSession | None = None
        self.failures_in_row = 0
        self.next_attempt_at = 0.0
        self.sent = 0
        self.ended = 0
        self._reconnect: tuple[str, float, str | None] | None = None
        """A planned reconnect under way: (cause, when the old connection ended, and for a close without a close
        frame the close's text: it is planned only if the reconnect then succeeds)."""
        self._draining: set[ChatSession] | None = None
        """Retired connections whose messages are still in flight (made on the first retirement: an empty set per
        user is 0.2 KiB)."""
        self._max_age_at = float("inf")
        self._recovery: tuple[float, float, str] | None = None
        """A heartbeat loss not yet recovered from: (first loss of the episode, latest loss, its reason)."""
        self._fire: Callable[..., None] = environment.events.request.fire
        self._sink = SampleSink.of(environment)
        """Success samples straight to Locust's stats and the SLA plugin when no other listener needs them."""
        # Samples and their stage gaps carry docs/protocol.md's metric names whatever the backend calls its events
        # (``--ws-protocol``), so SLA thresholds, reports and attribution keep working: the configured events map,
        # in order, onto the canonical five.
        self._metric = metric_names(settings.protocol.events)
        self._wire_completed = settings.protocol.completed
        self._completed = self._metric.get(self._wire_completed, self._wire_completed)

    # -- connection ----------------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Open and younger than ``--ws-max-age``: a new message may go on this connection."""
        return self.session is not None and self.session.open and time.perf_counter() < self._max_age_at

    def connect(self, token: str | None = None) -> bool:
        """Open a new connection (closing any old one); fires ``WS connect``. False on failure."""
        if self.session is not None:
            self.session.close()
            self.session = None
        s = self.settings
        if token is None and s.tokens is not None:
            start = time.perf_counter()
            try:
                token = s.tokens.token(self.user_number).value
            except TokenError as exc:  # login refused, or a token file with nothing unexpired: this connect fails
                self._fire(request_type=WS, name=CONNECT, response_time=(time.perf_counter() - start) * 1000.0,
                           response_length=0, exception=ChatFailure(f"no token: {exc}"), context=_EMPTY)
                self._backoff()
                return False
        session = ChatSession(
            self.url,
            config=s.protocol,
            token=token,
            auth_mode=s.auth_mode,
            ssl_context=s.ssl_context() if self.url.startswith("wss://") else None,
            client_cert=bool(s.client_cert),
            compression=s.compression,
            proxy=proxy_for(self.url, s.proxy),
            connect_timeout=s.connect_timeout,
            reply_timeout=s.reply_timeout,
            hang_after=s.hang_after,
            max_frame=s.max_frame,
            on_outcome=self._on_outcome,
            on_anomaly=self._on_anomaly,
            heartbeat_interval=s.heartbeat_interval,
            heartbeat_timeout=s.heartbeat_timeout,
            heartbeat_misses=s.heartbeat_misses,
            on_event=self._on_event,
        )
        hooks = _SessionHooks(self, session)
        session.on_heartbeat = hooks.heartbeat
        session.on_closed = hooks.closed
        start = time.perf_counter()
        try:
            elapsed = session.connect()
        except ConnectError as exc:
            self._fire(request_type=WS, name=CONNECT, response_time=(time.perf_counter() - start) * 1000.0,
                       response_length=0, exception=exc, context=_EMPTY)
            self._backoff()
            if exc.auth:
                logger.warning("chat user %d: %s", self.user_number, exc)
            pending = self._reconnect
            if pending is not None and pending[2] is not None:
                # closed without a close frame and the server does not take a new connection: it was lost
                self._reconnect = None
                self._fire(request_type=WS, name=DISCONNECT, response_time=0.0, response_length=0,
                           exception=ChatFailure(f"disconnect: {pending[2]}; the reconnect failed: {exc}"),
                           context=_EMPTY)
            return False
        self._fire(request_type=WS, name=CONNECT, response_time=elapsed, response_length=0, exception=None,
                   context=_EMPTY)
        self.session = session
        max_age = s.max_age
        # each connection retires at 90-100 % of --ws-max-age, so connections opened together do not all retire
        # (and reconnect) in the same instant
        self._max_age_at = (session.connected_at + max_age * random.uniform(0.9, 1.0)) if max_age else float("inf")
        self.failures_in_row = 0
        self.next_attempt_at = 0.0
        pending = self._reconnect
        if pending is not None:
            self._reconnect = None
            cause, since, _ = pending
            self._fire(request_type=WS, name=RECONNECT, response_time=(time.perf_counter() - since) * 1000.0,
                       response_length=0, exception=None, context={"cause": cause})
            count(self.environment, RECONNECT_PREFIX + cause)
        return True

    def _backoff(self) -> None:
        self.failures_in_row += 1
        delay = min(self.settings.reconnect_max_backoff, 0.25 * (2 ** min(self.failures_in_row, 10)))
        self.next_attempt_at = time.perf_counter() + delay * random.uniform(0.8, 1.2)

    def ensure_connected(self) -> bool:
        """Connected, or reconnect after the backoff delay (sleeping it); False if this attempt failed. A
        connection past ``--ws-max-age`` is retired first (drained: its messages in flight still end on it)."""
        if self.connected:
            return True
        session = self.session
        if session is not None and session.open:
            self._retire(session)
        wait = self.next_attempt_at - time.perf_counter()
        if wait > 0:
            gevent.sleep(wait)
        return self.connect()

    def _retire(self, session: ChatSession) -> None:
        """Take ``session`` out of use (no new message goes on it): closed now when nothing is in flight on it,
        else once its messages have ended (each by its own deadline at the latest)."""
        self.session = None
        self._max_age_at = float("inf")
        self._reconnect = (MAX_AGE_CAUSE, time.perf_counter(), None)
        self.next_attempt_at = 0.0
        pending = session.dispatcher.pending()
        if not pending:
            session.close(reason=MAX_AGE_CAUSE)
            return
        draining = self._draining
        if draining is None:
            draining = self._draining = set()
        draining.add(session)

        def drain() -> None:
            try:
                session.wait(pending, self.settings.reply_timeout + 5.0)
            finally:
                draining.discard(session)
                session.close(reason=MAX_AGE_CAUSE)

        gevent.spawn(drain)

    def _on_closed(self, session: ChatSession, reason: str) -> None:
        """The server ended ``session`` (or it was lost). A close with nothing in flight and a planned code (or
        without a close frame, confirmed by the reconnect) is a planned reconnect; anything else a disconnect."""
        if session is not self.session:  # a retired connection: its close is no news unless it cut messages
            if session.lost_in_flight:
                self._fire(request_type=WS, name=DISCONNECT, response_time=0.0, response_length=0,
                           exception=ChatFailure(f"disconnect: {reason}"), context=_EMPTY)
            return
        if reason.startswith(HEARTBEAT_LOST):
            now = time.perf_counter()
            first = self._recovery[0] if self._recovery is not None else now
            self._recovery = (first, now, reason)
        code = session.close_code
        if not session.lost_in_flight and (code in PLANNED_CLOSE_CODES or code == EOF_CLOSE):
            cause = EOF_CAUSE if code == EOF_CLOSE else f"close {code}"
            self._reconnect = (cause, time.perf_counter(), reason if code == EOF_CLOSE else None)
            self.next_attempt_at = time.perf_counter() + random.uniform(*PLANNED_DELAY_S)
            return
        self._reconnect = None
        self._fire(request_type=WS, name=DISCONNECT, response_time=0.0, response_length=0,
                   exception=ChatFailure(f"disconnect: {reason}"), context=_EMPTY)
        self._backoff()

    def _on_anomaly(self, name: str) -> None:
        if name not in _anomalies_logged:
            _anomalies_logged.add(name)
            logger.warning("chat: first '%s' frame seen (counted per kind in the SLA report's anomalies; logged once)",
                           name)
        counts = state_of(self.environment).chat_anomalies
        counts[name] = counts.get(name, 0) + 1
        count(self.environment, ANOMALY_PREFIX + name)
        self._fire(request_type=WS, name=PROTOCOL_ANOMALY, response_time=0.0, response_length=0,
                   exception=ChatFailure(f"protocol anomaly: {name}"), context=_EMPTY)

    # -- messages ------------------------------------------------------------------------------------------------
    def send(self, content: str, intended_at: float | None = None) -> MessageTimeline | None:
        """Send one message (not waiting); its samples fire when it ends. ``None`` when not connected (or the
        connection is past ``--ws-max-age``)."""
        session = self.session
        if session is None or not self.connected:
            return None
        self.sent += 1
        count(self.environment, CHAT_SENT)
        timeline = session.send_message(content, intended_at=intended_at)
        if timeline is not None:
            note_thread(timeline.thread_id)  # the cleanup check's scope (users.cleanup_check)
        return timeline

    def send_and_await(self, contents: list[str]) -> list[Outcome]:
        """Send every content at once and wait until all ended (each by its own deadline)."""
        session = self.session
        if session is None or not session.open:
            return []
        timelines = [t for t in (self.send(c) for c in contents) if t is not None]
        guard = self.settings.reply_timeout + 5.0
        if not session.wait(timelines, guard):
            # cannot happen unless the reader died: end them here so nothing is left waiting
            logger.error("chat user %d: reader did not end messages within %.0f s; closing", self.user_number, guard)
            session.close(reason="reader stuck")
        return [t.outcome for t in timelines if t.outcome is not None]

    def _on_event(self, timeline: MessageTimeline) -> None:
        """First arrivals of event types for a message still going on (the reader's batch of frames ended): their
        samples now, not at the message's end."""
        arrivals = timeline.first_arrivals(timeline.reported)
        timeline.reported += len(arrivals)
        metric = self._metric
        self._event_samples([(metric.get(name, name), ms, None, None) for name, ms in arrivals])

    def _event_samples(self, samples: list[Sample]) -> None:
        """Success samples of agent events: at once to the known listeners, else one ``fire`` each."""
        if samples and not self._sink.successes(WS, samples):
            fire = self._fire
            for name, ms, _stages, _intended in samples:
                fire(request_type=WS, name=name, response_time=ms, response_length=0, exception=None,
                     context=_EMPTY)

    def _on_outcome(self, timeline: MessageTimeline, outcome: Outcome) -> None:
        self.ended += 1
        fire = self._fire
        completed = self._completed
        wire_completed = self._wire_completed
        metric = self._metric
        # first arrivals not reported while the message went on (arrival order; ``reported`` of them were)
        samples: list[Sample] = [(metric.get(name, name), ms, None, None)
                                 for name, ms in islice(outcome.first_ms.items(), timeline.reported, None)
                                 if name != wire_completed]
        failure = outcome.failure
        stages = stage_names(outcome.stages, metric) if metric else None  # the gaps under the metric names
        intended = outcome.intended_latency_ms
        if failure is None:
            # the common end, a success with nothing but its stage gaps (and, in the open model, its latency from
            # the intended send time) to tell: its events and itself recorded at once, without building the context
            # (only a listener other than the known ones reads it). A success has no order violation or duplicate:
            # either would be its failure.
            done = [*samples, (completed, outcome.latency_ms, outcome.stages if stages is None else stages, intended)]
            if intended is not None:
                done.append((completed + INTENDED_SUFFIX, intended, None, None))
            if self._sink.successes(WS, done):
                return
        self._event_samples(samples)  # a failure's events, or a success some listener must see fired
        exc = ChatFailure(failure) if failure is not None else None
        context = outcome.context()
        if stages is not None:
            context["stages"] = stages
        fire(request_type=WS, name=completed, response_time=outcome.latency_ms, response_length=0, exception=exc,
             context=context)
        if outcome.events_missing and outcome.kind in (OutcomeKind.TIMEOUT, OutcomeKind.HANG):
            fire(request_type=WS, name=EVENTS_MISSING, response_time=outcome.latency_ms, response_length=0,
                 exception=ChatFailure(f"no agent event: {failure}"), context=_EMPTY)
        outcome_metric = _OUTCOME_METRIC.get(outcome.kind)
        if outcome_metric is not None and (outcome_metric != ERROR or outcome.error_code != ABORT_CODE):
            # how the message failed, as a metric of its own: thresholds can allow graceful errors, not hangs
            fire(request_type=WS, name=outcome_metric, response_time=outcome.latency_ms, response_length=0,
                 exception=exc, context=_EMPTY)
        if outcome.order_violations:
            self._on_anomaly(ORDER_VIOLATION)
        if outcome.duplicates:
            self._on_anomaly(DUPLICATE_EVENT)
        if outcome.intended_latency_ms is not None:  # a failure, or a success some listener must see fired
            fire(request_type=WS, name=completed + INTENDED_SUFFIX, response_time=outcome.intended_latency_ms,
                 response_length=0, exception=exc, context=_EMPTY)

    # -- heartbeat -----------------------------------------------------------------------------------------------
    def _on_heartbeat(self, rtt_ms: float | None, error: str | None, session: ChatSession | None = None) -> None:
        """``session``'s reader ran a heartbeat: ``rtt_ms`` of the pong, or the miss's ``error`` text."""
        if error is None:
            self._fire(request_type=WS, name=HEARTBEAT, response_time=rtt_ms, response_length=0, exception=None,
                       context=_EMPTY)
            recovery = self._recovery
            if recovery is not None and session is not None and session is self.session:
                # the first pong on a connection opened after the heartbeat was lost: a working session again
                self._recovery = None
                self._fire(request_type=WS, name=HEARTBEAT_RECOVERY,
                           response_time=(time.perf_counter() - recovery[1]) * 1000.0, response_length=0,
                           exception=None, context=_EMPTY)
        else:
            self._fire(request_type=WS, name=HEARTBEAT, response_time=self.settings.heartbeat_timeout * 1000.0,
                       response_length=0, exception=HeartbeatError(error), context=_EMPTY)

    # -- closing -------------------------------------------------------------------------------------------------
    def close(self) -> list[InFlight]:
        """Close the connection (its reader runs the heartbeat). Messages still in flight are returned (how long
        each has waited, its deadline), not reported here: the stop cut them off, and the SLA verdict decides
        whether they had already waited too long (:func:`users.chat.count_abandoned`)."""
        in_flight: list[InFlight] = []
        session, self.session = self.session, None
        self._reconnect = None
        self._recovery_at_stop()
        now = time.perf_counter()
        for old in [session, *(self._draining or ())]:
            if old is not None:
                in_flight.extend(old.dispatcher.in_flight_at(now))
                old.on_outcome = None
                old.close(reason="user stopped")
        if self._draining is not None:
            self._draining.clear()
        return in_flight


    def _recovery_at_stop(self) -> None:
        """A heartbeat loss still not recovered from when the user stops: a failed recovery once the loss is older
        than a working reconnect needs (:data:`RECOVERY_SLACK_S`), else not judged."""
        recovery, self._recovery = self._recovery, None
        if recovery is None:
            return
        first, _latest, reason = recovery
        waited = time.perf_counter() - first
        s = self.settings
        if waited <= s.heartbeat_interval + s.heartbeat_timeout + RECOVERY_SLACK_S:
            return
        self._fire(request_type=WS, name=HEARTBEAT_RECOVERY, response_time=waited * 1000.0, response_length=0,
                   exception=HeartbeatError(f"heartbeat recovery: no working session {waited:.1f} s after the "
                                            f"heartbeat was lost ({reason})"), context=_EMPTY)


def metric_names(events: tuple[str, ...]) -> dict[str, str]:
    """Wire event type -> metric name: a backend's own five event names, in pipeline order, map onto docs/protocol.md's
    (``WS agent_started`` ... ``WS agent_completed``); the last configured event is always ``agent_completed``.
    Events beyond those keep their own names."""
    if tuple(events) == DEFAULT_EVENTS or not events:
        return {}
    names = dict(zip(events[:-1], DEFAULT_EVENTS[:-1], strict=False)) if len(events) == len(DEFAULT_EVENTS) else {}
    names[events[-1]] = DEFAULT_EVENTS[-1]
    return {wire: canon for wire, canon in names.items() if wire != canon}


def stage_names(stages: Mapping[str, float], metric: Mapping[str, str]) -> dict[str, float]:
    """An outcome's ``"a→b"`` gaps under the metric names of ``a`` and ``b`` (see :func:`metric_names`)."""
    out: dict[str, float] = {}
    for gap, ms in stages.items():
        a, sep, b = gap.partition("→")
        out[f"{metric.get(a, a)}{sep}{metric.get(b, b)}" if sep else gap] = ms
    return out
