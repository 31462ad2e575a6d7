"""ENCRYPTION_KEYS on a real worker and gateway: Temporal stores only ciphertext.

A worker and a gateway of their own (their own task queue, ENCRYPTION_KEYS and API_KEYS)
run an execution whose input carries a marker. Read with a client that has no codec,
its history holds the marker nowhere; read through the gateway, or through the codec
endpoint the Temporal UI calls, it is in clear.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from core.codec import ENCODING, KEY_ID_METADATA, new_key_entry
from core.temporal import data_converter
from harness.stack import Stack
from tests.support.builders import action, chain, create_workflow, register, service
from worker.main import workflow_runner
from workflows.dynamic import StoredWorkflow

KEYS = f"{new_key_entry('e2e-current')},{new_key_entry('e2e-previous')}"
API_KEY = f"codec-e2e-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
UI = "http://localhost:8233"


@dataclass
class Encrypted:
    url: str
    temporal_address: str


@pytest.fixture(scope="module")
def encrypted(stack: Stack) -> Iterator[Encrypted]:
    """A worker and a gateway of their own with ENCRYPTION_KEYS and API_KEYS set."""
    env = {
        "TASK_QUEUE": f"encrypted-{uuid.uuid4().hex[:8]}",
        "ENCRYPTION_KEYS": KEYS,
        "API_KEYS": API_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    # Not stack.pair(): its wait for the worker reads /health without a key, and with
    # API_KEYS set the health answer may leave the components out for such a caller.
    worker = stack.start_worker(**env)
    url = stack.start_gateway(**env)
    gateway = stack.gateways[-1][0]
    try:
        _wait_for_worker(url)
        yield Encrypted(url, stack.temporal_address)
    finally:
        for process in (gateway, worker):
            process.terminate()
            process.wait(30)


def _wait_for_worker(url: str, *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/health", headers=AUTH, timeout=5).json()
        workers = body.get("components", {}).get("workers", {})
        if workers.get("count", 0) >= 1 and workers.get("status") == "healthy":
            return
        time.sleep(0.2)
    raise TimeoutError(f"the encrypting worker did not start polling in {timeout}s")


@pytest.fixture(scope="module")
async def secured(encrypted: Encrypted) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=encrypted.url, headers=AUTH, timeout=60) as client:
        yield client


@dataclass
class Run:
    marker: str
    record: dict[str, Any]
    history: WorkflowHistory


@pytest.fixture(scope="module")
async def run(encrypted: Encrypted, secured: httpx.AsyncClient, services: Any) -> Run:
    """One execution of an echo step whose input carries a marker; its raw history."""
    unique = uuid.uuid4().hex[:8]
    marker = f"plaintext-marker-{uuid.uuid4().hex}"
    name = f"echo-{unique}"
    await register(
        secured, service(name, services.endpoint("echo", services.token()), [action("run")])
    )
    workflow = await create_workflow(secured, f"sealed-{unique}", chain(("only", name, "run")))
    answer = await secured.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {"note": marker}}
    )
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["status"] == "COMPLETED", record
    plain_client = await Client.connect(encrypted.temporal_address)  # no codec
    history = await plain_client.get_workflow_handle(record["execution_id"]).fetch_history()
    return Run(marker, record, history)


async def test_history_holds_no_plaintext(run: Run) -> None:
    raw = History(events=run.history.events).SerializeToString()
    assert run.marker.encode() not in raw
    assert run.marker not in run.history.to_json()
    started = run.history.events[0].workflow_execution_started_event_attributes
    assert started.input.payloads
    for payload in started.input.payloads:
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[KEY_ID_METADATA] == b"e2e-current"


async def test_gateway_reads_input_and_result_in_clear(
    run: Run, secured: httpx.AsyncClient
) -> None:
    answer = await secured.get(f"/executions/{run.record['execution_id']}")
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["input"] == {"note": run.marker}
    assert run.marker in str(record["result"])


async def test_encrypted_history_replays(run: Run) -> None:
    replayer = Replayer(
        workflows=[StoredWorkflow],
        data_converter=data_converter(KEYS),
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(run.history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_codec_endpoint_decodes_a_payload_of_the_history(
    run: Run, encrypted: Encrypted
) -> None:
    started = run.history.events[0].workflow_execution_started_event_attributes
    body = json_format.MessageToDict(Payloads(payloads=started.input.payloads[:1]))
    headers = {**AUTH, "Origin": UI, "X-Namespace": "default"}
    async with httpx.AsyncClient(base_url=encrypted.url, timeout=30) as http:
        answer = await http.post("/codec/decode", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == UI
        (decoded,) = json_format.ParseDict(answer.json(), Payloads()).payloads
        assert decoded.metadata["encoding"] != ENCODING
        assert run.marker.encode() in decoded.data

        preflight = await http.options(
            "/codec/decode",
            headers={
                "Origin": UI,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
            },
        )
        assert preflight.status_code == 204, preflight.text
        assert preflight.headers["access-control-allow-origin"] == UI
        assert preflight.headers["access-control-allow-headers"] == (
            "authorization, content-type, x-namespace"
        )


async def test_codec_endpoint_needs_the_api_key(encrypted: Encrypted) -> None:
    async with httpx.AsyncClient(base_url=encrypted.url, timeout=30) as http:
        answer = await http.post("/codec/decode", json={"payloads": []})
    assert answer.status_code == 401
    assert "Bearer" in answer.json()["detail"]


async def test_codec_endpoint_is_404_while_encryption_is_off(api: httpx.AsyncClient) -> None:
    """The session's gateway runs without ENCRYPTION_KEYS."""
    answer = await api.post("/codec/decode", json={"payloads": []})
    assert answer.status_code == 404
    assert "ENCRYPTION_KEYS" in answer.json()["detail"]


async def test_failure_messages_are_encrypted_too(
    encrypted: Encrypted, secured: httpx.AsyncClient, services: Any
) -> None:
    """A step failure quotes the input (a schema violation names the value): the message
    goes into an encoded payload, so the history holds no plaintext there either."""
    unique = uuid.uuid4().hex[:8]
    marker = f"failure-marker-{uuid.uuid4().hex}"
    name = f"typed-{unique}"
    schema = {"type": "object", "properties": {"note": {"type": "integer"}}}
    await register(
        secured,
        service(
            name,
            services.endpoint("echo", services.token()),
            [action("pass"), action("run", input_schema=schema)],
        ),
    )
    # The gateway checks the entry step's input before starting (422): the typed step
    # comes second, so the worker refuses it and the failure reaches the history.
    workflow = await create_workflow(
        secured, f"refused-{unique}", chain(("first", name, "pass"), ("second", name, "run"))
    )
    answer = await secured.post(
        f"/workflows/{workflow['id']}/execute", json={"input_data": {"note": marker}}
    )
    record = answer.json()
    assert record["status"] == "FAILED", record
    assert marker in record["error"]["message"]  # the gateway decodes it
    plain_client = await Client.connect(encrypted.temporal_address)  # no codec
    history = await plain_client.get_workflow_handle(record["execution_id"]).fetch_history()
    assert marker.encode() not in History(events=history.events).SerializeToString()
