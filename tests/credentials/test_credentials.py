"""Outbound credentials end to end: a worker and a gateway of their own with
ENCRYPTION_KEYS, real loopback services that require a header, basic auth or an OAuth2
token, on SQLite and PostgreSQL.

Each secret is a fresh random string, so "nowhere" is checked by looking for it: in the
answers of the API, in the Temporal history (raw bytes without a codec, decoded with
the keys, and through the real `temporal workflow show --output json`), in the
execution record and in the processes' logs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.api.history.v1 import History
from temporalio.client import Client

from core.codec import new_key_entry
from core.temporal import data_converter
from harness.services import OAuthClient, auth_state
from harness.stack import ROOT, Stack
from tests.support.builders import FAST_RETRY, action, register, service
from tests.support.polling import eventually

KEYS = f"{new_key_entry('cred-current')},{new_key_entry('cred-previous')}"
TEMPORAL_CLI = ROOT / ".venv" / "bin" / "temporal"
ONE_ATTEMPT = {**FAST_RETRY, "maximum_attempts": 1}


def secret(kind: str) -> str:
    return f"{kind}-secret-{uuid.uuid4().hex}"


@dataclass
class Secured:
    url: str
    task_queue: str


@pytest.fixture(scope="module")
def secured_stack(stack: Stack) -> Iterator[Secured]:
    """A worker and a gateway with ENCRYPTION_KEYS, on a task queue of their own."""
    task_queue = f"cred-{uuid.uuid4().hex[:8]}"
    with stack.pair(ENCRYPTION_KEYS=KEYS, ALLOWED_HOSTS="127.0.0.1", TASK_QUEUE=task_queue) as url:
        yield Secured(url, task_queue)


@pytest.fixture
async def secured(secured_stack: Secured) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=secured_stack.url, timeout=60) as client:
        yield client


def api_key(value: str, header: str = "X-API-Key") -> dict[str, Any]:
    return {"type": "api_key", "header": header, "value": value}


def basic(username: str, password: str) -> dict[str, Any]:
    return {"type": "basic", "username": username, "password": password}


def oauth(services: Any, token: str, client: OAuthClient, **extra: Any) -> dict[str, Any]:
    auth_state.oauth[token] = client
    return {
        "type": "oauth2_client_credentials",
        "token_url": f"{services.url}/oauth/{token}/token",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "scope": "steps:run",
        **extra,
    }


async def protected(
    api: httpx.AsyncClient,
    services: Any,
    unique: str,
    behaviour: str,
    token: str,
    credential: dict[str, Any] | None,
    **action_options: Any,
) -> dict[str, Any]:
    extra = {} if credential is None else {"credential": credential}
    return await register(
        api,
        service(
            f"{behaviour}-{unique}",
            services.endpoint(behaviour, token),
            [action("run", **action_options)],
            **extra,
        ),
    )


async def run(api: httpx.AsyncClient, service_id: str, data: Any = None) -> dict[str, Any]:
    answer = await api.post(
        f"/services/{service_id}/actions/run/execute", json={"input_data": data or {"n": 1}}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_no_secret(where: str, content: str | bytes, *secrets: str) -> None:
    data = content.encode() if isinstance(content, str) else content
    for value in secrets:
        assert value.encode() not in data, f"a secret appears in {where}"


async def assert_history_clean(
    temporal_address: str, gateway_url: str, execution_id: str, marker: str, *secrets: str
) -> None:
    """Nowhere in the history: raw (without a codec), decoded with the keys, and through
    the real CLI, plain and through the gateway's codec endpoint. `marker` is in the
    execution's input: found where the payloads are decoded, it shows that the search
    looked at the clear text."""
    plain = await Client.connect(temporal_address)
    history = await plain.get_workflow_handle(execution_id).fetch_history()
    raw = History(events=history.events).SerializeToString()
    assert_no_secret("the raw history", raw, *secrets)
    assert_no_secret("the history's JSON", history.to_json(), *secrets)
    assert marker.encode() not in raw  # encrypted: ENCRYPTION_KEYS is set

    codec = data_converter(KEYS).payload_codec
    assert codec is not None
    clear = b""
    for event in history.events:
        for payloads in _payload_lists(event):
            for payload in await codec.decode(list(payloads)):
                clear += payload.SerializeToString()
    assert marker.encode() in clear
    assert_no_secret("the decoded payloads", clear, *secrets)

    for extra in ([], ["--codec-endpoint", f"{gateway_url}/codec"]):
        shown = subprocess.run(
            [
                str(TEMPORAL_CLI),
                "workflow",
                "show",
                "--address",
                temporal_address,
                "--workflow-id",
                execution_id,
                "--output",
                "json",
                *extra,
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )
        assert json.loads(shown.stdout)["events"], shown.stderr
        seen = shown.stdout + shown.stderr + b"".join(_base64_strings(json.loads(shown.stdout)))
        assert_no_secret("`temporal workflow show`", seen, *secrets)
        assert (marker.encode() in seen) == bool(extra), "the codec endpoint decodes the input"


def _base64_strings(value: Any) -> Iterator[bytes]:
    """What every base64 string in a JSON document decodes to (payload data)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _base64_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _base64_strings(item)
    elif isinstance(value, str):
        try:
            yield base64.b64decode(value, validate=True)
        except ValueError:
            pass


