"""Start and stop ``python -m reference_backend`` as a subprocess (used by tests/conftest.py and bench/backend_capacity.py).

Usage::

    with BackendProcess.start(log_dir, think_min_ms=100) as b:
        print(b.http_url, b.ws_url)
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.faults import FaultsClient

REPO = Path(__file__).resolve().parent.parent


class BackendStartError(Exception):
    """The backend did not become healthy; the message carries the tail of its log."""


@dataclass
class BackendProcess:
    proc: subprocess.Popen
    host: str
    port: int
    jwt_secret: str = field(repr=False)
    admin_token: str = field(repr=False)
    issuer: str
    log_path: Path
    seed_password: str = field(default="loadtest-password", repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def faults(self) -> FaultsClient:
        return FaultsClient(self.http_url, self.admin_token, timeout=15.0)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables for a client process (e.g. a Locust subprocess) talking to this backend."""
        return {
            "JWT_SECRET_KEY": self.jwt_secret,
            "JWT_ISSUER": self.issuer,
            "TARGET_ADMIN_TOKEN": self.admin_token,
            "TARGET_URL": self.http_url,
            "TARGET_WS_URL": self.ws_url,
            "TARGET_SEED_PASSWORD": self.seed_password,
        }

    def login(self, i: int = 0, timeout: float = 10.0) -> str:
        """POST /auth/login as seeded user ``loadtest{i}@example.com``; returns the access token."""
        body = json.dumps({"email": f"loadtest{i}@example.com", "password": self.seed_password}).encode()
        req = urllib.request.Request(self.http_url + "/auth/login", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())["access_token"]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait for the graceful shutdown, SIGKILL after ``timeout``. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def __enter__(self) -> BackendProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def start(cls, log_dir: Path, *, host: str = "127.0.0.1", env: dict[str, str] | None = None,
              ready_timeout: float = 30.0, **options: Any) -> BackendProcess:
        """Start on a free port with a random JWT secret and admin token (unless given as options)."""
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        tag = secrets.token_hex(4)
        port_file = log_dir / f"backend-{tag}.port"
        log_path = log_dir / f"backend-{tag}.log"
        jwt_secret = str(options.pop("jwt_secret", secrets.token_hex(32)))
        admin_token = str(options.pop("admin_token", secrets.token_hex(16)))
        issuer = str(options.pop("jwt_issuer", "agent-chat-backend"))
        seed_password = str(options.pop("seed_password", "loadtest-password"))
        port = int(options.pop("port", 0))
        penv = {k: v for k, v in os.environ.items() if not k.startswith(("TARGET_", "JWT_"))}
        penv.update(JWT_SECRET_KEY=jwt_secret, TARGET_ADMIN_TOKEN=admin_token, JWT_ISSUER=issuer,
                    TARGET_SEED_PASSWORD=seed_password, TARGET_PORT_FILE=str(port_file), PYTHONUNBUFFERED="1")
        penv.update(env or {})
        argv = [sys.executable, "-m", "reference_backend", "--host", host, "--port", str(port)]
        for k, v in options.items():
            argv += [f"--{k.replace('_', '-')}", str(v)]
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(argv, cwd=REPO, env=penv, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        b = cls(proc, host, port, jwt_secret, admin_token, issuer, log_path, seed_password)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BackendStartError(f"backend exited with code {proc.returncode}; log {log_path}:\n"
                                        f"{b.log_tail()}")
            if port_file.exists() and port_file.read_text().strip():
                b.port = int(port_file.read_text())
                try:
                    with urllib.request.urlopen(b.http_url + "/health", timeout=2) as r:
                        if r.status == 200:
                            return b
                except OSError:
                    pass
            time.sleep(0.1)
        b.stop()
        raise BackendStartError(f"backend not healthy within {ready_timeout:g} s; log {log_path}:\n{b.log_tail()}")
