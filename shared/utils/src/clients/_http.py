"""Sending a `Call`: retry policy around circuit breaker around one HTTP exchange.

    RetryPolicy.call( CircuitBreaker.call( send once, translate the answer ) )

The retry loop is tenacity's (`RetryPolicy` drives `Retrying` / `AsyncRetrying`).
Each attempt goes through the breaker, so an open circuit stops the retries at
once (`CircuitOpenError` is not retried), and the breaker counts every attempt
that fails with unavailability or another 5xx answer. The sync and async senders differ only
in the httpx client and the sleep they use; everything else comes from
`_core` and the policies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from shared.utils.src.circuit_breaker import CircuitBreaker
from shared.utils.src.clients._api import Call
from shared.utils.src.clients._core import error_for_transport, interpret, prepare
from shared.utils.src.retry import Operation, RetryPolicy, Sleep

log = logging.getLogger("shared.utils.src.clients")


class _Sender:
    def __init__(
        self,
        *,
        breaker: CircuitBreaker,
        policies: Mapping[Operation, RetryPolicy],
        timeout: float,
        api_key: str | None,
    ) -> None:
        self.breaker = breaker
        self._policies = policies
        self._timeout = timeout
        self._api_key = api_key

    def _prepare(self, call: Call, idempotency_key: str | None) -> dict[str, Any]:
        return prepare(
            call, timeout=self._timeout, api_key=self._api_key, idempotency_key=idempotency_key
        )


class SyncSender(_Sender):
    """Sends calls with a blocking `httpx.Client`."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        breaker: CircuitBreaker,
        policies: Mapping[Operation, RetryPolicy],
        timeout: float,
        api_key: str | None,
        sleep: Sleep | None,
    ) -> None:
        super().__init__(breaker=breaker, policies=policies, timeout=timeout, api_key=api_key)
        self._http = http
        self._sleep = sleep or time.sleep

    def send(self, call: Call, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Send `call` with retries; its decoded answer, or the translated error."""
        return self.exchange(call, idempotency_key=idempotency_key)[0]

    def exchange(
        self, call: Call, *, idempotency_key: str | None = None
    ) -> tuple[dict[str, Any], httpx.Response]:
        """Like `send`, with the last answer too."""
        arguments = self._prepare(call, idempotency_key)
        policy = self._policies[call.operation]
        return policy.call(
            lambda: self.breaker.call(lambda: self._once(call, arguments)), sleep=self._sleep
        )

    def _once(self, call: Call, arguments: dict[str, Any]) -> tuple[dict[str, Any], httpx.Response]:
        request = self._http.build_request(**arguments)
        log.debug("%s %s", request.method, request.url)
        try:
            response = self._http.send(request)
        except httpx.RequestError as exc:
            raise error_for_transport(exc, request) from exc
        return interpret(call, response), response


class AsyncSender(_Sender):
    """Sends calls with an `httpx.AsyncClient`, obtained from `http()` at each attempt."""

    def __init__(
        self,
        http: Callable[[], httpx.AsyncClient],
        *,
        breaker: CircuitBreaker,
        policies: Mapping[Operation, RetryPolicy],
        timeout: float,
        api_key: str | None,
        sleep: Sleep | None,
    ) -> None:
        super().__init__(breaker=breaker, policies=policies, timeout=timeout, api_key=api_key)
        self._http = http
        self._sleep = sleep or asyncio.sleep

    async def send(self, call: Call, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Send `call` with retries; its decoded answer, or the translated error."""
        return (await self.exchange(call, idempotency_key=idempotency_key))[0]

    async def exchange(
        self, call: Call, *, idempotency_key: str | None = None
    ) -> tuple[dict[str, Any], httpx.Response]:
        """Like `send`, with the last answer too."""
        arguments = self._prepare(call, idempotency_key)
        policy = self._policies[call.operation]
        return await policy.call_async(
            lambda: self.breaker.call_async(lambda: self._once(call, arguments)),
            sleep=self._sleep,
        )

    async def _once(
        self, call: Call, arguments: dict[str, Any]
    ) -> tuple[dict[str, Any], httpx.Response]:
        http = self._http()
        request = http.build_request(**arguments)
        log.debug("%s %s", request.method, request.url)
        try:
            response = await http.send(request)
        except httpx.RequestError as exc:
            raise error_for_transport(exc, request) from exc
        return interpret(call, response), response


class LoopBoundAsyncClient:
    """An `httpx.AsyncClient` for the running event loop, made when first needed.

    The pooled connections of an AsyncClient belong to the event loop that opened
    them. The sync client's awaitable methods may be awaited under more than one
    loop (each `asyncio.run` makes a new one), so a new AsyncClient is made when
    the loop changes; the old one's connections died with its loop.
    """

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[concurrent.futures.Future[None]] = set()

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = self._factory(), loop
        return self._client

    async def aclose(self) -> None:
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    def close(self) -> None:
        """Close from sync code: at once if the loop is idle, else as a task on it."""
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is None or loop is None or loop.is_closed():
            return
        if loop.is_running():
            closing = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        else:
            loop.run_until_complete(client.aclose())
