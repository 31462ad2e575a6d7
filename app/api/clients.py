"""Clients the dashboard uses, configured from the environment.

    from app.api.clients import get_service_integration_client

    client = get_service_integration_client()

The Service Integration client reads `SERVICE_INTEGRATION_URL` (default
`http://localhost:8005/api`), `SERVICE_INTEGRATION_TIMEOUT` and
`SERVICE_INTEGRATION_API_KEY`; see `shared.utils.src.clients.settings`.
"""

from shared.utils.src.clients import (
    ServiceIntegrationClient,
    ServiceIntegrationSettings,
    get_service_integration_client,
)

__all__ = [
    "ServiceIntegrationClient",
    "ServiceIntegrationSettings",
    "get_service_integration_client",
]
