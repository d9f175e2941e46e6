"""Fault pairing: apply a scenario's ``contract.faults`` faults on its schedule, only against the bundled backend.

* :func:`fault_timeline` (pure): when each fault starts and how long it lasts in wall seconds, for a time scale.
* :func:`check_local_backend`: the target must be the reference backend on a loopback address (host resolves to
  loopback AND ``GET /health`` answers with its shape ``{"status": "ok", "pid": int, "uptime_s": number}``) and
  the admin token must be accepted; anything else raises :class:`FaultTargetError` with a message saying why and
  what to do. Fault injection is refused against any other host.
* :class:`FaultScheduler`: a greenlet (master or local runner only) that applies each fault at its time through a
  :class:`contract.faults.FaultsClient`; :meth:`FaultScheduler.stop` kills it and clears every fault (always called
  at test stop and at quit). Each fault also expires on its own (``for_s``), so even a killed Locust leaves none
  behind for long.

The admin token is never logged or put into an exception text.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)

from config.errors import UsageError
from scenarios.registry import FaultSpec

__all__ = [
    "FaultScheduler",
    "FaultTargetError",
    "PlannedFault",
    "admin_base_url",
    "check_local_backend",
    "fault_timeline",
    "looks_like_reference_health",
    "resolves_to_loopback",
]

logger = logging.getLogger(__name__)


class FaultTargetError(UsageError):
    """Fault injection cannot or must not be used against this target; the message says why and the fix."""


class FaultsApi(Protocol):
    def apply(self, kind: str, ms: int | None = None, for_s: float = 10.0, **params: Any) -> dict[str, Any]: ...

    def list(self) -> list[dict[str, Any]]: ...

    def clear(self) -> None: ...


@dataclass(frozen=True)
class PlannedFault:
    """A fault at wall time ``at_s`` (seconds from test start) for ``for_s`` wall seconds."""

    at_s: float
    for_s: float
    spec: FaultSpec

    def detail(self) -> str:
        """Its intensity and parameters: ``2500 ms``, ``table=messages`` (empty without any)."""
        ms = [f"{self.spec.ms} ms"] if self.spec.ms is not None else []
        return " ".join(ms + [f"{k}={v}" for k, v in self.spec.params])

    def describe(self) -> str:
        detail = f" {self.detail()}" if self.detail() else ""
        return f"{self.spec.kind}{detail} at +{self.at_s:.1f} s for {self.for_s:.1f} s"


def fault_timeline(faults: Sequence[FaultSpec], time_scale: float) -> list[PlannedFault]:
    """The faults sorted by start, their times scaled (``ms`` is an intensity and is never scaled)."""
    if not time_scale > 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
    planned = [PlannedFault(f.start_s * time_scale, f.for_s * time_scale, f) for f in faults]
    return sorted(planned, key=lambda p: p.at_s)


def admin_base_url(url: str) -> str:
    """``ws://h:p/ws`` / ``wss://...`` / ``http://h:p/x`` → the backend's HTTP base ``http(s)://h:p``."""
    parts = urllib.parse.urlsplit(url)
    scheme = {"ws": "http", "wss": "https", "http": "http", "https": "https"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise FaultTargetError(
            f"cannot derive the backend's HTTP address from {url!r}: expected ws://, wss://, http:// or https:// "
            "with a host (set --host or --scenario-target-url)"
        )
    return f"{scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def resolves_to_loopback(host: str, resolve: Callable[[str], list[str]] | None = None) -> bool:
    """True when ``host`` names this machine: a loopback address or ``localhost``
    (:func:`users.probe_options.is_loopback_host`, no lookup), or a name that ``resolve`` (default: the system
    resolver) maps to loopback addresses only. An empty host is not this machine: there is nothing to resolve."""
    # late: importing users/ at module level would register the chat and probe plugins' init listeners before the
    # scenario plugin's, and a bad --scenario-* option must stop the run before them
    from users.probe_options import is_loopback_host

    if not host:
        return False
    if is_loopback_host(host):
        return True
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        return False  # an address, and not a loopback one
    except ValueError:
        pass
    if resolve is None:

        def resolve(name: str) -> list[str]:
            return [str(info[4][0]) for info in socket.getaddrinfo(name, None)]

    try:
        addresses = resolve(host)
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses)


def looks_like_reference_health(body: Any) -> bool:
    """The reference backend's ``GET /health``: ``{"status": "ok", "pid": int, "uptime_s": number, ...}``."""
    return (
        isinstance(body, dict)
        and body.get("status") == "ok"
        and isinstance(body.get("pid"), int)
        and not isinstance(body.get("pid"), bool)
        and isinstance(body.get("uptime_s"), int | float)
    )


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s) only, checked above)
        return json.loads(resp.read() or b"null")


