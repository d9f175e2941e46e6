"""Shared pieces of the infrastructure probes: timed calls, URL redaction, typed request events.

Every probe sample goes through the injected ``environment.events.request`` (never the global ``locust.events``), with
the response time in ms from ``time.perf_counter()``. ``timed`` is our version of Locust's
``events.request.measure``: it takes the environment explicitly, reports a failure instead of letting it kill the
user (a probe that stops probing at the first Redis stall would hide the stall), and lets Locust's control-flow
exceptions through.

Usage::

    with timed(self.environment, "REDIS", "GET") as meta:
        value = client.get(key)
        meta["response_length"] = len(value or b"")
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust.env import Environment
from locust.exception import InterruptTaskSet, RescheduleTask, RescheduleTaskImmediately, StopUser

from config.errors import SuiteError

logger = logging.getLogger(__name__)

__all__ = ["ProbeFailure", "SchemaGate", "TypedRequestEvent", "fire", "redact_url", "timed"]

REDACTED = "***"

# Exceptions that steer Locust itself; a probe must never swallow them.
_CONTROL_FLOW = (StopUser, InterruptTaskSet, RescheduleTask, RescheduleTaskImmediately)

_KV_SECRET = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|secret|token|access_token)=)[^&#]*")


def skip_write_task() -> None:
    """End a write task that ``--probe-read-only`` forbids without spending a wait on it.

    Raises Locust's ``RescheduleTaskImmediately``, so the user draws its next task at once: a read-only probe keeps
    its read sample rate instead of idling through the skipped write tasks' share of the draws. Only for tasks of a
    user that also has a task which waits (every probe's read tasks do), or the draw would spin without yielding.
    """
    raise RescheduleTaskImmediately()


class ProbeFailure(SuiteError):
    """A probe call that returned but did not do what it should (bad status, wrong reply); the text says which."""


def redact_url(url: str) -> str:
    """Return ``url`` (a URL or a libpq ``key=value`` DSN) with any password replaced by ``***``.

    ``redis://:s3cret@h:6379/0`` → ``redis://:***@h:6379/0``; ``postgresql://u:p@h/db?password=x`` →
    ``postgresql://u:***@h/db?password=***``; ``host=h password=p`` → ``host=h password=***``.
    """
    if not url:
        return url
    text = _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, url)
    if "://" not in text:
        return _KV_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    try:
        parts = urlsplit(text)
    except ValueError:
        # Unparseable (e.g. a bad port): hide everything between the scheme and the last '@'.
        scheme, _, rest = text.partition("://")
        if "@" in rest.split("/", 1)[0]:
            return f"{scheme}://{REDACTED}@{rest.split('@')[-1]}"
        return text
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if sep else f"{userinfo}@{hostport}"
        if not sep and not userinfo:
            netloc = hostport
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def fire(
    environment: Environment,
    request_type: str,
    name: str,
    response_time_ms: float,
    *,
    exception: BaseException | None = None,
    response_length: int = 0,
    context: dict[str, Any] | None = None,
) -> None:
    """Fire one request sample on the injected environment."""
    environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=response_time_ms,
        response_length=response_length,
        exception=exception,
        context=context or {},
    )


@contextmanager
def timed(
    environment: Environment,
    request_type: str,
    name: str,
    *,
    context: dict[str, Any] | None = None,
    reraise: bool = False,
) -> Iterator[dict[str, Any]]:
    """Time the block and fire one sample; an exception in the block becomes a failed sample.

    The yielded dict may be updated: ``response_length``, ``context``, or ``exception`` (to fail a sample whose
    block returned normally). The exception is swallowed unless ``reraise``; Locust's control-flow exceptions
    (StopUser, RescheduleTask ...) and ``BaseException``s (GreenletExit on stop) always pass through unreported.
    """
    meta: dict[str, Any] = {"response_length": 0, "context": dict(context or {}), "exception": None}
    start = time.perf_counter()
    try:
        yield meta
    except _CONTROL_FLOW:
        raise
    except Exception as exc:  # noqa: BLE001  (every failure of a probed call is a sample)
        meta["exception"] = exc
        elapsed = (time.perf_counter() - start) * 1000.0
        fire(environment, request_type, name, elapsed, exception=exc, response_length=meta["response_length"],
             context=meta["context"])
        if reraise:
            raise
        return
    elapsed = (time.perf_counter() - start) * 1000.0
    fire(environment, request_type, name, elapsed, exception=meta["exception"],
         response_length=meta["response_length"], context=meta["context"])


class TypedRequestEvent:
    """Stands in for ``environment.events.request`` and rewrites ``request_type`` (FastHttpSession fires the method).

    Usage::

        self.client.request_event = TypedRequestEvent(environment.events.request, "CH")
    """

    def __init__(self, request_event: Any, request_type: str) -> None:
        self._event = request_event
        self.request_type = request_type

    def fire(self, **kwargs: Any) -> None:
        kwargs["request_type"] = self.request_type
        kwargs.pop("response", None)  # keep samples plain (no response object kept by listeners)
        kwargs.pop("url", None)  # may contain query text; names are what reports use
        self._event.fire(**kwargs)


class SchemaGate:
    """Per process: which of a probe's tables are missing, checked once per key (DSN/URL, database, mode).

    ``check`` runs ``create`` (when given) and then ``find_missing``; when something is missing it logs
    ``describe(missing)`` as the one ERROR and fires the one failed ``<request_type> schema`` sample with it. Later
    calls with the same key return the cached answer. An exception from ``find_missing`` (the check could not run)
    propagates and nothing is cached.
    """

    def __init__(self, request_type: str, log: logging.Logger = logger) -> None:
        self.request_type = request_type
        self.log = log
        """Where the ERROR goes: the probe module's own logger, so the log line names the probe."""
        self._missing: dict[tuple[Any, ...], list[str]] = {}
        self._lock = threading.Lock()

    def check(
        self,
        key: tuple[Any, ...],
        environment: Environment,
        find_missing: Callable[[], list[str]],
        describe: Callable[[list[str]], str],
        create: Callable[[], None] | None = None,
    ) -> list[str]:
        with self._lock:
            if key in self._missing:
                return self._missing[key]
            start = time.perf_counter()
            if create is not None:
                create()
            missing = self._missing[key] = find_missing()
            if missing:
                message = describe(missing)
                self.log.error(message)
                fire(environment, self.request_type, "schema", (time.perf_counter() - start) * 1000.0,
                     exception=ProbeFailure(message))
            return missing

    def forget(self) -> None:
        """Check again at the next start (tests)."""
        with self._lock:
            self._missing.clear()
