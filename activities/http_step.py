"""The activity behind every step: one HTTP call to a registered service.

Its activity type is `<service>.<action>` (a dynamic activity), so the web UI shows
`text-extraction.extract`. Retries are Temporal's: this code only classifies each
outcome as retryable or not.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from activities.credentials import CallAuth, Credentials, CredentialUnavailable
from activities.schemas import violations
from activities.shaping import Shaping, ShapingUnavailable
from core.outbound import (
    CheckedTarget,
    OutboundLookupError,
    OutboundPolicy,
    OutboundRefusedError,
    resolve_checked,
)
from core.signing import definition_step_id, signature_matches
from definitions.contract import STEP_RESULT_KEY
from definitions.models import StepCall

RETRYABLE_STATUS = frozenset({408, 429})
HEARTBEAT_EVERY = 1.0
MAX_RETRY_AFTER = 3600.0
MAX_REDIRECTS = 5
ERROR_BODY_PREFIX = 4096
"""Bytes read of an answer other than 2xx: enough to quote, never the payload limit."""
QUOTED_BYTES = 300
INLINE_VALIDATION_BYTES = 16 * 1024
"""Instances larger than this (serialized) are validated in a worker thread."""


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


class ExpectedFailure(ApplicationError):
    """An outcome this module classified (a 4xx, a 5xx to retry, a schema mismatch, a
    refused host, ...): its message says what happened and what to do, so its Temporal
    failure carries the message alone, without a Python stack trace or the lower-level
    exception it was raised from (the web UI shows one clear message).

    Temporal's failure converter reads `__traceback__` and `__cause__`/`__context__`;
    for this class they read as None. The interpreter keeps its own traceback, so the
    SDK's "Completing activity as failed" log line still has the trace (not the chain).
    Any other exception leaving the activity keeps its trace and its chain.
    """

    @property
    def __traceback__(self) -> TracebackType | None:
        return None

    @__traceback__.setter
    def __traceback__(self, value: TracebackType | None) -> None:
        pass

    @property
    def __cause__(self) -> BaseException | None:
        return None

    @__cause__.setter
    def __cause__(self, value: BaseException | None) -> None:
        pass

    @property
    def __context__(self) -> BaseException | None:
        return None

    @__context__.setter
    def __context__(self, value: BaseException | None) -> None:
        pass


def _failure(message: str, error_type: str, *, retryable: bool, **details: Any) -> ExpectedFailure:
    details["attempt"] = activity.info().attempt
    return ExpectedFailure(
        message,
        details,
        type=error_type,
        non_retryable=not retryable,
        next_retry_delay=details.pop("retry_after", None),
    )


def _worker() -> str | None:
    """The identity of the worker running this activity, as its history events name it."""
    try:
        return activity.client().identity
    except RuntimeError:  # run outside a worker (a direct call in a test)
        return None


def _header_value(value: object) -> str:
    """The value as a header can carry it: printable ASCII as is, anything else %-encoded."""
    text = str(value)
    if text.isascii() and text.isprintable() and len(text) <= 1024:
        return text
    return quote(text[:1024], safe="")


def _headers(call: StepCall) -> dict[str, str]:
    """The contract headers, and the context entries the action asked for
    (`forward_context`): no other context value leaves the worker."""
    execution_id, step_id = _header_value(call.execution_id), _header_value(call.step_id)
    headers = {
        "X-Request-ID": _header_value(call.request_id),
        "Idempotency-Key": f"{execution_id}:{step_id}",
        "X-Execution-ID": execution_id,
        "X-Step-ID": step_id,
    }
    for key in call.spec.forward_context:
        value = call.context.get(key)
        if (
            isinstance(value, str | int | float | bool)
            and key.isascii()
            and key.replace("_", "").replace("-", "").isalnum()
        ):
            headers[f"X-Context-{key}"] = _header_value(value)
    return headers


async def _violations(schema: dict[str, Any], instance: Any, size: int) -> list[str]:
    """`violations`, in a worker thread when the instance is large: validating a big
    document inline would hold up every other activity on this worker's event loop."""
    if size > INLINE_VALIDATION_BYTES:
        return await asyncio.to_thread(violations, schema, instance)
    return violations(schema, instance)


