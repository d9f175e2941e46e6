"""The ``timestamp`` of a sent ``user_message`` (users.ws_session.iso_ms): exactly what ``datetime.isoformat`` writes,
to the millisecond, whatever order the milliseconds come in (the second's text is cached, then the ms's)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from users.ws_session import iso_ms


def _want(ms: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")


def test_iso_ms_is_isoformat_to_the_millisecond():
    rnd = random.Random(5)
    start = 1_765_145_775_000
    cases = [0, 1, 999, 1000, 1001, start, start + 999, start + 1000, 951_868_799_999, 951_868_800_000,  # 29 Feb
             4_102_444_799_999, 4_102_444_800_000]
    cases += [start + rnd.randint(-2_000, 2_000) for _ in range(3000)]  # back and forth across seconds
    cases += [rnd.randint(0, 4_000_000_000_000) for _ in range(3000)]
    for ms in cases:
        assert iso_ms(ms) == _want(ms), ms
