"""The per-message agent-event timeline and the frame dispatcher: pure, sans-IO state machines.

Nothing here touches a socket, a clock or a greenlet. The I/O layer (``users/chat.py``) feeds decoded frames with the
time they arrived, ``(frame, now)``, and polls deadlines with ``now``; everything that happens to a message is
decided here, so every path is unit-testable with an injected clock (``tests/unit/test_timeline*.py``).

Usage::

    config = ProtocolConfig()                          # docs/protocol.md names; see ProtocolConfig for other backends
    dispatcher = Dispatcher(config)
    timeline = MessageTimeline(config, thread_id="t1", correlation_id="c1", sent_at=now,
                               reply_timeout=30.0, hang_after=10.0)
    dispatcher.track(timeline)
    routed = dispatcher.dispatch_text(raw_text, now)   # -> Routed(kind, frame, timeline, outcome)
    outcomes = dispatcher.poll(now)                    # deadlines: timeout / hang

A message ends as exactly one :class:`OutcomeKind`: ``COMPLETED``, ``ERROR``, ``TIMEOUT`` or ``HANG``. A completed
message may still be a *failure* when the protocol was violated (events out of order, a duplicated once-only event,
a required event missing); :attr:`Outcome.failure` holds the text Locust shows, ``None`` for success.

Times: ``now``/``sent_at`` are seconds from any monotonic clock (the I/O layer uses ``time.perf_counter()``);
every duration in an :class:`Outcome` is in milliseconds.
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import orjson

from config.errors import SuiteError, UsageError

__all__ = [
    "ProtocolConfig",
    "ConfigError",
    "ProtocolConfigError",
    "TimelineState",
    "OutcomeKind",
    "Outcome",
    "MessageTimeline",
    "RouteKind",
    "Routed",
    "Dispatcher",
    "LocalProtocolError",
    "InFlight",
]

DEFAULT_EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


class ProtocolConfigError(UsageError, ValueError):
    """A protocol mapping (``--ws-protocol`` file, ``--ws-event-names``) has a bad key or value; the text names both
    and the fix."""


ConfigError = ProtocolConfigError
"""The same class under its former name."""


class LocalProtocolError(SuiteError, RuntimeError):
    """The caller used a timeline in a way that cannot happen (e.g. feeding a frame with another message's id)."""


@dataclass(frozen=True, slots=True)
class ProtocolConfig:
    """Names the timeline and dispatcher look for in frames. Defaults follow docs/protocol.md.

    Override any of them for a backend with other names (``--ws-protocol FILE`` with a TOML/JSON table of these
    keys, or ``--ws-event-names``).
    """

    type_field: str = "type"
    """Top-level key holding the frame type."""
    envelope: str = "data"
    """Key under which server events keep their details (``data``; some backends use ``payload``)."""
    send_envelope: str = "payload"
    """Key under which the client's ``user_message`` keeps content and ids."""
    thread_field: str = "thread_id"
    """Id field routed on when no correlation id is echoed (top level, else inside the envelope)."""
    correlation_field: str = "correlation_id"
    """Id field routed on first where the server echoes it (top level, else inside the envelope)."""
    content_field: str = "content"
    """Key of the message text inside the send envelope."""
    events: tuple[str, ...] = DEFAULT_EVENTS
    """Agent event types in canonical order; the first starts a reply, the last completes it."""
    required: tuple[str, ...] | None = None
    """Events every completed reply must contain (``None``: all of ``events``)."""
    pairs: tuple[tuple[str, str], ...] = (("tool_executing", "tool_completed"),)
    """(opener, closer) events: a closer without an unmatched opener is an order violation."""
    error_types: tuple[str, ...] = ("agent_error", "error_message")
    """Frame types that end a message as ``error``."""
    error_code_field: str = "error_code"
    """Error code key (top level, else in the envelope)."""
    error_message_field: str = "error_message"
    """Error text key (top level, else in the envelope)."""
    error_context_field: str = "error_context"
    """Dict inside the envelope searched for the error code last (``agent_error``'s ``data.error_context``)."""
    user_message_type: str = "user_message"
    """Type of the frame the client sends."""
    ping_type: str = "ping"
    """Type of the client's heartbeat frame."""
    pong_type: str = "pong"
    """Type of the server's heartbeat answer."""
    welcome_type: str = "connection_established"
    """Type of the frame that completes a connect."""
    ack_type: str = "ack"
    """Type the server answers unknown client frames with (counted, otherwise ignored)."""
    auth_error_code: str = "AUTH_FAILED"
    """Error code of a refused token (then the server closes with 1008)."""

    def __post_init__(self) -> None:
        if len(self.events) < 2:
            raise ProtocolConfigError(
                f"Protocol option 'events' has value {list(self.events)!r}: it needs at least two event names "
                "(the first starts a reply, the last completes it), e.g. "
                f"{','.join(DEFAULT_EVENTS)}."
            )
        if len(set(self.events)) != len(self.events):
            raise ProtocolConfigError(f"Protocol option 'events' has value {list(self.events)!r}: names must be unique.")
        known = set(self.events)
        for name in self.required or ():
            if name not in known:
                raise ProtocolConfigError(
                    f"Protocol option 'required' names {name!r}, which is not in 'events' {list(self.events)!r}."
                )
        for pair in self.pairs:
            if len(pair) != 2 or pair[0] not in known or pair[1] not in known:
                raise ProtocolConfigError(
                    f"Protocol option 'pairs' has entry {list(pair)!r}: each must be [opener, closer], both in "
                    f"'events' {list(self.events)!r} (use pairs = [] when the backend has no tool events)."
                )
        for name in self.error_types:
            if name in known:
                raise ProtocolConfigError(f"Protocol option 'error_types' entry {name!r} is also an agent event name.")

    @property
    def started(self) -> str:
        """The event that starts a reply."""
        return self.events[0]

    @property
    def completed(self) -> str:
        """The event that completes a reply."""
        return self.events[-1]

    @property
    def required_events(self) -> tuple[str, ...]:
        return self.events if self.required is None else self.required

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], source: str = "protocol mapping") -> ProtocolConfig:
        """Build from a dict (a parsed TOML/JSON file); unknown keys and wrong types are errors naming the key."""
        names = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        if "events" in mapping and isinstance(mapping["events"], list | tuple):
            # defaults that name events must follow a renamed event list unless given explicitly
            given = set(mapping["events"])
            if "pairs" not in mapping:
                default_pairs: Any = names["pairs"].default
                kwargs["pairs"] = tuple(p for p in default_pairs if p[0] in given and p[1] in given)
        for key, value in mapping.items():
            if key not in names:
                raise ProtocolConfigError(
                    f"{source}: unknown key {key!r}. Known keys: {', '.join(sorted(names))}."
                )
            if key in ("events", "required", "error_types"):
                if value is None and key == "required":
                    kwargs[key] = None
                    continue
                if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
                    raise ProtocolConfigError(f"{source}: key {key!r} has value {value!r}. Not a list of names.")
                kwargs[key] = tuple(value)
            elif key == "pairs":
                if not isinstance(value, list | tuple) or not all(
                    isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in value
                ):
                    raise ProtocolConfigError(
                        f"{source}: key 'pairs' has value {value!r}. Not a list of [opener, closer] name pairs."
                    )
                kwargs[key] = tuple((p[0], p[1]) for p in value)
            else:
                if not isinstance(value, str) or not value:
                    raise ProtocolConfigError(f"{source}: key {key!r} has value {value!r}. Not a non-empty string.")
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str) -> ProtocolConfig:
        """Load a ``.toml`` or ``.json`` file of :class:`ProtocolConfig` keys."""
        import json
        import tomllib

        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise ProtocolConfigError(f"Protocol file {path!r} cannot be read ({exc.strerror}). Check --ws-protocol.") from None
        try:
            data = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolConfigError(f"Protocol file {path!r} is not valid {'JSON' if path.endswith('.json') else 'TOML'}: {exc}") from None
        if not isinstance(data, dict):
            raise ProtocolConfigError(f"Protocol file {path!r} must hold a table/object of keys, not {type(data).__name__}.")
        return cls.from_mapping(data, source=f"Protocol file {path!r}")


