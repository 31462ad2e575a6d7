"""HTTP services on loopback for the tests and the benchmarks, each behaviour under its own path.

A test registers a service whose endpoint is `<url>/<behaviour>/<token>` and reads
what the service saw from `calls[token]`. For the tests they run in a thread of the
test process (`start_test_services`), so a test can hold and release requests; the
benchmarks run the same app in a process of their own (`python -m harness.services
PORT`, harness/stack.py `Stack.start_services`), so serving them takes no CPU from the
load generator.

The benchmarks' behaviours record nothing (they serve thousands of calls):

    document/<token>/extract    {"document_url"}      -> {"text"}
    document/<token>/analyze    {"text"}              -> {"sentiment", "score"}
    document/<token>/summarize  {"text", "sentiment"} -> {"summary"}
    delay/<token>/d<ms>         the JSON object sent, answered after <ms> milliseconds
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from core.devserver import free_port
from examples.services import create_app as create_examples_app


@dataclass
class Call:
    headers: dict[str, str]
    body: Any


@dataclass
class TestServices:
    __test__ = False  # not a test class, whatever its name

    url: str = ""
    calls: dict[str, list[Call]] = field(default_factory=lambda: defaultdict(list))
    released: dict[str, threading.Event] = field(
        default_factory=lambda: defaultdict(threading.Event)
    )
    failures: dict[str, int] = field(default_factory=dict)
    server: uvicorn.Server | None = None

    def token(self) -> str:
        return uuid.uuid4().hex[:12]

    def endpoint(self, behaviour: str, token: str) -> str:
        return f"{self.url}/{behaviour}/{token}"

    def release(self, token: str) -> None:
        self.released[token].set()


def create_app(state: TestServices) -> FastAPI:
    app = FastAPI()
    _add_base_routes(app, state)
    app.mount("/examples", create_examples_app())
    _add_credential_routes(app, state)
    _add_load_routes(app, state)
    _add_bench_routes(app)
    return app


def _add_base_routes(app: FastAPI, state: TestServices) -> None:
    async def record(token: str, request: Request) -> Any:
        raw = await request.body()
        body = await request.json() if raw else None
        state.calls[token].append(Call(dict(request.headers), body))
        return body

    @app.post("/echo/{token}/{action}")
    async def echo(token: str, action: str, request: Request) -> JSONResponse:
        body = await record(token, request)
        return JSONResponse({"echo": body, "action": action})

    @app.post("/flaky/{token}/{action}")
    async def flaky(token: str, action: str, request: Request) -> JSONResponse:
        """Answers 503 the first `state.failures[token]` times, then 200."""
        await record(token, request)
        if len(state.calls[token]) <= state.failures.get(token, 2):
            return JSONResponse({"detail": "warming up"}, status_code=503)
        return JSONResponse({"text": f"ok after {len(state.calls[token])} calls"})

    @app.post("/status/{token}/{code}")
    async def status(token: str, code: int, request: Request) -> JSONResponse:
        await record(token, request)
        return JSONResponse({"detail": f"answering {code} as told"}, status_code=code)

    @app.post("/ratelimit/{token}/{action}")
    async def ratelimit(token: str, action: str, request: Request) -> JSONResponse:
        await record(token, request)
        if len(state.calls[token]) == 1:
            return JSONResponse(
                {"detail": "slow down"}, status_code=429, headers={"Retry-After": "1"}
            )
        return JSONResponse({"text": "allowed"})

    @app.post("/hang/{token}/{action}")
    async def hang(token: str, action: str, request: Request) -> JSONResponse:
        """Holds the request until the test releases the token (or 60 s pass)."""
        body = await record(token, request)
        for _ in range(1200):
            if state.released[token].is_set():
                break
            await asyncio.sleep(0.05)
        return JSONResponse({"text": "released", "seen": body})

    @app.post("/slow/{token}/{action}")
    async def slow(token: str, action: str, request: Request) -> JSONResponse:
        """Answers after 50-400 ms, echoing the body under the action's name."""
        body = await record(token, request)
        await asyncio.sleep(random.uniform(0.05, 0.4))
        return JSONResponse({action: body})

    @app.post("/badoutput/{token}/{action}")
    async def bad_output(token: str, action: str, request: Request) -> JSONResponse:
        await record(token, request)
        return JSONResponse({"sentiment": 5})

    @app.post("/redirect/{token}/{action}")
    async def redirect(token: str, action: str, request: Request) -> RedirectResponse:
        """307 to /echo/{token}/{action} on this server, named by `?host=` (default 127.0.0.1)."""
        await record(token, request)
        host = request.query_params.get("host", "127.0.0.1")
        port = request.url.port
        return RedirectResponse(f"http://{host}:{port}/echo/{token}/{action}", status_code=307)

    @app.post("/big/{token}/{size}")
    async def big(token: str, size: int, request: Request) -> JSONResponse:
        """A JSON object of a little over `size` bytes."""
        await record(token, request)
        return JSONResponse({"blob": "x" * size})

    @app.get("/{behaviour}/{token}/health")
    async def health(behaviour: str, token: str) -> JSONResponse:
        if behaviour == "status":
            return JSONResponse({"status": "down"}, status_code=503)
        return JSONResponse({"status": "ok"})


