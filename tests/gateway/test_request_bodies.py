"""Bodies that are no JSON get a 415 that says what to send; broken JSON a 400 or 422.

Every answer is JSON with a `detail`, never a 500.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.builders import action, service

WRITES = [
    ("POST", "/services"),
    ("POST", "/workflows"),
    ("PATCH", "/services/some-id"),
    ("PATCH", "/workflows/some-id"),
    ("POST", "/workflows/some-id/execute"),
    ("POST", "/workflows/some-id/executions"),
    ("POST", "/services/some-id/actions/run/execute"),
    ("POST", "/services/some-id/actions/run/executions"),
    ("PUT", "/services/some-id"),
]

NOT_JSON = [
    ({"Content-Type": "text/plain"}, b'{"name": "x"}'),
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"name=x&endpoint=y"),
    (
        {"Content-Type": "multipart/form-data; boundary=b"},
        b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n',
    ),
    ({"Content-Type": "application/xml"}, b"<service><name>x</name></service>"),
    ({"Content-Type": "application/octet-stream"}, b"\x00\x01\x02"),
    ({"Content-Type": "multipart/form-data"}, b"no boundary at all"),
    ({}, b'{"name": "x"}'),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize(("headers", "content"), NOT_JSON)
async def test_a_body_that_is_no_json_is_415_saying_to_send_json(
    api, method, path, headers, content
):
    answer = await api.request(method, path, headers=headers, content=content)
    assert answer.status_code == 415, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert "application/json" in answer.json()["detail"]


async def test_a_json_body_with_a_charset_or_a_json_suffix_is_accepted(api, services, unique):
    for index, content_type in enumerate(
        ("application/json; charset=utf-8", "application/merge-patch+json", "APPLICATION/JSON")
    ):
        body = service(f"ct-{index}-{unique}", services.endpoint("echo", "t"), [action("run")])

        answer = await api.post(
            "/services", content=json.dumps(body).encode(), headers={"Content-Type": content_type}
        )
        assert answer.status_code == 201, answer.text


async def test_a_write_without_a_body_needs_no_content_type(api):
    answer = await api.delete("/services/some-id")
    assert answer.status_code == 404, answer.text


@pytest.mark.parametrize(
    "content",
    [b'{"name": "x",', b"\xff\xfe{}", b'{"name": "\xc3\x28"}', b"not json", b"[1, 2"],
)
async def test_a_json_body_that_cannot_be_read_is_400_or_422_with_json(api, content):
    answer = await api.post(
        "/services", content=content, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code in (400, 422), answer.text
    assert "detail" in answer.json()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/services", "GET, POST"),
        ("POST", "/services/some-id", "DELETE, GET, PATCH"),
        ("DELETE", "/workflows/some-id/executions", "GET, POST"),
    ],
)
async def test_a_method_the_path_does_not_support_is_405_naming_every_allowed_one(
    api, method, path, allowed
):
    answer = await api.request(method, path, json={})
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == allowed


async def test_the_schema_states_the_execute_timeout_this_gateway_allows(stack):
    root = stack.url.removesuffix("/api")
    async with httpx.AsyncClient() as client:
        document = (await client.get(f"{root}/openapi.json")).json()
    operation = document["paths"]["/api/workflows/{workflow_id}/execute"]["post"]
    timeout = next(p for p in operation["parameters"] if p["name"] == "timeout")
    assert "maximum" in str(timeout["schema"])
    assert "'maximum': 300" in str(timeout["schema"]), timeout  # MAX_EXECUTE_TIMEOUT