class TimelineState(enum.Enum):
    """Where one message's reply stands."""

    #: sent; no frame for this message has arrived yet
    AWAITING = "awaiting"
    #: at least one agent event arrived; waiting for the completing event
    IN_PROGRESS = "in progress"
    #: the completing event arrived (terminal)
    COMPLETED = "completed"
    #: an error frame for this message arrived, or the connection was lost (terminal)
    ERROR = "error"
    #: the completing event did not arrive within the reply timeout (terminal)
    TIMEOUT = "timeout"
    #: no frame for this message arrived for hang-after seconds (terminal)
    HANG = "hang"


class OutcomeKind(enum.Enum):
    """How a message ended; exactly one per message."""

    #: the completing event arrived (may still be a failure on a protocol violation)
    COMPLETED = "completed"
    #: an ``agent_error``/``error_message`` frame, or the connection dropped
    ERROR = "error"
    #: no completing event within the reply timeout
    TIMEOUT = "timeout"
    #: no frame for the message within hang-after
    HANG = "hang"


# The per-frame path reads these enum members through module names: on Python 3.11 ``Enum.MEMBER`` is a descriptor
# call (≈ 0.15 µs), a module global ≈ 0.01 µs, and a round trip reads ~18 of them (issue 17).
_AWAITING = TimelineState.AWAITING
_IN_PROGRESS = TimelineState.IN_PROGRESS
_COMPLETED = OutcomeKind.COMPLETED

