"""Read a user's TOML file (SLA profiles, query files) with one line per way it can be wrong (pure: no Locust)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

__all__ = ["read_toml"]


def read_toml(path: str | Path, label: str, hint: str, error: type[Exception], *, missing: str = "") -> dict[str, Any]:
    """The parsed file; ``error`` naming ``label`` (e.g. ``--pg-queries 'q.toml'``) and what to do (``hint``) when
    it is missing (``missing`` replaces the whole message), a directory, not UTF-8, not TOML or unreadable."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise error(missing or f"{label}: no such file; {hint}") from None
    except IsADirectoryError:
        raise error(f"{label} is a directory; {hint}") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{label} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise error(f"{label} is not UTF-8 text (a binary file?); {hint}") from None
    except OSError as e:
        raise error(f"{label} cannot be read: {e.strerror or e}") from None
