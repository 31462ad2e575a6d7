"""The default outbound policy with real processes: a worker and a gateway started with no
ALLOWED_HOSTS refuse a real HTTP service on loopback, by address and by a name that
resolves to it, and the service sees nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.builders import action, chain, create_workflow, service


@pytest.fixture(scope="module")
def closed(stack: Any) -> Iterator[str]:
    """A worker and a gateway of their own, on the default policy (ALLOWED_HOSTS empty)."""
    with stack.pair(TASK_QUEUE=f"{stack.task_queue}-closed", ALLOWED_HOSTS="") as url:
        yield url


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_loopback_service_is_refused_by_default(closed, services, unique, host) -> None:
    token = services.token()
    endpoint = services.endpoint("echo", token).replace("127.0.0.1", host)
    async with httpx.AsyncClient(base_url=closed, timeout=60) as api:
        registered = await api.post(
            "/services", json=service(f"echo-{unique}", endpoint, [action("run")])
        )
        assert registered.status_code == 201, registered.text
        assert registered.json()["warnings"], "registration warns about a refused endpoint"
        workflow = await create_workflow(
            api, f"wf-{unique}", chain(("only", f"echo-{unique}", "run"))
        )
        record = (
            await api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {"x": 1}})
        ).json()
    assert record["status"] == "FAILED", record
    assert record["error"]["error_type"] == "OutboundRefused"
    assert "ALLOWED_HOSTS" in record["error"]["message"]
    assert record["error"]["attempts"] == 1  # not retried
    assert services.calls.get(token, []) == []  # nothing reached the service