_STATE_OF = {
    OutcomeKind.COMPLETED: TimelineState.COMPLETED,
    OutcomeKind.ERROR: TimelineState.ERROR,
    OutcomeKind.TIMEOUT: TimelineState.TIMEOUT,
    OutcomeKind.HANG: TimelineState.HANG,
}


@dataclass(slots=True)
class Outcome:
    """The end of one message. Durations in ms from the actual send. Read-only by convention: it is not frozen
    because a frozen dataclass's ``__init__`` costs 1.8 µs more per message (issue 17)."""

    kind: OutcomeKind
    latency_ms: float
    """From send to the end: the completing/error frame's arrival, the deadline, or the abort."""
    failure: str | None
    """Text of the failure for Locust (``timeout after 30000 ms`` ...); ``None`` = success."""
    first_ms: Mapping[str, float]
    """Agent event name → ms from send of its first arrival, in arrival order."""
    stages: Mapping[str, float]
    """``"a→b"`` → ms between consecutive first arrivals (arrival order)."""
    order_violations: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    frames: int = 0
    """Frames routed to this message (agent events and error frames)."""
    intended_latency_ms: float | None = None
    """From the intended send time (open model), else ``None``."""

    @property
    def events_missing(self) -> bool:
        """No agent event at all arrived (docs/protocol.md's ``WS events missing``)."""
        return not self.first_ms

    def context(self) -> dict[str, Any]:
        """The ``context`` of the ``WS agent_completed`` sample (preamble contract)."""
        ctx: dict[str, Any] = {"outcome": self.kind.value, "stages": dict(self.stages)}
        if self.intended_latency_ms is not None:
            ctx["intended_ms"] = self.intended_latency_ms
        if self.order_violations:
            ctx["order_violations"] = list(self.order_violations)
        if self.duplicates:
            ctx["duplicates"] = list(self.duplicates)
        if self.missing:
            ctx["missing"] = list(self.missing)
        if self.error_code is not None:
            ctx["error_code"] = self.error_code
        return ctx


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:g}"


