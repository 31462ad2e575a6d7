"""The lease and bucket logic on a SQLite registry, with the clock in the test's hands."""

from __future__ import annotations

from pathlib import Path

from activities.shaping import LEASE_MARGIN, Shaping
from registry.db import open_database, session_factory
from registry.schemas import ServiceCreate
from registry.services import register


async def test_a_lease_never_released_frees_itself_after_timeout_and_margin(tmp_path: Path):
    now = [1000.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    async with open_database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as engine:
        sessions = session_factory(engine)
        async with sessions() as session:
            body = ServiceCreate.model_validate(
                {
                    "name": "one-at-a-time",
                    "endpoint": "http://127.0.0.1:9",
                    "actions": [{"name": "run"}],
                    "max_concurrency": 1,
                }
            )
            await register(session, body)
            await session.commit()
        shaping = Shaping(sessions=sessions, wall=lambda: now[0], sleep=sleep)
        held = shaping.slot("one-at-a-time", hold_seconds=5, heartbeat=lambda: None)
        await held.__aenter__()  # a worker that crashes holding it: never released
        beats: list[int] = []
        async with shaping.slot("one-at-a-time", hold_seconds=5, heartbeat=lambda: beats.append(1)):
            assert now[0] >= 1000.0 + 5 + LEASE_MARGIN
        assert beats and len(beats) == len(sleeps)
        await held.__aexit__(None, None, None)  # deleting an expired lease is harmless