def _payload_lists(event: Any) -> Iterator[Any]:
    """Every repeated Payload field of an event's attributes (inputs, results, failures'
    details are encoded the same way)."""
    which = event.WhichOneof("attributes")
    if which is None:
        return
    attributes = getattr(event, which)
    for descriptor, value in attributes.ListFields():
        if descriptor.message_type is not None and descriptor.message_type.name == "Payloads":
            yield value.payloads


def assert_logs_clean(stack: Stack, *secrets: str) -> None:
    logs = sorted(Path(stack.log_dir).glob("*.log"))
    assert logs
    for log in logs:
        assert_no_secret(f"log {log.name}", log.read_bytes(), *secrets)


# --- Each credential reaches the service ---------------------------------------------


async def test_api_key_header_reaches_the_service(secured, services, unique):
    token, value = services.token(), secret("apikey")
    auth_state.required[token] = {"x-service-key": value}
    created = await protected(
        secured, services, unique, "auth", token, api_key(value, header="X-Service-Key")
    )
    record = await run(secured, created["id"])
    assert record["status"] == "COMPLETED", record
    assert record["result"] == {"authorized": True}
    assert auth_state.authorized[token] == [True]


async def test_basic_auth_reaches_the_service(secured, services, unique):
    token, password = services.token(), secret("basic")
    expected = base64.b64encode(f"svc-user:{password}".encode()).decode()
    auth_state.required[token] = {"authorization": f"Basic {expected}"}
    created = await protected(secured, services, unique, "auth", token, basic("svc-user", password))
    record = await run(secured, created["id"])
    assert record["status"] == "COMPLETED", record
    assert record["result"] == {"authorized": True}


async def test_a_service_without_credential_gets_no_authorization(secured, services, unique):
    token = services.token()
    auth_state.required[token] = {"x-api-key": "anything"}
    created = await protected(
        secured, services, unique, "auth", token, None, retry_policy=ONE_ATTEMPT
    )
    record = await run(secured, created["id"])
    assert record["status"] == "FAILED"
    assert record["error"]["error_type"] == "ServiceRejected"
    assert "authorization" not in services.calls[token][0].headers


async def test_oauth2_token_is_fetched_once_for_several_calls(secured, services, unique):
    token = services.token()
    client = OAuthClient(f"client-{unique}", secret("oauth"), lifetime=300)
    credential = oauth(services, token, client, audience="https://api.example.test")
    created = await protected(secured, services, unique, "bearer", token, credential)
    records = [await run(secured, created["id"]) for _ in range(3)]
    records += await asyncio.gather(*(run(secured, created["id"]) for _ in range(3)))
    assert [r["status"] for r in records] == ["COMPLETED"] * 6, records
    assert all(r["result"] == {"authorized": True} for r in records)
    assert client.requests == 1
    (form,) = client.forms
    assert form == {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "scope": "steps:run",
        "audience": "https://api.example.test",
    }


async def test_oauth2_token_is_fetched_again_after_it_expires(secured, services, unique):
    token = services.token()
    client = OAuthClient(f"client-{unique}", secret("oauth"), lifetime=1.0)
    created = await protected(
        secured, services, unique, "bearer", token, oauth(services, token, client)
    )
    first = await run(secured, created["id"])
    assert first["status"] == "COMPLETED", first
    assert client.requests == 1
    await asyncio.sleep(1.5)
    second = await run(secured, created["id"])
    assert second["status"] == "COMPLETED", second
    assert client.requests == 2
    assert auth_state.authorized[token] == [True, True]


