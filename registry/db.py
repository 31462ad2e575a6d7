"""Database engine, sessions and migrations of the registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_ID = 0x5E1_1A7E  # advisory lock taken on PostgreSQL while migrating


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url`; a SQLite file gets its folder, WAL and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, pool_timeout=10
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Gateways and workers may start together: one migrates, the others wait.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine, *, attempts: int = 5) -> None:
    """Bring the schema to the newest Alembic revision; safe to run from many processes."""
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as connection:
                await connection.run_sync(_upgrade)
            return
        except Exception:
            # Two processes migrating one SQLite file at once: the loser retries and
            # then finds the schema at head.
            if attempt == attempts:
                raise
            await asyncio.sleep(0.2 * attempt)


@asynccontextmanager
async def open_database(url: str, *, run_migrations: bool = True) -> AsyncIterator[AsyncEngine]:
    """Create the engine, migrate, and dispose of it on exit."""
    engine = create_engine(url)
    try:
        if run_migrations:
            await migrate(engine)
        yield engine
    finally:
        await engine.dispose()
