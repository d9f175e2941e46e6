"""Markup helpers of the HTML report: escaping, tolerant access to the report dict, status classes and badges."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from sla_checks.formatting import finite

__all__ = ["as_dict", "as_int", "as_list", "badge", "esc", "status_class"]


def esc(value: Any) -> str:
    """HTML-escape anything (None → empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def as_int(value: Any, default: int = 0) -> int:
    number = finite(value)
    return default if number is None else int(number)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, Mapping) else {}  # type: ignore[return-value]


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def status_class(status: Any) -> str:
    text = str(status or "").lower()
    if text in ("pass", "passed", "ok"):
        return "pass"
    if text in ("fail", "failed"):
        return "fail"
    if text.replace(" ", "") == "nodata":
        return "nodata"
    if text == "inconclusive":
        return "inconclusive"
    return "unknown"


def badge(status: Any) -> str:
    label = str(status) if status not in (None, "") else "unknown"
    return f'<span class="badge {status_class(status)}">{esc(label)}</span>'
