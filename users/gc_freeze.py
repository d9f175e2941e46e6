"""Generator GC: freeze the long-lived session objects once the users are up, so full collections stay short.

CPython's cyclic GC walks every tracked object on each oldest-generation collection. With 10,000 open sessions in one
process that walk took 550 ms (``python -m bench scale``): a pause for every greenlet, added to every latency being
measured at that moment. A few seconds after spawning completes (so the users' ``on_start`` connects are done), this
module runs a young-generation collection and ``gc.freeze()``: what is alive moves to the permanent generation, which
later collections skip. Objects created afterwards (messages, samples, reconnects) are collected as usual. On
``test_stop`` everything is unfrozen, so stopped users' memory can be reclaimed.

Cost: cyclic garbage that sits in the oldest generation at the moment of a freeze is kept until the next
``test_stop`` (one-off, bounded by one freeze per spawn step). ``--gc-freeze off`` turns it off.

Usage::

    import users.gc_freeze   # done by locustfile.py; registers --gc-freeze and the listeners on every runner
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events
from locust.env import Environment

from config.options import add_option

logger = logging.getLogger(__name__)

SETTLE_S = 5.0
"""Seconds between ``spawning_complete`` and the freeze: the new users' connects finish in the meantime."""


class GcFreezer:
    """Freezes the GC's tracked objects ``settle_s`` after each ``spawning_complete``; unfreezes on ``test_stop``."""

    def __init__(self, settle_s: float = SETTLE_S) -> None:
        self.settle_s = settle_s
        self.frozen = 0
        """Objects in the permanent generation after the last freeze (0 when nothing is frozen)."""
        self._pending: gevent.Greenlet | None = None

    def register(self, environment: Environment) -> None:
        environment.events.spawning_complete.add_listener(self.on_spawning_complete)
        environment.events.test_stop.add_listener(self.on_test_stop)

    def on_spawning_complete(self, user_count: int = 0, **_kw: Any) -> None:
        self._cancel()
        self._pending = gevent.spawn_later(self.settle_s, self.freeze)

    def on_test_stop(self, **_kw: Any) -> None:
        self._cancel()
        if self.frozen:
            gc.unfreeze()
            logger.debug("GC unfrozen (%d objects back in the oldest generation)", self.frozen)
            self.frozen = 0

    def freeze(self) -> int:
        """Collect the young generations, then move every tracked object to the permanent generation."""
        self._pending = None
        t0 = time.perf_counter()
        gc.collect(1)
        gc.freeze()
        self.frozen = gc.get_freeze_count()
        logger.info("GC: %d long-lived objects frozen (%.0f ms); full collections now skip them (--gc-freeze off "
                    "to disable)", self.frozen, (time.perf_counter() - t0) * 1000)
        return self.frozen

    def _cancel(self) -> None:
        if self._pending is not None:
            self._pending.kill(block=False)
            self._pending = None


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    add_option(
        parser, "--gc-freeze", group="Load generator", choices=["on", "off"], default="on",
        help=f"freeze the garbage collector's long-lived objects (open sessions) {SETTLE_S:g} s after spawning "
             "completes, so Python's full collections do not pause every user for hundreds of ms at thousands of "
             "sessions (default on)",
    )


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    options = environment.parsed_options
    if options is not None and getattr(options, "gc_freeze", "on") == "on":
        GcFreezer().register(environment)
