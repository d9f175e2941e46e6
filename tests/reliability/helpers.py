"""Shared plumbing of the reliability suite: free ports, a controllable TCP proxy (black hole), a project-local
redis-server, a backend on a fixed port (so a restart comes back where the clients reconnect), Locust subprocesses,
PostgreSQL connection termination by owning process, and the secret scanner."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import psutil

from tests.helpers import free_port, wait_until  # noqa: F401  (re-exported for the reliability tests)

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).parent / "locust")
INSTRUMENTED = str(Path(__file__).resolve().parent / "instrumented_locustfile.py")


class TcpProxy:
    """127.0.0.1:<port> → upstream, in threads. ``blackhole(True)`` stops forwarding in both directions and stops
    accepting (new connects sit in the kernel backlog, bytes stay unread), like a network that drops every packet;
    ``blackhole(False)`` resumes. A connection whose upstream cannot be reached is closed at once."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._holed = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="proxy-accept")
        self._thread.start()

    def blackhole(self, on: bool) -> None:
        if on:
            self._holed.set()
        else:
            self._holed.clear()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            if self._holed.is_set():
                time.sleep(0.05)
                continue
            r, _, _ = select.select([self._listener], [], [], 0.1)
            if not r:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=2.0)
        except OSError:
            client.close()
            return
        with self._lock:
            self._socks.update((client, upstream))
        peer = {client: upstream, upstream: client}
        try:
            while not self._stopped.is_set():
                if self._holed.is_set():
                    time.sleep(0.05)
                    continue
                r, _, _ = select.select([client, upstream], [], [], 0.1)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._socks.discard(client)
                self._socks.discard(upstream)
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        self._thread.join(timeout=2)


class LocalRedis:
    """A throw-away ``redis-server`` on a free port (never the shared one on 6379); restartable on the same port."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server not installed: run scripts/services up")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        auth = f":{urllib.parse.quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--logfile", str(self.log_path)]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait_until(self._answers, 15):
            raise RuntimeError(f"local redis-server on {self.port} did not answer; see {self.log_path}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    s.recv(64)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()


def locust_cmd(locustfile: str, args: list[str]) -> list[str]:
    return [LOCUST, "-f", locustfile, *args]


def locust_env(extra: dict[str, str] | None = None, drop: Iterable[str] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in set(drop)}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def spawn_locust(args: list[str], env: dict[str, str], log_path: Path,
                 locustfile: str = INSTRUMENTED) -> subprocess.Popen:
    logf = open(log_path, "wb")  # noqa: SIM115 - owned by the child; closed when the child's fd closes
    try:
        return subprocess.Popen(locust_cmd(locustfile, args), cwd=log_path.parent, env=env, stdout=logf,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        logf.close()


def pids_of_tree(pid: int) -> set[int]:
    try:
        p = psutil.Process(pid)
        return {pid, *(c.pid for c in p.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def local_ports_to(pids: set[int], remote_port: int) -> set[int]:
    """Local TCP ports of ``pids``' connections to 127.0.0.1:``remote_port``."""
    ports = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        for c in conns:
            if c.raddr and c.raddr.port == remote_port:
                ports.add(c.laddr.port)
    return ports


def terminate_pg_connections(pids: set[int], dsn: str = "postgresql://postgres@127.0.0.1:5432/test") -> int:
    """``pg_terminate_backend`` of exactly the PostgreSQL sessions opened by ``pids`` (others' are left alone)."""
    import psycopg

    ports = local_ports_to(pids, 5432)
    if not ports:
        return 0
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE client_port = ANY(%s) AND pid <> pg_backend_pid()", (sorted(ports),)).fetchall()
    return sum(1 for (ok,) in rows if ok)


# --------------------------------------------------------------------------------------------- secret scanning

JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{10,}")


def secret_forms(secret: str) -> set[str]:
    """The secret as is and in the encodings it could leak in: URL-quoted, base64 (3 alignments), JSON-escaped."""
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
             json.dumps(secret)[1:-1]}
    raw = secret.encode()
    for shift in range(3):
        b64 = base64.b64encode(b"\0" * shift + raw).decode()
        # drop the characters influenced by the padding prefix and the tail
        start = (shift * 4 + 2) // 3 + (1 if shift else 0)
        core = b64[start:-4]
        if len(core) >= 12:
            forms.add(core)
        core_url = base64.urlsafe_b64encode(b"\0" * shift + raw).decode()[start:-4]
        if len(core_url) >= 12:
            forms.add(core_url)
    return {f for f in forms if len(f) >= 8}


def scan_for_secrets(texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """Every (where, which secret, form) hit, plus any JWT-shaped string. Empty list = clean."""
    hits = []
    forms = {name: secret_forms(value) for name, value in secrets.items()}
    for where, text in texts.items():
        for name, fs in forms.items():
            for f in fs:
                if f in text:
                    hits.append(f"{where}: {name} ({'raw' if f == secrets[name] else 'encoded'} form)")
        for m in JWT_RE.finditer(text):
            hits.append(f"{where}: a JWT {m.group(0)[:12]}...")
    return hits