def start_test_services(*, port: int | None = None) -> TestServices:
    """The services in a thread of this process, on `port` (a free one by default)."""
    state = TestServices()
    port = port or free_port()
    state.url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning")
    state.server = uvicorn.Server(config)
    thread = threading.Thread(target=state.server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if state.server.started:
            return state
        threading.Event().wait(0.05)
    raise RuntimeError("test services did not start")


# --- Services that require credentials (tests/credentials) ----------------------------


@dataclass
class OAuthClient:
    """A client of the test token endpoint, and what it did."""

    client_id: str
    client_secret: str
    lifetime: float = 60.0
    """The `expires_in` of the tokens issued (seconds); the server enforces it too."""
    fail_with: int | None = None
    """Answer this status (with an RFC 6749 error body) instead of a token."""
    requests: int = 0
    forms: list[dict[str, str]] = field(default_factory=list)
    issued: dict[str, float] = field(default_factory=dict)
    """token -> monotonic time it expires at."""

    def revoke_all(self) -> None:
        self.issued.clear()


@dataclass
class AuthState:
    """Per token: the headers a protected endpoint requires, or its OAuth2 client."""

    required: dict[str, dict[str, str]] = field(default_factory=dict)
    """token -> {lower-case header: value} the `auth` endpoint requires."""
    oauth: dict[str, OAuthClient] = field(default_factory=dict)
    authorized: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))


auth_state = AuthState()


def _add_credential_routes(app: FastAPI, state: TestServices) -> None:
    @app.post("/auth/{token}/{action}")
    async def auth(token: str, action: str, request: Request) -> JSONResponse:
        """200 {"authorized": true} if every required header has its value, else 401.
        Never echoes a header."""
        await record(state, token, request)
        required = auth_state.required.get(token, {})
        ok = bool(required) and all(request.headers.get(k) == v for k, v in required.items())
        auth_state.authorized[token].append(ok)
        return JSONResponse({"authorized": ok}, status_code=200 if ok else 401)

    @app.post("/oauth/{token}/token")
    async def oauth_token(token: str, request: Request) -> JSONResponse:
        """Client credentials grant: counts requests, issues tokens that expire."""
        client = auth_state.oauth[token]
        client.requests += 1
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        client.forms.append(form)
        if client.fail_with is not None:
            return JSONResponse({"error": "temporarily_unavailable"}, client.fail_with)
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != client.client_id
            or form.get("client_secret") != client.client_secret
        ):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        issued = f"tok-{uuid.uuid4().hex}"
        client.issued[issued] = time.monotonic() + client.lifetime
        return JSONResponse(
            {"access_token": issued, "token_type": "Bearer", "expires_in": client.lifetime}
        )

    @app.post("/bearer/{token}/{action}")
    async def bearer(token: str, action: str, request: Request) -> JSONResponse:
        """200 {"authorized": true} for an unexpired token the token endpoint issued."""
        await record(state, token, request)
        client = auth_state.oauth[token]
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        expires = client.issued.get(presented) if scheme.lower() == "bearer" else None
        ok = expires is not None and expires > time.monotonic()
        auth_state.authorized[token].append(ok)
        return JSONResponse({"authorized": ok}, status_code=200 if ok else 401)

    @app.post("/leaky/{token}/{action}")
    async def leaky(token: str, action: str, request: Request) -> JSONResponse:
        """Echoes the X-API-Key header it got (a service that must not be trusted with it)."""
        await record(state, token, request)
        return JSONResponse({"seen": request.headers.get("x-api-key", "")})