def _get(frame: Mapping[str, Any], envelope: str, key: str) -> Any:
    """``frame[key]``, else ``frame[envelope][key]``, else ``None``."""
    value = frame.get(key)
    if value is None:
        inner = frame.get(envelope)
        if isinstance(inner, dict):
            value = inner.get(key)
    return value


class MessageTimeline:
    """One sent message's reply: fed ``(frame, now)``, polled with ``now``; ends in one :class:`Outcome`.

    ``sent_at``/``now`` in seconds (any monotonic clock); ``intended_at`` is the open-model schedule time.
    """

    __slots__ = (
        "config",
        "thread_id",
        "correlation_id",
        "sent_at",
        "intended_at",
        "reply_timeout",
        "hang_after",
        "state",
        "outcome",
        "last_frame_at",
        "_first",
        "_counts",
        "_violations",
        "_duplicates",
        "_frames",
        "_once",
        "_index",
        "_closers",
        "_required_before",
        "_completed",
        "first_arrival",
        "reported",
    )

    def __init__(
        self,
        config: ProtocolConfig,
        *,
        thread_id: str | None,
        correlation_id: str | None,
        sent_at: float,
        reply_timeout: float = 30.0,
        hang_after: float = 10.0,
        intended_at: float | None = None,
    ) -> None:
        if reply_timeout <= 0 or hang_after <= 0:
            raise ValueError(f"reply_timeout ({reply_timeout}) and hang_after ({hang_after}) must be > 0")
        if thread_id is None and correlation_id is None:
            raise ValueError("a timeline needs a thread_id or a correlation_id to be routed")
        self.config = config
        self.thread_id = thread_id
        self.correlation_id = correlation_id
        self.sent_at = sent_at
        self.intended_at = intended_at
        self.reply_timeout = reply_timeout
        self.hang_after = hang_after
        self.state = _AWAITING
        self.outcome: Outcome | None = None
        self.last_frame_at = sent_at
        self.first_arrival: str | None = None
        """The event type whose first arrival the last :meth:`event` call was (``None`` otherwise): lets the I/O
        layer report each event as it arrives."""
        self.reported = 0
        """How many first arrivals (in arrival order) the I/O layer already reported; it owns this counter."""
        self._first: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._violations: list[str] = []
        self._duplicates: list[str] = []
        self._frames = 0
        rules = _rules(config)
        self._once, self._index, self._closers, self._required_before = rules
        self._completed = config.completed

    # -- deadlines -------------------------------------------------------------------------------------------------
    @property
    def deadline(self) -> float:
        """The earliest time :meth:`poll` can end this message (``inf`` once ended)."""
        if self.outcome is not None:
            return float("inf")
        return min(self.sent_at + self.reply_timeout, self.last_frame_at + self.hang_after)

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def poll(self, now: float) -> Outcome | None:
        """End the message as ``timeout``/``hang`` when a deadline passed at ``now``; the new outcome or ``None``."""
        if self.outcome is not None:
            return None
        timeout_at = self.sent_at + self.reply_timeout
        hang_at = self.last_frame_at + self.hang_after
        if now < timeout_at and now < hang_at:
            return None
        if hang_at < timeout_at:
            return self._end(
                OutcomeKind.HANG, hang_at, f"hang: no event for {_fmt_seconds(self.hang_after)} s"
            )
        return self._end(
            OutcomeKind.TIMEOUT, timeout_at, f"timeout after {self.reply_timeout * 1000:.0f} ms"
        )

    def abort(self, reason: str, now: float, code: str = "DISCONNECTED") -> Outcome | None:
        """End as ``error`` because of something outside the message (the connection dropped, the user stops)."""
        if self.outcome is not None:
            return None
        outcome = self.poll(now)  # a deadline that already passed wins: it happened first
        if outcome is not None:
            return outcome
        return self._end(OutcomeKind.ERROR, now, f"error {code}: {reason}", code=code, message=reason)

    # -- frames ----------------------------------------------------------------------------------------------------
    def feed(self, frame: Mapping[str, Any], now: float) -> Outcome | None:
        """Take one frame routed to this message at ``now``; the outcome when it ends the message, else ``None``.

        Frames after the end are ignored (the dispatcher counts them as late).
        """
        if self.outcome is not None:
            return None
        config = self.config
        kind = frame.get(config.type_field)
        if kind in config.error_types:
            # A deadline that passed before this frame arrived already decided the message.
            if now >= self.sent_at + self.reply_timeout or now >= self.last_frame_at + self.hang_after:
                return self.poll(now)
            self._frames += 1
            self.last_frame_at = now
            code = _get(frame, config.envelope, config.error_code_field)
            if code is None:
                inner = frame.get(config.envelope)
                context = inner.get(config.error_context_field) if isinstance(inner, dict) else None
                if isinstance(context, dict):
                    code = context.get(config.error_code_field)
            message = _get(frame, config.envelope, config.error_message_field)
            code = str(code) if code is not None else str(kind).upper()
            message = str(message) if message is not None else ""
            return self._end(OutcomeKind.ERROR, now, f"error {code}: {message}", code=code, message=message)
        return self.event(kind, now)

    def event(self, kind: Any, now: float) -> Outcome | None:
        """Take one agent event of type ``kind`` at ``now`` (the hot path of :meth:`feed`)."""
        self.first_arrival = None
        if self.outcome is not None:
            return None
        # A deadline that passed before this frame arrived already decided the message.
        if now >= self.sent_at + self.reply_timeout or now >= self.last_frame_at + self.hang_after:
            return self.poll(now)
        self._frames += 1
        self.last_frame_at = now
        index = self._index.get(kind) if isinstance(kind, str) else None
        if index is None:
            # not an agent event (the dispatcher filters these; tolerated here for direct use)
            return None
        first = self._first
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        if count == 1:
            first[kind] = now
            self.first_arrival = kind
            if self.state is _AWAITING:
                self.state = _IN_PROGRESS
            # order: every required event canonically before this one must already have arrived (checking the
            # first arrival suffices: arrivals only accumulate, so a repeat cannot find more missing)
            for before in self._required_before[index]:
                if before not in first:
                    self._violations.append(f"{kind} before {before}")
                    break
        elif kind in self._once:
            self._duplicates.append(kind)
        opener = self._closers.get(kind)
        if opener is not None and self._counts.get(opener, 0) < count:
            violation = f"{kind} before {opener}"
            if not self._violations or self._violations[-1] != violation:
                self._violations.append(violation)
        if kind == self._completed:
            return self._end(_COMPLETED, now, None)
        return None

    def first_arrivals(self, skip: int = 0) -> list[tuple[str, float]]:
        """Each event type's first arrival as (type, ms after the send), in arrival order, without the first
        ``skip``: what the I/O layer reports of a message still going on (the same figures its outcome's
        ``first_ms`` will hold)."""
        sent = self.sent_at
        return [(name, (t - sent) * 1000.0) for name, t in list(self._first.items())[skip:]]

    # -- ending ----------------------------------------------------------------------------------------------------
    def _end(
        self,
        kind: OutcomeKind,
        at: float,
        failure: str | None,
        code: str | None = None,
        message: str | None = None,
    ) -> Outcome:
        sent = self.sent_at
        first_ms: dict[str, float] = {}
        stages: dict[str, float] = {}
        a, ta = None, 0.0
        for b, tb in self._first.items():  # insertion order is arrival order (``now`` never decreases)
            first_ms[b] = (tb - sent) * 1000.0
            if a is not None:
                stages[f"{a}→{b}"] = (tb - ta) * 1000.0
            a, ta = b, tb
        missing: tuple[str, ...] = ()
        if kind is _COMPLETED:
            first = self._first
            if len(first) < len(self._index):  # (every event type arrived: none can be missing)
                missing = tuple(n for n in self.config.required_events if n not in first)
            if self._violations:
                failure = f"order: {self._violations[0]}"
            elif self._duplicates:
                failure = f"duplicate: {self._duplicates[0]}"
            elif missing:
                failure = f"missing: {', '.join(missing)}"
        # by position, in Outcome's field order (keywords cost 0.6 µs more per message, issue 17)
        outcome = Outcome(
            kind,  # kind
            (at - sent) * 1000.0,  # latency_ms
            failure,  # failure
            first_ms,  # first_ms
            stages,  # stages
            tuple(self._violations),  # order_violations
            tuple(self._duplicates),  # duplicates
            missing,  # missing
            code,  # error_code
            message,  # error_message
            self._frames,  # frames
            None if self.intended_at is None else (at - self.intended_at) * 1000.0,  # intended_latency_ms
        )
        self.outcome = outcome
        self.state = _STATE_OF[kind]
        return outcome


