"""The one duration parser of the suite (options and profile files): :func:`parse_duration`.

Accepted: a number of seconds (``10``, ``10.5``, also as text), or one or more ``<number><unit>`` parts with the
units ``h``, ``m``, ``s``, ``ms`` in that order, each at most once (``500ms``, ``90s``, ``2m``, ``1h``, ``1h30m``,
``1m30s``, ``1.5h``); case and blanks around the parts do not matter. Never negative. Whether 0 is allowed is the
caller's rule (a warm-up of 0 is none; a scenario duration must be more than 0).

Pure: no Locust import.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["DURATION_FORMS", "parse_duration"]

DURATION_FORMS = "seconds (10, 10.5) or '500ms', '10s', '2m', '1h', '1h30m'"
"""The accepted forms, as error messages name them."""

_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_PLAIN = re.compile(rf"\s*({_NUMBER})\s*")
_PARTS = re.compile(
    rf"\s*(?:({_NUMBER})\s*h)?\s*(?:({_NUMBER})\s*m(?!s))?\s*(?:({_NUMBER})\s*s)?\s*(?:({_NUMBER})\s*ms)?\s*"
)
_UNITS = (3600.0, 60.0, 1.0, 0.001)


def parse_duration(value: Any) -> float:
    """``value`` in seconds (see the module docstring); ``ValueError`` saying what is expected otherwise."""
    expected = f"expected a duration: {DURATION_FORMS}"
    if isinstance(value, bool) or value is None:
        raise ValueError(expected)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(expected)
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(expected)
    text = value.lower()
    plain = _PLAIN.fullmatch(text)
    if plain:
        return float(plain.group(1))
    parts = _PARTS.fullmatch(text)
    if parts is None or not any(parts.groups()):
        raise ValueError(expected)
    return sum(float(p) * unit for p, unit in zip(parts.groups(), _UNITS, strict=True) if p)
