"""Range checks of numeric options: a bad value gives one line naming the option, the value and the fix.

``argparse``'s ``type=float`` takes ``nan``, ``inf`` and ``1e400`` (infinity); a timeout of NaN compares false with
everything, so a deadline computed from it never passes and the process ignores ``-t``. Every numeric option of the
suite goes through :func:`bounded` before any load runs.

Usage::

    hang_after = bounded("--ws-hang-after", options.ws_hang_after, low=0, high=3600, low_open=True,
                         error=ChatConfigError)
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["bounded", "range_text"]


def range_text(low: float, high: float, low_open: bool = False, unit: str = "") -> str:
    """``"> 0 and <= 3600 seconds"`` / ``"1 to 255"``: the accepted range in words."""
    if low_open:
        text = f"> {low:g} and <= {high:g}"
    else:
        text = f"{low:g} to {high:g}"
    return f"{text} {unit}".rstrip()


def bounded(option: str, value: Any, *, low: float, high: float, low_open: bool = False, unit: str = "",
            hint: str = "", integer: bool = False, error: type[Exception] = ValueError) -> float:
    """``value`` as a finite float within ``[low, high]`` (``(low, high]`` with ``low_open``), else ``error`` with
    one line: ``--opt has value nan: expected a finite number > 0 and <= 3600 seconds (10 is the default)``.
    ``integer``: also a whole number. ``hint`` is appended after ``;`` (what 0 means, the default ...)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    kind = "whole number" if integer else "finite number"
    ok = math.isfinite(number) and (number > low if low_open else number >= low) and number <= high
    if ok and integer and number != int(number):
        ok = False
    if not ok:
        shown = repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
        raise error(f"{option} has value {shown}: expected a {kind} {range_text(low, high, low_open, unit)}"
                    + (f"; {hint}" if hint else ""))
    return number
