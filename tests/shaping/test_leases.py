"""The lease and bucket logic on a SQLite registry, with the passing of time in the
test's hands: the waiting step's sleep moves every time in the rows back by as much, as
if the database's clock had moved on."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from activities.shaping import LEASE_MARGIN, MAX_WAIT, MIN_WAIT, Shaping
from registry.db import open_database, session_factory
from registry.schemas import ServiceCreate
from registry.services import register
from registry.tables import ServiceLeaseRow


async def test_a_lease_never_released_frees_itself_after_timeout_and_margin(tmp_path: Path):
    sleeps: list[float] = []

    async with open_database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as engine:
        sessions = session_factory(engine)

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            async with sessions() as session:
                await session.execute(
                    update(ServiceLeaseRow).values(expires_at=ServiceLeaseRow.expires_at - seconds)
                )
                await session.commit()

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
        shaping = Shaping(sessions=sessions, sleep=sleep)
        held = shaping.slot("one-at-a-time", hold_seconds=5, heartbeat=lambda: None)
        await held.__aenter__()  # a worker that crashes holding it: never released
        beats: list[int] = []
        async with shaping.slot("one-at-a-time", hold_seconds=5, heartbeat=lambda: beats.append(1)):
            # Less the little the database's own clock moved while the test ran.
            assert sum(sleeps) >= 5 + LEASE_MARGIN - 1.0
        assert beats and len(beats) == len(sleeps)
        await held.__aexit__(None, None, None)  # deleting an expired lease is harmless
    # Backing off: from MIN_WAIT up to MAX_WAIT, not a poll every MIN_WAIT.
    assert MIN_WAIT <= min(sleeps) and max(sleeps) <= MAX_WAIT
    assert sleeps[0] <= 2 * MIN_WAIT and max(sleeps) >= MAX_WAIT / 2
    assert len(sleeps) <= 30
