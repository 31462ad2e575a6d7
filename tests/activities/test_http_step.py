"""The HTTP step's classification of outcomes, run in an ActivityEnvironment.

Each test tells a real HTTP server on loopback (started by this module) how to answer
one token, runs `StepActivities.call_service` against it the way a worker would (the
StepCall as a pydantic payload, the activity info, heartbeats), and checks the output
or the ApplicationError the activity raises.

The default outbound policy refuses loopback, so the tests allow 127.0.0.1 explicitly
(`loopback()`). Every call goes through `LoopbackOnly`, a transport that refuses to
open a connection to any other address: names are made to resolve by replacing
`core.outbound.resolve_addresses`, and no test sends traffic off this machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from temporalio.api.failure.v1 import Failure
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverter
from temporalio.exceptions import ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.testing import ActivityEnvironment

from activities import http_step
from activities.http_step import (
    ERROR_BODY_PREFIX,
    INLINE_VALIDATION_BYTES,
    MAX_REDIRECTS,
    MAX_RETRY_AFTER,
    StepActivities,
)
from core import outbound
from core.devserver import free_port
from core.outbound import OutboundPolicy
from core.signing import step_signature
from definitions.models import ActionSpec, PinnedStep, StepCall
from workflows.tasks import step_failed

HOLD_AT_MOST = 10.0
"""Seconds the server holds a request nobody releases (the test fails before that)."""


@dataclass
class Answer:
    """How the server answers one token."""

    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False
    """Wait for `release(token)` before answering."""
    chunks: list[bytes] | None = None
    """Stream these (no Content-Length) instead of `body`."""
    stall_after_first_chunk: bool = False
    """Hold (as `hold`) after sending the first chunk."""
    break_after_first_chunk: bool = False
    """Drop the connection after sending the first chunk."""


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str = ""
    answers: dict[str, Answer] = field(default_factory=dict)
    seen: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    released: dict[str, threading.Event] = field(
        default_factory=lambda: defaultdict(threading.Event)
    )

    def answer(self, answer: Answer | None = None, **fields: Any) -> str:
        """A new token answered as told; its endpoint is `endpoint(token)`."""
        token = uuid.uuid4().hex[:12]
        self.answers[token] = answer or Answer(**fields)
        return token

    def endpoint(self, token: str, host: str = "127.0.0.1") -> str:
        return self.url.replace("127.0.0.1", host) + f"/{token}"

    def release(self, token: str) -> None:
        self.released[token].set()

    async def wait_released(self, token: str) -> None:
        event = self.released[token]
        for _ in range(int(HOLD_AT_MOST / 0.02)):
            if event.is_set():
                return
            await asyncio.sleep(0.02)


def create_app(server: Server) -> Starlette:
    async def handle(request: Request) -> Response:
        token = request.path_params["token"]
        server.seen[token].append(
            Seen(
                method=request.method,
                path=request.url.path,
                query={k: request.query_params.getlist(k) for k in request.query_params},
                headers=dict(request.headers),
                body=await request.body(),
            )
        )
        answer = server.answers.get(token, Answer(status=418, body=b'{"detail": "no answer"}'))
        if answer.hold:
            await server.wait_released(token)
        if answer.chunks is None:
            return Response(answer.body, answer.status, answer.headers, "application/json")

        async def stream() -> AsyncIterator[bytes]:
            assert answer.chunks is not None
            for index, chunk in enumerate(answer.chunks):
                yield chunk
                if index == 0 and answer.stall_after_first_chunk:
                    await server.wait_released(token)
                if index == 0 and answer.break_after_first_chunk:
                    raise RuntimeError("the test service drops the connection mid-body")

        return StreamingResponse(stream(), answer.status, answer.headers, "application/json")

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{token}/{rest:path}", handle, methods=methods)])


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    state = Server()
    port = free_port()
    state.url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="critical")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    for _ in range(200):
        if running.started:
            break
        threading.Event().wait(0.05)
    else:
        raise RuntimeError("the test HTTP server did not start")
    yield state
    for event in list(state.released.values()):
        event.set()
    running.should_exit = True
    thread.join(timeout=HOLD_AT_MOST)


def step_call(
    endpoint: str,
    *,
    input: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    **spec: Any,
) -> StepCall:
    return StepCall(
        execution_id="exec-0123abcd",
        step_id="extract",
        service="text-extraction",
        endpoint=endpoint,
        spec=ActionSpec(name="run", **spec),
        input={"text": "hello"} if input is None else input,
        context=context or {},
        request_id="req-42",
    )


LOOPBACK = "127.0.0.1"
KEY = "test-signing-key"
PUBLIC_ADDRESS = "93.184.216.34"
"""A public address for a fake resolver to answer; `LoopbackOnly` never connects to it."""


def loopback(**options: Any) -> OutboundPolicy:
    """The policy of these tests: the default, with the loopback server allowed."""
    return OutboundPolicy(allowed_hosts=LOOPBACK, **options)


class LoopbackOnly(httpx.AsyncBaseTransport):
    """A real transport that refuses (and records) any connection beyond 127.0.0.1/::1."""

    def __init__(self) -> None:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)
        self._inner = httpx.AsyncHTTPTransport(limits=limits)
        self.refused: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in ("127.0.0.1", "::1"):
            self.refused.append(request)
            raise httpx.ConnectError("the tests connect to loopback only", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def fake_resolver(monkeypatch: pytest.MonkeyPatch, *answers: list[str]) -> list[tuple[str, int]]:
    """Make names resolve to `answers` (one list per lookup, the last one repeated);
    returns the lookups made."""
    lookups: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append((host, port))
        return answers[min(len(lookups), len(answers)) - 1]

    monkeypatch.setattr(outbound, "resolve_addresses", resolve)
    return lookups


def signed(call: StepCall, key: str = KEY) -> StepCall:
    signature = step_signature(
        key,
        step_id=call.step_id,
        service=call.service,
        action=call.spec.name,
        endpoint=call.endpoint,
        spec=call.spec.model_dump(mode="json"),
    )
    return call.model_copy(update={"signature": signature})


def activity_env(**info: Any) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.payload_converter = pydantic_data_converter.payload_converter
    if info:
        env.info = dataclasses.replace(env.info, **info)
    return env


async def run_step(
    call: StepCall,
    *,
    policy: OutboundPolicy | None = None,
    env: ActivityEnvironment | None = None,
    signing_key: str = "",
    transport: LoopbackOnly | None = None,
) -> dict[str, Any]:
    payload = pydantic_data_converter.payload_converter.to_payload(call)
    async with httpx.AsyncClient(transport=transport or LoopbackOnly()) as http:
        steps = StepActivities(http, policy or loopback(), signing_key=signing_key)
        return await (env or activity_env()).run(steps.call_service, [RawValue(payload)])


async def failure_of(call: StepCall, **options: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        await run_step(call, **options)
    return raised.value


def details(error: ApplicationError) -> dict[str, Any]:
    assert len(error.details) == 1
    found = error.details[0]
    assert isinstance(found, dict)
    return found


def json_body(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- success ---------------------------------------------------------------------------


async def test_2xx_json_object_is_the_output(server: Server) -> None:
    token = server.answer(status=201, body=json_body({"text": "done", "n": 2}))
    assert await run_step(step_call(server.endpoint(token))) == {"text": "done", "n": 2}


async def test_post_sends_the_input_as_json_body_to_the_action_path(server: Server) -> None:
    token = server.answer(body=b"{}")
    await run_step(step_call(server.endpoint(token), input={"text": "hi", "n": [1, 2]}))
    (seen,) = server.seen[token]
    assert (seen.method, seen.path) == ("POST", f"/{token}/run")
    assert json.loads(seen.body) == {"text": "hi", "n": [1, 2]}


async def test_spec_path_replaces_the_action_name_in_the_url(server: Server) -> None:
    token = server.answer(body=b"{}")
    await run_step(step_call(server.endpoint(token), path="/v2/extract"))
    assert server.seen[token][0].path == f"/{token}/v2/extract"


@pytest.mark.parametrize("status", [200, 204])
async def test_empty_body_is_an_empty_output(server: Server, status: int) -> None:
    token = server.answer(status=status, body=b"")
    assert await run_step(step_call(server.endpoint(token))) == {}


async def test_whitespace_body_is_an_empty_output(server: Server) -> None:
    token = server.answer(body=b" \r\n ")
    assert await run_step(step_call(server.endpoint(token))) == {}


async def test_get_sends_scalar_input_as_query_params_and_no_body(server: Server) -> None:
    token = server.answer(body=b"{}")
    call = step_call(
        server.endpoint(token),
        method="GET",
        input={"q": "a b", "n": 3, "x": 1.5, "nested": {"k": 1}, "items": [1]},
    )
    await run_step(call)
    (seen,) = server.seen[token]
    assert seen.method == "GET"
    assert seen.query == {"q": ["a b"], "n": ["3"], "x": ["1.5"]}
    assert seen.body == b""


# --- contract headers ------------------------------------------------------------------


async def test_request_id_header_is_the_calls_request_id(server: Server) -> None:
    token = server.answer(body=b"{}")
    await run_step(step_call(server.endpoint(token)))
    assert server.seen[token][0].headers["x-request-id"] == "req-42"


async def test_idempotency_key_is_execution_id_colon_step_id(server: Server) -> None:
    token = server.answer(body=b"{}")
    await run_step(step_call(server.endpoint(token)))
    assert server.seen[token][0].headers["idempotency-key"] == "exec-0123abcd:extract"


async def test_idempotency_key_is_the_same_on_every_attempt(server: Server) -> None:
    token = server.answer(body=b"{}")
    await run_step(step_call(server.endpoint(token)), env=activity_env(attempt=1))
    await run_step(step_call(server.endpoint(token)), env=activity_env(attempt=4))
    first, second = server.seen[token]
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]


async def test_execution_and_step_id_headers(server: Server) -> None:
    token = server.answer(body=b"{}")
    await run_step(step_call(server.endpoint(token)))
    headers = server.seen[token][0].headers
    assert headers["x-execution-id"] == "exec-0123abcd"
    assert headers["x-step-id"] == "extract"


async def test_forwarded_scalar_context_entries_are_x_context_headers(server: Server) -> None:
    token = server.answer(body=b"{}")
    context = {"project_id": "p-1", "tenant-no": 7, "ratio": 0.5, "beta": True}
    call = step_call(server.endpoint(token), context=context, forward_context=list(context))
    await run_step(call)
    headers = server.seen[token][0].headers
    assert headers["x-context-project_id"] == "p-1"
    assert headers["x-context-tenant-no"] == "7"
    assert headers["x-context-ratio"] == "0.5"
    assert headers["x-context-beta"] == "True"


async def test_non_scalar_context_entries_and_odd_keys_are_not_sent(server: Server) -> None:
    token = server.answer(body=b"{}")
    context = {"tags": ["a"], "meta": {"k": "v"}, "none": None}
    call = step_call(server.endpoint(token), context=context, forward_context=list(context))
    await run_step(call)
    sent = [name for name in server.seen[token][0].headers if name.startswith("x-context-")]
    assert sent == []


async def test_non_ascii_context_value_is_percent_encoded(server: Server) -> None:
    token = server.answer(body=b"{}")
    call = step_call(server.endpoint(token), context={"city": "Zürich"}, forward_context=["city"])
    await run_step(call)
    assert server.seen[token][0].headers["x-context-city"] == "Z%C3%BCrich"


async def test_content_type_is_json(server: Server) -> None:
    token = server.answer(body=b"{}")
    await run_step(step_call(server.endpoint(token)))
    assert server.seen[token][0].headers["content-type"] == "application/json"


# --- retryable statuses ----------------------------------------------------------------


async def test_408_is_retryable_with_status_code(server: Server) -> None:
    token = server.answer(status=408, body=b'{"detail": "too slow"}')
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, error.non_retryable) == ("HTTP408", False)
    assert details(error)["status_code"] == 408


async def test_429_is_retryable_with_status_code(server: Server) -> None:
    token = server.answer(status=429, body=b'{"detail": "slow down"}')
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, error.non_retryable) == ("HTTP429", False)
    assert details(error)["status_code"] == 429
    assert error.next_retry_delay is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retryable_service_unavailable_with_status_code(
    server: Server, status: int
) -> None:
    token = server.answer(status=status, body=b'{"detail": "down"}')
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, error.non_retryable) == ("ServiceUnavailable", False)
    assert details(error)["status_code"] == status
    assert "down" in error.message


# --- Retry-After -----------------------------------------------------------------------


async def test_retry_after_seconds_is_the_next_retry_delay(server: Server) -> None:
    token = server.answer(status=503, headers={"Retry-After": "7"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert error.next_retry_delay == timedelta(seconds=7)


async def test_retry_after_on_429_is_the_next_retry_delay(server: Server) -> None:
    token = server.answer(status=429, headers={"Retry-After": "12"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert error.next_retry_delay == timedelta(seconds=12)


async def test_retry_after_seconds_is_capped(server: Server) -> None:
    token = server.answer(status=503, headers={"Retry-After": "999999"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert error.next_retry_delay == timedelta(seconds=MAX_RETRY_AFTER)


async def test_negative_retry_after_is_no_delay(server: Server) -> None:
    token = server.answer(status=503, headers={"Retry-After": "-30"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert error.next_retry_delay == timedelta(0)


async def test_retry_after_http_date_is_the_time_until_then(server: Server) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=600)
    token = server.answer(status=503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    error = await failure_of(step_call(server.endpoint(token)))
    assert error.next_retry_delay is not None
    # The delay counts from when the activity read the header: a little under 600 s.
    assert timedelta(seconds=540) <= error.next_retry_delay <= timedelta(seconds=600)


async def test_retry_after_http_date_is_capped(server: Server) -> None:
    token = server.answer(status=503, headers={"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert error.next_retry_delay == timedelta(seconds=MAX_RETRY_AFTER)


async def test_retry_after_http_date_in_the_past_is_no_delay(server: Server) -> None:
    token = server.answer(status=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert error.next_retry_delay == timedelta(0)


async def test_retry_after_http_date_without_zone_is_read_as_gmt(server: Server) -> None:
    token = server.answer(status=503, headers={"Retry-After": "Fri, 31 Dec 2100 23:59:59 -0000"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, details(error)["status_code"]) == ("ServiceUnavailable", 503)
    assert error.next_retry_delay == timedelta(seconds=MAX_RETRY_AFTER)


@pytest.mark.parametrize("value", ["soon", "nan"])
async def test_unreadable_retry_after_leaves_the_delay_to_the_retry_policy(
    server: Server, value: str
) -> None:
    token = server.answer(status=503, headers={"Retry-After": value})
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, error.non_retryable) == ("ServiceUnavailable", False)
    assert error.next_retry_delay is None


# --- non-retryable statuses ------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
async def test_other_4xx_is_non_retryable_service_rejected(server: Server, status: int) -> None:
    token = server.answer(status=status, body=b'{"detail": "no such thing"}')
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, error.non_retryable) == ("ServiceRejected", True)
    assert details(error)["status_code"] == status
    assert "no such thing" in error.message


async def test_4xx_ignores_retry_after(server: Server) -> None:
    token = server.answer(status=400, headers={"Retry-After": "5"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert error.non_retryable
    assert error.next_retry_delay is None


# --- redirects -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_3xx_without_follow_redirects_is_non_retryable(server: Server, status: int) -> None:
    target = server.answer(body=b'{"text": "moved here"}')
    location = server.endpoint(target) + "/run"
    token = server.answer(status=status, body=b"", headers={"Location": location})
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, error.non_retryable) == ("UnexpectedRedirect", True)
    assert details(error)["status_code"] == status
    assert location in error.message
    assert server.seen[target] == []


async def test_redirect_is_followed_when_allowed(server: Server) -> None:
    target = server.answer(body=b'{"text": "moved here"}')
    location = server.endpoint(target) + "/run"
    token = server.answer(status=307, body=b"", headers={"Location": location})
    policy = loopback(follow_redirects=True)
    output = await run_step(step_call(server.endpoint(token)), policy=policy)
    assert output == {"text": "moved here"}
    (seen,) = server.seen[target]
    assert (seen.method, json.loads(seen.body)) == ("POST", {"text": "hello"})


async def test_redirect_from_an_allowed_host_to_a_refused_one_is_not_followed(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_resolver(monkeypatch, [LOOPBACK])
    target = server.answer(body=b'{"text": "elsewhere"}')
    location = server.endpoint(target) + "/run"  # 127.0.0.1, which only the name may reach
    token = server.answer(status=307, body=b"", headers={"Location": location})
    policy = OutboundPolicy(allowed_hosts="service.test", follow_redirects=True)
    error = await failure_of(step_call(server.endpoint(token, host="service.test")), policy=policy)
    assert (error.type, error.non_retryable) == ("OutboundRefused", True)
    assert f"was redirected to {location}" in error.message
    assert "ALLOWED_HOSTS" in error.message
    assert len(server.seen[token]) == 1
    assert server.seen[target] == []


async def test_relative_redirect_keeps_the_registered_host_name(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = fake_resolver(monkeypatch, [LOOPBACK])
    target = server.answer(body=b'{"text": "moved here"}')
    token = server.answer(status=308, body=b"", headers={"Location": f"/{target}/run"})
    policy = OutboundPolicy(allowed_hosts="service.test", follow_redirects=True)
    call = step_call(server.endpoint(token, host="service.test"))
    assert await run_step(call, policy=policy) == {"text": "moved here"}
    port = int(server.url.rsplit(":", 1)[1])
    assert lookups == [("service.test", port)] * 2
    assert server.seen[target][0].headers["host"] == f"service.test:{port}"


async def test_more_than_max_redirects_is_non_retryable(server: Server) -> None:
    token = server.answer(Answer())
    server.answers[token] = Answer(
        status=307, body=b"", headers={"Location": server.endpoint(token) + "/run"}
    )
    policy = loopback(follow_redirects=True)
    error = await failure_of(step_call(server.endpoint(token)), policy=policy)
    assert (error.type, error.non_retryable) == ("TooManyRedirects", True)
    assert len(server.seen[token]) == MAX_REDIRECTS + 1


async def test_endpoint_outside_allowed_hosts_is_not_called(server: Server) -> None:
    token = server.answer(body=b"{}")
    policy = OutboundPolicy(allowed_hosts="services.internal")
    error = await failure_of(step_call(server.endpoint(token)), policy=policy)
    assert (error.type, error.non_retryable) == ("OutboundRefused", True)
    assert server.seen[token] == []


# --- transport failures ----------------------------------------------------------------


async def test_timeout_is_retryable_service_timeout(server: Server) -> None:
    token = server.answer(hold=True)
    try:
        error = await failure_of(step_call(server.endpoint(token), timeout=0.2))
    finally:
        server.release(token)
    assert (error.type, error.non_retryable) == ("ServiceTimeout", False)
    assert "status_code" not in details(error)


async def test_timeout_reading_the_body_is_retryable_service_timeout(server: Server) -> None:
    token = server.answer(chunks=[b'{"text": ', b'"late"}'], stall_after_first_chunk=True)
    try:
        error = await failure_of(step_call(server.endpoint(token), timeout=0.2))
    finally:
        server.release(token)
    assert (error.type, error.non_retryable) == ("ServiceTimeout", False)


async def test_refused_connection_is_retryable_service_unreachable() -> None:
    error = await failure_of(step_call(f"http://127.0.0.1:{free_port()}/nobody"))
    assert (error.type, error.non_retryable) == ("ServiceUnreachable", False)


async def test_connection_lost_mid_body_is_retryable_service_unreachable(server: Server) -> None:
    token = server.answer(chunks=[b'{"text": ', b'"never"}'], break_after_first_chunk=True)
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, error.non_retryable) == ("ServiceUnreachable", False)


# --- response body ---------------------------------------------------------------------


async def test_body_not_json_is_non_retryable_invalid_response_and_not_quoted(
    server: Server,
) -> None:
    token = server.answer(body=b"<html>secret</html>", headers={"Content-Type": "text/html"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, error.non_retryable) == ("InvalidResponse", True)
    assert "secret" not in error.message
    assert "text/html" in error.message
    assert "19 bytes" in error.message


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
async def test_json_other_than_an_object_is_non_retryable_invalid_response(
    server: Server, body: bytes
) -> None:
    token = server.answer(body=body)
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, error.non_retryable) == ("InvalidResponse", True)


# --- schemas ---------------------------------------------------------------------------

NEEDS_TEXT = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string"}},
}


async def test_input_schema_violation_is_non_retryable_and_not_sent(server: Server) -> None:
    token = server.answer(body=b"{}")
    call = step_call(server.endpoint(token), input={"text": 5}, input_schema=NEEDS_TEXT)
    error = await failure_of(call)
    assert (error.type, error.non_retryable) == ("InputSchemaViolation", True)
    assert details(error)["violations"] == ["text: 5 is not of type 'string'"]
    assert server.seen[token] == []


async def test_output_schema_violation_is_non_retryable(server: Server) -> None:
    token = server.answer(body=b'{"sentiment": 5}')
    call = step_call(server.endpoint(token), output_schema=NEEDS_TEXT)
    error = await failure_of(call)
    assert (error.type, error.non_retryable) == ("OutputSchemaViolation", True)
    assert details(error)["violations"] == ["(root): 'text' is a required property"]


async def test_output_matching_output_schema_is_returned(server: Server) -> None:
    token = server.answer(body=b'{"text": "fine"}')
    call = step_call(server.endpoint(token), output_schema=NEEDS_TEXT)
    assert await run_step(call) == {"text": "fine"}


# --- payload limit ---------------------------------------------------------------------

LIMIT = 1000


def limited() -> OutboundPolicy:
    return loopback(payload_limit_bytes=LIMIT)


def text_input(size: int) -> dict[str, str]:
    """An input whose compact JSON is exactly `size` bytes."""
    return {"text": "x" * (size - len('{"text":""}'))}


async def test_request_over_the_limit_is_non_retryable_and_not_sent(server: Server) -> None:
    token = server.answer(body=b"{}")
    call = step_call(server.endpoint(token), input=text_input(LIMIT + 1))
    error = await failure_of(call, policy=limited())
    assert (error.type, error.non_retryable) == ("PayloadTooLarge", True)
    assert f"{LIMIT + 1} bytes" in error.message
    assert server.seen[token] == []


async def test_request_at_the_limit_is_sent(server: Server) -> None:
    token = server.answer(body=b"{}")
    call = step_call(server.endpoint(token), input=text_input(LIMIT))
    assert await run_step(call, policy=limited()) == {}
    assert len(server.seen[token][0].body) == LIMIT


async def test_response_declared_over_the_limit_is_non_retryable(server: Server) -> None:
    token = server.answer(body=json_body({"blob": "x" * 4000}))
    error = await failure_of(step_call(server.endpoint(token)), policy=limited())
    assert (error.type, error.non_retryable) == ("PayloadTooLarge", True)
    assert f"is {len(json_body({'blob': 'x' * 4000}))} bytes" in error.message


async def test_response_streamed_over_the_limit_is_non_retryable(server: Server) -> None:
    chunks = [b'{"blob": "'] + [b"x" * 300] * 10 + [b'"}']
    token = server.answer(chunks=chunks)
    error = await failure_of(step_call(server.endpoint(token)), policy=limited())
    assert (error.type, error.non_retryable) == ("PayloadTooLarge", True)
    assert f"passed the payload limit of {LIMIT} bytes" in error.message


async def test_response_streamed_under_the_limit_is_the_output(server: Server) -> None:
    chunks = [b'{"blob": "'] + [b"x" * 100] * 5 + [b'"}']
    token = server.answer(chunks=chunks)
    output = await run_step(step_call(server.endpoint(token)), policy=limited())
    assert output == {"blob": "x" * 500}


# --- activity context ------------------------------------------------------------------


async def test_heartbeats_are_sent_while_a_slow_call_is_in_flight(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_step, "HEARTBEAT_EVERY", 0.05)
    token = server.answer(hold=True, body=b'{"text": "after a while"}')
    heartbeats: list[tuple[Any, ...]] = []

    def on_heartbeat(*args: Any) -> None:
        heartbeats.append(args)
        server.release(token)  # the server answers only once a heartbeat was sent

    env = activity_env()
    env.on_heartbeat = on_heartbeat
    try:
        output = await run_step(step_call(server.endpoint(token)), env=env)
    finally:
        server.release(token)
    assert output == {"text": "after a while"}
    assert heartbeats and heartbeats[0] == ()


async def test_no_heartbeat_when_the_answer_is_quick(server: Server) -> None:
    token = server.answer(body=b"{}")
    heartbeats: list[tuple[Any, ...]] = []
    env = activity_env()
    env.on_heartbeat = lambda *args: heartbeats.append(args)
    await run_step(step_call(server.endpoint(token)), env=env)
    assert heartbeats == []


async def test_failure_details_carry_the_activity_attempt(server: Server) -> None:
    token = server.answer(status=503)
    error = await failure_of(step_call(server.endpoint(token)), env=activity_env(attempt=3))
    assert details(error)["attempt"] == 3


async def test_failure_before_the_call_carries_the_activity_attempt(server: Server) -> None:
    token = server.answer(body=b"{}")
    call = step_call(server.endpoint(token), input={"text": 5}, input_schema=NEEDS_TEXT)
    error = await failure_of(call, env=activity_env(attempt=2))
    assert details(error)["attempt"] == 2


# --- outbound policy -------------------------------------------------------------------


async def test_default_policy_refuses_the_loopback_server_and_sends_nothing(
    server: Server,
) -> None:
    token = server.answer(body=b"{}")
    error = await failure_of(step_call(server.endpoint(token)), policy=OutboundPolicy())
    assert (error.type, error.non_retryable) == ("OutboundRefused", True)
    port = server.url.rsplit(":", 1)[1]
    assert "127.0.0.1" in error.message
    assert f"add '127.0.0.1:{port}' (or its network) to ALLOWED_HOSTS" in error.message
    assert (details(error)["host"], details(error)["address"]) == ("127.0.0.1", "127.0.0.1")
    assert server.seen[token] == []


async def test_default_policy_refuses_localhost(server: Server) -> None:
    token = server.answer(body=b"{}")
    call = step_call(server.endpoint(token, host="localhost"))
    error = await failure_of(call, policy=OutboundPolicy())
    assert (error.type, error.non_retryable) == ("OutboundRefused", True)
    assert "localhost (resolved to " in error.message
    assert server.seen[token] == []


async def test_a_name_resolving_to_loopback_is_refused_and_sends_nothing(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = fake_resolver(monkeypatch, [LOOPBACK])
    token = server.answer(body=b"{}")
    call = step_call(server.endpoint(token, host="innocent.example"))
    error = await failure_of(call, policy=OutboundPolicy())
    assert (error.type, error.non_retryable) == ("OutboundRefused", True)
    assert "innocent.example (resolved to 127.0.0.1): loopback address" in error.message
    assert "add 'innocent.example'" in error.message
    assert [host for host, _ in lookups] == ["innocent.example"]
    assert server.seen[token] == []


async def test_a_name_with_one_internal_address_among_public_ones_is_refused(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_resolver(monkeypatch, [PUBLIC_ADDRESS, LOOPBACK])
    token = server.answer(body=b"{}")
    transport = LoopbackOnly()
    call = step_call(server.endpoint(token, host="mixed.example"))
    error = await failure_of(call, policy=OutboundPolicy(), transport=transport)
    assert error.type == "OutboundRefused"
    assert transport.refused == []
    assert server.seen[token] == []


async def test_dns_rebinding_cannot_turn_the_connection_to_loopback(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name answers a public address to the check and 127.0.0.1 afterwards: the
    connection goes to the checked address, and the name is not looked up again."""
    lookups = fake_resolver(monkeypatch, [PUBLIC_ADDRESS], [LOOPBACK])
    token = server.answer(body=b'{"text": "rebound"}')
    transport = LoopbackOnly()
    call = step_call(server.endpoint(token, host="rebind.example"))
    error = await failure_of(call, policy=OutboundPolicy(), transport=transport)
    assert (error.type, error.non_retryable) == ("ServiceUnreachable", False)
    assert len(lookups) == 1
    (attempted,) = transport.refused
    port = int(server.url.rsplit(":", 1)[1])
    assert (attempted.url.host, attempted.url.port) == (PUBLIC_ADDRESS, port)
    assert attempted.headers["host"] == f"rebind.example:{port}"
    assert server.seen[token] == []


