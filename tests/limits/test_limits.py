"""Every limit answered with a clear 4xx, or a step failure that says what was too big.

Request limits run against the shared stack on both registry backends. The payload,
outbound-call and API-key settings need processes of their own: a gateway and a worker
on a task queue of their own (so the shared worker never takes their tasks), started
once per module on the SQLite backend, since the registry plays no part in them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from core.settings import Settings
from definitions.models import MAX_ACTIONS, MAX_STEPS
from gateway.deps import MAX_PER_PAGE
from harness.stack import Stack
from registry.validation import MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH
from tests.support.builders import action, chain, create_workflow, register, service

if TYPE_CHECKING:
    from harness.services import TestServices

MAX_BODY_BYTES = Settings.model_fields["max_body_bytes"].default
PAYLOAD_LIMIT = 2048
API_KEYS = ("key-one", "key-two")

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _messages(answer: httpx.Response) -> str:
    return " | ".join(str(problem["msg"]) for problem in answer.json()["detail"])


def _service_body(name: str, endpoint: str, size: int) -> bytes:
    """A valid registration whose JSON is exactly `size` bytes (metadata pads it)."""
    body = service(name, endpoint, [action("run")], metadata={"pad": ""})
    bare = len(json.dumps(body).encode())
    body["metadata"]["pad"] = "x" * (size - bare)
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


# ----------------------------------------------------------------- request body size


async def test_body_over_max_body_bytes_with_content_length_is_413(api, services, unique):
    name = f"big-{unique}"
    too_big = _service_body(name, services.endpoint("echo", "t"), MAX_BODY_BYTES + 1)
    answer = await api.post(
        "/services", content=too_big, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413, answer.text
    assert f"{MAX_BODY_BYTES} bytes" in answer.json()["detail"]
    assert "MAX_BODY_BYTES" in answer.json()["detail"]
    # Nothing was stored: the same name registers anew.
    await register(api, service(name, services.endpoint("echo", "t"), [action("run")]))


async def test_body_at_max_body_bytes_is_accepted(api, services, unique):
    exact = _service_body(f"exact-{unique}", services.endpoint("echo", "t"), MAX_BODY_BYTES)
    answer = await api.post(
        "/services", content=exact, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 201, answer.text[:300]


async def test_chunked_body_over_max_body_bytes_without_length_is_413(api, services, unique):
    name = f"chunked-{unique}"
    too_big = _service_body(name, services.endpoint("echo", "t"), MAX_BODY_BYTES + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(too_big), 64 * 1024):
            yield too_big[start : start + 64 * 1024]

    request = api.build_request(
        "POST", "/services", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    answer = await api.send(request)
    assert answer.status_code == 413, answer.text
    assert "MAX_BODY_BYTES" in answer.json()["detail"]
    await register(api, service(name, services.endpoint("echo", "t"), [action("run")]))


# ------------------------------------------------------------- definition size limits


async def test_steps_over_max_steps_is_422_naming_the_limit(api, services, unique):
    svc = f"steps-{unique}"
    await register(api, service(svc, services.endpoint("echo", "t"), [action("run")]))
    steps = chain(*((f"s{i}", svc, "run") for i in range(MAX_STEPS + 1)))
    answer = await api.post("/workflows", json={"name": f"too-long-{unique}", "steps": steps})
    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["detail"][0]["loc"] == ["body", "steps"]
    assert f"at most {MAX_STEPS} items" in _messages(answer)
    # The limit itself is allowed.
    longest = chain(*((f"s{i}", svc, "run") for i in range(MAX_STEPS)))
    await create_workflow(api, f"longest-{unique}", longest)


async def test_actions_over_max_actions_is_422_naming_the_limit(api, services, unique):
    actions = [action(f"a{i}") for i in range(MAX_ACTIONS + 1)]
    endpoint = services.endpoint("echo", "t")
    answer = await api.post("/services", json=service(f"wide-{unique}", endpoint, actions))
    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["detail"][0]["loc"] == ["body", "actions"]
    assert f"at most {MAX_ACTIONS} items" in _messages(answer)
    await register(api, service(f"widest-{unique}", endpoint, actions[:MAX_ACTIONS]))


async def test_schema_over_max_schema_bytes_is_422_with_its_size(api, services, unique):
    schema = {"type": "object", "description": "x" * MAX_SCHEMA_BYTES}
    size = len(json.dumps(schema))
    answer = await api.post(
        "/services",
        json=service(
            f"schema-size-{unique}",
            services.endpoint("echo", "t"),
            [action("run", input_schema=schema)],
        ),
    )
    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["detail"][0]["loc"] == ["body", "actions", 0, "input_schema"]
    assert _messages(answer) == f"input_schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES}"


def _nested_schema(levels: int) -> dict[str, Any]:
    """A schema `levels` objects deep: {"type": "object", "properties": {"a": ...}}."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