async def test_oauth2_token_refused_by_the_service_is_fetched_again_once(secured, services, unique):
    token = services.token()
    client = OAuthClient(f"client-{unique}", secret("oauth"), lifetime=300)
    created = await protected(
        secured,
        services,
        unique,
        "bearer",
        token,
        oauth(services, token, client),
        retry_policy=ONE_ATTEMPT,
    )
    assert (await run(secured, created["id"]))["status"] == "COMPLETED"
    client.revoke_all()  # the service no longer takes the cached token
    record = await run(secured, created["id"])
    assert record["status"] == "COMPLETED", record
    assert record["steps"][0]["attempts"] == 1
    assert client.requests == 2
    assert auth_state.authorized[token] == [True, False, True]


async def test_token_endpoint_refusal_fails_the_step_at_once_without_the_secret(
    secured, services, unique
):
    token = services.token()
    client = OAuthClient(f"client-{unique}", secret("oauth"))
    credential = oauth(services, token, client)
    credential["client_secret"] = wrong = secret("wrong")
    created = await protected(secured, services, unique, "bearer", token, credential)
    record = await run(secured, created["id"])
    assert record["status"] == "FAILED"
    error = record["error"]
    assert (error["error_type"], error["attempts"]) == ("CredentialUnavailable", 1)
    assert "HTTP 401 (invalid_client)" in error["message"]
    assert_no_secret("the error", json.dumps(record), wrong, client.client_secret)
    assert services.calls[token] == []  # the service was never called


async def test_token_endpoint_unavailable_is_retried(secured, services, unique):
    token = services.token()
    client = OAuthClient(f"client-{unique}", secret("oauth"), fail_with=503)
    retry = {**FAST_RETRY, "maximum_attempts": 3}
    created = await protected(
        secured,
        services,
        unique,
        "bearer",
        token,
        oauth(services, token, client),
        retry_policy=retry,
    )
    record = await run(secured, created["id"])
    assert record["status"] == "FAILED"
    assert (record["error"]["error_type"], record["error"]["attempts"]) == (
        "CredentialUnavailable",
        3,
    )
    assert "HTTP 503" in record["error"]["message"]
    assert client.requests == 3


async def test_a_service_echoing_its_credential_fails_without_keeping_the_output(
    secured, services, unique
):
    token, value = services.token(), secret("echoed")
    created = await protected(
        secured, services, unique, "leaky", token, api_key(value), retry_policy=ONE_ATTEMPT
    )
    record = await run(secured, created["id"])
    assert record["status"] == "FAILED"
    assert record["error"]["error_type"] == "CredentialEchoed"
    assert_no_secret("the record", json.dumps(record), value)


# --- A secret appears nowhere ------------------------------------------------------------


async def test_no_secret_in_history_records_or_logs(
    secured, secured_stack, services, stack, unique
):
    key_token, basic_token, oauth_token = services.token(), services.token(), services.token()
    key_value, password = secret("apikey"), secret("basic")
    client = OAuthClient(f"client-{unique}", secret("oauth"), lifetime=300)
    auth_state.required[key_token] = {"x-api-key": key_value}
    expected = base64.b64encode(f"u:{password}".encode()).decode()
    auth_state.required[basic_token] = {"authorization": f"Basic {expected}"}
    created = [
        await protected(secured, services, f"k{unique}", "auth", key_token, api_key(key_value)),
        await protected(secured, services, f"b{unique}", "auth", basic_token, basic("u", password)),
        await protected(
            secured,
            services,
            f"o{unique}",
            "bearer",
            oauth_token,
            oauth(services, oauth_token, client),
        ),
    ]
    marker = f"marker-{uuid.uuid4().hex}"
    records = [await run(secured, c["id"], {"marker": marker}) for c in created]
    assert [r["status"] for r in records] == ["COMPLETED"] * 3, records
    issued = list(client.issued)
    secrets = (key_value, password, expected, client.client_secret, *issued)
    for record in records:
        execution_id = record["execution_id"]
        await assert_history_clean(
            stack.temporal_address, secured_stack.url, execution_id, marker, *secrets
        )
        answer = await secured.get(f"/executions/{execution_id}")
        assert answer.status_code == 200
        assert_no_secret("GET /executions/{id}", answer.content, *secrets)
    assert_logs_clean(stack, *secrets)


