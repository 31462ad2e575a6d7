"""Session fixtures: a real Temporal dev server, real test services, SQLite and PostgreSQL.

Every test that takes `stack` runs once per registry backend (`[sqlite]`,
`[postgresql]`). PostgreSQL must be reachable: a test never skips for want of it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from core.devserver import DevServer
from harness.services import TestServices, start_test_services
from harness.stack import Stack, start_dev_server, wait_for_workers

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    folder = tmp_path_factory.mktemp("temporal")
    server = start_dev_server(folder)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def services() -> Iterator[TestServices]:
    state = start_test_services()
    yield state
    assert state.server is not None
    state.server.should_exit = True


async def _create_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('registry') / 'registry.db'}"
        return
    name = f"si_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_create_database(POSTGRES_URL, name))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    base = POSTGRES_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://")
    asyncio.run(_drop_database(POSTGRES_URL, name))


@pytest.fixture(scope="session")
def stack(
    temporal: DevServer, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs: Path = tmp_path_factory.mktemp("stack")
    running = Stack(temporal_address=temporal.address, database_url=database_url, log_dir=logs)
    running.start_worker()
    running.start_gateway()
    wait_for_workers(running.url)
    yield running
    running.stop()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        yield client


@pytest.fixture
def unique() -> str:
    """A suffix that keeps names of one test apart from every other test's."""
    return uuid.uuid4().hex[:8]
