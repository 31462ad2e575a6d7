"""The replay gate: every recorded history replays against today's workflow code.

A change to the commands the workflow issues, made without `workflow.patched()`, makes
the replay of some history here raise a nondeterminism error, and CI fails. Histories
are recorded from the real engine (`python -m tests.replay.record GROUP`) and are never
rewritten; see docs/versioning.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker.main import workflow_runner
from workflows.dynamic import StoredWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
RECORDED = sorted(p for p in HISTORIES.glob("*/*.json") if p.name != "workflow-ids.json")


def load(path: Path) -> WorkflowHistory:
    """A recorded history, under the workflow id it ran with where the recorder kept it
    (child workflow ids are made from it); groups before 0.3.0 did not need it."""
    ids_file = path.parent / "workflow-ids.json"
    ids = json.loads(ids_file.read_text()) if ids_file.exists() else {}
    workflow_id = ids.get(path.stem, f"{path.parent.name}/{path.stem}")
    return WorkflowHistory.from_json(workflow_id, path.read_text())


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


@workflow.defn(dynamic=True, sandboxed=False)
class UnpatchedChange(StoredWorkflow):
    """Today's workflow with one more command (a timer) before the steps, unpatched."""

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        await workflow.sleep(0.01)
        return await super().run(args)


@workflow.defn(dynamic=True, sandboxed=False)
class PatchedChange(StoredWorkflow):
    """The same change behind workflow.patched(), as docs/versioning.md asks."""

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        if workflow.patched("timer-before-steps"):
            await workflow.sleep(0.01)
        return await super().run(args)


async def _replay_all(workflow_class: type) -> dict[str, Exception | None]:
    replayer = Replayer(
        workflows=[workflow_class],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    outcomes = {}
    for path in RECORDED:
        result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
        outcomes[path.stem] = result.replay_failure
    return outcomes


async def test_gate_fails_on_a_change_of_commands_without_a_patch() -> None:
    outcomes = await _replay_all(UnpatchedChange)
    failed = [name for name, failure in outcomes.items() if failure is not None]
    assert "gateway-linear-context" in failed, outcomes
    assert all("Nondeterminism" in str(outcomes[name]) for name in failed)


async def test_gate_passes_the_same_change_behind_a_patch() -> None:
    outcomes = await _replay_all(PatchedChange)
    assert all(failure is None for failure in outcomes.values()), outcomes
