"""Load shapes for scenarios: steady, ramp, spike, soak and stepped concurrency.

Two layers, like wsproto's sans-IO split:

* **Specs** (:class:`Steady`, :class:`Ramp`, :class:`Spike`, :class:`Soak`, :class:`Stepped`): frozen dataclasses
  that say, for a scenario second ``t``, how many *weighted* users should run (:meth:`ShapeSpec.users_at`), and for
  :class:`Stepped` which step is active. :meth:`ShapeSpec.scaled` multiplies every user count and the spawn rate
  (``--scenario-scale``), so the shape keeps its form and its ramp times at any load. Pure, unit-tested without
  Locust.
* **Locust shapes** (:class:`SteadyShape` ... :class:`SteppedShape`, all :class:`ScenarioShape`): a
  ``LoadTestShape`` built from a spec with a time scale (``--scenario-duration``), the count of fixed-count users to
  add on top, and an injectable clock. ``tick()`` returns ``(users, spawn_rate)`` and ``None`` once the scenario's
  duration has passed, which ends the run (headless) or stops it (web UI).

Usage::

    shape = build_shape(Steady(users=5, spawn_rate=5, duration_s=60).scaled(4), time_scale=10 / 60, fixed_users=2)
    environment.shape_class = shape
    shape.runner = environment.runner
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import LoadTestShape

__all__ = [
    "Ramp",
    "RampShape",
    "ScenarioShape",
    "ShapeSpec",
    "Soak",
    "SoakShape",
    "Spike",
    "SpikeShape",
    "Steady",
    "SteadyShape",
    "Step",
    "Stepped",
    "SteppedShape",
    "build_shape",
    "scale_users",
]

MAX_SCALE = 1000.0
"""The largest ``--scenario-scale``."""


def scale_users(users: int, factor: float) -> int:
    """``users`` times ``factor``, rounded; at least 1 where there was at least 1 (a scaled-down shape keeps every
    phase that had users)."""
    if users <= 0:
        return 0
    return max(1, round(users * factor))


@dataclass(frozen=True, kw_only=True)
class ShapeSpec:
    """Base of all shape specs: a duration in scenario seconds and a spawn rate (users/s) for changes."""

    kind: ClassVar[str] = "shape"
    user_fields: ClassVar[tuple[str, ...]] = ()
    """The fields holding user counts (what :meth:`scaled` multiplies)."""
    duration_s: float
    spawn_rate: float = 10.0

    def __post_init__(self) -> None:
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise ValueError(f"{type(self).__name__}: duration_s must be a positive number, got {self.duration_s!r}")
        if not self.spawn_rate > 0:
            raise ValueError(f"{type(self).__name__}: spawn_rate must be > 0, got {self.spawn_rate!r}")

    def users_at(self, t: float) -> int:
        """Weighted users wanted at scenario second ``t`` (0 <= t < duration_s)."""
        raise NotImplementedError

    def step_at(self, t: float) -> int:
        """Index of the active step (only :class:`Stepped` has more than one)."""
        return 0

    @property
    def max_users(self) -> int:
        """The most weighted users the shape asks for at any time."""
        return max(int(getattr(self, f)) for f in self.user_fields)

    def scaled(self, factor: float) -> ShapeSpec:
        """The same shape with every user count times ``factor`` (rounded, at least 1 where there was one) and the
        spawn rate times ``factor`` (ramps take as long as before); ``factor`` 1 returns the spec itself."""
        if not (math.isfinite(factor) and 0 < factor <= MAX_SCALE):
            raise ValueError(f"scale factor must be > 0 and <= {MAX_SCALE:g}, got {factor!r}")
        if factor == 1:
            return self
        changes: dict[str, Any] = {f: scale_users(getattr(self, f), factor) for f in self.user_fields}
        return replace(self, spawn_rate=self.spawn_rate * factor, **changes)


@dataclass(frozen=True, kw_only=True)
class Steady(ShapeSpec):
    """``users`` from the start to the end."""

    kind: ClassVar[str] = "steady"
    user_fields: ClassVar[tuple[str, ...]] = ("users",)
    users: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.users < 0:
            raise ValueError(f"Steady: users must be >= 0, got {self.users}")

    def users_at(self, t: float) -> int:
        return self.users


@dataclass(frozen=True, kw_only=True)
class Ramp(ShapeSpec):
    """Linear from ``start_users`` to ``end_users`` over the duration."""

    kind: ClassVar[str] = "ramp"
    user_fields: ClassVar[tuple[str, ...]] = ("start_users", "end_users")
    start_users: int
    end_users: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.start_users < 0 or self.end_users < 0:
            raise ValueError("Ramp: start_users and end_users must be >= 0")

    def users_at(self, t: float) -> int:
        frac = min(max(t / self.duration_s, 0.0), 1.0)
        return round(self.start_users + (self.end_users - self.start_users) * frac)


@dataclass(frozen=True, kw_only=True)
class Spike(ShapeSpec):
    """``base_users``, jumping to ``peak_users`` at ``at_s`` for ``for_s`` seconds, then back."""

    kind: ClassVar[str] = "spike"
    user_fields: ClassVar[tuple[str, ...]] = ("base_users", "peak_users")
    base_users: int
    peak_users: int
    at_s: float
    for_s: float
    spawn_rate: float = 50.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.at_s < self.at_s + self.for_s <= self.duration_s:
            raise ValueError(
                f"Spike: the spike [{self.at_s}, {self.at_s + self.for_s}) s must lie inside 0..{self.duration_s} s"
            )

    def users_at(self, t: float) -> int:
        return self.peak_users if self.at_s <= t < self.at_s + self.for_s else self.base_users


@dataclass(frozen=True, kw_only=True)
class Soak(ShapeSpec):
    """Ramp to ``users`` over ``ramp_s``, then hold them for the rest of a long duration."""

    kind: ClassVar[str] = "soak"
    user_fields: ClassVar[tuple[str, ...]] = ("users",)
    users: int
    ramp_s: float
    spawn_rate: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.ramp_s < self.duration_s:
            raise ValueError("Soak: ramp_s must be >= 0 and shorter than duration_s")

    def users_at(self, t: float) -> int:
        if self.ramp_s <= 0 or t >= self.ramp_s:
            return self.users
        return max(1, math.ceil(self.users * t / self.ramp_s)) if self.users else 0


@dataclass(frozen=True)
class Step:
    """One step of a :class:`Stepped` shape: ``users`` held for ``hold_s``; ``inflight`` messages per user."""

    users: int
    hold_s: float
    inflight: int | None = None

    def __post_init__(self) -> None:
        if self.users < 0 or not self.hold_s > 0:
            raise ValueError(f"Step: users must be >= 0 and hold_s > 0, got {self.users}, {self.hold_s}")
        if self.inflight is not None and self.inflight < 1:
            raise ValueError(f"Step: inflight must be >= 1, got {self.inflight}")


@dataclass(frozen=True, kw_only=True)
class Stepped(ShapeSpec):
    """Stepped concurrency: each :class:`Step` in turn; the duration is the sum of the holds."""

    kind: ClassVar[str] = "stepped"
    steps: tuple[Step, ...]
    duration_s: float = 0.0  # derived from the steps

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("Stepped: needs at least one Step")
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "duration_s", float(sum(s.hold_s for s in self.steps)))
        super().__post_init__()

    def step_at(self, t: float) -> int:
        end = 0.0
        for i, step in enumerate(self.steps):
            end += step.hold_s
            if t < end:
                return i
        return len(self.steps) - 1

    def users_at(self, t: float) -> int:
        return self.steps[self.step_at(t)].users

    @property
    def max_users(self) -> int:
        return max(step.users for step in self.steps)

    def scaled(self, factor: float) -> Stepped:
        """Every step's users times ``factor`` (holds and in-flight counts kept); the spawn rate likewise."""
        if not (math.isfinite(factor) and 0 < factor <= MAX_SCALE):
            raise ValueError(f"scale factor must be > 0 and <= {MAX_SCALE:g}, got {factor!r}")
        if factor == 1:
            return self
        steps = tuple(replace(step, users=scale_users(step.users, factor)) for step in self.steps)
        return replace(self, steps=steps, spawn_rate=self.spawn_rate * factor)


