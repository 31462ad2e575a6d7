"""Typed dependencies: everything long-lived is created in the lifespan (gateway/app.py)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import Depends, Header, HTTPException, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.settings import Settings
from executions.service import ExecutionService
from gateway.read_cache import ReadCache

MAX_PER_PAGE = 100


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


async def get_executions(request: Request) -> ExecutionService:
    return request.app.state.executions


async def get_http(request: Request) -> httpx.AsyncClient:
    return request.app.state.http


async def get_read_cache(request: Request) -> ReadCache:
    return request.app.state.read_cache


ANONYMOUS = "anonymous"
"""The caller of a request when API_KEYS is empty (idempotency keys are bound to it)."""


def _bearer_token(authorization: str | None) -> bytes | None:
    """The bytes of a Bearer token as sent: header values arrive decoded as latin-1, so
    encoding back gives the client's bytes, whatever their encoding."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return token.encode("latin-1")
    except UnicodeEncodeError:
        return None


def matching_key(settings: Settings, authorization: str | None) -> str | None:
    """The configured API key the Authorization header carries, or None.

    Compares bytes in constant time, so a token that is no ASCII is a mismatch (401),
    never an error.
    """
    token = _bearer_token(authorization)
    if token is None:
        return None
    for key in settings.api_key_set:
        if secrets.compare_digest(token, key.encode()):
            return key
    return None


def key_id(key: str) -> str:
    """A short, stable id of an API key: a prefix of its sha256, never the key itself."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


async def require_api_key(request: Request) -> None:
    """When API_KEYS is set, every endpoint but GET /api/health needs a Bearer key.

    A coroutine, though it does no I/O: FastAPI runs a plain-function dependency in a
    worker thread, a thread hop on every protected request. The header is read from the
    request, not declared as a parameter: FastAPI would extract and validate it on every
    request, also without API_KEYS (the first Authorization header, as a parameter)."""
    settings: Settings = request.app.state.settings
    if settings.api_key_set and (
        matching_key(settings, request.headers.get("authorization")) is None
    ):
        raise HTTPException(
            status_code=401,
            detail="missing or invalid API key; send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def get_caller(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    """Who sends the request: the id of its API key, or "anonymous" without API_KEYS."""
    key = matching_key(request.app.state.settings, authorization)
    return key_id(key) if key is not None else ANONYMOUS


def is_authenticated(request: Request) -> bool:
    """True when API_KEYS is empty or the request carries one of the keys."""
    settings: Settings = request.app.state.settings
    return not settings.api_key_set or (
        matching_key(settings, request.headers.get("authorization")) is not None
    )


PageQuery = Annotated[int, Query(ge=1, le=1_000_000, description="page number, from 1")]
PerPageQuery = Annotated[
    int, Query(ge=1, le=MAX_PER_PAGE, description=f"items per page, at most {MAX_PER_PAGE}")
]
NameQuery = Annotated[
    str | None,
    Query(max_length=200, description="only the one with this name (exact match)"),
]


class PageParams:
    """`page` and `per_page` as one dependency. Routes that answer many requests take
    PageQuery and PerPageQuery directly instead: a class dependency is called in a worker
    thread on every request."""

    def __init__(self, page: PageQuery = 1, per_page: PerPageQuery = 20) -> None:
        self.page = page
        self.per_page = per_page


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ExecutionsDep = Annotated[ExecutionService, Depends(get_executions)]
HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
ReadCacheDep = Annotated[ReadCache, Depends(get_read_cache)]
PageDep = Annotated[PageParams, Depends()]
CallerDep = Annotated[str, Depends(get_caller)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="repeat a write with the same key to get its first answer, not a duplicate",
    ),
]
RequestIdHeader = Annotated[
    str | None,
    Header(
        alias="X-Request-ID",
        max_length=200,
        description="used as the execution's context.request_id when the context has none",
    ),
]
