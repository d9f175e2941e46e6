"""Mergeable high-resolution latency histogram, exact to 1 ms or 1 % (whichever is larger).

Locust's own response-time buckets keep ~2 significant digits (1,950-2,050 ms all land in 2,000), too coarse to
judge a 2,000 ms line. This histogram keeps:

* integer-millisecond buckets up to ``LINEAR_LIMIT_MS`` (65,536 ms): a sample ``v`` lands in bucket ``ceil(v)``, i.e.
  bucket ``k`` holds ``k-1 < v <= k``. Integer sample values are therefore stored exactly, ``count_le(2000)`` is the
  exact number of samples ``<= 2000`` and a percentile is never reported lower than the true value (error < 1 ms,
  always on the conservative side);
* above that, buckets of ``2**shift`` ms keeping 11 significant bits (relative width <= 1/1024, ~0.1 %).

``record()`` is on the hot path of every sample: one comparison, one ``int()`` and a dict increment; no sorting.
Histograms merge by adding counts, so per-worker histograms shipped to the Locust master give exactly the same
percentiles as one histogram fed with all samples. ``to_dict()``/``from_dict()`` give a JSON/msgpack-safe form.

Percentiles use the nearest-rank definition: ``p(q)`` is the smallest recorded value (bucket) such that at least
``q`` % of the samples are at or below it. ``p(100)`` is the exact maximum, ``p(0)`` the exact minimum.
"""

from __future__ import annotations

import math
from collections import _count_elements  # type: ignore[attr-defined]  # C (CPython); the same loop in Python elsewhere
from collections.abc import Iterable
from typing import Any

__all__ = ["LINEAR_LIMIT_MS", "Histogram", "bucket_key"]

LINEAR_LIMIT_MS = 65_536
"""Up to this value (ms) buckets are 1 ms wide; above it they are <= 0.1 % wide."""

_SIGNIFICANT_BITS = 11
_ceil = math.ceil
_NUMBER = (int, float)


def bucket_key(value_ms: float) -> int:
    """The bucket (its inclusive upper bound, in ms) that ``value_ms`` lands in."""
    k = int(value_ms)
    if k < value_ms:
        k += 1
    if k <= LINEAR_LIMIT_MS:
        return k if k > 0 else 0
    shift = k.bit_length() - _SIGNIFICANT_BITS
    return -(-k >> shift) << shift


