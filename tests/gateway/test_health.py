"""/api/health with a worker running, without one, and with Temporal unreachable."""

from __future__ import annotations

import httpx

from core.devserver import free_port


async def test_health_is_healthy_with_a_worker_polling(api: httpx.AsyncClient, stack):
    answer = await api.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "healthy"
    components = body["components"]
    assert components["database"]["status"] == "healthy"
    assert components["database"]["latency_ms"] >= 0
    assert components["temporal"]["namespace"] == "default"
    assert components["workers"]["task_queue"] == stack.task_queue
    assert components["workers"]["count"] >= 1
    assert components["services"]["total"] is not None


async def test_health_is_degraded_without_a_worker(stack):
    url = stack.start_gateway(TASK_QUEUE=f"{stack.task_queue}-nobody")
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{url}/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "degraded"
    assert body["components"]["workers"]["count"] == 0
    assert "start one" in body["components"]["workers"]["error"]


async def test_health_is_unhealthy_503_when_temporal_is_unreachable(stack):
    url = stack.start_gateway(TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{url}/health")
        registry = await client.get(f"{url}/services")
        execution = await client.get(f"{url}/executions/exec-anything")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unhealthy"
    assert body["components"]["temporal"]["status"] == "unhealthy"
    assert body["components"]["database"]["status"] == "healthy"
    assert registry.status_code == 200, "the registry keeps working without Temporal"
    assert execution.status_code == 503
    assert execution.json()["component"] == "temporal"


async def test_health_needs_no_api_key_when_keys_are_set(stack):
    url = stack.start_gateway(API_KEYS="k1,k2")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/health")).status_code == 200
        assert (await client.get(f"{url}/services")).status_code == 401
        authorized = await client.get(f"{url}/services", headers={"Authorization": "Bearer k2"})
        assert authorized.status_code == 200