def check_local_backend(base_url: str, client: FaultsApi | None, timeout: float = 5.0) -> None:
    """Raise :class:`FaultTargetError` unless ``base_url`` is the bundled backend on loopback with a working token."""
    host = urllib.parse.urlsplit(base_url).hostname or ""
    refuse = (
        "Fault injection (--inject-faults) only runs against the bundled reference backend on this machine; "
        "it is refused against {what}. Drop --inject-faults for a staging/production target."
    )
    if not resolves_to_loopback(host):
        raise FaultTargetError(refuse.format(what=f"{base_url} (host {host!r} is not a loopback address)"))
    try:
        body = _get_json(base_url + "/health", timeout)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise FaultTargetError(
            f"Fault injection: GET {base_url}/health failed ({reason}); start the reference backend "
            "(python -m reference_backend --port PORT) or fix --host / --scenario-target-url"
        ) from None
    if not looks_like_reference_health(body):
        raise FaultTargetError(
            refuse.format(what=f"{base_url}: its /health does not answer like the reference backend")
        )
    if client is None:
        raise FaultTargetError(
            "Fault injection needs the backend's admin token: set TARGET_ADMIN_TOKEN (or --target-admin-token), "
            "the same value the backend was started with"
        )
    try:
        client.list()
    except Exception as e:  # FaultsError: its text never holds the token
        status = getattr(e, "status", None)
        if status in (401, 403):
            raise FaultTargetError(
                f"Fault injection: {base_url}/admin/faults refused the admin token (HTTP {status}); set "
                "TARGET_ADMIN_TOKEN / --target-admin-token to the token the backend was started with"
            ) from None
        raise FaultTargetError(f"Fault injection: {e}") from None


class FaultScheduler:
    """Applies planned faults on time in a greenlet; :meth:`stop` kills it and clears all faults.

    ``on_applied(planned, at, error)`` is called after each attempt with the wall-clock time it was sent (``at``,
    unix) and why it failed (``error``, None when applied): the scenario plugin notes each fault in the SLA report.

    Usage::

        scheduler = FaultScheduler(FaultsClient(url, token), fault_timeline(scenario.faults, scale))
        scheduler.start()      # at test start (master/local runner)
        ...
        scheduler.stop()       # at test stop and at quit (idempotent; always clears)
    """

    def __init__(
        self,
        client: FaultsApi,
        plan: Sequence[PlannedFault],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = gevent.sleep,
        on_applied: Callable[[PlannedFault, float, str | None], Any] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.plan = list(plan)
        self._clock = clock
        self._sleep = sleep
        self._on_applied = on_applied
        self._wall = wall
        self._greenlet: gevent.Greenlet | None = None
        self.applied: list[tuple[float, PlannedFault, dict[str, Any] | None]] = []
        self.errors: list[str] = []

    def start(self) -> None:
        if self._greenlet is not None and not self._greenlet.dead:
            return
        self._greenlet = gevent.spawn(self.run)

    def run(self) -> None:
        """Apply each planned fault at its time (blocking; :meth:`start` runs it in a greenlet)."""
        t0 = self._clock()
        for planned in self.plan:
            delay = planned.at_s - (self._clock() - t0)
            if delay > 0:
                self._sleep(delay)
            spec = planned.spec
            sent_at = self._wall()
            error: str | None = None
            try:
                result = self.client.apply(spec.kind, ms=spec.ms, for_s=planned.for_s, **dict(spec.params))
            except Exception as e:  # noqa: BLE001 - a failed fault is logged and recorded, the run goes on
                error = str(e)
                self.errors.append(f"{planned.describe()}: {e}")
                logger.error("Scenario fault %s could not be applied: %s", planned.describe(), e)
                result = None
            else:
                logger.info("Scenario fault applied: %s", planned.describe())
            self.applied.append((self._clock() - t0, planned, result))
            if self._on_applied is not None:
                try:
                    self._on_applied(planned, sent_at, error)
                except Exception:  # noqa: BLE001 - noting it for the report never stops the schedule
                    logger.exception("Scenario fault %s could not be noted for the report", planned.describe())

    def stop(self) -> None:
        """Kill the schedule and clear every fault on the backend (logs, never raises)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None
        try:
            self.client.clear()
        except Exception as e:  # noqa: BLE001
            logger.error("Scenario faults could not be cleared: %s (they expire on their own)", e)
        else:
            logger.info("Scenario faults cleared")
