"""HTTP and WebSocket routes of the reference backend (Starlette).

Routes: ``/ws`` and ``/api/v1/websocket`` (the chat protocol), ``POST /auth/login``, ``GET /health``,
``/health/live``, ``/health/ready``, and ``GET|POST|DELETE /admin/faults`` (admin token required).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from reference_backend import auth
from reference_backend.fault_injection import FaultManager, FaultRequestError
from reference_backend.pipeline import Pipeline
from reference_backend.protocol import (
    Ping,
    ProtocolError,
    UserMessage,
    ack_frame,
    dumps,
    error_frame,
    parse_frame,
    pong_frame,
    welcome_frame,
)
from reference_backend.settings import Settings
from reference_backend.tiers import TierError, TierTimeout
from reference_backend.tiers.clickhouse import ClickHouseTier
from reference_backend.tiers.postgres import PostgresTier
from reference_backend.tiers.redis import RedisTier

log = logging.getLogger(__name__)


MAX_HTTP_BODY = 65536


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request) -> bytes:
    """The request body, refusing more than MAX_HTTP_BODY bytes without reading it all."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_HTTP_BODY:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


class Backend:
    """Holds the tiers, the pipeline and the fault manager of one process."""

    def __init__(self, settings: Settings) -> None:
        s = settings
        self.s = s
        self.started = time.time()
        self.redis = RedisTier(s.redis_url, s.redis_timeout_ms, pool_size=s.redis_pool_size)
        self.pg = PostgresTier(s.pg_dsn, s.pg_pool_size, s.pg_timeout_ms, s.pg_work_ms)
        self.ch = ClickHouseTier(s.clickhouse_url, s.clickhouse_timeout_ms, flush_interval_ms=s.ch_flush_interval_ms,
                                 batch_rows=s.ch_batch_rows, queue_rows=s.ch_queue_rows)
        self.faults = FaultManager(s, self.pg, self.ch)
        self.pipeline = Pipeline(s, self.redis, self.pg, self.ch, self.faults)
        self.users: dict[str, auth.SeedUser] = {}
        self.connections = 0
        self.in_flight = 0  # message tasks (and delayed pongs) alive across all connections
        self._bg: set[asyncio.Task] = set()

    async def startup(self) -> None:
        self.users = await asyncio.to_thread(auth.make_seed_users, self.s.seed_users, self.s.seed_password,
                                             self.s.bcrypt_rounds)
        for name, fn in (("postgres", self.pg.start), ("clickhouse", self.ch.ensure_schema)):
            try:
                await asyncio.wait_for(fn(), 10.0)
            except Exception as e:  # noqa: BLE001 - a tier that is down at start is retried in the background
                log.warning("%s not ready at start (%s: %s); retrying in the background", name, type(e).__name__, e)
                self._spawn(self._retry_start(name, fn))
        self.ch.start_flusher()
        await self.faults.recover()
        log.info("backend started: %d seeded users, pg pool %d, think %g-%g ms, auth reject mode %s",
                 len(self.users), self.s.pg_pool_size, self.s.think_min_ms, self.s.think_max_ms,
                 self.s.auth_reject_mode)

    def _spawn(self, coro) -> asyncio.Task:  # noqa: ANN001
        t = asyncio.create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)
        return t

    async def _retry_start(self, name: str, fn) -> None:  # noqa: ANN001
        while True:
            await asyncio.sleep(2.0)
            try:
                await asyncio.wait_for(fn(), 10.0)
                log.info("%s ready", name)
                return
            except Exception as e:  # noqa: BLE001
                log.debug("%s still not ready: %s", name, e)

    async def shutdown(self) -> None:
        await self.faults.clear()
        for t in list(self._bg):
            t.cancel()
        await self.ch.close()
        await self.pg.close()
        await self.redis.close()
        log.info("backend stopped: %d messages completed, %d failed", self.pipeline.completed, self.pipeline.failed)

    # -- HTTP -------------------------------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return json_response({"status": "ok", "pid": os.getpid(), "uptime_s": round(time.time() - self.started, 3),
                              "connections": self.connections, "in_flight": self.in_flight,
                              "messages_completed": self.pipeline.completed,
                              "messages_failed": self.pipeline.failed,
                              "messages_rate_limited": self.pipeline.rate_limited,
                              "session_fallbacks": self.pipeline.session_fallbacks, "clickhouse": self.ch.stats(),
                              "pg_pool": self.pg.stats(), "faults": [f["kind"] for f in self.faults.list()]})

    async def ready(self, request: Request) -> Response:
        async def one(check) -> dict[str, Any]:  # noqa: ANN001
            t0 = time.perf_counter()
            try:
                await check()
                err = None
            except (TierTimeout, TierError) as e:
                err = str(e)
            except Exception as e:  # noqa: BLE001
                err = f"{type(e).__name__}: {str(e)[:200]}"
            return {"ok": err is None, "latency_ms": round((time.perf_counter() - t0) * 1000, 3), "error": err}

        r, p, c = await asyncio.gather(one(self.redis.check), one(self.pg.check), one(self.ch.check))
        tiers = {"redis": r, "postgres": p, "clickhouse": c}
        ok = all(t["ok"] for t in tiers.values())
        return json_response({"status": "ready" if ok else "degraded", "tiers": tiers}, 200 if ok else 503)

    async def login(self, request: Request) -> Response:
        try:
            body = orjson.loads(await read_body(request))
        except BodyTooLarge:
            return json_response({"detail": f"body larger than {MAX_HTTP_BODY} bytes"}, 413)
        except orjson.JSONDecodeError:
            return json_response({"detail": 'body must be JSON {"email": ..., "password": ...}'}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("email"), str) \
                or not isinstance(body.get("password"), str):
            return json_response({"detail": 'body must be JSON {"email": ..., "password": ...} (strings)'}, 400)
        user = self.users.get(body["email"].strip().lower())
        if user is None or not await asyncio.to_thread(auth.check_password, user, body["password"]):
            return json_response({"detail": "invalid email or password"}, 401)
        token = auth.issue_token(self.s.jwt_secret, user_id=user.user_id, email=user.email, issuer=self.s.jwt_issuer,
                                 ttl_s=self.s.jwt_ttl_s)
        return json_response({"access_token": token, "token_type": "bearer", "expires_in": self.s.jwt_ttl_s})

    def _admin_denied(self, request: Request) -> Response | None:
        if not self.s.admin_token:
            return json_response({"detail": "admin API disabled: start the backend with TARGET_ADMIN_TOKEN set"}, 403)
        got = request.headers.get("authorization", "")
        if not got.lower().startswith("bearer ") or not hmac.compare_digest(got[7:].strip().encode(),
                                                                             self.s.admin_token.encode()):
            return json_response({"detail": "admin token missing or wrong (Authorization: Bearer <token>)"}, 401)
        return None

    async def admin_faults(self, request: Request) -> Response:
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        if request.method == "GET":
            return json_response({"faults": self.faults.list()})
        if request.method == "DELETE":
            return json_response({"cleared": await self.faults.clear()})
        try:
            body = orjson.loads(await read_body(request))
        except BodyTooLarge:
            return json_response({"detail": f"body larger than {MAX_HTTP_BODY} bytes"}, 413)
        except orjson.JSONDecodeError:
            return json_response({"detail": 'body must be JSON like {"kind": "redis-pause", "for_s": 5}'}, 400)
        try:
            return json_response(await self.faults.apply(body))
        except FaultRequestError as e:
            return json_response({"detail": str(e)}, 400)

    # -- WebSocket ---------------------------------------------------------------------------------------------------
    async def websocket(self, ws: WebSocket) -> None:
        placement = auth.extract_token(ws.headers, ws.scope.get("query_string", b"").decode("latin-1"))
        try:
            user = auth.verify_token(placement.token or "", self.s.jwt_secret, self.s.jwt_issuer)
        except auth.AuthError as e:
            log.info("websocket auth failed (%s): %s", placement.source, e)
            if self.s.auth_reject_mode == "http403":
                await ws.close(code=1008)  # before accept: uvicorn answers HTTP 403
                return
            with contextlib.suppress(Exception):  # the client may already be gone
                await ws.accept(subprotocol=placement.subprotocol)
                await ws.send_text(dumps(error_frame("AUTH_FAILED", f"authentication failed: {e}")))
                await ws.close(code=1008, reason="authentication failed")
            return
        if not self.pg.schema_ready:
            try:
                await asyncio.wait_for(self.pg.start(), 1.0)
            except Exception as e:  # noqa: BLE001
                log.warning("refusing a connection, PostgreSQL not ready: %s", e)
                with contextlib.suppress(Exception):
                    await ws.accept(subprotocol=placement.subprotocol)
                    await ws.close(code=1011, reason="service not ready")
                return
        try:
            await ws.accept(subprotocol=placement.subprotocol)
        except (OSError, RuntimeError, WebSocketDisconnect):
            return  # the client went away during the handshake
        self.connections += 1
        try:
            await Connection(self, ws, user).serve()
        finally:
            self.connections -= 1


