"""Chat WebSocket users: ``ChatUser`` (a long-lived authenticated session) and ``ChatFlowUser`` (the whole
login → connect → send → receive workflow per iteration, as one ``FLOW`` sample).

``host`` is a ``ws://``/``wss://`` URL (``--host ws://127.0.0.1:8765``; ``--ws-path`` is appended when the URL has
no path). Options: :mod:`users.ws_options`; samples and failure texts: :mod:`users.ws_client`; the per-message
timeline: :mod:`tasks.timeline`.

Usage::

    locust -f locustfile.py ChatUser --headless -u 50 -r 10 -t 1m --host ws://127.0.0.1:8765

Subclass for other behaviour (class attributes configure, as in Locust)::

    class MyChat(ChatUser):
        wait_time = constant(0)
"""

from __future__ import annotations

import itertools
import logging

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import User, task
from locust.env import Environment
from locust.exception import StopUser

from users.chat_tasks import OpenModelDriver, abandoned_at_stop, converse, count_abandoned, login_send_receive
from users.ws_client import ChatClient
from users.ws_options import ChatConfigError, ChatSettings, chat_settings, ws_url

logger = logging.getLogger(__name__)

_user_numbers = itertools.count()


class ChatUserBase(User):
    """Abstract base: resolves the settings, owns one :class:`ChatClient`, closes it on stop."""

    abstract = True
    settings: ChatSettings | None = None
    """Settings for this class (default: the run's, from the command line / env)."""
    _stop_asked = False
    """Locust asked this user to stop (see :meth:`stop`)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.user_number = next(_user_numbers)
        self.client: ChatClient | None = None  # type: ignore[assignment]

    def wait_time(self) -> float:  # type: ignore[override]
        """Think time between iterations: ``--ws-think-time`` (closed model)."""
        return self._settings().think_time if self.client is not None else 0.0

    def _settings(self) -> ChatSettings:
        if self.settings is not None:
            return self.settings
        return chat_settings(self.environment)

    def on_start(self) -> None:
        try:
            settings = self._settings()
            url = ws_url(self.host, settings.path)
        except ChatConfigError as exc:
            logger.error("Bad chat option: %s", exc)
            raise StopUser() from None
        self.client = ChatClient(self.environment, settings, url, self.user_number)

    def stop(self, force: bool = False) -> bool:
        # Locust stops a waiting user (any user, when forced) by killing its greenlet, and gevent delivers that kill
        # on the user's next switch: noted, so that a user whose think time ended in the same hub pass yields
        # before it sends (ChatUser.chat)
        self._stop_asked = True
        return bool(super().stop(force))

    def on_stop(self) -> None:
        if self.client is not None:
            # close() first, then count: close() yields, and a `+=` across it lost concurrent stops' counts
            count_abandoned(self.client.close(), self.environment)


class ChatUser(ChatUserBase):
    """A chat client on one long-lived WebSocket: sends ``--ws-inflight`` messages, awaits their five events,
    thinks ``--ws-think-time`` s, repeats; heartbeat every ``--ws-heartbeat-interval`` s; reconnects with backoff.

    With ``--ws-arrival-rate`` (open model) the user only holds its connection; a per-process driver sends on the
    schedule over all connected chat users.
    """

    def on_start(self) -> None:
        super().on_start()
        assert self.client is not None
        self.client.connect()
        settings = self.client.settings
        if settings.arrival is not None:
            OpenModelDriver.for_environment(self.environment, settings).register(self.client)

    def on_stop(self) -> None:
        driver = OpenModelDriver.of(self.environment)
        if driver is not None and self.client is not None:
            driver.unregister(self.client)
        super().on_stop()

    @task
    def chat(self) -> None:
        assert self.client is not None
        if self.client.settings.arrival is not None:
            # open model: the driver sends; keep the connection up
            self.client.ensure_connected()
            return
        # Locust stops a user that is waiting by killing its greenlet, and gevent delivers that kill on the user's
        # next switch. A user whose think time ended in the same instant would first send a message the stop then
        # cuts off (counted as abandoned at stop whatever --stop-timeout says). Once a stop was asked, yield so
        # such a kill lands now (not on every round: a yield per message is ≈ 1 % of a round trip, issue 17).
        if self._stop_asked:
            gevent.sleep(0)
        converse(self.client)


class ChatFlowUser(ChatUserBase):
    """The seed test plan's complete workflow per iteration: ``POST /auth/login`` (``--users-file``, default the
    reference backend's seeded users) → connect → send → ``agent_completed``, timed as ``FLOW login→send→receive``."""

    @task
    def login_send_receive(self) -> None:
        assert self.client is not None
        login_send_receive(self.client)


__all__ = ["ChatUserBase", "ChatUser", "ChatFlowUser", "abandoned_at_stop", "count_abandoned"]
