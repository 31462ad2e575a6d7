"""The gateway applies the worker's outbound policy: the service health probe never
connects to a refused address, and registering such an endpoint warns (outside
production) or is refused (in production)."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from core.settings import Settings
from gateway.app import create_app
from tests.support.builders import action, register, service

REFUSED_ENDPOINTS = [
    "http://169.254.169.254/latest",  # cloud metadata: link-local
    "http://10.0.0.7:8080/internal",
    "http://[::ffff:127.0.0.2]:9/x",  # loopback inside an IPv4-mapped address
    "http://127.0.0.2:22/ssh",  # loopback, but not the 127.0.0.1 ALLOWED_HOSTS names
]


@pytest.mark.parametrize("endpoint", REFUSED_ENDPOINTS)
async def test_health_of_a_refused_endpoint_is_refused_and_not_probed(api, unique, endpoint):
    created = (
        await api.post(
            "/services",
            json=service(f"refused-{abs(hash(endpoint))}-{unique}", endpoint, [action("run")]),
        )
    ).json()
    assert created["warnings"], created
    assert "ALLOWED_HOSTS" in created["warnings"][0]
    health = await api.get(f"/services/{created['id']}/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "refused"
    assert "outbound policy" in body["last_error"]
    assert "ALLOWED_HOSTS" in body["last_error"]
    assert (body["status_code"], body["latency_ms"]) == (None, None)


async def test_an_allowed_endpoint_registers_without_warnings(api, services, unique):
    created = await register(
        api, service(f"allowed-{unique}", services.endpoint("echo", "t"), [action("run")])
    )
    assert "warnings" not in created
    listed = (await api.get("/services", params={"per_page": 100})).json()["items"]
    assert all("warnings" not in item for item in listed)


async def test_an_update_to_a_refused_endpoint_warns(api, services, unique):
    created = await register(
        api, service(f"moving-{unique}", services.endpoint("echo", "t"), [action("run")])
    )
    moved = await api.patch(
        f"/services/{created['id']}", json={"endpoint": "http://169.254.169.254/x"}
    )
    assert moved.status_code == 200, moved.text
    assert "ALLOWED_HOSTS" in moved.json()["warnings"][0]
    renamed = await api.patch(f"/services/{created['id']}", json={"description": "same place"})
    assert "warnings" not in renamed.json()


# ------------------------------------------------------------------- in production


@pytest.fixture
async def production(temporal, tmp_path: Path) -> AsyncIterator[FastAPI]:
    key = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(
        temporal_address=temporal.address,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}",
        data_dir=tmp_path,
        environment="production",
        api_keys="prod-key",
        encryption_keys=f"k1:{key}",
        definition_signing_key="prod-signing-key",
        allowed_hosts="",
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_in_production_a_refused_endpoint_is_422_and_not_stored(production):
    transport = httpx.ASGITransport(app=production)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://gateway/api",
        headers={"Authorization": "Bearer prod-key"},
    ) as client:
        answer = await client.post(
            "/services", json=service("metadata", "http://169.254.169.254/x", [action("run")])
        )
        assert answer.status_code == 422, answer.text
        problem = answer.json()["detail"][0]
        assert problem["loc"] == ["body", "endpoint"]
        assert "ALLOWED_HOSTS" in problem["msg"]
        assert (await client.get("/services")).json()["total"] == 0
