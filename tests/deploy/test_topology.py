"""The production layout as separate processes: two workers and two gateways on one
Temporal dev server, with the registry on PostgreSQL. Executions spread across the
workers, and any gateway answers for any execution."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.stack import Stack, wait_for_workers
from tests.conftest import POSTGRES_URL, _create_database, _drop_database
from tests.support.builders import action, chain, create_workflow, register, service


@pytest.fixture(scope="module")
def cluster(temporal, tmp_path_factory) -> Iterator[Stack]:
    name = f"si_topology_{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_database(POSTGRES_URL, name))
    url = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    stack = Stack(
        temporal_address=temporal.address,
        database_url=f"{url}/{name}",
        log_dir=tmp_path_factory.mktemp("topology"),
    )
    stack.start_worker()
    stack.start_worker()
    stack.start_gateway()
    stack.start_gateway()
    wait_for_workers(stack.url, count=2)
    yield stack
    stack.stop()
    asyncio.run(_drop_database(POSTGRES_URL, name))


async def test_executions_spread_across_workers_and_any_gateway_answers(cluster: Stack, services):
    first, second = (url for _, url in cluster.gateways[:2])
    token = services.token()
    suffix = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(timeout=30) as http:
        api = httpx.AsyncClient(base_url=first, timeout=30)
        svc = f"slow-{suffix}"
        await register(
            api, service(svc, services.endpoint("slow", token), [action("one"), action("two")])
        )
        workflow = await create_workflow(
            api, f"spread-{suffix}", chain(("a", svc, "one"), ("b", svc, "two"))
        )
        ids = []
        for index in range(20):
            gateway = first if index % 2 else second
            answer = await http.post(
                f"{gateway}/workflows/{workflow['id']}/executions",
                json={"input_data": {"i": index}},
            )
            assert answer.status_code == 202
            ids.append(answer.json()["execution_id"])

        deadline = time.monotonic() + 120
        records: dict[str, dict] = {}
        while time.monotonic() < deadline and len(records) < len(ids):
            for index, execution_id in enumerate(ids):
                reader = second if index % 2 else first  # the other gateway than the starter
                record = (await http.get(f"{reader}/executions/{execution_id}")).json()
                if record["status"] == "COMPLETED":
                    records[execution_id] = record
            await asyncio.sleep(0.3)
        await api.aclose()
    assert len(records) == 20, f"completed {len(records)} of 20: {sorted(set(ids) - set(records))}"
    workers = {step["worker"] for record in records.values() for step in record["steps"]}
    assert None not in workers
    assert len(workers) == 2, f"all steps ran on {workers}"
