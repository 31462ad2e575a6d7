"""Run the gateway: `service-integration gateway` or `python -m cli gateway`.

This is where the gateway meets the worker: with GATEWAY_EMBEDDED_WORKER set, the
gateway process also runs a worker (`embedded_worker`), handed to `create_app`, so the
gateway package itself never imports the worker.

uvicorn stops accepting connections on SIGTERM and lets in-flight requests finish
(up to GATEWAY_GRACEFUL_SHUTDOWN_SECONDS) before the lifespan closes the clients. It
serves at most GATEWAY_LIMIT_CONCURRENCY requests at once (more get 503), drops idle
keep-alive connections after GATEWAY_KEEP_ALIVE_TIMEOUT, and cuts off a client that
takes over GATEWAY_HEADER_TIMEOUT to send a request (gateway/server.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from core.logs import configure_logging
from core.settings import Settings, get_settings
from gateway.app import create_app
from gateway.server import guarded_h11
from worker.main import build_worker, connect_when_up, outbound_http

log = logging.getLogger("gateway")


async def embedded_worker(
    settings: Settings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    use_client: Callable[[Client], None],
    stop: asyncio.Event,
) -> None:
    """A worker in the gateway process, on a connected client the gateway then uses.

    Connects (retrying while Temporal is down), polls the task queue until `stop` is
    set, and shuts down gracefully; see gateway.app.EmbeddedWorker.
    """
    client = await connect_when_up(settings, stop)
    if client is None:
        return
    async with (
        outbound_http() as http,
        build_worker(client, settings, sessions=sessions, http=http),
    ):
        use_client(client)
        log.info("embedded worker polling task queue %r", settings.task_queue)
        await stop.wait()


def main(*, port: int | None = None) -> None:
    # An embedded worker runs activities here: their expected failures log as one line.
    configure_logging()
    settings = get_settings()
    uvicorn.run(
        create_app(settings, embedded_worker=embedded_worker),
        host=settings.gateway_host,
        port=port or settings.gateway_port,
        log_level="info",
        timeout_graceful_shutdown=int(settings.gateway_graceful_shutdown_seconds),
        access_log=False,
        http=guarded_h11(settings.gateway_header_timeout),
        limit_concurrency=settings.gateway_limit_concurrency,
        timeout_keep_alive=max(1, round(settings.gateway_keep_alive_timeout)),
    )