async def test_the_api_never_answers_a_secret(secured, secured_stack, services, unique):
    token = services.token()
    client = OAuthClient(f"client-{unique}", secret("oauth"))
    credential = oauth(services, token, client)
    body = service(
        f"api-{unique}", services.endpoint("bearer", token), [action("run")], credential=credential
    )
    created = await secured.post("/services", json=body)
    assert created.status_code == 201, created.text
    shown = created.json()["credential"]
    assert shown == {
        "type": "oauth2_client_credentials",
        "configured": True,
        "token_url": credential["token_url"],
        "client_id": client.client_id,
        "scope": "steps:run",
    }
    service_id = created.json()["id"]
    again = await secured.post("/services", json=body)
    fetched = await secured.get(f"/services/{service_id}")
    listed = await secured.get("/services", params={"per_page": 100})
    value = secret("apikey")
    patched = await secured.patch(f"/services/{service_id}", json={"credential": api_key(value)})
    assert patched.status_code == 200, patched.text
    assert patched.json()["credential"] == {
        "type": "api_key",
        "configured": True,
        "header": "X-API-Key",
    }
    for answer in (created, fetched, listed, patched):
        assert answer.status_code in (200, 201), answer.text
    for answer in (created, again, fetched, listed, patched):
        assert_no_secret(str(answer.request.url), answer.content, client.client_secret, value)
    assert again.status_code == 409, again.text  # a credential is never "identical"
    openapi = await secured.get(secured_stack.url.removesuffix("/api") + "/openapi.json")
    public = openapi.json()["components"]["schemas"]["CredentialPublic"]["properties"]
    assert not {"value", "password", "client_secret"} & set(public)


async def test_registering_again_with_another_secret_conflicts(secured, services, unique):
    token = services.token()
    body = service(
        f"again-{unique}",
        services.endpoint("auth", token),
        [action("run")],
        credential=api_key(secret("first")),
    )
    assert (await secured.post("/services", json=body)).status_code == 201
    body["credential"] = api_key(secret("second"))
    answer = await secured.post("/services", json=body)
    assert answer.status_code == 409
    assert_no_secret("the 409", answer.content, body["credential"]["value"])


async def test_registering_again_answers_the_same_409_for_a_right_and_a_wrong_secret(
    secured, services, unique
):
    token = services.token()
    password = secret("basic")
    body = service(
        f"guess-{unique}",
        services.endpoint("auth", token),
        [action("run")],
        credential=basic("someone", password),
    )
    created = await secured.post("/services", json=body)
    assert created.status_code == 201, created.text
    right = await secured.post("/services", json=body)
    wrong = await secured.post(
        "/services", json={**body, "credential": basic("someone", secret("guess"))}
    )
    assert (right.status_code, wrong.status_code) == (409, 409), (right.text, wrong.text)
    assert right.json() == wrong.json()
    assert right.json()["resource_id"] == created.json()["id"]
    assert f"PATCH /api/services/{created.json()['id']}" in right.json()["detail"]
    assert_no_secret("the 409", right.content + wrong.content, password)


async def test_a_registration_with_a_credential_replays_under_its_idempotency_key(
    secured, services, unique
):
    token = services.token()
    value = secret("apikey")
    body = service(
        f"replay-{unique}",
        services.endpoint("auth", token),
        [action("run")],
        credential=api_key(value),
    )
    headers = {"Idempotency-Key": f"register-{unique}"}
    first = await secured.post("/services", json=body, headers=headers)
    assert first.status_code == 201, first.text
    replayed = await secured.post("/services", json=body, headers=headers)
    assert (replayed.status_code, replayed.json()) == (201, first.json())
    assert_no_secret("the replay", replayed.content, value)
    without_key = await secured.post("/services", json=body)
    assert without_key.status_code == 409, without_key.text
    other_secret = await secured.post(
        "/services", json={**body, "credential": api_key(secret("guess"))}, headers=headers
    )
    assert other_secret.status_code == 422, other_secret.text  # the key is bound to the secret


