"""BoundedPool (users/postgres_probe.py) with fake connections: bounds, timeout message, reuse, broken handling."""

from __future__ import annotations

import gevent
import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest

from users.postgres_probe import BoundedPool, PoolTimeout

pytestmark = pytest.mark.timeout(30)


class FakeConn:
    made = 0

    def __init__(self) -> None:
        FakeConn.made += 1
        self.closed = False
        self.reusable = True


def _pool(size: int = 2, timeout: float = 0.05) -> BoundedPool[FakeConn]:
    FakeConn.made = 0
    return BoundedPool(FakeConn, size, timeout, is_reusable=lambda c: c.reusable,
                       close=lambda c: setattr(c, "closed", True), name="PG probe pool")


def test_pool_full_acquire_times_out_with_clear_message() -> None:
    pool = _pool(size=2, timeout=0.05)
    a, b = pool.acquire(), pool.acquire()
    with pytest.raises(PoolTimeout, match=r"PG probe pool: no connection free within 0.05 s \(pool size 2, 2 in use\)"):
        pool.acquire()
    pool.release(a)
    pool.release(b)


def test_pool_released_connection_is_reused_not_remade() -> None:
    pool = _pool()
    a = pool.acquire()
    pool.release(a)
    assert pool.acquire() is a and FakeConn.made == 1


@pytest.mark.parametrize("how", ["broken", "not_reusable"])
def test_pool_broken_connection_is_closed_and_slot_freed(how: str) -> None:
    pool = _pool(size=1)
    a = pool.acquire()
    if how == "broken":
        pool.release(a, broken=True)
    else:
        a.reusable = False
        pool.release(a)
    assert a.closed
    b = pool.acquire()
    assert b is not a and pool.in_use == 1


def test_pool_connect_failure_frees_the_slot() -> None:
    calls = {"n": 0}

    def connect() -> FakeConn:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("refused")
        return FakeConn()

    pool: BoundedPool[FakeConn] = BoundedPool(connect, 1, 0.05)
    with pytest.raises(OSError):
        pool.acquire()
    assert isinstance(pool.acquire(), FakeConn)


def test_pool_waiter_gets_connection_released_by_another_greenlet() -> None:
    pool = _pool(size=1, timeout=2.0)
    a = pool.acquire()
    gevent.spawn_later(0.05, pool.release, a)
    assert pool.acquire() is a


@pytest.mark.parametrize("size", [0, -1])
def test_pool_size_below_one_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="pool size must be >= 1"):
        BoundedPool(FakeConn, size, 1.0)
