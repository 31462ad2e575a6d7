"""The replay gate: every recorded history replays against today's workflow code.

A change to the commands the workflow issues, made without `workflow.patched()`, makes
the replay of some history here raise a nondeterminism error, and CI fails. Histories
are recorded from the real engine (`python -m tests.replay.record GROUP`) and are never
rewritten; see docs/versioning.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker.main import workflow_runner
from workflows.dynamic import StoredWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
RECORDED = sorted(HISTORIES.glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"{path.parent.name}/{path.stem}", path.read_text())


def test_histories_are_recorded_for_every_group() -> None:
    assert RECORDED, f"no histories under {HISTORIES}"


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_history_replays_on_current_code(path: Path) -> None:
    replayer = Replayer(
        workflows=[StoredWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, (
        f"{path.relative_to(HISTORIES)} no longer replays: {result.replay_failure}. "
        "Put the change behind workflow.patched() (docs/versioning.md)"
    )
