"""The tiers' vocabulary (pure): which tier a metric measures, which tier a failed reply's error text names.

Shared by the attribution (:mod:`sla_checks.attribution`) and the cascade order (:mod:`sla_checks.cascade`).
"""

from __future__ import annotations

import re

__all__ = ["TIER_LABELS", "ATTRIBUTED_TYPES", "tier_of", "tier_named_in"]

TIER_LABELS = {"postgres": "PostgreSQL", "redis": "Redis", "clickhouse": "ClickHouse"}
_TYPE_TIER = {"PG": "postgres", "REDIS": "redis", "CH": "clickhouse"}
ATTRIBUTED_TYPES = ("WS", "FLOW")
"""Request types whose failed samples' error text is searched for a tier's name (:func:`tier_named_in`)."""
_TIER_WORDS = re.compile(r"\b(postgres(?:ql)?|pg|redis|clickhouse)\b", re.IGNORECASE)
_WORD_TIER = {"postgres": "postgres", "postgresql": "postgres", "pg": "postgres", "redis": "redis",
              "clickhouse": "clickhouse"}


def tier_named_in(text: str) -> str | None:
    """The tier a failed reply's error text names first (``error DEPENDENCY_TIMEOUT: postgres thread history timed
    out after 2000 ms`` -> ``postgres``), else None. A backend that says which dependency failed tells the attribution
    more than any latency correlation can: under a fault that lasts the whole run there is no baseline to compare."""
    m = _TIER_WORDS.search(text)
    return _WORD_TIER[m.group(1).lower()] if m else None


def tier_of(metric: str) -> str | None:
    """The tier a metric measures: ``REDIS *`` -> redis, ``PG *`` -> postgres, ``CH *`` -> clickhouse,
    ``HTTP ready:<tier>`` -> that tier (``pg`` / ``ch`` spelled out); None for everything else (WS, FLOW, other HTTP
    paths)."""
    rtype, _, name = str(metric).partition(" ")
    if rtype in _TYPE_TIER:
        return _TYPE_TIER[rtype]
    if rtype == "HTTP" and name.startswith("ready:"):
        tier = name[len("ready:") :].strip()
        return {"pg": "postgres", "ch": "clickhouse"}.get(tier, tier) or None
    return None
