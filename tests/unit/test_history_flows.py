"""The record of a flow's execution, built from histories recorded from the real engine
(tests/replay/histories/0.3.0/flow-*.json): the steps that ran, map iterations and
parallel branches by index, with their type, status, input and output, error and route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from definitions.contract import StepFailure
from executions.history import bounded, build_record, catch_names
from executions.models import STEP_VALUE_LIMIT, ExecutionPublic, ExecutionStatus, StepState
from workflows.interpreter import error_binding, error_names

HISTORIES = Path(__file__).resolve().parents[1] / "replay" / "histories" / "0.3.0"
WORKFLOW_IDS: dict[str, str] = json.loads((HISTORIES / "workflow-ids.json").read_text())


async def record_of(name: str) -> ExecutionPublic:
    """The record of a recorded history, under the workflow id it ran with (child
    workflow ids are made from it), as tests/replay/test_replay.py `load` reads it."""
    execution_id = WORKFLOW_IDS[name]
    text = (HISTORIES / f"{name}.json").read_text()
    events = WorkflowHistory.from_json(execution_id, text).events
    return await build_record(execution_id, events, None, converter=pydantic_data_converter)


def shape(record: ExecutionPublic) -> list[tuple[str | None, str | None, str]]:
    return [(s.type, s.path, s.status) for s in record.steps]


def at(record: ExecutionPublic, path: str) -> StepState:
    found = [s for s in record.steps if s.path == path]
    assert len(found) == 1, f"{path}: {[s.path for s in record.steps]}"
    return found[0]


async def test_a_choice_routes_and_tasks_answer_their_input_and_output():
    record = await record_of("flow-mapping-choice")
    assert record.status == ExecutionStatus.COMPLETED
    assert shape(record) == [
        ("task", "fetch", "COMPLETED"),
        ("choice", "route", "COMPLETED"),
        ("task", "yes", "COMPLETED"),
    ]
    assert at(record, "route").route == "yes"
    fetch = at(record, "fetch")
    assert (fetch.id, fetch.service, fetch.action, fetch.attempts) == ("fetch", "echo", "run", 1)
    assert fetch.input == {"url": "https://example.com/a", "project": "v"}
    assert fetch.output == {
        "echo": {"url": "https://example.com/a", "project": "v"},
        "action": "run",
    }
    assert fetch.error is None and fetch.route is None
    assert fetch.started_at is not None and fetch.completed_at is not None
    assert at(record, "yes").input == {"seen": "https://example.com/a"}


async def test_parallel_branches_by_index_after_their_summary():
    record = await record_of("flow-parallel")
    assert record.status == ExecutionStatus.COMPLETED
    assert record.result == [{"run": {}}, {"echo": {"side": "right"}, "action": "run"}]
    both = record.steps[0]
    assert (both.type, both.id, both.status, both.count) == ("parallel", "both", "COMPLETED", 2)
    assert both.branch is None
    branches = {s.id: s.branch for s in record.steps[1:]}
    assert branches == {"left": 0, "right": 1}
    assert all(s.status == "COMPLETED" for s in record.steps)
    assert at(record, "right").input == {"side": "right"}
    assert both.started_at is not None and both.completed_at is not None
    assert both.started_at <= min(s.started_at for s in record.steps[1:] if s.started_at)


async def test_a_fail_fast_parallel_fails_the_refused_branch_and_cancels_the_other():
    record = await record_of("flow-parallel-fail-fast")
    assert record.status == ExecutionStatus.FAILED
    assert shape(record)[0] == ("parallel", "both", "FAILED")
    refused, slow = at(record, "refused"), at(record, "slowpoke")
    assert (refused.status, refused.branch, refused.attempts) == ("FAILED", 1, 1)
    assert refused.error is not None
    assert refused.error["type"] == "ServiceRejected"
    assert refused.error["status_code"] == 404
    assert refused.error["step_id"] == "refused"
    assert "HTTP 404" in refused.error["message"]
    assert refused.route is None and refused.output is None
    assert (slow.status, slow.branch) == ("CANCELED", 0)
    assert record.error is not None and record.error.step_id == "refused"
    assert record.error.attempts == 1


async def test_map_iterations_by_index_with_their_routes_and_the_tolerated_failure():
    record = await record_of("flow-map")
    assert record.status == ExecutionStatus.COMPLETED
    summary = record.steps[0]
    assert (summary.type, summary.id, summary.status, summary.count) == (
        "map",
        "each",
        "COMPLETED",
        5,
    )
    assert summary.iteration is None
    iterations = [s for s in record.steps[1:]]
    assert sorted({s.iteration for s in iterations}) == [0, 1, 2, 3, 4]
    routes = {s.iteration: s.route for s in iterations if s.type == "choice"}
    assert routes == {0: "call", 1: "call", 2: "refused", 3: "call", 4: "call"}
    for index, item in enumerate(["a", "b", "bad", "c", "d"]):
        pick = at(record, f"each[{index}].pick")
        assert (pick.id, pick.iteration) == ("pick", index)
        if item == "bad":
            continue
        call = at(record, f"each[{index}].call")
        assert (call.status, call.input) == ("COMPLETED", {"item": item, "i": index})
        assert call.output == {"echo": {"item": item, "i": index}, "action": "run"}
    refused = at(record, "each[2].refused")
    assert (refused.status, refused.iteration) == ("FAILED", 2)
    assert refused.error is not None and refused.error["status_code"] == 404
    # In the order they ran: each choice just before the task it chose.
    paths = [s.path for s in record.steps]
    for index, task in enumerate(["call", "call", "refused", "call", "call"]):
        assert paths.index(f"each[{index}].{task}") == paths.index(f"each[{index}].pick") + 1
    started = [s.started_at for s in iterations if s.type == "task"]
    assert started == sorted(started)  # type: ignore[type-var]


async def test_a_wait_a_caught_failure_and_an_optional_one():
    record = await record_of("flow-wait-catch-optional")
    assert record.status == ExecutionStatus.COMPLETED
    assert shape(record) == [
        ("wait", "pause", "COMPLETED"),
        ("task", "call", "FAILED"),
        ("task", "fallback", "COMPLETED"),
        ("task", "maybe", "FAILED"),
        ("succeed", "done", "COMPLETED"),
    ]
    pause = at(record, "pause")
    assert pause.started_at is not None and pause.completed_at is not None
    assert (pause.completed_at - pause.started_at).total_seconds() >= 1
    call = at(record, "call")
    assert call.route == "fallback"
    assert call.error is not None and call.error["status_code"] == 404
    assert at(record, "fallback").input == {"why": "ServiceRejected"}
    maybe = at(record, "maybe")
    assert maybe.route is None
    assert maybe.error is not None and maybe.error["status_code"] == 409
    assert maybe.output == {"error": maybe.error}
    assert at(record, "done").output == record.result == {"error": maybe.error}


async def test_a_fail_step_ends_the_execution_with_its_error():
    record = await record_of("flow-fail")
    assert record.status == ExecutionStatus.FAILED
    assert shape(record) == [("task", "check", "COMPLETED"), ("fail", "stop", "FAILED")]
    stop = at(record, "stop")
    assert stop.error is not None and stop.error["type"] == "OrderRejected"
    assert record.error is not None and record.error.error_type == "OrderRejected"
    assert "n=3" in (stop.error["message"] or "")


async def test_a_loop_numbers_each_run_of_a_step():
    record = await record_of("flow-loop")
    assert record.status == ExecutionStatus.COMPLETED
    assert [(s.id, s.path, s.route) for s in record.steps] == [
        ("inc", "inc", None),
        ("more", "more", "inc"),
        ("inc", "inc#2", None),
        ("more", "more#2", "inc"),
        ("inc", "inc#3", None),
        ("more", "more#3", "end"),
        ("end", "end", None),
    ]
    assert [at(record, p).input for p in ("inc", "inc#2", "inc#3")] == [
        {"n": 1},
        {"n": 2},
        {"n": 3},
    ]
    assert at(record, "end").output == {"n": 3}


async def test_a_continued_loop_answers_its_latest_run_only():
    record = await record_of("flow-loop-continue-as-new")
    assert record.status == ExecutionStatus.COMPLETED
    tasks = [s for s in record.steps if s.type == "task"]
    assert [s.path for s in tasks] == ["inc"] + [f"inc#{n}" for n in range(2, 11)]
    assert [s.input for s in tasks] == [{"n": n} for n in range(251, 261)]
    assert record.steps[-2].route == "end"
    assert shape(record)[-1] == ("succeed", "end", "COMPLETED")


async def test_the_run_that_continued_as_new_routes_its_last_choice_to_the_next_run():
    record = await record_of("flow-loop-continue-as-new-first")
    assert len([s for s in record.steps if s.type == "task"]) == 250
    last = record.steps[-1]
    assert (last.type, last.path, last.route) == ("choice", "more#250", "inc")
    assert not any(s.type == "succeed" for s in record.steps)


async def test_a_map_over_500_items_answers_its_batches_as_child_workflows():
    record = await record_of("flow-map-children")
    assert record.status == ExecutionStatus.COMPLETED
    assert shape(record) == [
        ("map", "each", "COMPLETED"),
        ("workflow", "each/batch-0", "COMPLETED"),
        ("workflow", "each/batch-1", "COMPLETED"),
    ]
    assert record.steps[0].count == 501
    execution_id = WORKFLOW_IDS["flow-map-children"]
    first, second = record.steps[1:]
    assert first.child_execution_id == f"{execution_id}/each/batch-0"
    assert second.child_execution_id == f"{execution_id}/each/batch-1"
    assert second.input == [500]
    assert second.output == [{"echo": {"i": 500}, "action": "run"}]
    # 500 results are over the bound: answered truncated.
    assert first.output["truncated"] is True
    assert first.output["size"] > STEP_VALUE_LIMIT
    assert len(first.output["preview"].encode()) <= STEP_VALUE_LIMIT


async def test_a_map_batch_answers_its_iterations_by_their_global_index():
    record = await record_of("flow-map-children-batch")
    assert record.steps[0].count == 500
    tasks = record.steps[1:]
    assert [s.iteration for s in tasks] == list(range(500))
    assert tasks[-1].path == "each[499].call" and tasks[-1].input == {"i": 499}


async def test_a_workflow_step_is_its_child_workflow():
    record = await record_of("flow-workflow-step")
    assert record.status == ExecutionStatus.COMPLETED
    assert shape(record) == [("workflow", "sub", "COMPLETED")]
    sub = record.steps[0]
    assert sub.child_execution_id == f"{WORKFLOW_IDS['flow-workflow-step']}/sub"
    assert (sub.input, sub.output) == ({"x": 1}, {"echo": {"x": 1}, "action": "run"})
    assert (sub.service, sub.action) == ("", "")


async def test_the_child_a_chain_answers_as_a_chain():
    record = await record_of("flow-workflow-step-child")
    dumped = record.model_dump(mode="json")["steps"]
    assert [(s["id"], s["status"]) for s in dumped] == [("only", "COMPLETED")]
    assert set(dumped[0]) == {
        "id",
        "service",
        "action",
        "status",
        "attempts",
        "started_at",
        "completed_at",
        "last_error",
        "worker",
    }


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in HISTORIES.glob("flow-*.json")), ids=lambda n: n
)
async def test_every_flow_record_is_answerable_and_reads_the_same_twice(name: str):
    record = await record_of(name)
    again = await record_of(name)
    assert again == record
    answered = json.loads(record.model_dump_json())
    for step in answered["steps"]:
        assert step.get("type") in (
            None,  # a chain (the child of flow-workflow-step)
            "task",
            "choice",
            "parallel",
            "map",
            "wait",
            "workflow",
            "succeed",
            "fail",
        )
        assert set(step) >= {"id", "service", "action", "status", "attempts"}
        for value in (step.get("input"), step.get("output")):
            assert len(json.dumps(value).encode()) <= STEP_VALUE_LIMIT + 200


def test_bounded_values_keep_small_ones_and_truncate_large_ones():
    assert bounded(None) is None
    assert bounded({"a": 1}) == {"a": 1}
    large = {"text": "é" * 5000}
    cut = bounded(large)
    assert cut["truncated"] is True
    assert cut["size"] == len(json.dumps(large, ensure_ascii=False, separators=(",", ":")).encode())
    answered = json.dumps(cut, ensure_ascii=False, separators=(",", ":")).encode()
    assert STEP_VALUE_LIMIT - 8 <= len(answered) <= STEP_VALUE_LIMIT
    assert cut["preview"].startswith('{"text":"éé')
    quoted = bounded({"q": '"' * 5000})
    assert len(json.dumps(quoted, separators=(",", ":")).encode()) <= STEP_VALUE_LIMIT


@pytest.mark.parametrize(
    ("error_type", "status_code"),
    [
        ("ServiceRejected", 404),
        ("ServiceFailed", 503),
        ("ServiceTimeout", None),
        ("Timeout", None),
        ("ServiceUnreachable", None),
        ("OutboundRefused", None),
        ("InputSchemaViolation", None),
        ("OutputSchemaViolation", 200),
        ("InvalidResponse", None),
        ("Other", 302),
    ],
)
def test_the_record_matches_catches_as_the_interpreter_does(
    error_type: str, status_code: int | None
):
    failure = StepFailure(
        step_id="s",
        service="svc",
        action="act",
        error_type=error_type,
        message="m",
        status_code=status_code,
    )
    bound: dict[str, Any] = error_binding(failure)
    assert catch_names(bound) == error_names(failure)
