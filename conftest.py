"""Repo-wide pytest setup: fail fast with a clear message when pytest runs outside the project's virtualenv."""

from __future__ import annotations

import importlib.util

import pytest

_NEEDED = ("locust", "gevent", "orjson", "jwt", "redis", "psycopg", "starlette", "uvicorn", "asyncpg")


def pytest_configure(config: pytest.Config) -> None:
    missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        pytest.exit(
            f"this Python lacks the suite's dependencies ({', '.join(missing)}): run scripts/test, or scripts/setup "
            f"and then .venv/bin/python -m pytest",
            returncode=4,
        )
