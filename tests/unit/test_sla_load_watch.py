"""LoadWatch: chat users told apart by class, counts as a step series, averaged over the judged span."""

from __future__ import annotations

from types import SimpleNamespace

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust import User
from locust.env import Environment

from sla_checks.load_watch import LoadWatch
from sla_checks.state import state_of

pytestmark = pytest.mark.timeout(20)


class ChatUser(User):
    abstract = True


class MyChat(ChatUser):
    """A subclass in a user's own locustfile: still a chat user."""


class ChatFlowUser(ChatUser):
    pass


class Other(User):
    pass


def watch(options=None, settings=None) -> tuple[LoadWatch, SimpleNamespace]:
    env = Environment(user_classes=[MyChat, ChatFlowUser, Other], parsed_options=options)
    state_of(env).chat_settings = settings
    runner = SimpleNamespace(user_classes_count={})
    env.runner = runner  # type: ignore[assignment]
    return LoadWatch(env), runner


def test_counts_chat_and_flow_users_by_class_and_keeps_only_changes():
    w, runner = watch(settings=SimpleNamespace(inflight=2, think_time=0.5, arrival=None))
    for t, counts in [(100.0, {"MyChat": 2, "ChatFlowUser": 1, "Other": 5}),
                      (101.0, {"MyChat": 2, "ChatFlowUser": 1, "Other": 9}),
                      (104.0, {"MyChat": 4, "ChatFlowUser": 0, "Other": 5})]:
        runner.user_classes_count = counts
        w.sample(t)
    assert w.samples == [(100.0, 2, 1, 4), (104.0, 4, 0, 8)]
    whole = w.facts(100.0, None, 108.0)
    assert whole is not None
    assert (whole.chat_users, whole.flow_users, whole.chat_concurrency, whole.peak_users) == (3.0, 0.5, 6.0, 4)
    assert (whole.inflight, whole.think_s, whole.arrival_rate) == (2.0, 0.5, None)
    late = w.facts(100.0, 105.0, 108.0)  # a warm-up to 105 s: only the later counts
    assert late is not None and (late.chat_users, late.flow_users, late.peak_users) == (4.0, 0.0, 4)


def test_open_model_rate_is_the_schedule_mean_over_the_judged_span_from_the_options():
    w, runner = watch(options=SimpleNamespace(ws_arrival_rate="0:2,10:12", ws_think_time=1.0, ws_inflight=1))
    runner.user_classes_count = {"MyChat": 3}
    w.sample(1000.0)
    load = w.facts(1000.0, 1000.0, 1010.0)
    assert load is not None and load.arrival_rate == pytest.approx(7.0)  # the ramp's mean over its 10 s


def test_no_test_or_no_samples_give_no_facts():
    w, _ = watch()
    assert w.facts(None, None, 10.0) is None
    assert w.facts(0.0, None, 10.0) is None
