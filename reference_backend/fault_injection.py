"""Server side of fault injection: each fault degrades a real dependency (or, for the app's own faults, the app).

Every fault runs as one asyncio task that lives ``for_s`` seconds and undoes what it changed in a ``finally``
block, so expiry, ``clear()`` and shutdown all restore the original state. Kinds and mechanisms:

- ``redis-pause``: ``CLIENT PAUSE ms ALL`` (works on any Redis >= 6.2; ``DEBUG SLEEP`` needs a debug-enabled Redis).
  Redis defers every command during an ALL pause, even ``CLIENT UNPAUSE``, so ``clear`` cannot shorten a pause
  that has started: keep ``ms`` short on a shared Redis.
- ``redis-slow``: ``CLIENT PAUSE ms ALL`` every ``params.period_ms`` (default ms + 100).
- ``redis-memory-pressure``: ``CONFIG SET maxmemory`` to current use + ``params.headroom_mb`` (default 2),
  ``maxmemory-policy`` ``params.policy`` (default volatile-lru, so only keys with a TTL are evicted), filled with
  TTL'd filler keys; original config restored and filler deleted at the end.
- ``pg-lock``: a separate connection holds ``LOCK TABLE messages IN ACCESS EXCLUSIVE MODE``.
- ``pg-pool-exhaustion``: all connections of the backend's own pool are checked out and held.
- ``pg-slow-query``: a separate connection takes ``ACCESS EXCLUSIVE`` on messages for ``ms`` out of every
  ``ms + params.gap_ms``: each thread-history query waits inside PostgreSQL (up to ms).
- ``pg-hot-row``: a separate connection updates the PG probe's hot row (``contract.isolation``, the probe's own
  scratch table, created if missing) and holds that row lock ``ms`` before it commits, again after ``params.gap_ms``
  (default 20): a concurrent writer, so the probe's REPEATABLE READ / SERIALIZABLE transactions on the row fail with
  40001 and its READ COMMITTED ones wait.
- ``clickhouse-stall``: see ``_clickhouse_stall``.
- ``agent-slow``, ``hang``, ``drop-event``, ``slow-pong``: the app's own faults, read by the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
import httpx
import orjson
import redis.asyncio as aioredis

from contract.faults import FAULT_KINDS
from contract.isolation import HOT_KEY, HOT_ROW_BUMP, ISOLATION_DDL, ISOLATION_SEED_ROW
from contract.schema import CH_DATABASE, CH_TABLE
from reference_backend.protocol import EVENT_TYPES
from reference_backend.settings import Settings
from reference_backend.tiers.clickhouse import INSERT_SQL, ClickHouseTier, event_row
from reference_backend.tiers.postgres import PostgresTier

log = logging.getLogger(__name__)

DEFAULT_MS = {
    "redis-pause": 3000, "redis-slow": 100, "pg-slow-query": 500, "pg-hot-row": 300, "agent-slow": 3000, "slow-pong": 3000,
    "clickhouse-stall": 0, "redis-memory-pressure": 0, "pg-lock": 0, "pg-pool-exhaustion": 0, "hang": 0,
    "drop-event": 0,
}
MAX_FOR_S = 600.0
MAX_PAUSE_MS = 30_000
FILL_PREFIX = "target:fault:fill:"
EXCLUSIVE_KINDS = ("redis-memory-pressure", "clickhouse-stall", "pg-pool-exhaustion", "pg-lock", "pg-slow-query",
                   "pg-hot-row")
SAFE_POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "noeviction")
MAXMEMORY_BACKUP_KEY = "target:fault:maxmemory-original"
STALL_MARK = "target fault: clickhouse-stall"


class FaultRequestError(Exception):
    """A bad fault request (HTTP 400); the message names the field, the value and the fix."""


@dataclass
class Fault:
    id: str
    kind: str
    ms: int
    for_s: float
    params: dict[str, Any]
    started_at: float
    expires_at: float
    info: dict[str, Any] = field(default_factory=dict)
    task: asyncio.Task | None = None

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "ms": self.ms, "for_s": self.for_s, "params": self.params,
                "started_at": self.started_at, "expires_at": self.expires_at,
                "remaining_s": round(max(0.0, self.expires_at - time.time()), 3), "info": self.info}


class FaultManager:
    def __init__(self, settings: Settings, pg: PostgresTier, ch: ClickHouseTier) -> None:
        self.settings = settings
        self.pg = pg
        self.ch = ch
        self.faults: dict[str, Fault] = {}

    # -- queries used by the app ------------------------------------------------------------------------------
    def active(self, kind: str) -> Fault | None:
        for f in self.faults.values():
            if f.kind == kind:
                return f
        return None

    def dropped_events(self) -> set[str]:
        return {f.params["event"] for f in self.faults.values() if f.kind == "drop-event"}

    def extra_think_ms(self) -> float:
        return sum(f.ms for f in self.faults.values() if f.kind == "agent-slow")

    # -- admin ---------------------------------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        return [f.describe() for f in self.faults.values()]

    async def apply(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise FaultRequestError('body must be a JSON object like {"kind": "redis-pause", "ms": 3000, "for_s": 5}')
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise FaultRequestError(f"kind {kind!r} is not a fault kind; use one of {', '.join(FAULT_KINDS)}")
        ms = body.get("ms")
        if ms is None:
            ms = DEFAULT_MS[kind]
        if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0:
            raise FaultRequestError(f"ms has value {ms!r}: must be a number >= 0")
        ms = int(ms)
        for_s = body.get("for_s", 10.0)
        if isinstance(for_s, bool) or not isinstance(for_s, int | float) or not 0 < for_s <= MAX_FOR_S:
            raise FaultRequestError(f"for_s has value {for_s!r}: must be a number in (0, {MAX_FOR_S:g}]")
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise FaultRequestError(f"params has value {params!r}: must be an object")
        if kind == "drop-event" and params.get("event") not in EVENT_TYPES:
            raise FaultRequestError(
                f"drop-event needs params.event, one of {', '.join(EVENT_TYPES)}; got {params.get('event')!r}")
        if kind in EXCLUSIVE_KINDS and self.active(kind):
            raise FaultRequestError(f"a {kind} fault is already active; clear it first (DELETE /admin/faults)")
        if kind == "redis-memory-pressure" and params.get("policy", "volatile-lru") not in SAFE_POLICIES:
            raise FaultRequestError(f"params.policy has value {params.get('policy')!r}: use one of "
                                    f"{', '.join(SAFE_POLICIES)} (allkeys-* would evict other users' keys)")
        if kind in ("redis-pause", "redis-slow") and ms > MAX_PAUSE_MS:
            raise FaultRequestError(f"ms has value {ms}: a Redis pause cannot be undone early, keep it <= {MAX_PAUSE_MS}")
        if kind == "redis-pause":
            ms = ms or int(for_s * 1000)
            for_s = max(float(for_s), ms / 1000.0)
        now = time.time()
        fault = Fault(uuid.uuid4().hex[:12], kind, ms, float(for_s), params, now, now + float(for_s))
        runner = getattr(self, "_" + kind.replace("-", "_"))
        started = asyncio.get_running_loop().create_future()
        fault.task = asyncio.create_task(self._run(fault, runner, started), name=f"fault-{kind}-{fault.id}")
        self.faults[fault.id] = fault
        await started  # raises if the fault could not be set up
        log.warning("fault applied: %s ms=%d for_s=%g id=%s %s", kind, ms, for_s, fault.id, fault.info)
        return fault.describe()

    async def clear(self) -> int:
        faults = list(self.faults.values())
        for f in faults:
            if f.task is not None:
                f.task.cancel()
        for f in faults:
            if f.task is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(f.task), 10.0)
        if faults:
            log.warning("faults cleared: %d", len(faults))
        return len(faults)

    async def _run(self, fault: Fault, runner, started: asyncio.Future) -> None:  # noqa: ANN001
        try:
            await runner(fault, started)
        except asyncio.CancelledError:
            pass
        except Exception as e:  # noqa: BLE001
            if not started.done():
                started.set_exception(FaultRequestError(f"{fault.kind} could not be applied: {e}"))
            else:
                log.warning("fault %s (%s) ended with an error: %s", fault.kind, fault.id, e)
        finally:
            if not started.done():
                started.set_result(None)
            self.faults.pop(fault.id, None)
            log.info("fault ended: %s id=%s", fault.kind, fault.id)

    async def _hold(self, fault: Fault) -> None:
        await asyncio.sleep(max(0.0, fault.expires_at - time.time()))

    # -- app-level faults: the pipeline reads them while they are listed ------------------------------------------
    async def _agent_slow(self, fault: Fault, started: asyncio.Future) -> None:
        started.set_result(None)
        await self._hold(fault)

    _hang = _agent_slow
    _drop_event = _agent_slow
    _slow_pong = _agent_slow

    # -- Redis -----------------------------------------------------------------------------------------------------
    def _redis(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.settings.redis_url, socket_timeout=MAX_PAUSE_MS / 1000 + 5,
                                       socket_connect_timeout=5)

    async def _redis_pause(self, fault: Fault, started: asyncio.Future) -> None:
        r = self._redis()
        try:
            await r.execute_command("CLIENT", "PAUSE", fault.ms, "ALL")
            fault.info["paused_until"] = time.time() + fault.ms / 1000
            started.set_result(None)
            await self._hold(fault)
        finally:
            await r.aclose()

    async def _redis_slow(self, fault: Fault, started: asyncio.Future) -> None:
        period = float(fault.params.get("period_ms", fault.ms + 100)) / 1000.0
        if period * 1000 <= fault.ms:
            raise FaultRequestError(f"params.period_ms must exceed ms ({fault.ms})")
        r = self._redis()
        try:
            await r.execute_command("CLIENT", "PAUSE", fault.ms, "ALL")
            started.set_result(None)
            fault.info["pauses"] = 1
            while time.time() + period < fault.expires_at:
                await asyncio.sleep(period)
                await r.execute_command("CLIENT", "PAUSE", fault.ms, "ALL")
                fault.info["pauses"] += 1
            await self._hold(fault)
        finally:
            await r.aclose()

    async def _redis_memory_pressure(self, fault: Fault, started: asyncio.Future) -> None:
        headroom = int(float(fault.params.get("headroom_mb", 2)) * 1024 * 1024)
        policy = str(fault.params.get("policy", "volatile-lru"))
        r = self._redis()
        original: dict[str, Any] = {}
        prefix = f"{FILL_PREFIX}{fault.id}:"
        try:
            original = cast(dict[str, Any], await r.config_get("maxmemory"))  # redis-py decodes CONFIG GET
            original.update(cast(dict[str, Any], await r.config_get("maxmemory-policy")))
            await r.set(MAXMEMORY_BACKUP_KEY, orjson.dumps({**original, "expires_at": fault.expires_at}), nx=True)
            used = int((await r.info("memory"))["used_memory"])
            limit = used + headroom
            await r.config_set("maxmemory-policy", policy)
            await r.config_set("maxmemory", limit)
            fault.info.update(maxmemory=limit, policy=policy)
            ttl = int(fault.for_s) + 10
            chunk = b"x" * 32768
            n = 0

            async def fill() -> None:
                nonlocal n
                for _ in range(2 * headroom // len(chunk) + 8):
                    try:
                        await r.set(f"{prefix}{n}", chunk, ex=ttl)
                    except aioredis.ResponseError:  # OOM: memory is full
                        break
                    n += 1

            await fill()
            fault.info["filler_keys"] = n
            started.set_result(None)
            while time.time() < fault.expires_at:
                await asyncio.sleep(min(1.0, max(0.0, fault.expires_at - time.time())))
                await fill()
        finally:
            try:
                if original:
                    await asyncio.shield(r.config_set("maxmemory", original["maxmemory"]))
                    await asyncio.shield(r.config_set("maxmemory-policy", original["maxmemory-policy"]))
                    await r.delete(MAXMEMORY_BACKUP_KEY)
                keys = [k async for k in r.scan_iter(match=prefix + "*", count=1000)]
                for i in range(0, len(keys), 500):
                    await r.unlink(*keys[i:i + 500])
            except Exception as e:  # noqa: BLE001
                log.error("redis-memory-pressure could not restore maxmemory=%s policy=%s: %s (restore by hand: "
                          "redis-cli config set maxmemory ...)", original.get("maxmemory"),
                          original.get("maxmemory-policy"), e)
            await r.aclose()

    # -- PostgreSQL ---------------------------------------------------------------------------------------------------
    async def _pg_connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.pg_dsn, timeout=5)

    async def _pg_lock(self, fault: Fault, started: asyncio.Future) -> None:
        conn = await self._pg_connect()
        try:
            tr = conn.transaction()
            await tr.start()
            await conn.execute("SET lock_timeout = '5s'")
            await conn.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            fault.info["backend_pid"] = conn.get_server_pid()
            started.set_result(None)
            await self._hold(fault)
        finally:
            await _close_pg(conn)

    async def _pg_slow_query(self, fault: Fault, started: asyncio.Future) -> None:
        gap = float(fault.params.get("gap_ms", 50)) / 1000.0
        hold = fault.ms / 1000.0
        conn = await self._pg_connect()
        try:
            await conn.execute("SET lock_timeout = '5s'")
            fault.info["pulses"] = 0
            while time.time() < fault.expires_at:
                async with conn.transaction():
                    await conn.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
                    if not started.done():
                        started.set_result(None)
                    fault.info["pulses"] += 1
                    await asyncio.sleep(min(hold, max(0.0, fault.expires_at - time.time())))
                await asyncio.sleep(gap)
        finally:
            await _close_pg(conn)

    async def _pg_hot_row(self, fault: Fault, started: asyncio.Future) -> None:
        gap = float(fault.params.get("gap_ms", 20)) / 1000.0
        hold = fault.ms / 1000.0
        conn = await self._pg_connect()
        try:
            await conn.execute("SET lock_timeout = '5s'")
            with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateTableError):
                await conn.execute(ISOLATION_DDL)  # the probe's own table; a concurrent creator may win
            await conn.execute(ISOLATION_SEED_ROW, HOT_KEY)
            fault.info["commits"] = 0
            while time.time() < fault.expires_at:
                async with conn.transaction():
                    await conn.execute(HOT_ROW_BUMP, HOT_KEY)
                    if not started.done():
                        started.set_result(None)
                    await asyncio.sleep(min(hold, max(0.0, fault.expires_at - time.time())))
                fault.info["commits"] += 1
                await asyncio.sleep(gap)
        finally:
            await _close_pg(conn)

    async def _pg_pool_exhaustion(self, fault: Fault, started: asyncio.Future) -> None:
        pool = self.pg.pool
        if pool is None:
            raise FaultRequestError("the backend's PostgreSQL pool is not connected")
        held: list[asyncpg.Connection] = []
        try:
            deadline = time.monotonic() + 5.0
            while len(held) < self.pg.pool_size and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    held.append(await pool.acquire(timeout=max(0.05, deadline - time.monotonic())))
            fault.info["held_connections"] = len(held)
            started.set_result(None)
            await self._hold(fault)
        finally:
            for c in held:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pool.release(c))

    # -- ClickHouse ---------------------------------------------------------------------------------------------------
    async def _clickhouse_stall(self, fault: Fault, started: asyncio.Future) -> None:
        """Block inserts into the agent-event table inside ClickHouse for the duration.

        Mechanism (verified on 18.16): a slow ``SELECT sleepEachRow(1) FROM <table>`` (one row per block) holds the
        table's structure lock; an ``ALTER TABLE ... COMMENT COLUMN`` queued behind it takes the table's data lock
        and waits; every INSERT (and every new SELECT) of that table then waits behind the ALTER. At the end the
        SELECT is killed (``KILL QUERY``), the ALTER goes through, and the column comment is restored.
        """
        table = f"{CH_DATABASE}.{CH_TABLE}"
        qid = f"target-fault-{fault.id}"
        seconds = int(fault.for_s) + 2
        client = httpx.AsyncClient(base_url=self.ch.url, timeout=httpx.Timeout(10.0, read=fault.for_s + 30))

        async def q(sql: str, **params: str) -> str:
            r = await client.post("/", params={"query": sql, **params})
            if r.status_code != 200:
                raise RuntimeError(f"clickhouse answered HTTP {r.status_code}: {r.text[:200].strip()}")
            return r.text

        select_task: asyncio.Task | None = None
        alter_task: asyncio.Task | None = None
        original = ""
        try:
            await self.ch.ensure_schema()
            original = (await q(f"SELECT comment FROM system.columns WHERE database = '{CH_DATABASE}' "
                                f"AND table = '{CH_TABLE}' AND name = 'tool_name' FORMAT TabSeparatedRaw")).strip()
            if original.startswith(STALL_MARK):
                original = ""
            have = int((await q(f"SELECT count() FROM {table}")).strip() or 0)
            if have < seconds:  # the stalling SELECT needs one table row per second of stall
                rows = "\n".join(
                    orjson.dumps(event_row({"type": "fault_filler", "run_id": qid}, 0.0)).decode()
                    for _ in range(seconds - have))
                r = await client.post("/", params={"query": INSERT_SQL},
                                      content=rows.encode())
                r.raise_for_status()
            select_task = asyncio.create_task(q(
                f"SELECT sleepEachRow(1) FROM {table} LIMIT {seconds} "
                f"SETTINGS max_block_size = 1, max_threads = 1", query_id=qid))
            await asyncio.sleep(0.3)
            if select_task.done():
                select_task.result()  # raises the error that ended it
                raise RuntimeError("the stalling SELECT ended early")
            mark = f"{STALL_MARK} until {int(fault.expires_at)}"
            alter_task = asyncio.create_task(q(f"ALTER TABLE {table} COMMENT COLUMN tool_name '{mark}'"))
            await asyncio.sleep(0.2)
            fault.info.update(query_id=qid, mechanism="SELECT sleepEachRow holding the table + queued ALTER")
            started.set_result(None)
            await self._hold(fault)
        finally:
            try:
                await asyncio.shield(q(f"KILL QUERY WHERE query_id = '{qid}' ASYNC"))
                for t in (select_task, alter_task):
                    if t is not None:
                        with contextlib.suppress(BaseException):
                            await asyncio.wait_for(asyncio.shield(t), 15.0)
                restore = original.replace("\\", "\\\\").replace("'", "\\'")
                await asyncio.shield(q(f"ALTER TABLE {table} COMMENT COLUMN tool_name '{restore}'"))
            except Exception as e:  # noqa: BLE001
                log.error("clickhouse-stall cleanup failed (query %s): %s", qid, e)
            await client.aclose()

    # -- recovery of state a killed backend may have left behind ---------------------------------------------------
    async def recover(self) -> None:
        r = self._redis()
        try:
            raw = await r.get(MAXMEMORY_BACKUP_KEY)
            orig = orjson.loads(raw) if raw else None
            if orig and float(orig.get("expires_at", 0)) + 10 < time.time():
                await r.config_set("maxmemory", orig["maxmemory"])
                await r.config_set("maxmemory-policy", orig["maxmemory-policy"])
                await r.delete(MAXMEMORY_BACKUP_KEY)
                log.warning("restored Redis maxmemory=%s policy=%s left by an earlier redis-memory-pressure",
                            orig["maxmemory"], orig["maxmemory-policy"])
        except Exception as e:  # noqa: BLE001
            log.warning("could not check Redis for left-over fault state: %s", e)
        finally:
            await r.aclose()
        try:
            async with httpx.AsyncClient(base_url=self.ch.url, timeout=5.0) as c:
                r2 = await c.post("/", params={"query": f"SELECT comment FROM system.columns WHERE database = "
                                                        f"'{CH_DATABASE}' AND table = '{CH_TABLE}' AND name = 'tool_name'"})
                comment = r2.text.strip()
                if r2.status_code == 200 and comment.startswith(STALL_MARK):
                    until = float(comment.rsplit(" ", 1)[-1]) if comment[-1:].isdigit() else 0.0
                    if until + 30 < time.time():
                        await c.post("/", params={"query": f"ALTER TABLE {CH_DATABASE}.{CH_TABLE} "
                                                            f"COMMENT COLUMN tool_name ''"})
                        log.warning("reset the ClickHouse column comment left by an earlier clickhouse-stall")
        except Exception as e:  # noqa: BLE001
            log.warning("could not check ClickHouse for left-over fault state: %s", e)


async def _close_pg(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.shield(asyncio.wait_for(conn.close(), 5.0))
    except BaseException:  # noqa: BLE001
        conn.terminate()