async def test_schema_over_max_schema_depth_is_422(api, services, unique):
    endpoint = services.endpoint("echo", "t")
    deep = _nested_schema(MAX_SCHEMA_DEPTH // 2 + 1)  # two levels per object
    answer = await api.post(
        "/services",
        json=service(f"schema-deep-{unique}", endpoint, [action("run", output_schema=deep)]),
    )
    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["detail"][0]["loc"] == ["body", "actions", 0, "output_schema"]
    assert _messages(answer) == f"output_schema nests deeper than {MAX_SCHEMA_DEPTH} levels"
    shallow = _nested_schema(MAX_SCHEMA_DEPTH // 2 - 1)
    await register(
        api, service(f"schema-ok-{unique}", endpoint, [action("run", output_schema=shallow)])
    )


async def test_body_nested_hundreds_of_levels_is_422_not_500(api, services, unique):
    nested: Any = "bottom"
    for _ in range(500):
        nested = {"a": nested}
    answer = await api.post(
        "/services",
        json=service(
            f"deep-{unique}", services.endpoint("echo", "t"), [action("run")], metadata=nested
        ),
    )
    assert answer.status_code == 422, answer.text[:300]
    assert "nests deeper than 64 levels" in _messages(answer)


# -------------------------------------------------------------------------- page size


@pytest.mark.parametrize("path", ["/services", "/workflows"])
async def test_per_page_over_the_maximum_is_422(api, path):
    answer = await api.get(path, params={"per_page": MAX_PER_PAGE + 1})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["query", "per_page"]
    assert f"less than or equal to {MAX_PER_PAGE}" in _messages(answer)
    assert (await api.get(path, params={"per_page": MAX_PER_PAGE})).status_code == 200


async def test_per_page_over_the_maximum_is_422_for_executions(api, services, unique):
    svc = f"pages-{unique}"
    await register(api, service(svc, services.endpoint("echo", "t"), [action("run")]))
    workflow = await create_workflow(api, f"pages-{unique}", chain(("only", svc, "run")))
    path = f"/workflows/{workflow['id']}/executions"
    answer = await api.get(path, params={"per_page": MAX_PER_PAGE + 1})
    assert answer.status_code == 422, answer.text
    assert (await api.get(path, params={"per_page": MAX_PER_PAGE})).status_code == 200


# ------------------------------------------------------------ values no store can hold


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ('"description": "a\\u0000b"', "description contains a NUL character"),
        ('"metadata": {"k\\u0000": 1}', "a key in metadata contains a NUL character"),
        ('"description": "a\\udc00b"', "description contains a lone surrogate"),
        ('"metadata": {"k": ["ok", NaN]}', "metadata/k/1 is nan; JSON has no NaN"),
        ('"metadata": {"k": Infinity}', "metadata/k is inf; JSON has no NaN"),
    ],
)
async def test_value_the_registry_cannot_store_is_422_naming_where(
    api, services, unique, fragment, message
):
    body = (
        f'{{"name": "odd-{unique}", "endpoint": "{services.endpoint("echo", "t")}", '
        f'"actions": [{{"name": "run"}}], {fragment}}}'
    )
    answer = await api.post("/services", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert message in _messages(answer)
    # Nothing was stored: the name is free.
    await register(api, service(f"odd-{unique}", services.endpoint("echo", "t"), [action("run")]))


async def test_id_with_a_nul_character_is_404(api):
    for path in ("/services/a%00b", "/workflows/a%00b", "/workflows/a%00b?version=2"):
        answer = await api.get(path)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["resource_id"] == "a\x00b"


async def test_execution_input_with_nan_is_422(api, services, unique):
    svc = f"nan-{unique}"
    await register(api, service(svc, services.endpoint("echo", "t"), [action("run")]))
    workflow = await create_workflow(api, f"nan-{unique}", chain(("only", svc, "run")))
    answer = await api.post(
        f"/workflows/{workflow['id']}/execute",
        content='{"input_data": {"x": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "input_data"]
    assert "x is nan" in _messages(answer)


# ------------------------------------------------ a gateway and worker with strict limits


@pytest.fixture(scope="module")
def strict(stack: Stack) -> Iterator[str]:
    """PAYLOAD_LIMIT_BYTES=2048, ALLOWED_HOSTS=127.0.0.1 only, FOLLOW_REDIRECTS=true."""
    env = {
        "TASK_QUEUE": f"strict-{uuid.uuid4().hex[:8]}",
        "PAYLOAD_LIMIT_BYTES": str(PAYLOAD_LIMIT),
        "ALLOWED_HOSTS": "127.0.0.1",
        "FOLLOW_REDIRECTS": "true",
    }
    with stack.pair(**env) as url:
        yield url


@pytest.fixture(scope="module")
def fenced(stack: Stack) -> Iterator[str]:
    """ALLOWED_HOSTS that leaves out the test services (on 127.0.0.1)."""
    env = {
        "TASK_QUEUE": f"fenced-{uuid.uuid4().hex[:8]}",
        "ALLOWED_HOSTS": "192.0.2.0/24,services.internal.example",
    }
    with stack.pair(**env) as url:
        yield url


async def _run_one_step(
    url: str,
    services: TestServices,
    unique: str,
    endpoint: str,
    input_data: dict[str, Any],
    **action_fields: Any,
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        svc = f"svc-{unique}"
        await register(client, service(svc, endpoint, [action("run", **action_fields)]))
        workflow = await create_workflow(client, f"wf-{unique}", chain(("only", svc, "run")))
        answer = await client.post(
            f"/workflows/{workflow['id']}/execute", json={"input_data": input_data}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()


@sqlite_only
async def test_step_input_over_payload_limit_fails_naming_step_and_size(strict, services, unique):
    token = services.token()
    record = await _run_one_step(
        strict, services, unique, services.endpoint("echo", token), {"text": "x" * PAYLOAD_LIMIT}
    )
    assert record["status"] == "FAILED"
    error = record["error"]
    assert (error["step_id"], error["error_type"], error["attempts"]) == (
        "only",
        "PayloadTooLarge",
        1,
    )
    size = len(json.dumps({"text": "x" * PAYLOAD_LIMIT}, separators=(",", ":")))
    assert "step 'only'" in error["message"]
    assert f"input is {size} bytes" in error["message"]
    assert f"payload limit of {PAYLOAD_LIMIT} bytes" in error["message"]
    assert services.calls[token] == []


@sqlite_only
async def test_step_input_under_payload_limit_completes(strict, services, unique):
    token = services.token()
    record = await _run_one_step(
        strict, services, unique, services.endpoint("echo", token), {"text": "x" * 1000}
    )
    assert record["status"] == "COMPLETED", record["error"]
    assert len(services.calls[token]) == 1


@sqlite_only
async def test_service_response_over_payload_limit_fails_naming_step_and_size(
    strict, services, unique
):
    token = services.token()
    record = await _run_one_step(
        strict, services, unique, services.endpoint("big", token), {}, path=f"/{PAYLOAD_LIMIT * 4}"
    )
    assert record["status"] == "FAILED"
    error = record["error"]
    assert (error["step_id"], error["error_type"], error["attempts"]) == (
        "only",
        "PayloadTooLarge",
        1,
    )
    assert "step 'only'" in error["message"]
    assert re.search(
        rf"response is \d+ bytes, over the payload limit of {PAYLOAD_LIMIT}", error["message"]
    ), error["message"]
    assert len(services.calls[token]) == 1


@sqlite_only
async def test_endpoint_outside_allowed_hosts_fails_at_once_without_a_call(
    fenced, services, unique
):
    token = services.token()
    record = await _run_one_step(fenced, services, unique, services.endpoint("echo", token), {})
    assert record["status"] == "FAILED"
    error = record["error"]
    assert (error["step_id"], error["error_type"], error["attempts"]) == (
        "only",
        "OutboundRefused",
        1,
    )
    assert "ALLOWED_HOSTS" in error["message"]
    assert services.calls[token] == []


async def test_redirect_is_not_followed_by_default(api, services, unique):
    token = services.token()
    svc = f"redirect-{unique}"
    await register(api, service(svc, services.endpoint("redirect", token), [action("run")]))
    workflow = await create_workflow(api, f"redirect-{unique}", chain(("only", svc, "run")))
    answer = await api.post(f"/workflows/{workflow['id']}/execute", json={"input_data": {}})
    record = answer.json()
    assert record["status"] == "FAILED"
    error = record["error"]
    assert (error["step_id"], error["error_type"], error["attempts"]) == (
        "only",
        "UnexpectedRedirect",
        1,
    )
    assert "FOLLOW_REDIRECTS=true" in error["message"]
    assert len(services.calls[token]) == 1  # the echo target was never called


@sqlite_only
async def test_redirect_is_followed_when_allowed(strict, services, unique):
    token = services.token()
    record = await _run_one_step(
        strict, services, unique, services.endpoint("redirect", token), {"n": 1}
    )
    assert record["status"] == "COMPLETED", record["error"]
    assert record["result"]["echo"] == {"n": 1}
    assert len(services.calls[token]) == 2  # the redirect, then its target


@sqlite_only
async def test_redirect_to_a_host_outside_allowed_hosts_is_not_followed(strict, services, unique):
    token = services.token()
    record = await _run_one_step(
        strict,
        services,
        unique,
        services.endpoint("redirect", token),
        {},
        path="/run?host=127.0.0.2",  # loopback, but not the 127.0.0.1 ALLOWED_HOSTS names
    )
    assert record["status"] == "FAILED"
    error = record["error"]
    assert (error["error_type"], error["attempts"]) == ("OutboundRefused", 1)
    assert "127.0.0.2" in error["message"]
    assert len(services.calls[token]) == 1


# ---------------------------------------------------------------------------- API keys


@pytest.fixture(scope="module")
def keyed(stack: Stack) -> Iterator[str]:
    url = stack.start_gateway(API_KEYS=" , ".join(API_KEYS))
    gateway = stack.gateways[-1][0]
    yield url
    gateway.terminate()
    gateway.wait(30)


@sqlite_only
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/services"),
        ("POST", "/services"),
        ("GET", "/services/some-id"),
        ("GET", "/workflows"),
        ("POST", "/workflows/some-id/execute"),
        ("GET", "/executions/some-id"),
    ],
)
async def test_without_a_valid_key_every_endpoint_is_401(keyed, method, path):
    async with httpx.AsyncClient(base_url=keyed, timeout=30) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-key"},
            {"Authorization": f"Basic {API_KEYS[0]}"},
            {"Authorization": f"Bearer {API_KEYS[0]}x"},
        ):
            answer = await client.request(method, path, headers=headers, json={})
            assert answer.status_code == 401, (headers, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer <key>" in answer.json()["detail"]


@sqlite_only
async def test_with_a_configured_key_requests_pass(keyed, services, unique):
    for key in API_KEYS:
        async with httpx.AsyncClient(
            base_url=keyed, timeout=30, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            assert (await client.get("/services")).status_code == 200
            missing = await client.get(f"/services/{uuid.uuid4()}")
            assert missing.status_code == 404
            await register(
                client,
                service(f"keyed-{key}-{unique}", services.endpoint("echo", "t"), [action("run")]),
            )


@sqlite_only
async def test_health_needs_no_key_and_without_one_tells_the_status_only(keyed):
    async with httpx.AsyncClient(base_url=keyed, timeout=30) as client:
        anonymous = await client.get("/health")
        wrong = await client.get("/health", headers={"Authorization": "Bearer wrong"})
        keyed_answer = await client.get(
            "/health", headers={"Authorization": f"Bearer {API_KEYS[0]}"}
        )
    for answer in (anonymous, wrong):
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "healthy"}
    assert keyed_answer.json()["components"]["database"]["status"] == "healthy"
    assert keyed_answer.json()["components"]["workers"]["pollers"]


@sqlite_only
@pytest.mark.parametrize(
    "token", ["clé-non-ascii".encode(), b"\xff\xfe\x80", "ключ".encode(), b"key-one\xc3"]
)
async def test_a_bearer_token_that_is_no_ascii_is_401(keyed, token):
    async with httpx.AsyncClient(base_url=keyed, timeout=30) as client:
        answer = await client.get("/services", headers=[(b"Authorization", b"Bearer " + token)])
    assert answer.status_code == 401, answer.text
    assert "Authorization: Bearer <key>" in answer.json()["detail"]


@sqlite_only
async def test_an_api_key_that_is_no_ascii_is_accepted_as_sent(stack):
    url = stack.start_gateway(API_KEYS="clé-à-moi")
    gateway = stack.gateways[-1][0]
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            good = await client.get(
                "/services", headers=[(b"Authorization", "Bearer clé-à-moi".encode())]
            )
            bad = await client.get(
                "/services", headers=[(b"Authorization", "Bearer clé-à-toi".encode())]
            )
    finally:
        gateway.terminate()
        gateway.wait(30)
    assert (good.status_code, bad.status_code) == (200, 401)


async def test_without_api_keys_no_key_is_needed(api):
    assert (await api.get("/services")).status_code == 200
