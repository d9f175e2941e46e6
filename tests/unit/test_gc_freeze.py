"""GcFreezer: freezes the GC's long-lived objects after spawning completes, unfreezes on test_stop."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.event import Events

from users.gc_freeze import GcFreezer


@pytest.fixture
def env():
    environment = SimpleNamespace(events=Events())
    yield environment
    gc.unfreeze()


def test_objects_alive_after_spawning_are_frozen_then_released_on_test_stop(env) -> None:
    freezer = GcFreezer(settle_s=0.05)
    freezer.register(env)
    sessions = [{"id": i, "peer": []} for i in range(1000)]  # long-lived, GC-tracked, like open sessions
    env.events.spawning_complete.fire(user_count=1000)
    assert gc.get_freeze_count() == 0, "froze before the settle delay"
    gevent.sleep(0.3)
    assert freezer.frozen >= len(sessions) and gc.get_freeze_count() >= len(sessions)
    env.events.test_stop.fire(environment=env)
    assert gc.get_freeze_count() == 0 and freezer.frozen == 0


def test_a_new_spawn_step_restarts_the_settle_delay(env) -> None:
    freezer = GcFreezer(settle_s=1.0)
    freezer.register(env)
    calls = []
    freezer.freeze = lambda: calls.append(1)  # type: ignore[method-assign]
    env.events.spawning_complete.fire(user_count=1)
    gevent.sleep(0.5)
    env.events.spawning_complete.fire(user_count=2)
    gevent.sleep(0.7)  # past the first step's deadline, well before the second's
    assert calls == [], "the first step's freeze should have been replaced by the second's"
    gevent.sleep(1.0)
    assert calls == [1]


def test_test_stop_before_the_delay_cancels_the_freeze(env) -> None:
    freezer = GcFreezer(settle_s=0.1)
    freezer.register(env)
    env.events.spawning_complete.fire(user_count=1)
    env.events.test_stop.fire(environment=env)
    gevent.sleep(0.25)
    assert gc.get_freeze_count() == 0 and freezer.frozen == 0