_Rules = tuple[frozenset[str], dict[str, int], dict[str, str], list[tuple[str, ...]]]
_RULES_CACHE: dict[int, tuple[ProtocolConfig, _Rules]] = {}


def _rules(config: ProtocolConfig) -> _Rules:
    """Precomputed order rules per config (cached: the hot path builds one timeline per message)."""
    key = id(config)
    cached = _RULES_CACHE.get(key)
    if cached is not None and cached[0] is config:
        return cached[1]
    events = config.events
    once = frozenset((config.started, config.completed))
    index = {name: i for i, name in enumerate(events)}
    closers = {closer: opener for opener, closer in config.pairs}
    required = set(config.required_events)
    required_before = [tuple(e for e in events[:i] if e in required) for i in range(len(events))]
    rules: _Rules = (once, index, closers, required_before)
    _RULES_CACHE[key] = (config, rules)
    return rules


# ---------------------------------------------------------------------------------------------------------------------
# Dispatcher
# ---------------------------------------------------------------------------------------------------------------------


class RouteKind(enum.Enum):
    """What a frame turned out to be."""

    #: an agent event or error frame for a tracked message
    MESSAGE = "message"
    #: a heartbeat answer
    PONG = "pong"
    #: the connect welcome
    WELCOME = "welcome"
    #: the server's answer to an unknown client frame
    ACK = "ack"
    #: an error frame for no tracked message (e.g. AUTH_FAILED, JSON_PARSE_ERROR without ids)
    CONNECTION_ERROR = "connection error"
    #: anything counted as an anomaly (see :attr:`Dispatcher.anomalies`)
    ANOMALY = "anomaly"