class StepActivities:
    """Holds the worker's one HTTP client; `call_service` serves every step type.

    Args:
        http: the client every call goes through.
        policy: where calls may go, and how much they may carry.
        signing_key: DEFINITION_SIGNING_KEY; when set, a step runs only with a valid
            signature (core/signing.py).
        credentials: the services' credentials, added at call time
            (activities/credentials.py); None sends none.
        shaping: the services' load limits, shared by all workers through the registry
            database (activities/shaping.py); None applies none.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        policy: OutboundPolicy,
        *,
        signing_key: str = "",
        credentials: Credentials | None = None,
        shaping: Shaping | None = None,
    ) -> None:
        self._http = http
        self._policy = policy
        self._signing_key = signing_key
        self._credentials = credentials
        self._shaping = shaping

    @activity.defn(dynamic=True)
    async def call_service(self, args: Sequence[RawValue]) -> dict[str, Any]:
        call = activity.payload_converter().from_payload(args[0].payload, StepCall)
        output = await self.run(call)
        if not call.report:
            return output
        return {
            STEP_RESULT_KEY: {"attempt": activity.info().attempt, "worker": _worker()},
            "output": output,
        }

    async def run(self, call: StepCall) -> dict[str, Any]:
        """One attempt of a step, inside the running activity (`call_service`, or the entry
        step's first attempt inside `si:start`); a classified failure raises
        ExpectedFailure, whose message begins with the step (`where`), as the workflow's
        step failure (workflows/tasks.py `step_failed`) then shows it."""
        where = f"step '{call.step_id}' ({call.service}.{call.spec.name})"
        self._verify(call, where)

        body = json.dumps(call.input, separators=(",", ":")).encode()
        problems = await _violations(call.spec.input_schema, call.input, len(body))
        if problems:
            raise _failure(
                f"{where} input does not match the action's input_schema: {'; '.join(problems)}",
                "InputSchemaViolation",
                retryable=False,
                violations=problems,
            )
        limit = self._policy.payload_limit_bytes
        if len(body) > limit:
            raise _failure(
                f"{where} input is {len(body)} bytes, over the payload limit of {limit} bytes",
                "PayloadTooLarge",
                retryable=False,
            )
        try:
            url = httpx.URL(call.endpoint + (call.spec.path or f"/{call.spec.name}"))
        except httpx.InvalidURL as exc:
            raise _failure(
                f"{where} endpoint is not a valid URL ({exc}); register the service again "
                "with an http or https URL",
                "OutboundRefused",
                retryable=False,
            ) from exc
        if call.spec.method == "GET":
            url = url.copy_merge_params(
                {k: v for k, v in call.input.items() if isinstance(v, str | int | float)}
            )
        headers = {**_headers(call), "Content-Type": "application/json"}
        content = None if call.spec.method == "GET" else body
        task = asyncio.create_task(self._call(call, url, content, headers, where))
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
        status, content_type, received = task.result()
        return await self._output(call, where, status, content_type, received)

    async def _call(
        self,
        call: StepCall,
        url: httpx.URL,
        content: bytes | None,
        headers: dict[str, str],
        where: str,
    ) -> tuple[int, str, bytes]:
        """The service's credential (looked up now, never part of the step's input), then
        a slot under the service's load limits (waited for, heartbeating; released when
        the call is over), then the call."""
        auth = await self._auth(call, url, where)
        async with AsyncExitStack() as held:
            if self._shaping is not None:
                try:
                    await held.enter_async_context(
                        self._shaping.slot(
                            call.service,
                            hold_seconds=call.spec.timeout,
                            heartbeat=activity.heartbeat,
                        )
                    )
                except ShapingUnavailable as exc:
                    raise _failure(f"{where} {exc}", "ShapingUnavailable", retryable=True) from None
            return await self._send(
                call.spec.method, url, content, headers, call.spec.timeout, where, auth=auth
            )

    async def _auth(self, call: StepCall, url: httpx.URL, where: str) -> CallAuth | None:
        # Only a service that had a credential when the execution pinned it is looked up,
        # so steps of other services never depend on the registry database.
        if self._credentials is None or not call.credential:
            return None
        try:
            return await self._credentials.for_call(call.service, url, timeout=call.spec.timeout)
        except CredentialUnavailable as exc:
            raise _failure(
                f"{where} {exc}", "CredentialUnavailable", retryable=exc.retryable
            ) from None

    def _verify(self, call: StepCall, where: str) -> None:
        """With a signing key, only a step signed under it runs (nothing is sent otherwise)."""
        if not self._signing_key:
            return
        if not call.signature:
            raise _failure(
                f"{where} has no definition signature, and this worker runs only signed "
                "steps (DEFINITION_SIGNING_KEY is set): start the execution through the "
                "gateway, which signs each step",
                "DefinitionNotSigned",
                retryable=False,
            )
        if not signature_matches(
            self._signing_key,
            call.signature,
            step_id=definition_step_id(call.step_id),
            service=call.service,
            action=call.spec.name,
            endpoint=call.endpoint,
            spec=call.spec.model_dump(mode="json"),
        ):
            raise _failure(
                f"{where} does not match its definition signature: the step was changed "
                "after the gateway signed it, or the gateway and this worker have different "
                "DEFINITION_SIGNING_KEY values (set the same key on both)",
                "DefinitionSignatureMismatch",
                retryable=False,
            )

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        content: bytes | None,
        headers: dict[str, str],
        timeout: float,
        where: str,
        *,
        auth: CallAuth | None = None,
    ) -> tuple[int, str, bytes]:
        limit = self._policy.payload_limit_bytes
        # Redirects are followed here rather than by httpx, so that every hop is resolved
        # and checked like the first target: an allowed service cannot send the worker
        # anywhere the policy refuses. The credential goes only to its own origin.
        hops = 0
        refreshed = False
        while True:
            target = await self._check(url, timeout, where, redirected=hops > 0)
            request = self._http.build_request(
                method,
                target.url,
                content=content,
                headers={**headers, **(auth.headers_for(url) if auth else {}), **target.headers},
                extensions=dict(target.extensions),
                timeout=timeout,
            )
            response = await self._open(request, url, where)
            if (
                response.status_code == 401
                and auth is not None
                and auth.refresh is not None
                and not refreshed
                and auth.headers_for(url)
            ):
                # An OAuth2 token the service no longer takes: ask for a new one, once.
                await response.aclose()
                refreshed = True
                try:
                    auth.headers = await auth.refresh()
                except CredentialUnavailable as exc:
                    raise _failure(
                        f"{where} {exc}", "CredentialUnavailable", retryable=exc.retryable
                    ) from None
                continue
            follow = response.next_request
            if not (self._policy.follow_redirects and follow is not None):
                break
            location = response.headers.get("location", "")
            await response.aclose()
            hops += 1
            if hops > MAX_REDIRECTS:
                raise _failure(
                    f"{where} was redirected more than {MAX_REDIRECTS} times; register the "
                    "final URL",
                    "TooManyRedirects",
                    retryable=False,
                )
            # Joined to the URL as registered, not to the address connected to, so the
            # next hop keeps its host name (and is resolved and checked again).
            url = url.join(location)
            if follow.method != method:
                method, content = follow.method, None
        try:
            if not response.is_success:
                # Only a prefix of a failure's body: an answer saying "unavailable" stays
                # retryable however large its body is.
                prefix, complete = await _read(response, ERROR_BODY_PREFIX)
                self._raise_failure(
                    url, response, where, prefix, complete, scrub=auth.scrub if auth else None
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _too_large(where, limit, int(declared))
            received, complete = await _read(response, limit)
            if not complete:
                raise _too_large(where, limit, None)
            if auth is not None and auth.echoed_in(received):
                # Its output goes into the execution's history, where no credential goes.
                raise _failure(
                    f"{where} answered with its own credential in the body; the output is "
                    "not kept (a credential never goes into an execution's history): make "
                    "the service stop echoing it",
                    "CredentialEchoed",
                    retryable=False,
                )
        except httpx.TimeoutException as exc:
            raise _failure(
                f"{where} timed out reading the response from {url}: {type(exc).__name__}",
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
        return response.status_code, response.headers.get("content-type", ""), received

    async def _check(
        self, url: httpx.URL, timeout: float, where: str, *, redirected: bool
    ) -> CheckedTarget:
        """The address to connect to for `url`, checked against the policy."""
        try:
            return await asyncio.wait_for(resolve_checked(url, self._policy), timeout)
        except OutboundRefusedError as exc:
            what = f"was redirected to {url}, and" if redirected else "endpoint:"
            raise _failure(
                f"{where} {what} {exc}",
                "OutboundRefused",
                retryable=False,
                host=exc.host,
                address=exc.address,
            ) from exc
        except OutboundLookupError as exc:
            raise _failure(
                f"{where} could not reach {url}: {exc}",
                "ServiceUnreachable",
                retryable=True,
            ) from exc
        except TimeoutError as exc:
            raise _failure(
                f"{where} timed out resolving {url.host}",
                "ServiceTimeout",
                retryable=True,
            ) from exc

    async def _open(self, request: httpx.Request, url: httpx.URL, where: str) -> httpx.Response:
        """Send one request (no redirects followed) and return the unread response."""
        try:
            return await self._http.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise _failure(
                f"{where} timed out calling {url}: {type(exc).__name__}",
                "ServiceTimeout",
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            raise _failure(
                f"{where} could not reach {url}: {exc or type(exc).__name__}",
                "ServiceUnreachable",
                retryable=True,
            ) from exc

    def _raise_failure(
        self,
        url: httpx.URL,
        response: httpx.Response,
        where: str,
        prefix: bytes,
        complete: bool,
        *,
        scrub: Callable[[str], str] | None = None,
    ) -> NoReturn:
        """The classified failure for an answer other than 2xx; `scrub` takes the call's
        secrets out of what the service answered (it may echo them)."""
        status = response.status_code
        clean = scrub or (lambda text: text)
        described = clean(_describe(response, prefix, complete))
        if status >= 500 or status in RETRYABLE_STATUS:
            raise _failure(
                f"{where} got HTTP {status} from {url}: {described}",
                "ServiceUnavailable" if status >= 500 else f"HTTP{status}",
                retryable=True,
                status_code=status,
                retry_after=_retry_after(response),
            )
        if 300 <= status < 400:
            raise _failure(
                f"{where} got a redirect (HTTP {status}) to "
                f"{clean(str(response.headers.get('location')))}; "
                "register the final URL, or set FOLLOW_REDIRECTS=true",
                "UnexpectedRedirect",
                retryable=False,
                status_code=status,
            )
        raise _failure(
            f"{where} was refused with HTTP {status}: {described}",
            "ServiceRejected",
            retryable=False,
            status_code=status,
        )

    async def _output(
        self, call: StepCall, where: str, status: int, content_type: str, content: bytes
    ) -> dict[str, Any]:
        if not content.strip():
            output: Any = {}
        else:
            try:
                output = json.loads(content)
            except ValueError as exc:
                raise _failure(
                    f"{where} answered HTTP {status} with a body that is not JSON "
                    f"({_content_type(content_type)}, {len(content)} bytes; not quoted)",
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
        problems = await _violations(call.spec.output_schema, output, len(content))
        if problems:
            raise _failure(
                f"{where} output does not match the action's output_schema: {'; '.join(problems)}",
                "OutputSchemaViolation",
                retryable=False,
                violations=problems,
            )
        return output


def _too_large(where: str, limit: int, size: int | None) -> ExpectedFailure:
    """Reading stops at the limit: an undeclared size is only known to be over it."""
    what = f"is {size} bytes, over" if size is not None else "passed"
    return _failure(
        f"{where} response {what} the payload limit of {limit} bytes (PAYLOAD_LIMIT_BYTES)",
        "PayloadTooLarge",
        retryable=False,
    )


async def _read(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, and whether that was all of it."""
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content.extend(chunk)
        if len(content) > limit:
            return bytes(content[:limit]), False
    return bytes(content), True


def _content_type(value: str) -> str:
    """The declared content type, fit to quote (it comes from the service)."""
    kind = value.split(";")[0].strip()[:100]
    if not kind or not (kind.isascii() and kind.isprintable()):
        return "no content type"
    return kind


def _describe(response: httpx.Response, content: bytes, complete: bool) -> str:
    """A failure's body as an error message may show it: a JSON body quoted (up to
    QUOTED_BYTES), anything else only by its content type and size, so a service that
    answers with a page of its own cannot have that page copied into the execution."""
    if complete and content.strip():
        try:
            json.loads(content)
        except ValueError:
            pass
        else:
            return _snippet(content)
    if complete and not content:
        return "empty body"
    declared = response.headers.get("content-length", "")
    if complete:
        size = f"{len(content)} bytes"
    elif declared.isdigit():
        size = f"{declared} bytes"
    else:
        size = f"over {len(content)} bytes"
    return f"{_content_type(response.headers.get('content-type', ''))} body, {size}; not quoted"


def _snippet(content: bytes | bytearray, limit: int = QUOTED_BYTES) -> str:
    text = bytes(content[:limit]).decode("utf-8", "replace")
    return text + ("..." if len(content) > limit else "")
