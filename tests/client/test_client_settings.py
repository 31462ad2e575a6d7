"""The pre-configured client: built from SERVICE_INTEGRATION_* settings."""

from __future__ import annotations

import inspect

import httpx
import pytest

from app.api.clients import get_service_integration_client
from shared.utils.src.clients import (
    AsyncServiceIntegrationClient,
    ServiceIntegrationClient,
    ServiceIntegrationSettings,
)

AWAITABLE = {
    "create_workflow",
    "update_workflow",
    "delete_workflow",
    "execute_workflow",
    "register_service",
    "update_service",
    "deregister_service",
    "execute_service_action",
}
PLAIN = {
    "get_workflow",
    "get_workflows",
    "get_workflow_execution_status",
    "get_workflow_executions",
    "get_service",
    "get_services",
    "get_integration_health",
    "get_service_health",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("URL", "TIMEOUT", "API_KEY", "EXECUTION_TIMEOUT"):
        monkeypatch.delenv(f"SERVICE_INTEGRATION_{name}", raising=False)
    return monkeypatch


def test_defaults(environment: pytest.MonkeyPatch) -> None:
    with get_service_integration_client(ServiceIntegrationSettings(_env_file=None)) as client:
        assert client.base_url == "http://localhost:8005/api"
        assert client.timeout == 30.0
        assert isinstance(client, ServiceIntegrationClient)


def test_reads_the_environment(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("SERVICE_INTEGRATION_URL", "http://gateway:9000/api/")
    environment.setenv("SERVICE_INTEGRATION_TIMEOUT", "12.5")
    environment.setenv("SERVICE_INTEGRATION_API_KEY", "secret")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "healthy", "components": {}})

    with get_service_integration_client(transport=httpx.MockTransport(handler)) as client:
        assert client.base_url == "http://gateway:9000/api"
        assert client.timeout == 12.5
        assert client.get_integration_health()["status"] == "healthy"
    assert str(seen[0].url) == "http://gateway:9000/api/health"
    assert seen[0].headers["Authorization"] == "Bearer secret"


def test_refuses_a_url_that_is_not_http(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("SERVICE_INTEGRATION_URL", "localhost:8005")
    with pytest.raises(ValueError, match="http"):
        ServiceIntegrationSettings(_env_file=None)


def test_sync_async_split_is_the_guides() -> None:
    for name in AWAITABLE:
        assert inspect.iscoroutinefunction(getattr(ServiceIntegrationClient, name)), name
    for name in PLAIN:
        method = getattr(ServiceIntegrationClient, name)
        assert callable(method) and not inspect.iscoroutinefunction(method), name
    for name in AWAITABLE | PLAIN:
        assert inspect.iscoroutinefunction(getattr(AsyncServiceIntegrationClient, name)), name


def test_mixed_client_needs_a_transport_for_both_halves() -> None:
    with pytest.raises(TypeError, match="async_transport"):
        ServiceIntegrationClient("http://x/api", transport=httpx.HTTPTransport())
    with pytest.raises(TypeError, match="AsyncBaseTransport"):
        AsyncServiceIntegrationClient("http://x/api", transport=httpx.HTTPTransport())  # type: ignore[arg-type]