class Connection:
    """One accepted WebSocket: a reader loop and a task per message; sends are serialised by a lock.

    Backpressure: uvicorn makes ``send`` wait while the socket's write buffer is above its high-water mark, so a
    slow reader holds up only its own messages (at most ``max_in_flight`` of them), never the server.
    """

    def __init__(self, backend: Backend, ws: WebSocket, user: auth.Principal) -> None:
        self.b = backend
        self.ws = ws
        self.user = user
        self.id = uuid.uuid4().hex
        self.tasks: set[asyncio.Task] = set()
        self._send_lock = asyncio.Lock()
        self._send = ws.send  # the raw ASGI send: one dict per frame

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._send({"type": "websocket.send", "text": dumps(frame)})

    def _start(self, coro) -> None:  # noqa: ANN001
        t = asyncio.create_task(coro)
        self.tasks.add(t)
        self.b.in_flight += 1
        t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task) -> None:
        self.tasks.discard(t)
        self.b.in_flight -= 1
        if not t.cancelled() and t.exception() is not None:
            exc = t.exception()
            if not isinstance(exc, OSError | RuntimeError | WebSocketDisconnect):  # client went away mid-send
                log.error("message task failed", exc_info=exc)

    async def serve(self) -> None:
        s = self.b.s
        try:
            await self.send(welcome_frame(self.user.user_id, self.id))
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                text = msg.get("text")
                if text is None:
                    data = msg.get("bytes") or b""
                    await self.send(error_frame("BAD_REQUEST", f"binary frames ({len(data)} bytes) are not supported;"
                                                               " send JSON text frames"))
                    continue
                try:
                    frame = parse_frame(text, s.max_frame_bytes)
                except ProtocolError as e:
                    await self.send(error_frame(e.code, e.message, thread_id=e.thread_id,
                                                correlation_id=e.correlation_id))
                    continue
                if isinstance(frame, Ping):
                    slow = self.b.faults.active("slow-pong")
                    if slow:
                        self._start(self._late_pong(frame.timestamp, slow.ms / 1000.0))
                    else:
                        await self.send(pong_frame(frame.timestamp, self.user.user_id))
                elif isinstance(frame, UserMessage):
                    if len(self.tasks) >= s.max_in_flight:
                        await self.send(error_frame(
                            "RATE_LIMITED", f"more than {s.max_in_flight} messages in flight on this connection",
                            thread_id=frame.thread_id, correlation_id=frame.correlation_id))
                        continue
                    self._start(self.b.pipeline.handle(frame, self.user, self.send))
                else:
                    await self.send(ack_frame(frame.type))
        except (WebSocketDisconnect, OSError):
            return
        except Exception:
            log.exception("connection %s failed", self.id)
        finally:
            for t in list(self.tasks):
                t.cancel()
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=5.0)

    async def _late_pong(self, echo: Any, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self.send(pong_frame(echo, self.user.user_id))


def create_app(settings: Settings) -> Starlette:
    backend = Backend(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await backend.startup()
        try:
            yield
        finally:
            await backend.shutdown()

    routes = [
        Route("/health", backend.health),
        Route("/health/live", backend.health),
        Route("/health/ready", backend.ready),
        Route("/auth/login", backend.login, methods=["POST"]),
        Route("/admin/faults", backend.admin_faults, methods=["GET", "POST", "DELETE"]),
        WebSocketRoute("/ws", backend.websocket),
        WebSocketRoute("/api/v1/websocket", backend.websocket),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.backend = backend
    return app
