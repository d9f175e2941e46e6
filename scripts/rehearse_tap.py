"""The rehearsal backend's own reply times: an HTTP relay between the reference backend and ClickHouse that keeps
the ``agent_completed`` rows this backend inserts (``duration_ms``: the backend's time from receiving a message to
sending its ``agent_completed``).

Every reference backend on a machine writes to the same ClickHouse table, so rows read back from it mix runs. The
relay sees this backend's inserts only: ``--clickhouse-url`` of the backend points at it, it forwards every request
to ClickHouse unchanged (the backend works as usual) and keeps ``(time, duration_ms)`` of each ``agent_completed``
row of an insert that ClickHouse accepted. Stdlib only; runs in a thread of ``scripts/rehearse``.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["ClickHouseTap", "completed_rows", "is_event_insert"]

COMPLETED = "agent_completed"
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
               "host", "content-length"}


def is_event_insert(query: str, table: str) -> bool:
    """Whether ``query`` inserts rows into ``table`` (``database.table``)."""
    words = query.split(None, 3)
    return len(words) >= 3 and [w.upper() for w in words[:2]] == ["INSERT", "INTO"] and words[2] == table


def completed_rows(body: bytes) -> list[tuple[float, float]]:
    """``(epoch seconds, duration_ms)`` of the ``agent_completed`` rows of a ``JSONEachRow`` insert body."""
    out = []
    for line in body.splitlines():
        if b'"agent_completed"' not in line:
            continue
        try:
            row = json.loads(line)
            if row.get("event_type") != COMPLETED:
                continue
            t = datetime.strptime(row["ts"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
            out.append((t + int(row.get("ts_ms", 0)) / 1000.0, float(row["duration_ms"])))
        except (ValueError, KeyError, TypeError):
            continue
    return out


class ClickHouseTap:
    """``start()`` listens on 127.0.0.1 (``url``) and relays to ``upstream`` (``host:port``); ``rows`` holds this
    backend's accepted ``agent_completed`` rows; ``stop()`` ends it."""

    def __init__(self, upstream: str, table: str, timeout_s: float = 30.0) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.table = table
        self.timeout_s = timeout_s
        self.rows: list[tuple[float, float]] = []
        self.inserts = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def between(self, start: float, end: float) -> list[float]:
        """``duration_ms`` of the rows timed in ``[start, end]`` (epoch seconds)."""
        with self._lock:
            return [ms for t, ms in self.rows if start <= t <= end]

    def _keep(self, rows: Iterable[tuple[float, float]]) -> None:
        with self._lock:
            self.rows.extend(rows)
            self.inserts += 1

    def start(self) -> ClickHouseTap:
        tap = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                try:
                    conn = http.client.HTTPConnection(*tap.upstream, timeout=tap.timeout_s)
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        r = conn.getresponse()
                        answer, status, reason = r.read(), r.status, r.reason
                        answer_headers = [(k, v) for k, v in r.getheaders() if k.lower() not in _HOP_BY_HOP]
                    finally:
                        conn.close()
                except OSError as e:
                    answer, status, reason, answer_headers = f"tap: {e}".encode(), 502, "Bad Gateway", []
                if status == 200 and body:
                    query = " ".join(parse_qs(urlsplit(self.path).query).get("query", []))
                    if is_event_insert(query, tap.table):
                        tap._keep(completed_rows(body))
                self.send_response(status, reason)
                for k, v in answer_headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = _relay  # noqa: N815 - BaseHTTPRequestHandler's names

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                         name="clickhouse-tap").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
