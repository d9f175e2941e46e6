"""How the SLA suite prints a value: one rule per unit, shared by the terminal table, the log lines, JUnit, the
attribution summaries, the HTML report and the web-UI tab.

=========  ==============================================  ====================
unit       rule                                            example
=========  ==============================================  ====================
``ms``     >= 100: no decimals, thousands grouped;          ``3,120 ms``
           >= 10: one decimal; below: two decimals          ``44.7 ms``, ``1.40 ms``
``%``      two decimals, a space before the sign            ``80.97 %``
``ratio``  four decimals, then the same as a percentage     ``0.0123 (1.23 %)``
``rps``    two decimals, thousands grouped                  ``1,011.84 rps``
``count``  no decimals, thousands grouped                   ``12,000``
other      four significant digits, then the unit           ``0.5 MB``
=========  ==============================================  ====================

A missing value (None, NaN, infinity, a bool, anything that is not a number) prints as ``missing`` (default
``–``); the terminal and JUnit pass ``missing="no data"``.

Usage::

    from sla_checks.formatting import format_value
    format_value(3120.4, "ms")                      # '3,120 ms'
    format_value(None, "ratio", missing="no data")  # 'no data'
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

__all__ = ["MISSING", "finite", "format_clock", "format_count", "format_ms", "format_time", "format_value"]

MISSING = "–"
"""What a value that is not there prints as, unless the caller says otherwise."""


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or None for missing / non-numeric / bool / NaN / infinite values."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def format_ms(value: Any, missing: str = MISSING) -> str:
    """A duration in milliseconds: ``3,120 ms``, ``44.7 ms``, ``1.40 ms``."""
    number = finite(value)
    if number is None:
        return missing
    number += 0.0  # -0.0 → 0.0
    if abs(number) >= 100:
        return f"{number:,.0f} ms"
    if abs(number) >= 10:
        return f"{number:.1f} ms"
    return f"{number:.2f} ms"


def format_count(value: Any, missing: str = MISSING) -> str:
    """A count: ``12,000``."""
    number = finite(value)
    return missing if number is None else f"{number + 0.0:,.0f}"


def format_value(value: Any, unit: Any, missing: str = MISSING) -> str:
    """A threshold's value in its unit (``ms``, ``%``, ``ratio``, ``rps``, ``count`` or any other label)."""
    number = finite(value)
    if number is None:
        return missing
    if unit == "ms":
        return format_ms(number)
    if unit == "%":
        return f"{number:.2f} %"
    if unit == "ratio":
        return f"{number:.4f} ({number * 100:.2f} %)"
    if unit == "rps":
        return f"{number:,.2f} rps"
    if unit == "count":
        return format_count(number)
    return f"{number:,.4g}" + (f" {unit}" if unit else "")


def format_time(value: Any, missing: str = MISSING) -> str:
    """An ISO timestamp to the second, with its UTC offset: ``2026-01-01 16:02:00 UTC``; unparsable text as is."""
    if not value:
        return missing
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    offset = moment.strftime("%z")
    if offset in ("+0000", "-0000"):
        return text + " UTC"
    return text + (f" {offset}" if offset else "")


def format_clock(value: Any) -> str:
    """``HH:MM:SS`` of an ISO timestamp, or '' when it cannot be parsed."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).strftime("%H:%M:%S")
    except (TypeError, ValueError):
        return ""
