"""Ctrl-C (SIGINT) stops a run the way Locust means to, whichever greenlet happened to be running when it came.

Python raises ``KeyboardInterrupt`` wherever the main thread is when the signal arrives. Under gevent that can be any
greenlet: a user's task, a chat session's reader. That greenlet dies mid-work (a reply half dispatched, its user's
``on_stop`` never run), gevent prints its traceback, and only then passes the interrupt on to Locust's main greenlet,
which shuts down. On a busy worker this is the usual case, not a rare one (``tests/e2e/test_ctrl_c.py``).

Here, at ``init`` (after ``--processes`` has forked, so each process installs its own), SIGINT is taken by gevent's
loop instead: its handler runs between greenlet switches and raises ``KeyboardInterrupt`` in the main greenlet only,
where Locust's ``main`` catches it. The users then stop as on any stop (``--stop-timeout``, ``on_stop``), a worker
sends its final report, and the verdict is judged on every sample. A second Ctrl-C interrupts that shutdown, as it
did before. Only the main thread can own a signal, so anything else leaves Python's handling in place.

Usage::

    import users.ctrl_c   # done by locustfile.py
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events

logger = logging.getLogger(__name__)

_installed: list[Any] = []
"""The gevent signal watcher, once installed (one per process: ``init`` can fire again in tests)."""


def interrupt_main_greenlet() -> None:
    """Raise ``KeyboardInterrupt`` in the thread's main greenlet (the hub's parent), where Locust's ``main`` waits."""
    main = gevent.get_hub().parent
    if main is None or main.dead:
        raise KeyboardInterrupt
    main.throw(KeyboardInterrupt)


def install() -> bool:
    """Route SIGINT to :func:`interrupt_main_greenlet`; False (Python's handling kept) off the main thread."""
    if _installed:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    _installed.append(gevent.signal_handler(signal.SIGINT, interrupt_main_greenlet))
    return True


@events.init.add_listener
def _on_init(**_kw: Any) -> None:
    if not install():
        logger.debug("Ctrl-C: not on the main thread, Python's SIGINT handling is kept")
