"""Shared pytest fixtures: a running reference backend (``python -m reference_backend``) on a free port.

- ``backend`` (session): one backend for the whole run, random JWT secret and admin token. Attributes:
  ``ws_url``, ``http_url``, ``jwt_secret``, ``admin_token``, ``issuer``, ``pid``, ``log_path``, ``faults``
  (a ``reference_backend.faults.FaultsClient``), ``env`` (env vars for a Locust subprocess: JWT_SECRET_KEY, JWT_ISSUER,
  TARGET_ADMIN_TOKEN, TARGET_URL, TARGET_WS_URL, TARGET_SEED_PASSWORD), ``login(i)`` → access token of
  ``loadtest{i}@example.com``, ``log_tail()``, ``alive()``.
- ``faults`` (function): the session backend's FaultsClient; every fault is cleared on teardown.
- ``start_backend(**options)`` (function): factory for a backend of your own; keyword options become command-line
  options (``auth_reject_mode="http403"`` → ``--auth-reject-mode http403``; ``env={...}`` adds env vars); stopped
  (SIGTERM) on teardown.

The services (Redis, PostgreSQL, ClickHouse) must be up: ``scripts/services up``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from contract.faults import FaultsClient
from reference_backend.process import BackendProcess


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    b = BackendProcess.start(tmp_path_factory.mktemp("backend"))
    try:
        yield b
    finally:
        try:
            b.faults.clear()
        except Exception:  # noqa: BLE001 - the backend may already be gone
            pass
        b.stop()


@pytest.fixture
def faults(backend: BackendProcess) -> Iterator[FaultsClient]:
    client = backend.faults
    client.clear()
    try:
        yield client
    finally:
        client.clear()


@pytest.fixture
def start_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., BackendProcess]]:
    started: list[BackendProcess] = []

    def start(**options: Any) -> BackendProcess:
        b = BackendProcess.start(tmp_path_factory.mktemp("backend-own"), **options)
        started.append(b)
        return b

    try:
        yield start
    finally:
        for b in started:
            try:
                if b.alive():
                    b.faults.clear()
            except Exception:  # noqa: BLE001
                pass
            b.stop()
