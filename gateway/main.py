"""Run the gateway: `python -m gateway` or `service-integration gateway`.

uvicorn stops accepting connections on SIGTERM and lets in-flight requests finish
(up to GATEWAY_GRACEFUL_SHUTDOWN_SECONDS) before the lifespan closes the clients.
"""

from __future__ import annotations

import logging

import uvicorn

from core.settings import get_settings
from gateway.app import create_app


def main(*, port: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=port or settings.gateway_port,
        log_level="info",
        timeout_graceful_shutdown=int(settings.gateway_graceful_shutdown_seconds),
        access_log=False,
    )


if __name__ == "__main__":
    main()
