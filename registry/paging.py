"""One page of a registry table, optionally filtered by status, oldest first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from registry.schemas import DefinitionStatus, Page
from registry.tables import ServiceRow, WorkflowRow

Row = TypeVar("Row", ServiceRow, WorkflowRow)
PageT = TypeVar("PageT", bound=Page[Any])


async def page_of(
    session: AsyncSession,
    table: type[Row],
    *,
    status: DefinitionStatus | None,
    page: int,
    per_page: int,
) -> tuple[list[Row], int]:
    """The rows of `page` (from 1) and the total number of rows that match."""
    query = select(table)
    count = select(func.count()).select_from(table)
    if status is not None:
        query = query.where(table.status == status.value)
        count = count.where(table.status == status.value)
    total = (await session.execute(count)).scalar_one()
    rows = (
        await session.execute(
            query.order_by(table.created_at, table.id).offset((page - 1) * per_page).limit(per_page)
        )
    ).scalars()
    return list(rows), total


async def public_page(
    session: AsyncSession,
    table: type[Row],
    page_model: type[PageT],
    to_public: Callable[[Row], Any],
    *,
    status: DefinitionStatus | None,
    page: int,
    per_page: int,
) -> PageT:
    """`page_of`, as the resource's public page model."""
    rows, total = await page_of(session, table, status=status, page=page, per_page=per_page)
    return page_model.of([to_public(r) for r in rows], total=total, page=page, per_page=per_page)


async def listing_of(
    session: AsyncSession, table: type[Row], *, max_rows: int
) -> tuple[list[str], list[Any], list[str]] | None:
    """The ids, versions (updated_at) and statuses of every row in list order (that of
    `page_of`), or None if there are more than `max_rows`."""
    rows = (
        await session.execute(
            select(table.id, table.updated_at, table.status)
            .order_by(table.created_at, table.id)
            .limit(max_rows + 1)
        )
    ).all()
    if len(rows) > max_rows:
        return None
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


async def rows_json(
    session: AsyncSession, table: type[Row], to_public: Callable[[Row], Any], ids: list[str]
) -> dict[str, tuple[Any, bytes]]:
    """The version (updated_at) and public JSON of each row of `ids` that exists."""
    rows = (await session.execute(select(table).where(table.id.in_(ids)))).scalars()
    return {r.id: (r.updated_at, to_public(r).model_dump_json().encode()) for r in rows}
