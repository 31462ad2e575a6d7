"""Turning encryption on keeps every recorded (plaintext) history replaying.

The codec decodes a payload without its encoding to itself, so executions started
before ENCRYPTION_KEYS was set continue on a worker that has it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.worker import Replayer

from core.codec import new_key_entry
from core.temporal import data_converter
from tests.replay.test_replay import HISTORIES, RECORDED, load
from worker.main import workflow_runner
from workflows.dynamic import StoredWorkflow

KEYS = f"{new_key_entry('current')},{new_key_entry('previous')}"


def test_there_are_histories_to_replay() -> None:
    assert RECORDED, f"no histories under {HISTORIES}"


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_plaintext_history_replays_with_encryption_on(path: Path) -> None:
    replayer = Replayer(
        workflows=[StoredWorkflow],
        data_converter=data_converter(KEYS),
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, (
        f"{path.relative_to(HISTORIES)} no longer replays with ENCRYPTION_KEYS set: "
        f"{result.replay_failure}"
    )
