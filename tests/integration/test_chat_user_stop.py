"""A ``ChatUser`` that Locust stops in the same hub pass as its think time ends sends no message the stop would then
cut off (it would count as abandoned at stop whatever ``--stop-timeout`` says); a user nobody stops sends without
yielding first. Real sockets: the bench's WebSocket server in another process."""

from __future__ import annotations

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from gevent.hub import Waiter
from gevent.pool import Group
from locust import constant
from locust.env import Environment
from locust.user.users import LOCUST_STATE_RUNNING, LOCUST_STATE_WAITING

from bench.common import BenchServer
from sla_checks.state import state_of
from users.auth import MintedTokens
from users.chat import ChatUser
from users.ws_options import ChatSettings

pytestmark = pytest.mark.timeout(60)


class _NoThinkChatUser(ChatUser):
    wait_time = constant(0)


def _user(url: str) -> tuple[Environment, _NoThinkChatUser, Group]:
    env = Environment(user_classes=[_NoThinkChatUser], host=url)
    state_of(env).chat_settings = ChatSettings(
        tokens=MintedTokens("bench-only-secret-" + "x" * 30), think_time=0.0, heartbeat_interval=0.0,
        reply_timeout=10.0, hang_after=5.0)
    group = Group()
    user = _NoThinkChatUser(env)
    user.host = url  # (Locust's runner sets it from --host)
    user._group = group
    user.on_start()
    assert user.client is not None and user.client.connect()
    return env, user, group


def test_a_user_stopped_as_its_think_time_ends_yields_to_the_kill_and_sends_nothing():
    with BenchServer(max_seconds=60) as srv:
        _env, user, group = _user(srv.url)
        woken = Waiter()

        def iteration() -> None:  # what Locust's TaskSet does around a task: wait (think), then run it
            user._state = LOCUST_STATE_WAITING
            woken.get()  # the think time
            user._state = LOCUST_STATE_RUNNING
            user.chat()

        user._greenlet = glet = group.spawn(iteration)
        gevent.sleep(0.05)  # the user is waiting
        # its think time ends and Locust stops it in one hub pass: the wake-up is queued first, then the kill
        gevent.get_hub().loop.run_callback(woken.switch, None)
        assert user.stop() is True  # a waiting user is killed (its greenlet, at its next switch)
        glet.join(timeout=5)
        assert glet.dead
        assert user.client is not None
        sent = user.client.sent
        user.on_stop()
    assert sent == 0, "the stopped user sent a message before the kill landed"


def test_a_user_nobody_stops_sends_and_completes_its_message():
    with BenchServer(max_seconds=60) as srv:
        _env, user, group = _user(srv.url)
        glet = group.spawn(user.chat)
        glet.join(timeout=10)
        assert glet.dead and glet.exception is None
        client = user.client
        assert client is not None
        assert (client.sent, client.ended) == (1, 1)
        user.on_stop()
