"""/api/codec/decode and /encode (gateway/routes/codec.py) on an app of their own.

The routes read only `app.state.settings`; the end-to-end test (test_encryption_e2e.py)
runs them in the real gateway against payloads of a real history.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from core.codec import ENCODING, KEY_ID_METADATA, EncryptionCodec, new_key_entry, parse_keys
from gateway import errors
from gateway.routes import codec

KEYS = f"{new_key_entry('current')},{new_key_entry('previous')}"
UI = "http://localhost:8233"
API_KEY = "route-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def make_app(**settings: Any) -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.include_router(codec.router, prefix="/api")
    defaults: dict[str, Any] = {
        "temporal_namespace": "default",
        "api_key_set": frozenset(),
        "encryption_keys": KEYS,
    }
    app.state.settings = SimpleNamespace(**{**defaults, **settings})
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(make_app()) as http:
        yield http


def make_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


def as_json(*payloads: Payload) -> dict[str, Any]:
    return json_format.MessageToDict(Payloads(payloads=payloads))


def from_json(body: dict[str, Any]) -> list[Payload]:
    return list(json_format.ParseDict(body, Payloads()).payloads)


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"secret": "marker"}')


async def encrypted(setting: str = KEYS) -> Payload:
    (payload,) = await EncryptionCodec.from_setting(setting).encode([PLAIN])
    return payload


async def test_decode_answers_the_original_payloads(client: httpx.AsyncClient) -> None:
    answer = await client.post("/api/codec/decode", json=as_json(await encrypted(), PLAIN))
    assert answer.status_code == 200, answer.text
    assert from_json(answer.json()) == [PLAIN, PLAIN]
    assert (
        answer.json()["payloads"][0]["metadata"]["encoding"]
        == base64.b64encode(b"json/plain").decode()
    )


async def test_encode_answers_payloads_under_the_first_key(client: httpx.AsyncClient) -> None:
    answer = await client.post("/api/codec/encode", json=as_json(PLAIN))
    assert answer.status_code == 200, answer.text
    (sealed,) = from_json(answer.json())
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"current"
    assert await EncryptionCodec.from_setting(KEYS).decode([sealed]) == [PLAIN]


async def test_empty_payloads_answer_an_empty_list(client: httpx.AsyncClient) -> None:
    answer = await client.post("/api/codec/decode", json={})
    assert answer.json() == {"payloads": []}


async def test_unknown_key_id_is_a_400_naming_it(client: httpx.AsyncClient) -> None:
    foreign = await encrypted(new_key_entry("elsewhere"))
    answer = await client.post("/api/codec/decode", json=as_json(foreign))
    assert answer.status_code == 400
    assert "'elsewhere'" in answer.json()["detail"]


@pytest.mark.parametrize("size", [0, 3, 7, 8, 11, 27])
async def test_encrypted_data_too_short_to_hold_nonce_and_tag_is_a_400(
    client: httpx.AsyncClient, size: int
) -> None:
    cut = Payload(metadata=(await encrypted()).metadata, data=os.urandom(size))
    answer = await client.post("/api/codec/decode", json=as_json(PLAIN, cut))
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("payloads[1]: ")
    assert f"has {size} bytes of data, fewer than the 28" in detail


async def test_encrypted_data_that_holds_no_payload_is_a_400(client: httpx.AsyncClient) -> None:
    key = parse_keys(KEYS)["current"]
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(key).encrypt(nonce, b"\xff\xff not a serialized payload", None)
    junk = Payload(metadata=(await encrypted()).metadata, data=sealed)
    answer = await client.post("/api/codec/decode", json=as_json(junk))
    assert answer.status_code == 400, answer.text
    assert "authenticates but holds no serialized payload" in answer.json()["detail"]


async def test_altered_encrypted_data_is_a_400(client: httpx.AsyncClient) -> None:
    sealed = await encrypted()
    altered = Payload(
        metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    )
    answer = await client.post("/api/codec/decode", json=as_json(altered))
    assert answer.status_code == 400, answer.text
    assert "does not authenticate" in answer.json()["detail"]


async def test_encrypted_payload_without_key_id_is_a_400(client: httpx.AsyncClient) -> None:
    nameless = Payload(metadata={"encoding": ENCODING}, data=(await encrypted()).data)
    answer = await client.post("/api/codec/decode", json=as_json(nameless))
    assert answer.status_code == 400, answer.text
    assert KEY_ID_METADATA in answer.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"payloads": [{"data": "not base64!"}]}', b"[" * 5000],
    ids=["not-json", "not-an-object", "bad-base64", "deep"],
)
async def test_body_other_than_payloads_is_a_400(client: httpx.AsyncClient, body: bytes) -> None:
    answer = await client.post(
        "/api/codec/decode", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert "protobuf JSON" in answer.json()["detail"]


async def test_other_namespace_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/api/codec/decode", json=as_json(PLAIN), headers={"X-Namespace": "payments"}
    )
    assert answer.status_code == 400
    assert "'default' only" in answer.json()["detail"]
    same = await client.post(
        "/api/codec/decode", json=as_json(PLAIN), headers={"X-Namespace": "default"}
    )
    assert same.status_code == 200


async def test_encryption_off_is_a_404() -> None:
    async with make_client(make_app(encryption_keys="")) as http:
        for operation in ("decode", "encode"):
            answer = await http.post(f"/api/codec/{operation}", json=as_json(PLAIN))
            assert answer.status_code == 404
            assert "ENCRYPTION_KEYS" in answer.json()["detail"]


async def test_api_key_is_required_when_configured() -> None:
    app = make_app(api_key_set=frozenset({API_KEY}))
    async with make_client(app) as http:
        missing = await http.post("/api/codec/decode", json=as_json(PLAIN), headers={"Origin": UI})
        assert missing.status_code == 401
        assert missing.headers["access-control-allow-origin"] == UI
        wrong = await http.post(
            "/api/codec/decode", json=as_json(PLAIN), headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        good = await http.post("/api/codec/decode", json=as_json(PLAIN), headers=AUTH)
        assert good.status_code == 200


async def test_answer_carries_cors_headers_for_an_allowed_origin(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post("/api/codec/decode", json=as_json(PLAIN), headers={"Origin": UI})
    assert answer.headers["access-control-allow-origin"] == UI
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert answer.headers["vary"] == "Origin"


async def test_answer_to_another_origin_has_no_cors_headers(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/api/codec/decode", json=as_json(PLAIN), headers={"Origin": "https://evil.example"}
    )
    assert answer.status_code == 200  # a browser keeps it from the page: no Allow-Origin
    assert "access-control-allow-origin" not in answer.headers


async def test_preflight_allows_the_configured_origins() -> None:
    app = make_app(
        api_key_set=frozenset({API_KEY}), codec_cors_origins="https://ui.example.com, " + UI
    )
    async with make_client(app) as http:
        for origin in ("https://ui.example.com", UI):
            answer = await http.options(
                "/api/codec/decode",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
                },
            )
            assert answer.status_code == 204, answer.text
            assert answer.headers["access-control-allow-origin"] == origin
            assert answer.headers["access-control-allow-methods"] == "POST, OPTIONS"
            assert (
                answer.headers["access-control-allow-headers"]
                == "authorization, content-type, x-namespace"
            )


async def test_preflight_from_another_origin_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.options(
        "/api/codec/encode",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert answer.status_code == 403
    assert "CODEC_CORS_ORIGINS" in answer.json()["detail"]
    assert "access-control-allow-origin" not in answer.headers


async def test_default_origins_are_the_local_temporal_ui(client: httpx.AsyncClient) -> None:
    for origin in ("http://127.0.0.1:8233", "http://localhost:8233"):
        answer = await client.options("/api/codec/decode", headers={"Origin": origin})
        assert answer.headers["access-control-allow-origin"] == origin