async def test_https_connects_to_the_checked_address_with_the_name_as_tls_server_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_resolver(monkeypatch, [PUBLIC_ADDRESS])
    transport = LoopbackOnly()
    call = step_call("https://secure.example/v1")
    error = await failure_of(call, policy=OutboundPolicy(), transport=transport)
    assert error.type == "ServiceUnreachable"
    (attempted,) = transport.refused
    assert str(attempted.url) == f"https://{PUBLIC_ADDRESS}/v1/run"
    assert attempted.headers["host"] == "secure.example"
    assert attempted.extensions["sni_hostname"] == "secure.example"


async def test_a_name_in_allowed_hosts_may_resolve_to_loopback(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_resolver(monkeypatch, [LOOPBACK])
    token = server.answer(body=b'{"text": "inside"}')
    policy = OutboundPolicy(allowed_hosts="service.test")
    call = step_call(server.endpoint(token, host="service.test"))
    assert await run_step(call, policy=policy) == {"text": "inside"}
    port = server.url.rsplit(":", 1)[1]
    assert server.seen[token][0].headers["host"] == f"service.test:{port}"


async def test_allowed_host_and_port_refuses_another_port(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    token = server.answer(body=b"{}")
    policy = OutboundPolicy(allowed_hosts=f"127.0.0.1:{port}")
    assert await run_step(step_call(server.endpoint(token)), policy=policy) == {}
    other = f"http://127.0.0.1:{free_port()}/x"
    error = await failure_of(step_call(other), policy=policy)
    assert (error.type, error.non_retryable) == ("OutboundRefused", True)


async def test_unresolvable_name_is_retryable_service_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    monkeypatch.setattr(outbound, "resolve_addresses", fail)
    error = await failure_of(step_call("http://nowhere.example"), policy=OutboundPolicy())
    assert (error.type, error.non_retryable) == ("ServiceUnreachable", False)
    assert "could not resolve nowhere.example" in error.message


# --- context and identifiers -----------------------------------------------------------


async def test_context_is_not_sent_unless_the_action_forwards_it(server: Server) -> None:
    token = server.answer(body=b"{}")
    context = {"tenant": "t-1", "api_token": "s3cret", "user": "ann"}
    call = step_call(server.endpoint(token), context=context, forward_context=["tenant"])
    await run_step(call)
    headers = server.seen[token][0].headers
    sent = {name: value for name, value in headers.items() if name.startswith("x-context-")}
    assert sent == {"x-context-tenant": "t-1"}
    assert "s3cret" not in str(headers)


async def test_no_context_header_by_default(server: Server) -> None:
    token = server.answer(body=b"{}")
    await run_step(step_call(server.endpoint(token), context={"tenant": "t-1"}))
    assert [h for h in server.seen[token][0].headers if h.startswith("x-context-")] == []


async def test_forwarded_key_missing_from_the_context_is_not_sent(server: Server) -> None:
    token = server.answer(body=b"{}")
    await run_step(step_call(server.endpoint(token), forward_context=["tenant"]))
    assert "x-context-tenant" not in server.seen[token][0].headers


async def test_non_ascii_execution_and_step_ids_are_percent_encoded(server: Server) -> None:
    token = server.answer(body=b"{}")
    call = step_call(server.endpoint(token)).model_copy(
        update={"execution_id": "exéc-1", "step_id": "étape"}
    )
    assert await run_step(call) == {}
    headers = server.seen[token][0].headers
    assert headers["x-execution-id"] == "ex%C3%A9c-1"
    assert headers["x-step-id"] == "%C3%A9tape"
    assert headers["idempotency-key"] == "ex%C3%A9c-1:%C3%A9tape"


# --- error bodies ----------------------------------------------------------------------


async def test_non_json_error_body_is_not_quoted(server: Server) -> None:
    page = b"<html>internal admin page</html>"
    token = server.answer(status=502, body=page, headers={"Content-Type": "text/html"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert (error.type, error.non_retryable) == ("ServiceUnavailable", False)
    assert "admin" not in error.message
    assert f"text/html body, {len(page)} bytes; not quoted" in error.message


async def test_non_json_4xx_body_is_not_quoted(server: Server) -> None:
    token = server.answer(status=403, body=b"Forbidden: key abc123", headers={})
    error = await failure_of(step_call(server.endpoint(token)))
    assert error.type == "ServiceRejected"
    assert "abc123" not in error.message


async def test_json_error_body_is_quoted_up_to_300_bytes(server: Server) -> None:
    body = json_body({"detail": "y" * 1000})
    token = server.answer(status=422, body=body)
    error = await failure_of(step_call(server.endpoint(token)))
    assert body[:300].decode() + "..." in error.message
    assert body[:301].decode() not in error.message


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("status", [429, 503])
async def test_error_body_over_the_payload_limit_stays_retryable(
    server: Server, status: int, streamed: bool
) -> None:
    big = json_body({"detail": "z" * (ERROR_BODY_PREFIX + LIMIT)})
    answer = Answer(status=status, body=big)
    if streamed:
        answer = Answer(status=status, chunks=[big[:100], big[100:]])
    token = server.answer(answer)
    error = await failure_of(step_call(server.endpoint(token)), policy=limited())
    assert error.non_retryable is False
    assert details(error)["status_code"] == status
    assert "z" * 50 not in error.message
    assert "not quoted" in error.message


async def test_error_body_larger_than_the_prefix_is_described_by_its_size(
    server: Server,
) -> None:
    size = ERROR_BODY_PREFIX * 3
    token = server.answer(status=500, body=b"x" * size, headers={"Content-Type": "text/plain"})
    error = await failure_of(step_call(server.endpoint(token)))
    assert f"text/plain body, {size} bytes; not quoted" in error.message


# --- definition signatures -------------------------------------------------------------


async def test_signed_step_runs_when_a_signing_key_is_set(server: Server) -> None:
    token = server.answer(body=b'{"text": "signed"}')
    call = signed(step_call(server.endpoint(token)))
    assert await run_step(call, signing_key=KEY) == {"text": "signed"}


async def test_unsigned_step_is_refused_when_a_signing_key_is_set(server: Server) -> None:
    token = server.answer(body=b"{}")
    error = await failure_of(step_call(server.endpoint(token)), signing_key=KEY)
    assert (error.type, error.non_retryable) == ("DefinitionNotSigned", True)
    assert "through the gateway" in error.message
    assert server.seen[token] == []


async def test_step_with_an_altered_endpoint_is_refused(server: Server) -> None:
    token, other = server.answer(body=b"{}"), server.answer(body=b"{}")
    call = signed(step_call(server.endpoint(token)))
    altered = call.model_copy(update={"endpoint": server.endpoint(other)})
    error = await failure_of(altered, signing_key=KEY)
    assert (error.type, error.non_retryable) == ("DefinitionSignatureMismatch", True)
    assert "DEFINITION_SIGNING_KEY" in error.message
    assert server.seen[token] == server.seen[other] == []


async def test_step_with_an_altered_spec_is_refused(server: Server) -> None:
    token = server.answer(body=b"{}")
    call = signed(step_call(server.endpoint(token)))
    altered = call.model_copy(
        update={"spec": call.spec.model_copy(update={"forward_context": ["api_token"]})}
    )
    error = await failure_of(altered, signing_key=KEY)
    assert error.type == "DefinitionSignatureMismatch"
    assert server.seen[token] == []


async def test_step_signed_under_another_key_is_refused(server: Server) -> None:
    token = server.answer(body=b"{}")
    call = signed(step_call(server.endpoint(token)), key="the-gateways-other-key")
    error = await failure_of(call, signing_key=KEY)
    assert error.type == "DefinitionSignatureMismatch"
    assert server.seen[token] == []


# --- schema validation off the event loop ----------------------------------------------


def count_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the functions `asyncio.to_thread` runs, then run them as it would."""
    ran: list[str] = []
    real = asyncio.to_thread

    async def to_thread(function: Any, /, *args: Any, **kwargs: Any) -> Any:
        ran.append(function.__name__)
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(http_step.asyncio, "to_thread", to_thread)
    return ran


async def test_large_documents_are_validated_in_a_thread(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = count_threads(monkeypatch)
    big = "x" * (INLINE_VALIDATION_BYTES + 1)
    token = server.answer(body=json_body({"text": big}))
    call = step_call(
        server.endpoint(token),
        input={"text": big},
        input_schema=NEEDS_TEXT,
        output_schema=NEEDS_TEXT,
    )
    assert await run_step(call) == {"text": big}
    assert ran == ["violations", "violations"]


async def test_small_documents_are_validated_inline(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = count_threads(monkeypatch)
    token = server.answer(body=b'{"text": "small"}')
    call = step_call(server.endpoint(token), input_schema=NEEDS_TEXT, output_schema=NEEDS_TEXT)
    assert await run_step(call) == {"text": "small"}
    assert ran == []


async def test_endpoint_that_is_not_a_url_is_refused_without_retrying() -> None:
    error = await failure_of(step_call("http://[zz::1]"))
    assert (error.type, error.non_retryable) == ("OutboundRefused", True)


async def test_endpoint_with_another_scheme_is_refused_without_retrying() -> None:
    error = await failure_of(step_call("file:///etc"))
    assert (error.type, error.non_retryable) == ("OutboundRefused", True)
    assert "not http or https" in error.message


# --- failures as Temporal shows them ---------------------------------------------------

STEP = PinnedStep(
    id="extract",
    service="text-extraction",
    action="run",
    next=None,
    endpoint="http://127.0.0.1/unused",
    spec=ActionSpec(name="run"),
)
"""The step `step_call` runs, as the workflow holds it."""


def as_recorded(error: BaseException) -> tuple[Failure, BaseException]:
    """The failure the worker records for an error leaving the activity, and the error
    the workflow reads back from it."""
    converter = DefaultFailureConverter()
    payloads = pydantic_data_converter.payload_converter
    failure = Failure()
    converter.to_failure(error, payloads, failure)
    return failure, converter.from_failure(failure, payloads)


async def expected_failure(error_type: str, server: Server) -> ApplicationError:
    """One failure of each family the activity classifies."""
    token = server.answer(status=200, body=b"{}")
    if error_type == "ServiceRejected":
        token = server.answer(status=404, body=b'{"detail": "no such document"}')
    elif error_type == "ServiceUnavailable":
        token = server.answer(status=503, body=b'{"detail": "down"}')
    call = step_call(server.endpoint(token))
    if error_type == "InputSchemaViolation":
        call = step_call(server.endpoint(token), input={"text": 5}, input_schema=NEEDS_TEXT)
    elif error_type == "ServiceUnreachable":
        call = step_call(f"http://127.0.0.1:{free_port()}/nobody")  # raised from httpx's error
    policy = OutboundPolicy() if error_type == "OutboundRefused" else None
    error = await failure_of(call, policy=policy)
    assert error.type == error_type
    return error


@pytest.mark.parametrize(
    "error_type",
    [
        "ServiceRejected",
        "ServiceUnavailable",
        "InputSchemaViolation",
        "OutboundRefused",
        "ServiceUnreachable",
    ],
)
async def test_expected_failure_is_recorded_as_its_message_alone(
    server: Server, error_type: str
) -> None:
    error = await expected_failure(error_type, server)
    failure, seen = as_recorded(error)
    assert failure.stack_trace == ""
    assert not failure.HasField("cause")  # no lower-level exception with its own trace
    assert isinstance(seen, ApplicationError)
    assert (seen.type, seen.message) == (error_type, error.message)
    assert seen.message.startswith("step 'extract' (text-extraction.run) ")
    assert seen.message.count("step 'extract'") == 1


async def test_step_failure_names_the_step_once(server: Server) -> None:
    error = await expected_failure("ServiceRejected", server)
    _, seen = as_recorded(error)
    assert isinstance(seen, ApplicationError)
    failed = step_failed(STEP, seen)
    assert failed.message == seen.message
    assert failed.message.startswith(
        "step 'extract' (text-extraction.run) was refused with HTTP 404"
    )
    assert failed.message.count("step 'extract'") == 1
    assert failed.details[0]["message"] == seen.message  # what `$error.message` reads


def test_step_failure_names_the_step_of_a_message_that_does_not() -> None:
    timeout = TemporalTimeout(
        "activity StartToClose timeout", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[]
    )
    failed = step_failed(STEP, timeout)
    assert failed.message == (
        "step 'extract' (text-extraction.run) failed: START_TO_CLOSE: activity StartToClose timeout"
    )


async def test_unexpected_exception_keeps_its_stack_trace(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> list[str]:
        raise RuntimeError("a bug in the worker")

    monkeypatch.setattr(http_step, "_violations", broken)
    with pytest.raises(RuntimeError) as raised:
        await run_step(step_call(server.endpoint(server.answer(body=b"{}"))))
    failure, _ = as_recorded(raised.value)
    assert "_violations" in failure.stack_trace
