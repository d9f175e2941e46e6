"""Statistical tests of the baseline regression gate, on exact histograms (pure: stdlib only).

A regression line (``p(95) <= baseline * 1.10 + 5ms``, ``rps >= baseline * 0.9``) fails only when the data say
with high confidence that the run is beyond the line, so the noise of a short run (a few samples, a few ms) does not
fail it and a real shift does:

* **percentiles** — distribution-free confidence bounds from the order statistics of each histogram (the ``k``-th
  smallest of ``n`` samples lies at or below the ``q``-percentile with probability ``P(Binomial(n, q) >= k)``, for
  any distribution and any ``n``): the line fails when even the new run's *lower* bound lies beyond the limit drawn
  from the baseline's *upper* bound. :func:`percentile_regression` returns the highest confidence at which that
  holds; a few samples give wide bounds (p(99) of 50 samples has no upper bound at all), so they never fail on noise.
* **throughput** — successful samples over the judged span are compared as two Poisson counts: given ``N = a + b``
  successes in the two runs, the new run's ``b`` is ``Binomial(N, f T_b / (T_a + f T_b))`` when its rate is exactly
  ``f`` × the baseline's; the confidence that it fell below the line is ``1 - P(X <= b)`` under that boundary (a
  one-sided exact test: under the boundary it reaches 95 % in at most 5 % of runs). A closed-model load gives
  throughput less variable than Poisson counts, so the test errs on the side of passing.

Both treat the samples of a run as independent. Samples of one run are not quite (a neighbour's CPU burst slows a
stretch of them together), which is why the default lines also allow 10 % and a few ms (docs/sla.md).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from functools import lru_cache

from sla_checks.histogram import Histogram

__all__ = [
    "binom_cdf",
    "order_statistic",
    "percentile_bounds",
    "percentile_regression",
    "rate_regression",
]

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return min(max(front * _betacf(a, b, x) / a, 0.0), 1.0)
    return min(max(1.0 - front * _betacf(b, a, 1.0 - x) / b, 0.0), 1.0)


@lru_cache(maxsize=65_536)
def binom_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)`` (cached: a confidence search asks for the same ranks again)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    return _betainc(n - k, k + 1, 1.0 - p)


class _Ranks:
    """A histogram's sorted buckets with cumulative counts: its ``k``-th smallest sample in one bisection."""

    def __init__(self, h: Histogram) -> None:
        self.h = h
        self.keys = sorted(h.counts)
        self.cum: list[int] = []
        seen = 0
        for key in self.keys:
            seen += h.counts[key]
            self.cum.append(seen)

    def value(self, k: int) -> float:
        i = min(bisect_left(self.cum, k), len(self.keys) - 1)
        return float(min(max(self.keys[i], self.h.min), self.h.max))


def order_statistic(h: Histogram, k: int) -> float:
    """The ``k``-th smallest sample of ``h`` (1-based), as its bucket bound held within the exact extremes."""
    return _Ranks(h).value(k)


def _search(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The smallest ``k`` in ``lo..hi`` with ``ok(k)`` (``ok`` monotone false -> true), ``hi + 1`` if none."""
    hi += 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def percentile_bounds(h: Histogram | _Ranks, q: float, level: float) -> tuple[float | None, float | None]:
    """Distribution-free one-sided confidence bounds of the ``q``-percentile (0..100) of what ``h`` sampled: a
    lower bound that is at or below it, and an upper bound at or above it, each with probability ``level``.

    From the order statistics (valid for any sample size, no assumption on the distribution): the ``k``-th smallest
    of ``n`` samples is at or below the percentile with probability ``P(Binomial(n, q) >= k)``. None where the
    sample is too small for a bound at that level (no lower bound: the percentile may lie below every sample;
    no upper bound: above every sample, e.g. the p(99) of 50 samples)."""
    ranks = h if isinstance(h, _Ranks) else _Ranks(h)
    n, share = ranks.h.count, q / 100.0
    if n == 0:
        return None, None
    # lower: the largest k with P(Bin(n, q) >= k) >= level, i.e. binom_cdf(k - 1) <= 1 - level
    k_low = _search(1, n, lambda k: binom_cdf(k - 1, n, share) > 1.0 - level) - 1
    # upper: the smallest k with P(Bin(n, q) <= k - 1) >= level
    k_high = _search(1, n, lambda k: binom_cdf(k - 1, n, share) >= level)
    lower = ranks.value(k_low) if k_low >= 1 else None
    upper = ranks.value(k_high) if k_high <= n else None
    return lower, upper


def percentile_regression(
    baseline: Histogram, new: Histogram, q: float, factor: float, slack_ms: float, strict: bool
) -> float | None:
    """The confidence (0..1) that ``new``'s ``q``-percentile is beyond ``factor`` × ``baseline``'s + ``slack_ms``
    (``strict``: a ``<`` line, where reaching the limit is beyond it). None when either histogram has no samples.

    It is the highest level ``c`` at which the new run's lower bound still lies beyond the line drawn from the
    baseline's upper bound, each bound taken at ``sqrt(c)`` (the runs are independent, so both hold with
    probability ``c``): at 0.95 the line fails in at most 5 % of runs whose percentile is exactly on it."""
    if baseline.count == 0 or new.count == 0:
        return None
    base_ranks, new_ranks = _Ranks(baseline), _Ranks(new)

    def beyond(c: float) -> bool:
        level = math.sqrt(c)
        low = percentile_bounds(new_ranks, q, level)[0]
        high = percentile_bounds(base_ranks, q, level)[1]
        if low is None or high is None:
            return False
        limit = factor * high + slack_ms
        return low >= limit if strict else low > limit

    if not beyond(0.0):
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(16):  # the confidence to ~1e-5
        mid = (lo + hi) / 2
        if beyond(mid):
            lo = mid
        else:
            hi = mid
    return lo


def rate_regression(
    base_count: int, base_s: float, new_count: int, new_s: float, factor: float
) -> float | None:
    """The confidence (0..1) that the new rate (``new_count`` / ``new_s``) is below ``factor`` × the baseline's, by
    the exact conditional test of two Poisson counts (module docstring). None without a positive span in both."""
    if base_s <= 0 or new_s <= 0:
        return None
    total = base_count + new_count
    if total == 0:
        return 0.0
    share = factor * new_s / (base_s + factor * new_s)
    return 1.0 - binom_cdf(new_count, total, share)
