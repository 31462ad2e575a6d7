"""Clients of the project's services.

    from shared.utils.src.clients import ServiceIntegrationClient

`ServiceIntegrationClient` (awaitable writes, plain reads, as the client guide
describes it), `AsyncServiceIntegrationClient` (every method awaitable), and
`get_service_integration_client()`, a client configured from the environment.
"""

from shared.utils.src.clients._core import ExecutionResult
from shared.utils.src.clients.service_integration import (
    AsyncServiceIntegrationClient,
    ServiceIntegrationClient,
    get_service_integration_client,
)
from shared.utils.src.clients.settings import ServiceIntegrationSettings

__all__ = [
    "AsyncServiceIntegrationClient",
    "ExecutionResult",
    "ServiceIntegrationClient",
    "ServiceIntegrationSettings",
    "get_service_integration_client",
]
