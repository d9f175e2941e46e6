"""ClickHouse tier over the HTTP interface (httpx async): schema, batched ``JSONEachRow`` inserts, health check.

The HTTP interface is used because clickhouse-connect 1.x cannot talk to ClickHouse 18.16 (Debian's), while plain
HTTP with ``FORMAT JSONEachRow`` works on 18.16 and on current versions alike.

Agent events are buffered in a bounded queue and written by one background flusher every ``flush_interval`` (or
sooner when a batch fills up); when ClickHouse stalls, the buffer fills and the oldest rows are dropped (counted in
``dropped_rows``) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from contract.schema import CH_COLUMNS, CH_DATABASE, CH_SCHEMA, CH_TABLE
from reference_backend.tiers import TierError, TierTimeout

log = logging.getLogger(__name__)

INSERT_SQL = f"INSERT INTO {CH_DATABASE}.{CH_TABLE} ({', '.join(CH_COLUMNS)}) FORMAT JSONEachRow"


def event_row(event: dict[str, Any], duration_ms: float, now: float | None = None) -> dict[str, Any]:
    t = time.time() if now is None else now
    dt = datetime.fromtimestamp(t, UTC)
    return {
        "event_date": dt.strftime("%Y-%m-%d"),
        "ts": dt.strftime("%Y-%m-%d %H:%M:%S"),
        "ts_ms": dt.microsecond // 1000,
        "run_id": event.get("run_id", ""),
        "thread_id": event.get("thread_id", ""),
        "user_id": event.get("user_id", ""),
        "agent_name": event.get("agent_name", ""),
        "event_type": event.get("type", ""),
        "tool_name": event.get("tool_name") or "",
        "duration_ms": float(duration_ms),
    }


class ClickHouseTier:
    def __init__(self, url: str, timeout_ms: float, *, flush_interval_ms: float = 500.0, batch_rows: int = 5000,
                 queue_rows: int = 100_000) -> None:
        self.url = url.rstrip("/")
        self.timeout_ms = timeout_ms
        self.flush_interval = flush_interval_ms / 1000.0
        self.batch_rows = batch_rows
        self.buffer: deque[dict[str, Any]] = deque(maxlen=queue_rows)
        self.client = httpx.AsyncClient(timeout=timeout_ms / 1000.0, limits=httpx.Limits(max_connections=8))
        self.schema_ready = False
        self.dropped_rows = 0
        self.inserted_rows = 0
        self.failed_flushes = 0
        self.lost_rows = 0
        self.last_flush_ms: float | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def _post(self, operation: str, sql: str, body: bytes | None = None, timeout_s: float | None = None) -> str:
        params = {"query": sql}
        try:
            r = await self.client.post(self.url + "/", params=params, content=body or b"",
                                       timeout=timeout_s if timeout_s is not None else self.timeout_ms / 1000.0)
        except httpx.TimeoutException:
            raise TierTimeout("clickhouse", operation, self.timeout_ms) from None
        except httpx.HTTPError as e:
            raise TierError("clickhouse", operation, f"{type(e).__name__}: {str(e)[:200]}") from None
        if r.status_code != 200:
            raise TierError("clickhouse", operation, f"HTTP {r.status_code}: {r.text[:300].strip()}")
        return r.text

    async def query(self, sql: str, operation: str = "query", timeout_s: float | None = None) -> str:
        return await self._post(operation, sql, timeout_s=timeout_s)

    async def ensure_schema(self) -> None:
        if not self.schema_ready:
            for stmt in CH_SCHEMA:
                await self._post("schema", stmt)
            self.schema_ready = True

    async def insert_rows(self, rows: list[dict[str, Any]]) -> None:
        body = b"\n".join(orjson.dumps(r) for r in rows)
        await self._post("insert", INSERT_SQL, body)

    def enqueue(self, row: dict[str, Any]) -> None:
        if len(self.buffer) == self.buffer.maxlen:
            self.dropped_rows += 1
        self.buffer.append(row)
        if len(self.buffer) >= self.batch_rows:
            self._wake.set()

    async def flush(self) -> int:
        """Write up to one batch; on failure the rows go back to the front of the buffer."""
        if not self.buffer:
            return 0
        if not self.schema_ready:
            await self.ensure_schema()
        batch = [self.buffer.popleft() for _ in range(min(self.batch_rows, len(self.buffer)))]
        t0 = time.perf_counter()
        try:
            await self.insert_rows(batch)
        except TierTimeout:
            # The server may still apply an insert the client gave up on: count the rows as lost, do not retry
            # (at most once, no duplicates).
            self.lost_rows += len(batch)
            raise
        except BaseException:
            room = (self.buffer.maxlen or 0) - len(self.buffer)
            keep = batch[len(batch) - room:] if room < len(batch) else batch
            self.dropped_rows += len(batch) - len(keep)
            self.buffer.extendleft(reversed(keep))
            raise
        self.last_flush_ms = (time.perf_counter() - t0) * 1000
        self.inserted_rows += len(batch)
        return len(batch)

    async def _flusher(self) -> None:
        backoff = self.flush_interval
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while await self.flush() >= self.batch_rows:
                    pass
                backoff = self.flush_interval
            except (TierError, TierTimeout) as e:
                self.failed_flushes += 1
                log.warning("clickhouse flush failed (%d rows buffered): %s", len(self.buffer), e)
                backoff = min(max(backoff * 2, self.flush_interval), 5.0)

    def start_flusher(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._flusher(), name="clickhouse-flusher")

    async def check(self) -> None:
        await self.ensure_schema()
        # Touches the agent-event table, so a stall of that table shows here too.
        text = await self._post("check", f"SELECT count() FROM {CH_DATABASE}.{CH_TABLE} WHERE event_date = today()")
        if not text.strip().isdigit():
            raise TierError("clickhouse", "check", f"unexpected answer {text[:50]!r}")

    def stats(self) -> dict[str, Any]:
        return {"buffered_rows": len(self.buffer), "inserted_rows": self.inserted_rows,
                "dropped_rows": self.dropped_rows, "lost_rows": self.lost_rows, "failed_flushes": self.failed_flushes,
                "last_flush_ms": self.last_flush_ms}

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except BaseException:  # noqa: BLE001
                pass
            self._task = None
        try:
            await asyncio.wait_for(self.flush(), 3.0)
        except BaseException as e:  # noqa: BLE001 - best effort on shutdown
            log.warning("clickhouse final flush failed, %d rows lost: %s", len(self.buffer), e)
        await self.client.aclose()
