"""The activity behind every step: one HTTP call to a registered service.

Its activity type is `<service>.<action>` (a dynamic activity), so the web UI shows
`text-extraction.extract`. Retries are Temporal's: this code only classifies each
outcome as retryable or not.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from activities.schemas import violations
from core.outbound import OutboundPolicy
from definitions.models import StepCall

RETRYABLE_STATUS = frozenset({408, 429})
HEARTBEAT_EVERY = 1.0
MAX_RETRY_AFTER = 3600.0
MAX_REDIRECTS = 5


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        from datetime import UTC, datetime

        if when.tzinfo is None:  # "-0000" or no zone: an HTTP-date is always GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return None
    return timedelta(seconds=min(max(seconds, 0.0), MAX_RETRY_AFTER))


def _failure(message: str, error_type: str, *, retryable: bool, **details: Any) -> ApplicationError:
    details["attempt"] = activity.info().attempt
    return ApplicationError(
        message,
        details,
        type=error_type,
        non_retryable=not retryable,
        next_retry_delay=details.pop("retry_after", None),
    )


def _header_value(value: object) -> str:
    """The value as a header can carry it: printable ASCII as is, anything else %-encoded."""
    text = str(value)
    if text.isascii() and text.isprintable() and len(text) <= 1024:
        return text
    return quote(text[:1024], safe="")


def _headers(call: StepCall) -> dict[str, str]:
    headers = {
        "X-Request-ID": _header_value(call.request_id),
        "Idempotency-Key": f"{call.execution_id}:{call.step_id}",
        "X-Execution-ID": call.execution_id,
        "X-Step-ID": call.step_id,
    }
    for key, value in call.context.items():
        if (
            isinstance(value, str | int | float | bool)
            and key.isascii()
            and key.replace("_", "").replace("-", "").isalnum()
        ):
            headers[f"X-Context-{key}"] = _header_value(value)
    return headers


class StepActivities:
    """Holds the worker's one HTTP client; `call_service` serves every step type."""

    def __init__(self, http: httpx.AsyncClient, policy: OutboundPolicy) -> None:
        self._http = http
        self._policy = policy

    @activity.defn(dynamic=True)
    async def call_service(self, args: Sequence[RawValue]) -> dict[str, Any]:
        call = activity.payload_converter().from_payload(args[0].payload, StepCall)
        where = f"step '{call.step_id}' ({call.service}.{call.spec.name})"

        problems = violations(call.spec.input_schema, call.input)
        if problems:
            raise _failure(
                f"{where} input does not match the action's input_schema: {'; '.join(problems)}",
                "InputSchemaViolation",
                retryable=False,
                violations=problems,
            )
        body = json.dumps(call.input, separators=(",", ":")).encode()
        limit = self._policy.payload_limit_bytes
        if len(body) > limit:
            raise _failure(
                f"{where} input is {len(body)} bytes, over the payload limit of {limit} bytes",
                "PayloadTooLarge",
                retryable=False,
            )
        url = call.endpoint + (call.spec.path or f"/{call.spec.name}")
        if not self._policy.allows(url):
            raise _failure(
                f"{where} endpoint {url} is not in ALLOWED_HOSTS",
                "HostNotAllowed",
                retryable=False,
            )

        request = self._http.build_request(
            call.spec.method,
            url,
            content=None if call.spec.method == "GET" else body,
            params={k: v for k, v in call.input.items() if isinstance(v, str | int | float)}
            if call.spec.method == "GET"
            else None,
            headers={**_headers(call), "Content-Type": "application/json"},
            timeout=call.spec.timeout,
        )
        task = asyncio.create_task(self._send(request, where))
        try:
            # Heartbeats let Temporal notice a lost worker within the heartbeat timeout
            # instead of the action's whole timeout.
            while True:
                done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY)
                if done:
                    break
                activity.heartbeat()
        finally:
            if not task.done():
                task.cancel()
        status, content = task.result()
        return self._output(call, where, status, content)

    async def _send(self, request: httpx.Request, where: str) -> tuple[int, bytes]:
        limit = self._policy.payload_limit_bytes
        response = await self._open(request, where)
        # Redirects are followed here rather than by httpx, so that every hop is held to
        # ALLOWED_HOSTS: an allowed service cannot send the worker to any other host.
        hops = 0
        while self._policy.follow_redirects and response.next_request is not None:
            target = response.next_request
            await response.aclose()
            if not self._policy.allows(str(target.url)):
                raise _failure(
                    f"{where} was redirected to {target.url}, which is not in ALLOWED_HOSTS",
                    "HostNotAllowed",
                    retryable=False,
                )
            hops += 1
            if hops > MAX_REDIRECTS:
                raise _failure(
                    f"{where} was redirected more than {MAX_REDIRECTS} times; register the "
                    "final URL",
                    "TooManyRedirects",
                    retryable=False,
                )
            request = target
            response = await self._open(request, where)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await response.aclose()
            raise _too_large(where, limit, int(declared))
        try:
            content = bytearray()
            async for chunk in response.aiter_bytes():
                content.extend(chunk)
                if len(content) > limit:
                    raise _too_large(where, limit, None)
        except httpx.TimeoutException as exc:
            raise _failure(
                f"{where} timed out reading the response from {request.url}: {type(exc).__name__}",
                "ServiceTimeout",
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            raise _failure(
                f"{where} lost the connection reading the response: {exc}",
                "ServiceUnreachable",
                retryable=True,
            ) from exc
        finally:
            await response.aclose()
        return self._status(request, response, where, bytes(content))

    async def _open(self, request: httpx.Request, where: str) -> httpx.Response:
        """Send one request (no redirects followed) and return the unread response."""
        try:
            return await self._http.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise _failure(
                f"{where} timed out calling {request.url}: {type(exc).__name__}",
                "ServiceTimeout",
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            raise _failure(
                f"{where} could not reach {request.url}: {exc or type(exc).__name__}",
                "ServiceUnreachable",
                retryable=True,
            ) from exc

    def _status(
        self, request: httpx.Request, response: httpx.Response, where: str, content: bytes
    ) -> tuple[int, bytes]:
        """The status and body of a success; a classified failure for anything else."""
        status = response.status_code
        if status >= 500 or status in RETRYABLE_STATUS:
            raise _failure(
                f"{where} got HTTP {status} from {request.url}: {_snippet(content)}",
                "ServiceUnavailable" if status >= 500 else f"HTTP{status}",
                retryable=True,
                status_code=status,
                retry_after=_retry_after(response),
            )
        if 300 <= status < 400:
            raise _failure(
                f"{where} got a redirect (HTTP {status}) to {response.headers.get('location')}; "
                "register the final URL, or set FOLLOW_REDIRECTS=true",
                "UnexpectedRedirect",
                retryable=False,
                status_code=status,
            )
        if status >= 400:
            raise _failure(
                f"{where} was refused with HTTP {status}: {_snippet(content)}",
                "ServiceRejected",
                retryable=False,
                status_code=status,
            )
        return status, content

    def _output(self, call: StepCall, where: str, status: int, content: bytes) -> dict[str, Any]:
        if not content.strip():
            output: Any = {}
        else:
            try:
                output = json.loads(content)
            except ValueError as exc:
                raise _failure(
                    f"{where} answered HTTP {status} with a body that is not JSON: "
                    f"{_snippet(content)}",
                    "InvalidResponse",
                    retryable=False,
                ) from exc
        if not isinstance(output, dict):
            raise _failure(
                f"{where} answered with JSON {type(output).__name__}; a step's output must be "
                "a JSON object",
                "InvalidResponse",
                retryable=False,
            )
        problems = violations(call.spec.output_schema, output)
        if problems:
            raise _failure(
                f"{where} output does not match the action's output_schema: {'; '.join(problems)}",
                "OutputSchemaViolation",
                retryable=False,
                violations=problems,
            )
        return output


def _too_large(where: str, limit: int, size: int | None) -> ApplicationError:
    """Reading stops at the limit: an undeclared size is only known to be over it."""
    what = f"is {size} bytes, over" if size is not None else "passed"
    return _failure(
        f"{where} response {what} the payload limit of {limit} bytes (PAYLOAD_LIMIT_BYTES)",
        "PayloadTooLarge",
        retryable=False,
    )


def _snippet(content: bytes | bytearray, limit: int = 300) -> str:
    text = bytes(content[:limit]).decode("utf-8", "replace")
    return text + ("..." if len(content) > limit else "")