class InFlight(NamedTuple):
    """A message still waiting for its reply when its connection was given up (the run stopped)."""

    age_ms: float
    """How long it has waited, from its send."""
    deadline_ms: float
    """Its reply deadline (``reply_timeout``), from its send."""


class Routed(NamedTuple):
    """Result of dispatching one frame (a NamedTuple, not a frozen dataclass: it is built once per frame on the hot
    path, and a frozen dataclass's ``__init__`` costs several times more)."""

    kind: RouteKind
    frame: Mapping[str, Any] | None = None
    timeline: MessageTimeline | None = None
    outcome: Outcome | None = None
    anomaly: str | None = None
    """Anomaly name when ``kind`` is ``ANOMALY`` (also counted in :attr:`Dispatcher.anomalies`)."""


_new_tuple = tuple.__new__
_MESSAGE = RouteKind.MESSAGE  # (see _AWAITING)


# Anomaly names (counter keys); stable, shown in logs and reports.
MALFORMED_JSON = "malformed json"
NOT_AN_OBJECT = "not a json object"
MISSING_TYPE = "missing type"
UNKNOWN_TYPE = "unknown type"
UNKNOWN_ID = "unknown id"
NO_ID = "event without id"
LATE_FRAME = "late frame"
DUPLICATE_COMPLETED = "duplicate completed"
BINARY_FRAME = "binary frame"
OVERSIZE_FRAME = "oversize frame"
AMBIGUOUS_ERROR = "unroutable error"
INVALID_UTF8 = "invalid utf-8"
ORDER_VIOLATION = "order violation"
"""A message's agent events out of the canonical order (the message fails too; see :attr:`Outcome.order_violations`)."""
DUPLICATE_EVENT = "duplicate event"
"""A once-only agent event repeated within one message (the message fails too; see :attr:`Outcome.duplicates`)."""

