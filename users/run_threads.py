"""The thread ids this process's chat users sent messages on during the current test: the scope of the cleanup check
(:mod:`users.cleanup_check`), which asks the backend's store about these threads' runs and nothing else.

Bounded (:data:`MAX_THREADS`): past it the ids are no longer kept and :func:`overflowed` says so (the check then
judges the ids it kept). Cleared at each test start.
"""

from __future__ import annotations

__all__ = ["MAX_THREADS", "clear", "note", "overflowed", "threads"]

MAX_THREADS = 200_000
"""Most thread ids kept per test (a few MB); a message on a thread already kept costs nothing."""

_threads: set[str] = set()
_state = {"overflowed": False}


def note(thread_id: str | None) -> None:
    """Keep ``thread_id`` (a message was sent on it)."""
    if thread_id is None:
        return
    if len(_threads) < MAX_THREADS:
        _threads.add(thread_id)
    elif thread_id not in _threads:
        _state["overflowed"] = True


def threads() -> list[str]:
    """The thread ids kept since the test started."""
    return list(_threads)


def overflowed() -> bool:
    """More threads than :data:`MAX_THREADS` were used: only the first ones are kept."""
    return _state["overflowed"]


def clear() -> None:
    _threads.clear()
    _state["overflowed"] = False