async def test_invalid_credential_is_422_without_echoing_it(secured, services, unique):
    value = secret("bad") + "\n"
    body = service(
        f"bad-{unique}",
        services.endpoint("auth", "t"),
        [action("run")],
        credential={
            "type": "api_key",
            "header": "X-API-Key",
            "value": value,
            "extra": secret("extra"),
        },
    )
    answer = await secured.post("/services", json=body)
    assert answer.status_code == 422
    locs = [problem["loc"] for problem in answer.json()["detail"]]
    assert ["body", "credential", "api_key", "value"] in locs
    assert_no_secret("the 422", answer.content, value.strip(), body["credential"]["extra"])


async def test_storing_a_credential_without_encryption_keys_is_422(api, services, unique):
    """The session's gateway runs without ENCRYPTION_KEYS."""
    value = secret("plain")
    body = service(
        f"plain-{unique}",
        services.endpoint("auth", "t"),
        [action("run")],
        credential=api_key(value),
    )
    answer = await api.post("/services", json=body)
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["body", "credential"]
    assert "ENCRYPTION_KEYS" in problem["msg"]
    assert_no_secret("the 422", answer.content, value)
    created = await register(api, {k: v for k, v in body.items() if k != "credential"})
    patched = await api.patch(f"/services/{created['id']}", json={"credential": api_key(value)})
    assert patched.status_code == 422
    assert "ENCRYPTION_KEYS" in patched.json()["detail"][0]["msg"]


async def test_null_removes_the_credential(secured, services, stack, unique):
    token, value = services.token(), secret("apikey")
    auth_state.required[token] = {"x-api-key": value}
    created = await protected(secured, services, unique, "auth", token, api_key(value))
    assert created["credential"]["configured"] is True
    patched = await secured.patch(f"/services/{created['id']}", json={"credential": None})
    assert patched.status_code == 200, patched.text
    assert "credential" not in patched.json()

    async def gone() -> bool:
        return "credential" not in (await secured.get(f"/services/{created['id']}")).json()

    await eventually(gone, what="GET shows no credential")
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as connection:
            stored = (
                await connection.execute(
                    text("SELECT credential FROM services WHERE id = :id"), {"id": created["id"]}
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert stored is None


async def test_the_credential_is_stored_encrypted(secured, services, stack, unique):
    value = secret("atrest")
    created = await protected(secured, services, unique, "auth", services.token(), api_key(value))
    engine = create_async_engine(stack.database_url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT * FROM services WHERE id = :id"), {"id": created["id"]}
                )
            ).one()
    finally:
        await engine.dispose()
    assert_no_secret("the services row", repr(tuple(row)), value)
    stored = row.credential if isinstance(row.credential, dict) else json.loads(row.credential)
    assert stored["key_id"] == "cred-current"


async def test_moving_the_endpoint_elsewhere_needs_the_credential_again(secured, services, unique):
    created = await protected(
        secured, services, unique, "auth", services.token(), api_key(secret("bound"))
    )
    moved = await secured.patch(
        f"/services/{created['id']}", json={"endpoint": "http://127.0.0.2:9/elsewhere"}
    )
    assert moved.status_code == 422
    assert "send the credential again" in moved.json()["detail"][0]["msg"]
    same_origin = await secured.patch(
        f"/services/{created['id']}", json={"endpoint": services.endpoint("auth", "other")}
    )
    assert same_origin.status_code == 200, same_origin.text
    with_credential = await secured.patch(
        f"/services/{created['id']}",
        json={"endpoint": "http://127.0.0.2:9/elsewhere", "credential": api_key(secret("new"))},
    )
    assert with_credential.status_code == 200, with_credential.text


async def test_a_refused_token_url_is_a_warning(secured, services, unique):
    token = services.token()
    credential = oauth(services, token, OAuthClient("c", secret("oauth")))
    credential["token_url"] = "http://10.1.2.3/token"
    answer = await secured.post(
        "/services",
        json=service(
            f"warn-{unique}",
            services.endpoint("bearer", token),
            [action("run")],
            credential=credential,
        ),
    )
    assert answer.status_code == 201, answer.text
    (warning,) = answer.json()["warnings"]
    assert "token_url" in warning and "ALLOWED_HOSTS" in warning