ANOMALIES = (
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    MISSING_TYPE,
    UNKNOWN_TYPE,
    UNKNOWN_ID,
    NO_ID,
    LATE_FRAME,
    DUPLICATE_COMPLETED,
    BINARY_FRAME,
    OVERSIZE_FRAME,
    AMBIGUOUS_ERROR,
    INVALID_UTF8,
    ORDER_VIOLATION,
    DUPLICATE_EVENT,
)


def _valid_utf8(text: str | bytes) -> bool:
    if isinstance(text, str):
        return True
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(slots=True)
class Dispatcher:
    """Routes frames of one connection to the tracked messages: by correlation id first, then thread id.

    Frames that fit no message are counted per anomaly kind in :attr:`anomalies` (never raised). Ended messages are
    remembered (bounded, ``remember`` ids) so that their late frames count as ``late frame`` /
    ``duplicate completed`` instead of ``unknown id``.
    """

    config: ProtocolConfig
    remember: int = 64  # per connection: x 10,000 sessions it must stay small
    anomalies: Counter[str] = field(default_factory=Counter)
    _by_corr: dict[str, MessageTimeline] = field(default_factory=dict)
    _by_thread: dict[str, MessageTimeline] = field(default_factory=dict)
    _pending: dict[int, MessageTimeline] = field(default_factory=dict)
    _ended: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _events: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._events = _rules(self.config)[1]

    # -- tracking --------------------------------------------------------------------------------------------------
    def track(self, timeline: MessageTimeline) -> None:
        """Route frames carrying this timeline's ids to it until it ends."""
        if timeline.correlation_id is not None:
            if timeline.correlation_id in self._by_corr:
                raise LocalProtocolError(f"correlation id {timeline.correlation_id!r} is already in flight")
            self._by_corr[timeline.correlation_id] = timeline
        if timeline.thread_id is not None:
            # several messages may share a thread; the latest one owns thread routing
            self._by_thread[timeline.thread_id] = timeline
        self._pending[id(timeline)] = timeline

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def pending(self) -> list[MessageTimeline]:
        return list(self._pending.values())

    def in_flight_at(self, now: float) -> list[InFlight]:
        """Every message still in flight at ``now``: how long it has waited and its reply deadline."""
        return [InFlight((now - t.sent_at) * 1000.0, t.reply_timeout * 1000.0) for t in self._pending.values()]

    def next_deadline(self) -> float:
        """Earliest deadline over the messages in flight (``inf`` when none)."""
        best = float("inf")
        for timeline in self._pending.values():
            d = timeline.deadline
            if d < best:
                best = d
        return best

    def _finish(self, timeline: MessageTimeline) -> None:
        self._pending.pop(id(timeline), None)
        corr = timeline.correlation_id
        if corr is not None and self._by_corr.get(corr) is timeline:
            del self._by_corr[corr]
            self._remember(corr)
        thread = timeline.thread_id
        if thread is not None and self._by_thread.get(thread) is timeline:
            del self._by_thread[thread]
            if thread != corr:
                self._remember(thread)

    def _remember(self, key: str) -> None:
        ended = self._ended
        ended[key] = None
        if len(ended) > self.remember:
            ended.popitem(last=False)

    def note(self, anomaly: str) -> Routed:
        """Count an anomaly seen by the I/O layer (``binary frame``, ``oversize frame``)."""
        self.anomalies[anomaly] += 1
        return Routed(RouteKind.ANOMALY, anomaly=anomaly)

    # -- deadlines -------------------------------------------------------------------------------------------------
    def poll(self, now: float) -> list[Outcome]:
        """End every message whose deadline passed; their outcomes (each timeline's ``outcome`` is set)."""
        ended: list[Outcome] = []
        for timeline in list(self._pending.values()):
            if timeline.deadline <= now:
                outcome = timeline.poll(now)
                if outcome is not None:
                    ended.append(outcome)
                self._finish(timeline)
        return ended

    def abort_all(self, reason: str, now: float, code: str = "DISCONNECTED") -> list[Outcome]:
        """End every message in flight (connection lost / user stopping)."""
        ended: list[Outcome] = []
        for timeline in list(self._pending.values()):
            outcome = timeline.abort(reason, now, code)
            if outcome is not None:
                ended.append(outcome)
            self._finish(timeline)
        return ended

    # -- frames ----------------------------------------------------------------------------------------------------
    def dispatch_text(self, text: str | bytes, now: float) -> Routed:
        """Parse one text frame (JSON) and route it."""
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            return self.note(MALFORMED_JSON if _valid_utf8(text) else INVALID_UTF8)
        if not isinstance(frame, dict):
            return self.note(NOT_AN_OBJECT)
        return self.dispatch(frame, now)

    def dispatch(self, frame: Mapping[str, Any], now: float) -> Routed:
        """Route one decoded frame at ``now``."""
        # fast path: an agent event whose top-level correlation id is in flight (the common case)
        config = self.config
        kind = frame.get(config.type_field)
        if type(kind) is str and kind in self._events:
            corr = frame.get(config.correlation_field)
            if type(corr) is str:
                timeline = self._by_corr.get(corr)
                if timeline is not None:
                    outcome = timeline.event(kind, now)
                    if timeline.outcome is not None:
                        self._finish(timeline)
                    # Routed(...) without the NamedTuple's ``__new__`` (a Python function; one per frame)
                    return _new_tuple(Routed, (_MESSAGE, frame, timeline, outcome, None))
        return self._dispatch(frame, now)

    def _dispatch(self, frame: Mapping[str, Any], now: float) -> Routed:
        config = self.config
        kind = frame.get(config.type_field)
        if kind is None or not isinstance(kind, str):
            return self.note(MISSING_TYPE)
        if kind == config.pong_type:
            return Routed(RouteKind.PONG, frame)
        is_error = kind in config.error_types
        if not is_error and kind not in self._events:
            if kind == config.welcome_type:
                return Routed(RouteKind.WELCOME, frame)
            if kind == config.ack_type:
                return Routed(RouteKind.ACK, frame)
            return self.note(UNKNOWN_TYPE)
        timeline = None
        corr = frame.get(config.correlation_field)
        if corr is None:
            corr = _get(frame, config.envelope, config.correlation_field)
        if corr is not None:
            if not isinstance(corr, str):
                corr = ""  # an id that is not a string matches nothing (and is hashable)
            timeline = self._by_corr.get(corr)
        thread = None
        if timeline is None:
            thread = frame.get(config.thread_field)
            if thread is None:
                thread = _get(frame, config.envelope, config.thread_field)
            if thread is not None:
                if not isinstance(thread, str):
                    thread = ""
                timeline = self._by_thread.get(thread)
        if timeline is None:
            if corr is None and thread is None:
                if is_error:
                    # an error without ids: it belongs to the only message in flight, if there is exactly one
                    if len(self._pending) == 1:
                        timeline = next(iter(self._pending.values()))
                    elif not self._pending:
                        return Routed(RouteKind.CONNECTION_ERROR, frame)
                    else:
                        return self.note(AMBIGUOUS_ERROR)
                else:
                    return self.note(NO_ID)
            else:
                if (corr is not None and corr in self._ended) or (thread is not None and thread in self._ended):
                    if kind == config.completed:
                        return self.note(DUPLICATE_COMPLETED)
                    return self.note(LATE_FRAME)
                return self.note(UNKNOWN_ID)
        outcome = timeline.feed(frame, now)
        if timeline.outcome is not None:
            self._finish(timeline)
        return Routed(RouteKind.MESSAGE, frame, timeline, outcome)
