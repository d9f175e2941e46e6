"""users.recovery: the time from a demand drop to a chat user's first reply within SLA; scenarios.steps notes the drop."""

from __future__ import annotations

import pytest
from locust.env import Environment

from scenarios.steps import set_inflight
from sla_checks.state import state_of
from users.recovery import REPLY_SLA_MS, RecoveryWatch
from users.ws_options import ChatSettings


def test_no_drop_no_recovery() -> None:
    assert RecoveryWatch().observe(None, 10.0, [(True, 300.0)]) is None


def test_a_round_sent_before_the_drop_does_not_count() -> None:
    watch = RecoveryWatch()
    assert watch.observe(10.0, 9.5, [(True, 800.0)]) is None
    assert watch.observe(10.0, 11.0, [(True, 500.0)]) == pytest.approx(1500.0)


def test_failed_and_slow_replies_do_not_end_the_recovery() -> None:
    watch = RecoveryWatch()
    assert watch.observe(10.0, 10.5, [(False, 100.0), (True, REPLY_SLA_MS + 1)]) is None
    # the first good reply of the round ends it: from the drop to that reply's end
    assert watch.observe(10.0, 13.0, [(True, 1900.0), (True, 400.0)]) == pytest.approx(3400.0)


def test_one_sample_per_user_and_drop() -> None:
    watch = RecoveryWatch()
    assert watch.observe(10.0, 10.0, [(True, 200.0)]) == pytest.approx(200.0)
    assert watch.observe(10.0, 12.0, [(True, 200.0)]) is None
    assert watch.observe(20.0, 20.5, [(True, 200.0)]) == pytest.approx(700.0)  # a later drop is measured again


def test_set_inflight_notes_a_drop_only_when_the_demand_falls() -> None:
    environment = Environment()
    settings = ChatSettings()
    state_of(environment).chat_settings = settings
    set_inflight(environment, 1)
    assert settings.demand_dropped_at is None
    set_inflight(environment, 4)
    assert settings.demand_dropped_at is None and settings.inflight == 4
    set_inflight(environment, 1)
    assert settings.demand_dropped_at is not None and settings.inflight == 1
