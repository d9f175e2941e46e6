"""Redis tier (redis.asyncio): session cache, per-user rate counter, ``agent_state:{run_id}`` with a TTL.

redis-py's own retries are disabled so that a stall (CLIENT PAUSE) shows as latency and then as a timeout, instead
of being hidden by reconnect-and-retry.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from contract.schema import REDIS_AGENT_STATE_KEY, REDIS_RATE_KEY, REDIS_SESSION_KEY
from reference_backend.tiers import TierError, TierTimeout, reraise_if_cancelled

log = logging.getLogger(__name__)


class RedisTier:
    """A bounded, blocking connection pool: when all ``pool_size`` connections are busy (e.g. Redis is paused),
    callers wait for one within their timeout instead of failing with "Too many connections"."""

    def __init__(self, url: str, timeout_ms: float, pool_size: int = 64) -> None:
        self.url = url
        self.timeout_ms = timeout_ms
        t = timeout_ms / 1000.0
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=pool_size, timeout=t, socket_timeout=t + 0.5, socket_connect_timeout=t,
            retry=Retry(NoBackoff(), 0), health_check_interval=0,
        )
        self.pool = pool
        self.client = aioredis.Redis(connection_pool=pool)

    async def _run(self, operation: str, coro):  # noqa: ANN001
        try:
            async with asyncio.timeout(self.timeout_ms / 1000.0):
                result = await coro
            reraise_if_cancelled()
            return result
        except (TimeoutError, aioredis.TimeoutError):  # our deadline, or redis-py's socket timeout
            raise TierTimeout("redis", operation, self.timeout_ms) from None
        except aioredis.RedisError as e:
            raise TierError("redis", operation, f"{type(e).__name__}: {str(e)[:200]}") from None
        except OSError as e:
            raise TierError("redis", operation, f"{type(e).__name__}: {e.strerror or e}") from None

    async def admit_message(self, user_id: str, limit_per_s: int, now: float | None = None) -> tuple[int, dict | None]:
        """One round trip: bump the per-second rate counter and read the session. Returns (count, session)."""
        second = int(time.time() if now is None else now)
        rate_key = REDIS_RATE_KEY.format(user_id=user_id, second=second)
        session_key = REDIS_SESSION_KEY.format(user_id=user_id)

        async def go():
            async with self.client.pipeline(transaction=False) as p:
                p.incr(rate_key)
                p.expire(rate_key, 5)
                p.get(session_key)
                return await p.execute()

        count, _, raw = await self._run("admit", go())
        return int(count), _session_or_none(raw, session_key)

    async def start_run(self, user_id: str, session: dict, session_ttl_s: int, run_id: str, state: dict,
                        state_ttl_s: int) -> None:
        """One round trip: write the session and ``agent_state:{run_id}``."""
        skey = REDIS_SESSION_KEY.format(user_id=user_id)
        akey = REDIS_AGENT_STATE_KEY.format(run_id=run_id)

        async def go():
            async with self.client.pipeline(transaction=False) as p:
                p.set(skey, orjson.dumps(session), ex=session_ttl_s)
                p.set(akey, orjson.dumps(state), ex=state_ttl_s)
                return await p.execute()

        await self._run("start run", go())

    async def cache_session(self, user_id: str, session: dict, session_ttl_s: int) -> None:
        """Refill the session cache (after a fallback rebuilt the session elsewhere)."""
        key = REDIS_SESSION_KEY.format(user_id=user_id)
        await self._run("session refill", self.client.set(key, orjson.dumps(session), ex=session_ttl_s))

    async def set_agent_state(self, run_id: str, state: dict, ttl_s: int) -> None:
        key = REDIS_AGENT_STATE_KEY.format(run_id=run_id)
        await self._run("agent state", self.client.set(key, orjson.dumps(state), ex=ttl_s))

    async def check(self) -> None:
        await self._run("ping", self.client.ping())

    async def close(self) -> None:
        try:
            await self.client.aclose()
            await self.pool.aclose()
        except Exception:  # noqa: BLE001 - closing on shutdown must not raise
            log.debug("redis close failed", exc_info=True)


def _session_or_none(raw: bytes | None, key: str) -> dict | None:
    """The cached session, or None (a cache miss) when the stored value is not a JSON object: a corrupt cache entry
    is rebuilt by the next write, never a reason to fail the user's message."""
    if not raw:
        return None
    try:
        session = orjson.loads(raw)
    except orjson.JSONDecodeError:
        session = None
    if not isinstance(session, dict):
        log.warning("ignoring a corrupt session cache entry at %s (%d bytes)", key.split(":", 1)[0], len(raw))
        return None
    return session
