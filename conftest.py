"""Repo-wide pytest setup: fail fast with a clear message when pytest runs outside the project's virtualenv; the
compiled hot path (users/accel.py) off unless a test turns it on."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

# The tests run the Python source, also on a machine where scripts/build-accel built the compiled hot path (and so
# do the Locust processes they start, which inherit this), except in tests/integration/test_accel.py's compiled leg
# (WS_SUITE_TEST_COMPILED=1): it runs the chat tests again on the build in WS_SUITE_ACCEL_DIR.
COMPILED_LEG = os.environ.get("WS_SUITE_TEST_COMPILED") == "1"
os.environ["WS_SUITE_ACCEL"] = "on" if COMPILED_LEG else "off"
if COMPILED_LEG:
    import users.accel  # installs the build's finder before any test module imports a chat module

    _COMPILED = sorted(n for f in sys.meta_path if isinstance(f, users.accel.CompiledFinder) for n in f.modules)
    if _COMPILED != sorted(users.accel.HOT_MODULES):
        raise RuntimeError(f"compiled leg: the build in {users.accel.build_dir()} gave only {_COMPILED}")


def pytest_report_header(config: pytest.Config) -> str | None:
    if not COMPILED_LEG:
        return None
    import importlib

    files = [importlib.import_module(n).__file__ or "" for n in users.accel.HOT_MODULES]
    if not all(f.endswith(".so") for f in files):
        raise RuntimeError(f"compiled leg: not every hot module is compiled: {files}")
    return f"compiled hot path: {len(files)} modules from {users.accel.build_dir()}"

_NEEDED = ("locust", "gevent", "orjson", "jwt", "redis", "psycopg", "starlette", "uvicorn", "asyncpg")


def pytest_configure(config: pytest.Config) -> None:
    missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        pytest.exit(
            f"this Python lacks the suite's dependencies ({', '.join(missing)}): run scripts/test, or scripts/setup "
            f"and then .venv/bin/python -m pytest",
            returncode=4,
        )
