"""The agent pipeline run per ``user_message``: Supervisor → Triage → Data → Optimizer.

Events per message (docs/protocol.md): ``agent_started``, then per stage ``agent_thinking`` and (for stages with a tool)
``tool_executing`` → ``tool_completed``, and ``agent_completed`` last. Every message touches the three tiers:
Redis (rate counter + session read in one round trip, session + ``agent_state:{run_id}`` writes), PostgreSQL (thread
upsert with ownership check, history, message and run rows), ClickHouse (one analytics row per event, batched by the
flusher). A tier timeout before the run starts answers ``error_message`` ``DEPENDENCY_TIMEOUT``; after it started,
``agent_error`` (the run is closed as failed).
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
            count, session = await self.redis.admit_message(user.user_id, self.s.rate_limit_per_s)
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
            await emit("agent_completed", "Supervisor",
                       {"result": {"response": response}, "status": "completed",
                        "duration_ms": round((time.perf_counter() - t0) * 1000, 3)})
            self.completed += 1
        except (TierTimeout, TierError) as e:
            self.failed += 1
            await send(agent_error_frame(
                run_id=run_id, thread_id=thread_id, user_id=uid, error_message=str(e), correlation_id=cid,
                error_context={"error_code": _code(e), "tier": e.tier, "operation": e.operation, "stage": stage}))
            t = asyncio.create_task(self._close_failed_run(run_id, t0))
            self._bg.add(t)
            t.add_done_callback(self._bg.discard)

    async def _close_failed_run(self, run_id: str, t0: float) -> None:
        try:
            await self.pg.fail_run(run_id, "failed", (time.perf_counter() - t0) * 1000)
        except (TierTimeout, TierError) as e:
            log.info("could not mark run failed: %s", e)


def _code(e: Exception) -> str:
    return "DEPENDENCY_TIMEOUT" if isinstance(e, TierTimeout) else "DEPENDENCY_ERROR"
