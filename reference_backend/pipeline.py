"""The agent pipeline run per ``user_message``: Supervisor → Triage → Data → Optimizer.

Events per message (docs/protocol.md): ``agent_started``, then per stage ``agent_thinking`` and (for stages with a tool)
``tool_executing`` → ``tool_completed``, and ``agent_completed`` last. Every message touches the three tiers:
Redis (rate counter + session read in one round trip, session + ``agent_state:{run_id}`` writes), PostgreSQL (thread
upsert with ownership check, history, message and run rows), ClickHouse (one analytics row per event, batched by the
flusher). A tier timeout before the run starts answers ``error_message`` ``DEPENDENCY_TIMEOUT``; after it started,
``agent_error`` (the run is closed as failed); a run cut off by its client going away is closed as cancelled. Closing a
run is retried while PostgreSQL does not answer (:data:`CLOSE_DEADLINE_S`): no run is left 'running' (an orphan).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from reference_backend.auth import Principal
from reference_backend.fault_injection import FaultManager
from reference_backend.protocol import UserMessage, agent_error_frame, agent_event, error_frame
from reference_backend.settings import Settings
from reference_backend.tiers import TierError, TierTimeout
from reference_backend.tiers.clickhouse import ClickHouseTier, event_row
from reference_backend.tiers.postgres import PostgresTier, ThreadOwnershipError
from reference_backend.tiers.redis import RedisTier

log = logging.getLogger(__name__)

CLOSE_RETRY_S = 0.5
CLOSE_DEADLINE_S = 120.0
"""How long closing a failed or cancelled run is retried while PostgreSQL does not answer (then logged, given up)."""

Send = Callable[[dict[str, Any]], Awaitable[None]]

# (agent_name, share of the think time, tool name or None)
STAGES: tuple[tuple[str, float, str | None], ...] = (
    ("Supervisor", 0.15, None),
    ("Triage", 0.25, "classify_intent"),
    ("Data", 0.35, "query_metrics"),
    ("Optimizer", 0.25, "recommend_actions"),
)


class Pipeline:
    def __init__(self, settings: Settings, redis: RedisTier, pg: PostgresTier, ch: ClickHouseTier,
                 faults: FaultManager) -> None:
        self.s = settings
        self.redis = redis
        self.pg = pg
        self.ch = ch
        self.faults = faults
        self.completed = 0
        self.failed = 0
        self.rate_limited = 0
        self.session_fallbacks = 0
        self._bg: set[asyncio.Task] = set()

    def think_total_ms(self) -> float:
        return random.uniform(self.s.think_min_ms, self.s.think_max_ms) + self.faults.extra_think_ms()

    async def handle(self, msg: UserMessage, user: Principal, send: Send) -> None:
        """Run one message to its end; never raises (except cancellation)."""
        try:
            await self._handle(msg, user, send)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug must end the message with an error, never leave it hanging
            self.failed += 1
            log.exception("message failed with an internal error")
            thread_id = msg.thread_id or ""
            await send(error_frame("INTERNAL_ERROR", f"internal error: {type(e).__name__}", thread_id=thread_id,
                                   correlation_id=msg.correlation_id))

    async def _handle(self, msg: UserMessage, user: Principal, send: Send) -> None:
        if self.faults.active("hang"):
            log.debug("hang fault: message swallowed")
            return
        cid = msg.correlation_id
        thread_id = msg.thread_id or uuid.uuid4().hex
        t0 = time.perf_counter()

        def err(code: str, text: str) -> dict[str, Any]:
            return error_frame(code, text, thread_id=thread_id, correlation_id=cid)

        # -- admission: rate limit + session (Redis), thread/message/run rows (PostgreSQL) --------------------------
        try:
            count, session = await self._admit(user.user_id)
        except (TierTimeout, TierError) as e:
            self.failed += 1
            await send(err(_code(e), str(e)))
            return
        if self.s.rate_limit_per_s and count > self.s.rate_limit_per_s:
            self.rate_limited += 1
            await send(err("RATE_LIMITED", f"more than {self.s.rate_limit_per_s} messages per second for this user"))
            return
        run_id = uuid.uuid4().hex
        try:
            await self.pg.begin_message(thread_id=thread_id, user_id=user.user_id, content=msg.content,
                                        run_id=run_id, history_limit=self.s.history_limit)
        except ThreadOwnershipError:
            await send(err("BAD_REQUEST", "thread belongs to another user"))
            return
        except (TierTimeout, TierError) as e:
            self.failed += 1
            await send(err(_code(e), str(e)))
            return

        # -- the run ----------------------------------------------------------------------------------------------
        dropped = self.faults.dropped_events()
        uid = user.user_id

        async def emit(etype: str, agent: str, data: dict[str, Any], tool: str | None = None,
                       results: Any = None) -> None:
            ev = agent_event(etype, run_id=run_id, thread_id=thread_id, user_id=uid, agent_name=agent, data=data,
                             tool_name=tool, results=results, correlation_id=cid)
            self.ch.enqueue(event_row(ev, (time.perf_counter() - t0) * 1000))
            if etype not in dropped:
                await send(ev)

        stage = "Supervisor"
        try:
            await emit("agent_started", stage, {"message": "run started", "status": "running"})
            sess = dict(session or {})
            sess.update(last_thread_id=thread_id, last_run_id=run_id, messages=int(sess.get("messages", 0)) + 1)
            await self.redis.start_run(uid, sess, self.s.session_ttl_s, run_id,
                                       {"status": "running", "thread_id": thread_id, "stage": stage},
                                       self.s.agent_state_ttl_s)
            total = self.think_total_ms() / 1000.0
            for stage, share, tool in STAGES:
                think = total * share
                await emit("agent_thinking", stage, {"thought": f"{stage} is working", "step": stage.lower()})
                if tool is None:
                    await asyncio.sleep(think)
                    continue
                await asyncio.sleep(think * 0.5)
                await emit("tool_executing", stage, {"tool": tool, "args": {"thread_id": thread_id}}, tool=tool)
                await asyncio.sleep(think * 0.5)
                await emit("tool_completed", stage, {"tool": tool, "status": "ok"}, tool=tool,
                           results={"items": 3, "source": tool})
            stage = "Optimizer"
            duration_ms = (time.perf_counter() - t0) * 1000
            await self.redis.set_agent_state(run_id, {"status": "completed", "thread_id": thread_id,
                                                      "duration_ms": duration_ms}, self.s.agent_state_ttl_s)
            response = f"Recommendations for: {msg.content[:80]}"
            await self.pg.complete_message(thread_id=thread_id, user_id=uid, response=response, run_id=run_id,
                                           status="completed", duration_ms=duration_ms)
            # counted with its analytics row, before the send: a client that closes while the last frame goes out
            # (a load test's stop) does not make the count and the agent_completed rows disagree
            self.completed += 1
            await emit("agent_completed", "Supervisor",
                       {"result": {"response": response}, "status": "completed",
                        "duration_ms": round((time.perf_counter() - t0) * 1000, 3)})
        except (TierTimeout, TierError) as e:
            self.failed += 1
            self._close_run_later(run_id, "failed", t0)
            await send(agent_error_frame(
                run_id=run_id, thread_id=thread_id, user_id=uid, error_message=str(e), correlation_id=cid,
                error_context={"error_code": _code(e), "tier": e.tier, "operation": e.operation, "stage": stage}))
        except asyncio.CancelledError:
            # the client went away (or the backend stops) mid-run: the run row must not stay 'running'
            self._close_run_later(run_id, "cancelled", t0)
            raise

    async def _admit(self, user_id: str) -> tuple[int, dict | None]:
        """Rate counter and session from Redis. With ``session_budget_ms`` > 0, when Redis has not answered within it,
        the session is rebuilt from PostgreSQL instead and written back to the cache on the same pooled connection
        (the cache fallback, counted in ``session_fallbacks``; see ``PostgresTier.rebuild_session``), and the rate
        limit is not enforced for that message (it fails open while the cache is slow). The Redis read goes on in
        the background, bounded by the Redis timeout, so a slow Redis also holds its connections."""
        budget = self.s.session_budget_ms / 1000.0
        if budget <= 0:
            return await self.redis.admit_message(user_id, self.s.rate_limit_per_s)
        read = asyncio.ensure_future(self.redis.admit_message(user_id, self.s.rate_limit_per_s))
        try:
            done, _ = await asyncio.wait({read}, timeout=budget)
        except asyncio.CancelledError:
            read.cancel()
            raise
        if done:
            return read.result()
        self.session_fallbacks += 1
        self._bg.add(read)
        read.add_done_callback(self._bg.discard)
        read.add_done_callback(_forget)

        async def refill(session: dict) -> None:
            try:
                await self.redis.cache_session(user_id, session, self.s.session_ttl_s)
            except (TierTimeout, TierError) as e:  # the refill is best effort; the message goes on without it
                log.debug("session cache refill failed: %s", e)

        return 0, await self.pg.rebuild_session(user_id, refill)

    def _close_run_later(self, run_id: str, status: str, t0: float) -> None:
        """Close the run row as ``status`` in a task of its own (not cancelled with the message's task)."""
        t = asyncio.create_task(self._close_run(run_id, status, t0))
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    async def _close_run(self, run_id: str, status: str, t0: float) -> None:
        """Mark the run ``status``, retried every ``CLOSE_RETRY_S`` for up to ``CLOSE_DEADLINE_S`` while PostgreSQL
        does not answer (a held pool, a locked table): a failed run is closed once the dependency is back, not left
        'running' (an orphan)."""
        duration_ms = (time.perf_counter() - t0) * 1000
        give_up = time.monotonic() + CLOSE_DEADLINE_S
        while True:
            try:
                await self.pg.fail_run(run_id, status, duration_ms)
                return
            except (TierTimeout, TierError) as e:
                if time.monotonic() >= give_up:
                    log.warning("could not mark run %s %s within %g s: %s", run_id, status, CLOSE_DEADLINE_S, e)
                    return
                log.debug("could not mark run %s %s yet (%s); retrying", run_id, status, e)
            await asyncio.sleep(CLOSE_RETRY_S)


def _forget(task: asyncio.Task) -> None:
    """Done callback of a Redis read the message stopped waiting for: consume its outcome (a timeout is expected)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("abandoned Redis session read ended with: %s", task.exception())


def _code(e: Exception) -> str:
    return "DEPENDENCY_TIMEOUT" if isinstance(e, TierTimeout) else "DEPENDENCY_ERROR"