# ---------------------------------------------------------------------------------------------------------------
# Locust LoadTestShape classes


class ScenarioShape(LoadTestShape):
    """A ``LoadTestShape`` driven by a spec; ``time_scale`` = wall seconds per scenario second.

    ``on_step(index, step)`` (optional) is called from ``tick()`` whenever a :class:`Stepped` shape enters a step,
    so the scenario plugin can change per-step settings (in-flight messages) and mark the latency curve.
    """

    abstract = True
    spec_type: ClassVar[type[ShapeSpec]] = ShapeSpec

    def __init__(
        self,
        spec: ShapeSpec,
        time_scale: float = 1.0,
        fixed_users: int = 0,
        clock: Callable[[], float] = time.perf_counter,
        on_step: Callable[[int, Step | None], None] | None = None,
    ) -> None:
        if not isinstance(spec, self.spec_type):
            raise TypeError(f"{type(self).__name__} needs a {self.spec_type.__name__} spec, got {type(spec).__name__}")
        if not (time_scale > 0 and math.isfinite(time_scale)):
            raise ValueError(f"time_scale must be a positive number, got {time_scale!r}")
        self._clock = clock
        super().__init__()  # type: ignore[no-untyped-call]  # Locust's LoadTestShape.__init__ is unannotated
        self.spec = spec
        self.time_scale = time_scale
        self.fixed_users = fixed_users
        self.on_step = on_step
        self.current_step: int | None = None

    # LoadTestShape uses time.perf_counter directly; route it through the injected clock.
    def reset_time(self) -> None:
        self.start_time = self._clock()
        self.current_step = None

    def get_run_time(self) -> float:
        return self._clock() - self.start_time

    @property
    def wall_duration_s(self) -> float:
        return self.spec.duration_s * self.time_scale

    def scenario_time(self) -> float:
        """Seconds of scenario time elapsed (wall time / time_scale)."""
        return self.get_run_time() / self.time_scale

    def tick(self) -> tuple[int, float] | None:
        t = self.scenario_time()
        if t >= self.spec.duration_s:
            return None
        step = self.spec.step_at(t)
        if step != self.current_step:
            self.current_step = step
            if self.on_step is not None:
                steps = getattr(self.spec, "steps", None)
                self.on_step(step, steps[step] if steps else None)
        users = self.spec.users_at(t) + self.fixed_users
        # A shorter run (time_scale < 1) spawns proportionally faster, so ramps keep their form.
        return users, self.spec.spawn_rate / min(self.time_scale, 1.0)


