"""The FastAPI application.

A request goes to gateway/routes/, then to registry/ (the database) or to
executions/ (Temporal). The gateway imports no worker code: a worker in the gateway
process (GATEWAY_EMBEDDED_WORKER) is handed to `create_app` by the entry point
(cli/gateway.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Protocol

import httpx
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client

from core.settings import Settings, get_settings
from core.temporal import connect, ensure_search_attributes
from executions.service import ExecutionService
from gateway import errors, openapi
from gateway.content_type import RequireJsonBody
from gateway.deps import require_api_key
from gateway.methods import AllowEveryMethod
from gateway.read_cache import ReadCache
from gateway.routes import codec, executions, health, services, workflows
from registry.db import create_engine, migrate, session_factory

log = logging.getLogger("gateway")


class BodySizeLimit:
    """Answers 413 to a request body over `max_bytes`, declared or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        received = 0
        over = started = refused = False

        async def limited() -> Any:
            # Over the limit, the 413 goes out at once and the app is told the client left:
            # raising here instead would reach FastAPI's body parser, which answers 400.
            nonlocal received, over, refused
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    if not started:
                        refused = True
                        await self._too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Any) -> None:
            nonlocal started
            if refused:
                return  # whatever the app answers to the disconnect is never sent
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited, guarded)

    async def _too_large(self, send: Send) -> None:
        body = (
            b'{"detail":"request body is over the limit of %d bytes; send less, '
            b'or raise MAX_BODY_BYTES"}' % self.max_bytes
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class EmbeddedWorker(Protocol):
    """Runs a worker in the gateway process until `stop` is set (GATEWAY_EMBEDDED_WORKER).

    Only such a worker can take an eager start: Temporal hands the first workflow task
    back with the start answer, so a low_latency workflow runs without a task-queue
    round trip. Workers need a connected (not lazy) client: the worker connects its own,
    retrying while Temporal is down, and hands it to `use_client` once it polls, so the
    gateway starts executions through it.
    """

    def __call__(
        self,
        settings: Settings,
        *,
        sessions: async_sessionmaker[AsyncSession],
        use_client: Callable[[Client], None],
        stop: asyncio.Event,
    ) -> Coroutine[Any, Any, None]: ...


def create_app(
    settings: Settings | None = None, *, embedded_worker: EmbeddedWorker | None = None
) -> FastAPI:
    """Build the gateway; its database engine and Temporal client live in the lifespan.

    Args:
        settings: read from the environment when not given.
        embedded_worker: runs when GATEWAY_EMBEDDED_WORKER is set; required then.

    Raises:
        ValueError: GATEWAY_EMBEDDED_WORKER is set and no `embedded_worker` was given.
    """
    settings = settings or get_settings()
    if settings.gateway_embedded_worker and embedded_worker is None:
        raise ValueError(
            "GATEWAY_EMBEDDED_WORKER is set, but this gateway was built without a worker; "
            "run it with `service-integration gateway`, or unset GATEWAY_EMBEDDED_WORKER"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url)
        await migrate(engine)
        # Lazy: the gateway starts, and reports Temporal unhealthy, while Temporal is down.
        client = await connect(
            settings.temporal_address,
            settings.temporal_namespace,
            lazy=True,
            tls=settings.temporal_tls,
            api_key=settings.temporal_api_key,
            encryption_keys=getattr(settings, "encryption_keys", ""),
        )
        try:
            await ensure_search_attributes(client)
        except Exception as exc:  # noqa: BLE001 - the worker registers them too
            log.warning("could not register search attributes yet: %s", exc)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessions = session_factory(engine)
        app.state.executions = ExecutionService(
            client, task_queue=settings.task_queue, signing_key=settings.definition_signing_key
        )
        async with httpx.AsyncClient() as http:
            app.state.http = http
            stop = asyncio.Event()

            def use_client(connected: Client) -> None:
                app.state.executions = ExecutionService(
                    connected,
                    task_queue=settings.task_queue,
                    signing_key=settings.definition_signing_key,
                )

            embedded = (
                asyncio.create_task(
                    embedded_worker(
                        settings, sessions=app.state.sessions, use_client=use_client, stop=stop
                    )
                )
                if settings.gateway_embedded_worker and embedded_worker is not None
                else None
            )
            try:
                yield
            finally:
                stop.set()
                if embedded is not None:
                    await embedded
                await engine.dispose()

    app = FastAPI(
        title="Service Integration",
        version="0.1.0",
        description="Register HTTP services, chain their actions into stored workflows, "
        "and run them durably on Temporal.",
        lifespan=lifespan,
    )
    errors.install(app)
    # Included into the app itself, not through an "/api" router of their own: FastAPI
    # walks every router on the way to a route, so each level costs every request.
    protected = [Depends(require_api_key)]
    for router in (services.router, workflows.router, executions.router):
        app.include_router(
            router, prefix="/api", dependencies=protected, responses=errors.error_responses(401)
        )
    app.include_router(health.router, prefix="/api")
    # codec: its own auth, as the CORS preflight carries no key.
    app.include_router(codec.router, prefix="/api")
    # Behind the routes: read routes fill it, registry writes clear it after their commit.
    app.state.read_cache = ReadCache(ttl=settings.registry_cache_seconds)
    app.add_middleware(RequireJsonBody)
    app.add_middleware(AllowEveryMethod, document=lambda: app.openapi())
    openapi.install(app, max_execute_timeout=settings.max_execute_timeout)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
