"""Outbound credentials, added by the worker at call time.

A step's call carries its service's credential (registry/credentials.py seals it): the
worker looks it up by service name in the registry database, when the call is made, so
it is never in the activity's input or result, and so never in Temporal's history. The
lookup is cached for `CACHE_SECONDS` ("no credential" too): a changed credential
reaches the workers within that time.

- api_key: the header, e.g. `X-API-Key: <value>`.
- basic: `Authorization: Basic base64(username:password)`.
- oauth2_client_credentials: `Authorization: Bearer <token>`, the token asked of the
  token_url (client credentials grant, a form POST with client_id and client_secret,
  through the outbound policy like a service call), kept until shortly before its
  `expires_in` runs out, asked again when it has, and once more when the service
  answers 401 to it.

A credential is sent only to the origin (scheme, host, port) of the endpoint it was
set with: a step pinned to another origin (a start carrying another endpoint) or a
redirect to another origin gets no credential.

Errors::

    CredentialUnavailable   the credential cannot be used now; nothing was sent to the
                            service. `retryable`: the token endpoint or the database
                            is unreachable or answered 5xx/429/408 (True), or refused
                            (4xx), answered something unusable, or the credential is
                            bound elsewhere (False). No message holds a secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.outbound import (
    OutboundLookupError,
    OutboundPolicy,
    OutboundRefusedError,
    resolve_checked,
)
from registry.credentials import (
    Credential,
    CredentialUnreadableError,
    OpenedCredential,
    codec_of,
    origin_of,
)
from registry.lookups import credential_for_call
from registry.schemas import ApiKeyCredential, BasicCredential, OAuth2ClientCredentials

CACHE_SECONDS = 15.0
"""How long a worker keeps a service's credential (or the lack of one) in memory."""
MAX_TOKEN_ANSWER_BYTES = 64 * 1024
DEFAULT_TOKEN_SECONDS = 300.0
"""How long a token whose answer names no `expires_in` is used (a 401 asks again)."""
EARLY_REFRESH_MAX = 30.0
"""A token is asked again this many seconds (at most 10% of its life) before it expires."""
MIN_ECHO_CHECK = 8
"""Secrets at least this long are looked for in what a service answers."""
RETRYABLE_TOKEN_STATUS = frozenset({408, 429})
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class CredentialUnavailable(Exception):
    """The step's credential cannot be used now (see the module's docstring).

    Attributes:
        retryable: whether a later attempt may succeed.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        self.retryable = retryable
        super().__init__(message)


@dataclass
class CallAuth:
    """The credential of one call: its headers, for its origin only."""

    origin: str
    headers: dict[str, str]
    secrets: tuple[str, ...]
    refresh: Callable[[], Awaitable[dict[str, str]]] | None = None
    """Asks a new token (OAuth2 only); used at most once per call, on a 401."""

    def headers_for(self, url: httpx.URL) -> dict[str, str]:
        """The headers for a request to `url`: none unless it is the credential's origin."""
        return self.headers if origin_of(url) == self.origin else {}

    def echoed_in(self, content: bytes) -> bool:
        """True if a secret of this call is in `content` (one long enough to tell)."""
        return any(len(s) >= MIN_ECHO_CHECK and s.encode() in content for s in self.secrets)

    def scrub(self, text: str) -> str:
        """`text` with every secret of this call replaced."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "[credential]")
        return text


@dataclass
class _Token:
    value: str
    fresh_until: float


@dataclass
class _Entry:
    opened: OpenedCredential | None
    until: float


@dataclass
class Credentials:
    """The worker's credentials: looked up, cached, opened and turned into headers.

    Args:
        sessions: the registry database.
        encryption_keys: ENCRYPTION_KEYS, to open stored credentials.
        http: the client token requests go through.
        policy: where token requests may go (the service calls' policy).
        cache_seconds: how long a lookup is kept.
        clock: monotonic seconds (the test seam).
    """

    sessions: async_sessionmaker[AsyncSession]
    encryption_keys: str
    http: httpx.AsyncClient
    policy: OutboundPolicy
    cache_seconds: float = CACHE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._codec = codec_of(self.encryption_keys)

    async def for_call(
        self, service_name: str, url: httpx.URL, *, timeout: float
    ) -> CallAuth | None:
        """The credential of a call to `url` of the service `service_name`, or None.

        Raises:
            CredentialUnavailable: it has one that cannot be used now.
        """
        opened = await self._lookup(service_name)
        if opened is None:
            return None
        if origin_of(url) != opened.origin:
            raise CredentialUnavailable(
                f"has a credential that is sent only to {opened.origin}, and this step "
                f"calls {origin_of(url)} (the endpoint it was started with): nothing was "
                "sent. Start it again with the service's current endpoint, or set the "
                "credential again with the endpoint",
                retryable=False,
            )
        credential = opened.credential
        if isinstance(credential, ApiKeyCredential):
            return CallAuth(
                opened.origin, {credential.header: credential.value}, (credential.value,)
            )
        if isinstance(credential, BasicCredential):
            pair = f"{credential.username}:{credential.password}".encode()
            encoded = base64.b64encode(pair).decode()
            return CallAuth(
                opened.origin,
                {"Authorization": f"Basic {encoded}"},
                (credential.password, encoded),
            )
        token = await self._token(credential, timeout=timeout)
        auth = CallAuth(
            opened.origin,
            {"Authorization": f"Bearer {token}"},
            (credential.client_secret, token),
        )

        async def refresh() -> dict[str, str]:
            fresh = await self._token(credential, timeout=timeout, stale=token)
            auth.secrets = (*auth.secrets, fresh)
            return {"Authorization": f"Bearer {fresh}"}

        auth.refresh = refresh
        return auth

    async def _lookup(self, service_name: str) -> OpenedCredential | None:
        now = self.clock()
        entry = self._entries.get(service_name)
        if entry is not None and entry.until > now:
            return entry.opened
        try:
            async with self.sessions() as session:
                opened = await credential_for_call(session, service_name, self._codec)
        except CredentialUnreadableError as exc:
            # Another worker (or this one, once configured) may hold the key.
            raise CredentialUnavailable(
                f"has a credential this worker cannot open: {exc}", retryable=True
            ) from None
        except (SQLAlchemyError, OSError) as exc:
            if entry is not None:
                # A registry outage must not stop running executions: what this worker
                # last knew of the service (a credential, or none) stands until it is back.
                return entry.opened
            raise CredentialUnavailable(
                f"could not look up its credential: registry database unavailable "
                f"({type(exc).__name__})",
                retryable=True,
            ) from None
        self._entries[service_name] = _Entry(opened, now + self.cache_seconds)
        return opened

    async def _token(
        self, credential: OAuth2ClientCredentials, *, timeout: float, stale: str | None = None
    ) -> str:
        """A token for `credential`: the cached one while fresh (and not `stale`), else a
        new one. Concurrent calls wait for one token request."""
        key = _fingerprint(credential)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.value != stale and cached.fresh_until > self.clock():
                return cached.value
            self._tokens.pop(key, None)
            value, lifetime = await self._fetch(credential, timeout=timeout)
            if lifetime > 0:
                early = min(EARLY_REFRESH_MAX, lifetime * 0.1)
                self._tokens[key] = _Token(value, self.clock() + lifetime - early)
            return value

    async def _fetch(
        self, credential: OAuth2ClientCredentials, *, timeout: float
    ) -> tuple[str, float]:
        """Ask the token endpoint for a token; (token, lifetime in seconds)."""
        url = httpx.URL(str(credential.token_url))
        where = f"could not get an OAuth2 token from {url.copy_with(query=None)}"
        try:
            target = await asyncio.wait_for(resolve_checked(url, self.policy), timeout)
        except OutboundRefusedError as exc:
            raise CredentialUnavailable(f"{where}: {exc}", retryable=False) from None
        except OutboundLookupError as exc:
            raise CredentialUnavailable(f"{where}: {exc}", retryable=True) from None
        except TimeoutError:
            raise CredentialUnavailable(
                f"{where}: timed out resolving {url.host}", retryable=True
            ) from None
        form = {
            "grant_type": "client_credentials",
            "client_id": credential.client_id,
            "client_secret": credential.client_secret,
        }
        if credential.scope:
            form["scope"] = credential.scope
        if credential.audience:
            form["audience"] = credential.audience
        request = self.http.build_request(
            "POST",
            target.url,
            data=form,
            headers={"Accept": "application/json", **target.headers},
            extensions=dict(target.extensions),
            timeout=timeout,
        )
        try:
            response = await self.http.send(request, stream=True, follow_redirects=False)
            try:
                content = bytearray()
                async for chunk in response.aiter_bytes():
                    content.extend(chunk)
                    if len(content) > MAX_TOKEN_ANSWER_BYTES:
                        raise CredentialUnavailable(
                            f"{where}: its answer is over {MAX_TOKEN_ANSWER_BYTES} bytes",
                            retryable=False,
                        )
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise CredentialUnavailable(
                f"{where}: timed out ({type(exc).__name__})", retryable=True
            ) from None
        except httpx.TransportError as exc:
            raise CredentialUnavailable(
                f"{where}: unreachable ({type(exc).__name__})", retryable=True
            ) from None
        return _read_token(where, response.status_code, bytes(content))


def _read_token(where: str, status: int, content: bytes) -> tuple[str, float]:
    """The token and its lifetime from a token endpoint's answer; quotes nothing of it
    but a standard `error` code (RFC 6749 5.2)."""
    try:
        answer = json.loads(content) if content.strip() else {}
    except ValueError:
        answer = None
    if not 200 <= status < 300:
        code = answer.get("error") if isinstance(answer, dict) else None
        said = f" ({code})" if isinstance(code, str) and _ERROR_CODE.match(code) else ""
        if status >= 500 or status in RETRYABLE_TOKEN_STATUS:
            raise CredentialUnavailable(f"{where}: HTTP {status}{said}", retryable=True)
        if 300 <= status < 400:
            raise CredentialUnavailable(
                f"{where}: it answered a redirect (HTTP {status}); set the final token_url",
                retryable=False,
            )
        raise CredentialUnavailable(
            f"{where}: refused with HTTP {status}{said}; check the credential's client_id, "
            "client_secret, scope and audience",
            retryable=False,
        )
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(answer, dict) or not isinstance(token, str) or not token:
        raise CredentialUnavailable(
            f"{where}: the answer is no JSON object with an access_token", retryable=False
        )
    if not (token.isascii() and token.isprintable()):
        raise CredentialUnavailable(
            f"{where}: the access_token is not printable ASCII", retryable=False
        )
    token_type = answer.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise CredentialUnavailable(
            f"{where}: token_type is not Bearer; only bearer tokens are supported",
            retryable=False,
        )
    expires_in = answer.get("expires_in", DEFAULT_TOKEN_SECONDS)
    try:
        lifetime = float(expires_in)
    except (TypeError, ValueError):
        lifetime = DEFAULT_TOKEN_SECONDS
    if lifetime != lifetime:  # NaN
        lifetime = DEFAULT_TOKEN_SECONDS
    return token, lifetime


def _fingerprint(credential: Credential) -> str:
    """The token cache's key: a hash of the whole credential (a new secret, a new token)."""
    canonical = json.dumps(credential.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()
