"""Workflows that run workflows: nesting is bounded at run time, whatever was stored."""

from __future__ import annotations

import httpx

from tests.support.builders import create_workflow
from workflows.interpreter import MAX_WORKFLOW_DEPTH


async def _nest(api: httpx.AsyncClient, unique: str, levels: int) -> dict:
    """`levels` workflows, each running the next by a `workflow` step; the last succeeds."""
    below = await create_workflow(
        api,
        f"nest-{unique}-{levels}",
        [{"id": "leaf", "type": "succeed", "output": {"leaf": True}}],
    )
    for level in range(levels - 1, -1, -1):
        below = await create_workflow(
            api,
            f"nest-{unique}-{level}",
            [{"id": f"run-{level}", "type": "workflow", "workflow": below["name"]}],
        )
    return below


async def test_workflow_steps_nested_to_the_limit_complete(api, unique) -> None:
    top = await _nest(api, unique, MAX_WORKFLOW_DEPTH)
    answer = await api.post(f"/workflows/{top['id']}/execute", json={"input_data": {}})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["status"] == "COMPLETED", record["error"]
    assert record["result"] == {"leaf": True}


async def test_workflow_steps_nested_past_the_limit_fail_with_depth_exceeded(api, unique) -> None:
    top = await _nest(api, unique, MAX_WORKFLOW_DEPTH + 1)
    answer = await api.post(f"/workflows/{top['id']}/execute", json={"input_data": {}})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["status"] == "FAILED", record
    # The deepest parent fails its step; each parent above reports its child's failure.
    assert "WorkflowDepthExceeded" in str(record["error"]), record["error"]
    assert f"the limit is {MAX_WORKFLOW_DEPTH}" in str(record["error"]), record["error"]