class SteadyShape(ScenarioShape):
    """Constant users for the scenario's duration."""

    spec_type = Steady


class RampShape(ScenarioShape):
    """Users rising (or falling) linearly over the duration."""

    spec_type = Ramp


class SpikeShape(ScenarioShape):
    """A base load with one spike."""

    spec_type = Spike


class SoakShape(ScenarioShape):
    """A short ramp then hours of steady load."""

    spec_type = Soak


class SteppedShape(ScenarioShape):
    """Stepped concurrency (users and in-flight messages per step)."""

    spec_type = Stepped


_SHAPE_FOR: dict[type[ShapeSpec], type[ScenarioShape]] = {
    Steady: SteadyShape,
    Ramp: RampShape,
    Spike: SpikeShape,
    Soak: SoakShape,
    Stepped: SteppedShape,
}


def build_shape(
    spec: ShapeSpec,
    time_scale: float = 1.0,
    fixed_users: int = 0,
    clock: Callable[[], float] = time.perf_counter,
    on_step: Callable[[int, Step | None], None] | None = None,
) -> ScenarioShape:
    """The Locust shape for ``spec``."""
    return _SHAPE_FOR[type(spec)](spec, time_scale=time_scale, fixed_users=fixed_users, clock=clock, on_step=on_step)
