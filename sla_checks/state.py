"""The suite's state per Locust environment: one declared dataclass, kept beside the environment instead of as
attributes hung on it.

Every plugin of the suite (SLA, chat users, probes, resource monitor, scenarios) reads and writes its part through
``state_of(environment)``; Locust's :class:`~locust.env.Environment` keeps only its own attributes. The registry
holds each environment weakly: a test that builds environments by the hundred leaves nothing behind.

This module is at the bottom of the import order, so it cannot name the classes of the layers above it: a field that
holds one of theirs says which in its docstring, is typed ``object``, and its owner reads it back through a typed
accessor that checks the type (``users.ws_options.chat_settings``, ``users.probe_options.probe_config`` ...).

Usage::

    state = state_of(environment)
    state.pending_counts["chat:sent"] = 1
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sla_checks.engine import Engine
from sla_checks.profiles import Profile

if TYPE_CHECKING:
    from locust.env import Environment

__all__ = ["ArrivalShareTaker", "SlaPluginLike", "SuiteState", "state_of"]


class SlaPluginLike(Protocol):
    """The SLA plugin (:class:`sla_checks.plugin.SlaPlugin`) as the other plugins use it: producers hand it counts,
    in-flight messages and gauges; the scenario plugin hands it the composed profile, the report's scenario block
    and the faults it injected."""

    scenario: dict[str, Any] | None

    @property
    def engine(self) -> Engine: ...

    def record_gauge(self, name: str, value: float, timestamp: float) -> None: ...

    def record_fault(
        self, kind: str, start: float, end: float, detail: str = "", error: str | None = None
    ) -> None: ...

    def reconfigure(self, profile: Profile | None, window_s: float | None = None) -> None: ...


class ArrivalShareTaker(Protocol):
    """The open model's sending driver as the chat options see it (``users.chat_tasks.OpenModelDriver``)."""

    def set_share(self, share: float) -> None: ...


@dataclass(eq=False)
class SuiteState:
    """Everything the suite keeps per environment."""

    sla: SlaPluginLike | None = None
    """The SLA plugin once attached; None before, on a run with ``--sla-off``, or in a bare test environment."""
    pending_gauges: list[tuple[float, str, float]] = field(default_factory=list)
    """Gauge readings ``(unix ts, name, value)`` recorded before the SLA plugin was attached (bounded)."""
    pending_counts: dict[str, int] = field(default_factory=dict)
    """Run-total counts (:mod:`sla_checks.counters`) added before the SLA plugin was attached."""
    pending_in_flight: list[tuple[float, float, float]] = field(default_factory=list)
    """Messages in flight at a stop ``(unix ts, age ms, deadline ms)`` handed over before the plugin was attached."""
    chat_settings: object | None = None
    """The run's chat settings (``users.ws_options.ChatSettings``), resolved on first use."""
    chat_settings_from_options: bool = False
    """``chat_settings`` came from the command line (resolved again at a web-UI test start), not from code."""
    chat_arrival_share: float = 1.0
    """Open model: this process's share of ``--ws-arrival-rate`` (1/N on each of N workers, set by the master)."""
    chat_open_model: ArrivalShareTaker | None = None
    """Open model: this process's sending driver (``users.chat_tasks.OpenModelDriver``)."""
    chat_sample_sink: object | None = None
    """Where the chat connections' success samples go (``users.sample_sink.SampleSink``), made on first use."""
    chat_anomalies: dict[str, int] = field(default_factory=dict)
    """Protocol anomalies of the chat client per kind, in this process."""
    probe_config: object | None = None
    """The run's probe settings (``users.probe_options.ProbeConfig``)."""
    resource_monitor: object | None = None
    """The generator's CPU/RSS gauge sampler (``users.resources.ResourceMonitor``)."""
    scenario: object | None = None
    """The scenario plugin's state (``scenarios.run_state.ScenarioState``)."""


_STATES: weakref.WeakKeyDictionary[Environment, SuiteState] = weakref.WeakKeyDictionary()


_last: tuple[weakref.ref[Environment], weakref.ref[SuiteState]] | None = None
"""The last lookup, weakly (a run has one environment; the hot path counts every chat message sent)."""


def state_of(environment: Environment) -> SuiteState:
    """The suite's state of ``environment``, created empty on first use."""
    global _last
    last = _last
    if last is not None and last[0]() is environment:
        hit = last[1]()
        if hit is not None:
            return hit
    state = _STATES.get(environment)
    if state is None:
        state = _STATES[environment] = SuiteState()
    _last = (weakref.ref(environment), weakref.ref(state))
    return state