class Histogram:
    """Counts of samples per bucket, plus exact count, sum, min and max.

    Usage::

        h = Histogram()
        h.record(1999.2)
        h.percentile(95)      # -> 2000.0 (bucket upper bound, >= the true value, < 1 ms above it)
        h.merge(other)        # add another source's counts
    """

    __slots__ = ("counts", "count", "total", "min", "max")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def record(self, value_ms: float) -> None:
        """Add one sample (ms). Cheap: called for every Locust request event."""
        k = _ceil(value_ms)  # the same bucket as bucket_key(), one C call
        if k > LINEAR_LIMIT_MS:
            shift = k.bit_length() - _SIGNIFICANT_BITS
            k = -(-k >> shift) << shift
        elif k < 0:
            k = 0
        counts = self.counts
        counts[k] = counts.get(k, 0) + 1
        self.count += 1
        self.total += value_ms
        if value_ms < self.min:
            self.min = value_ms
        if value_ms > self.max:
            self.max = value_ms

    def record_many(self, values: Iterable[float]) -> None:
        for v in values:
            self.record(v)

    def record_list(self, values: list[float]) -> int:
        """What :meth:`record` of each of ``values`` in order gives (the same buckets in the same order, the same
        count, min, max, and the same sum: ``sum()`` adds in order), in C loops when every value lies in the 1-ms
        buckets; instead of raising, leaves out what :meth:`record` would refuse: something that is no number
        (silently: a stage gap's mapping may hold other things) and a NaN or ±inf, whose count it returns. The
        collector's fold of a second's samples (:class:`sla_checks.engine.Collector`)."""
        if not values:
            return 0
        try:
            total = sum(values, self.total)
            lo, hi = min(values), max(values)
        except TypeError:  # something that is not a number: one by one
            return self._record_each(values)
        if total - total != 0 or not (lo >= 0 and hi <= LINEAR_LIMIT_MS):  # a NaN or ±inf (the sum is no finite
            return self._record_each(values)  # number then), or a value for record()'s other buckets
        _count_elements(self.counts, map(_ceil, values))  # counts[k] = counts.get(k, 0) + 1 per value, in order
        self.count += len(values)
        self.total = total
        if lo < self.min:
            self.min = lo
        if hi > self.max:
            self.max = hi
        return 0

    def _record_each(self, values: list[float]) -> int:
        skipped = 0
        for v in values:
            if isinstance(v, _NUMBER):
                if v - v == 0:  # finite (NaN - NaN and inf - inf are NaN)
                    self.record(v)
                else:
                    skipped += 1
        return skipped

    def merge(self, other: Histogram) -> Histogram:
        """Add ``other``'s samples to this histogram (in place); returns self."""
        counts = self.counts
        for k, n in other.counts.items():
            counts[k] = counts.get(k, 0) + n
        self.count += other.count
        self.total += other.total
        if other.min < self.min:
            self.min = other.min
        if other.max > self.max:
            self.max = other.max
        return self

    def copy(self) -> Histogram:
        return Histogram().merge(self)

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        out = cls()
        for h in histograms:
            out.merge(h)
        return out

    # --- statistics -------------------------------------------------------------------------------------------
    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile ``q`` (0..100) in ms, or None without samples."""
        if self.count == 0:
            return None
        if q <= 0:
            return self.min
        if q >= 100:
            return self.max
        rank = math.ceil(q / 100.0 * self.count - 1e-9)
        rank = min(max(rank, 1), self.count)
        seen = 0
        for k in sorted(self.counts):
            seen += self.counts[k]
            if seen >= rank:
                # the bucket bound never lies outside the exact extremes
                return float(min(max(k, self.min), self.max))
        return self.max  # pragma: no cover - counts and count disagree

    def percentiles(self, qs: Iterable[float]) -> dict[float, float | None]:
        """Several percentiles with one sort."""
        qs = sorted(qs)
        out: dict[float, float | None] = {}
        if self.count == 0:
            return dict.fromkeys(qs)
        keys = sorted(self.counts)
        i = 0
        seen = 0
        for q in qs:
            if q <= 0:
                out[q] = self.min
                continue
            if q >= 100:
                out[q] = self.max
                continue
            rank = min(max(math.ceil(q / 100.0 * self.count - 1e-9), 1), self.count)
            while seen < rank and i < len(keys):
                seen += self.counts[keys[i]]
                i += 1
            k = keys[i - 1] if i else keys[0]
            out[q] = float(min(max(k, self.min), self.max))
        return out

    def count_le(self, limit_ms: float) -> int:
        """Number of samples ``<= limit_ms`` (exact for integer limits up to ``LINEAR_LIMIT_MS``)."""
        if limit_ms >= self.max:
            return self.count
        if limit_ms < self.min:
            return 0
        bound = bucket_key(limit_ms)
        if bound > limit_ms:  # the bucket holding the limit also holds values above it: leave it out
            return sum(n for k, n in self.counts.items() if k < bound)
        return sum(n for k, n in self.counts.items() if k <= bound)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    # --- serialisation ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON/msgpack-safe form (list of ``[bucket, count]`` pairs)."""
        return {
            "b": [[k, n] for k, n in self.counts.items()],
            "n": self.count,
            "s": self.total,
            "lo": self.min if self.count else None,
            "hi": self.max if self.count else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        h = cls()
        for k, n in data.get("b", ()):
            h.counts[int(k)] = h.counts.get(int(k), 0) + int(n)
        h.count = int(data.get("n", sum(h.counts.values())))
        h.total = float(data.get("s", 0.0))
        if data.get("lo") is not None:
            h.min = float(data["lo"])
        if data.get("hi") is not None:
            h.max = float(data["hi"])
        return h

    def __repr__(self) -> str:
        return f"Histogram(count={self.count}, min={self.min}, max={self.max}, buckets={len(self.counts)})"
