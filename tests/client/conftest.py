"""A real local HTTP server that answers what a test scripts, and clients pointed at it.

The server is uvicorn serving a small Starlette app in a thread, on a free port
of 127.0.0.1. A test queues answers (`local_server.answer(503, times=2)`), and
reads back what was received (`local_server.requests`). When the queue is empty
the server answers with `local_server.fallback` (200 and an empty object unless
a test sets another).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from shared.utils.src.circuit_breaker import CircuitBreaker
from shared.utils.src.clients import AsyncServiceIntegrationClient, ServiceIntegrationClient

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    text: str | None = None


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


class LocalServer:
    """The scripted server's state, shared by the server thread and the test."""

    def __init__(self) -> None:
        self.port = 0
        self._lock = threading.Lock()
        self._answers: deque[Answer] = deque()
        self.requests: list[Received] = []
        self.fallback: Callable[[Received], Answer] = lambda _: Answer()

    @property
    def url(self) -> str:
        """The base URL, like the gateway's: it ends in /api."""
        return f"http://127.0.0.1:{self.port}/api"

    def answer(
        self,
        status: int = 200,
        body: Any = None,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        text: str | None = None,
    ) -> None:
        """Queue the next `times` answers."""
        with self._lock:
            for _ in range(times):
                self._answers.append(
                    Answer(status, {} if body is None else body, dict(headers or {}), delay, text)
                )

    def always(self, status: int = 200, body: Any = None) -> None:
        """Answer this once the queue is empty, for the rest of the test."""
        answer = Answer(status, {} if body is None else body)
        self.fallback = lambda _: answer

    def reset(self) -> None:
        with self._lock:
            self._answers.clear()
            self.requests.clear()
            self.fallback = lambda _: Answer()

    def _next(self, received: Received) -> Answer:
        with self._lock:
            self.requests.append(received)
            if self._answers:
                return self._answers.popleft()
        return self.fallback(received)

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = await request.json() if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        received = Received(
            method=request.method,
            path=request.scope["raw_path"].decode(),
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body,
        )
        answer = self._next(received)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.text is not None:
            return PlainTextResponse(answer.text, answer.status, headers=answer.headers)
        return JSONResponse(answer.body, answer.status, headers=answer.headers)


@pytest.fixture(scope="session")
def _local_server() -> Iterator[LocalServer]:
    state = LocalServer()
    app = Starlette(routes=[Route("/{path:path}", state.handle, methods=ALL_METHODS)])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="local-http-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the local HTTP server did not start")
        time.sleep(0.01)
    state.port = server.servers[0].sockets[0].getsockname()[1]
    yield state
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def local_server(_local_server: LocalServer) -> Iterator[LocalServer]:
    """The scripted server, with an empty script and no requests recorded."""
    _local_server.reset()
    yield _local_server
    _local_server.reset()


class FakeClock:
    """A monotonic clock that moves only when told to, or when `sleep` is called."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


ClientFactory = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
async def make_client(
    request: pytest.FixtureRequest, local_server: LocalServer, clock: FakeClock
) -> AsyncIterator[ClientFactory]:
    """Makes a client of the parametrized kind against the local server.

    Defaults: the fake clock, its recording sleep (no real waiting), and a breaker
    that does not open unless a test asks for one.
    """
    kind = request.param
    made: list[Any] = []

    def factory(**options: Any) -> Any:
        options.setdefault("base_url", local_server.url)
        options.setdefault("timeout", 5.0)
        options.setdefault("sleep", clock.sleep)
        options.setdefault("clock", clock)
        options.setdefault("circuit_breaker", CircuitBreaker(failure_threshold=1000, clock=clock))
        cls = ServiceIntegrationClient if kind == "sync" else AsyncServiceIntegrationClient
        client = cls(**options)
        made.append(client)
        return client

    factory.kind = kind  # type: ignore[attr-defined]
    yield factory
    for client in made:
        await client.aclose()


async def call(client: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a client method, awaiting it if it is awaitable (reads of the sync client are not)."""
    result = getattr(client, method)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


@pytest.fixture
def invoke() -> Callable[..., Any]:
    """`await invoke(client, "get_workflow", "wf-1")`, for either kind of client."""
    return call
