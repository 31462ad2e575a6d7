"""Leases and buckets on the database's clock, not the worker's: a worker whose clock
runs far ahead stamps nothing in the future and starves no other worker, on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.shaping import LEASE_MARGIN, Shaping
from registry.db import open_database, session_factory
from registry.schemas import ServiceCreate
from registry.services import register
from registry.tables import ServiceBucketRow, ServiceLeaseRow

SKEW = 3600.0
"""How far ahead the skewed worker's clock runs."""
RATE = 2.0
SLACK = 5.0
"""Seconds a time stamped by the database may lie from this process's clock."""


async def add_service(sessions: async_sessionmaker[AsyncSession], name: str, **limits: Any) -> None:
    async with sessions() as session:
        body = ServiceCreate.model_validate(
            {"name": name, "endpoint": "http://127.0.0.1:9", "actions": [{"name": "run"}], **limits}
        )
        await register(session, body)
        await session.commit()


async def bucket_stamp(sessions: async_sessionmaker[AsyncSession], name: str) -> float:
    async with sessions() as session:
        stamp = await session.scalar(
            select(ServiceBucketRow.updated_at).where(ServiceBucketRow.service_name == name)
        )
    assert stamp is not None
    return float(stamp)


async def take_one(shaping: Shaping, name: str, *, within: float) -> list[float]:
    """Take and release a slot of `name`, waiting no longer than `within` seconds;
    the pauses of the wait."""
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(seconds)

    shaping.sleep = sleep
    async with asyncio.timeout(within):
        async with shaping.slot(name, hold_seconds=5, heartbeat=lambda: None):
            pass
    return pauses


async def test_a_worker_clock_far_ahead_neither_stamps_the_future_nor_starves_another(
    database_url: str, unique: str, monkeypatch: pytest.MonkeyPatch
):
    name = f"skew-{unique}"
    real_time, real_time_ns = time.time, time.time_ns
    async with open_database(database_url) as engine:
        sessions = session_factory(engine)
        await add_service(sessions, name, max_concurrency=5, rate_limit_per_second=RATE)
        ahead = Shaping(sessions=sessions)
        with monkeypatch.context() as skewed:
            skewed.setattr(time, "time", lambda: real_time() + SKEW)
            skewed.setattr(time, "time_ns", lambda: real_time_ns() + int(SKEW * 1e9))
            for _ in range(int(RATE)):  # the bucket's every token
                async with ahead.slot(name, hold_seconds=5, heartbeat=lambda: None):
                    async with sessions() as session:
                        expires = await session.scalar(
                            select(ServiceLeaseRow.expires_at).where(
                                ServiceLeaseRow.service_name == name
                            )
                        )
                    assert expires is not None
                    assert expires <= real_time() + 5 + LEASE_MARGIN + SLACK
        assert abs(await bucket_stamp(sessions, name) - real_time()) < SLACK

        # Another worker, with a right clock, gets the next token when it is due.
        started = time.monotonic()
        pauses = await take_one(Shaping(sessions=sessions), name, within=10)
        assert time.monotonic() - started < 1 / RATE + 1.0
        assert pauses and max(pauses) <= 1 / RATE + 0.01


async def test_a_bucket_stamped_in_the_future_refills_from_the_database_clock(
    database_url: str, unique: str
):
    name = f"stamped-{unique}"
    async with open_database(database_url) as engine:
        sessions = session_factory(engine)
        await add_service(sessions, name, rate_limit_per_second=RATE)
        async with sessions() as session:
            # As a worker stamping with its own clock, an hour ahead, left it.
            await session.execute(
                insert(ServiceBucketRow).values(
                    service_name=name, tokens=0.0, updated_at=time.time() + SKEW
                )
            )
            await session.commit()
        started = time.monotonic()
        await take_one(Shaping(sessions=sessions), name, within=10)
        assert time.monotonic() - started < 1 / RATE + 1.0
        assert abs(await bucket_stamp(sessions, name) - time.time()) < SLACK