async def record(state: TestServices, token: str, request: Request) -> None:
    raw = await request.body()
    body = None
    if raw and request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
    state.calls[token].append(Call(dict(request.headers), body))


# --- A service that counts the requests it holds at once (tests/shaping) --------------

HOLD_SECONDS = 0.2
"""How long the `inflight` behaviour holds each request."""


@dataclass
class LoadSeen:
    """What the `inflight` behaviour saw under one token."""

    in_flight: int = 0
    max_in_flight: int = 0
    arrived: list[float] = field(default_factory=list)
    """Monotonic time each request arrived."""


load_seen: dict[str, LoadSeen] = defaultdict(LoadSeen)


def _add_load_routes(app: FastAPI, state: TestServices) -> None:
    @app.post("/inflight/{token}/{action}")
    async def inflight(token: str, action: str, request: Request) -> JSONResponse:
        """Holds each request HOLD_SECONDS, counting those in flight (one event loop:
        the counts need no lock)."""
        seen = load_seen[token]
        seen.in_flight += 1
        seen.max_in_flight = max(seen.max_in_flight, seen.in_flight)
        seen.arrived.append(time.monotonic())
        try:
            await record(state, token, request)
            await asyncio.sleep(HOLD_SECONDS)
        finally:
            seen.in_flight -= 1
        return JSONResponse({"held": HOLD_SECONDS})


# --- The benchmarks' services (bench/) -------------------------------------------------

TEXT = "The new release is excellent. Setup was easy and the team is happy."


def _document_step(action: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The answer of one step of the benchmarks' document workflow; None if unknown."""
    if action == "extract":
        return {"text": TEXT, "source": body.get("document_url", "")}
    if action == "analyze":
        text = str(body.get("text", ""))
        return {"sentiment": "positive" if "excellent" in text else "neutral", "score": 0.8}
    if action == "summarize":
        return {"summary": f"{body.get('sentiment', '?')}: {str(body.get('text', ''))[:24]}"}
    return None


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _add_bench_routes(app: FastAPI) -> None:
    @app.post("/document/{token}/{action}")
    async def document(token: str, action: str, request: Request) -> JSONResponse:
        """extract, analyze, summarize: the three steps every benchmarked workflow calls."""
        body = await _json_object(request)
        if body is None:
            return JSONResponse({"detail": "body is not a JSON object"}, status_code=400)
        answer = _document_step(action, body)
        if answer is None:
            return JSONResponse({"detail": f"no action {action!r}"}, status_code=404)
        return JSONResponse(answer)

    @app.post("/delay/{token}/{action}")
    async def delay(token: str, action: str, request: Request) -> JSONResponse:
        """`d<ms>`: the JSON object sent, answered after <ms> milliseconds (d0, d10, d100)."""
        if not (action.startswith("d") and action[1:].isdigit()):
            return JSONResponse({"detail": f"no action {action!r}: d<ms>"}, status_code=404)
        if int(action[1:]):
            await asyncio.sleep(int(action[1:]) / 1000)
        body = await _json_object(request)
        if body is None:
            return JSONResponse({"detail": "body is not a JSON object"}, status_code=400)
        return JSONResponse(body)


def main() -> None:
    """`python -m harness.services PORT`: the services in a process of their own; prints
    `ready` once they listen, and serves until the process is terminated."""
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        raise SystemExit("usage: python -m harness.services PORT")
    start_test_services(port=int(sys.argv[1]))
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
