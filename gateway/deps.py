"""Typed dependencies: everything long-lived is created in the lifespan (gateway/app.py)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import Depends, Header, HTTPException, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.settings import Settings
from executions.service import ExecutionService

MAX_PER_PAGE = 100


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


def get_executions(request: Request) -> ExecutionService:
    return request.app.state.executions


def get_http(request: Request) -> httpx.AsyncClient:
    return request.app.state.http


def require_api_key(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """When API_KEYS is set, every endpoint but GET /api/health needs a Bearer key."""
    keys = request.app.state.settings.api_key_set
    if not keys:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not any(secrets.compare_digest(token, k) for k in keys):
        raise HTTPException(
            status_code=401,
            detail="missing or invalid API key; send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


class PageParams:
    def __init__(
        self,
        page: Annotated[int, Query(ge=1, le=1_000_000, description="page number, from 1")] = 1,
        per_page: Annotated[
            int, Query(ge=1, le=MAX_PER_PAGE, description=f"items per page, at most {MAX_PER_PAGE}")
        ] = 20,
    ) -> None:
        self.page = page
        self.per_page = per_page


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ExecutionsDep = Annotated[ExecutionService, Depends(get_executions)]
HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
PageDep = Annotated[PageParams, Depends()]
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
