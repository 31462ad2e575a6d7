"""The record of a flow's execution, built from histories recorded from the real engine
(tests/replay/histories/0.3.0/flow-*.json, and later groups' flows): the steps that ran,
map iterations and parallel branches by index, with their type, status, input and
output, error and route."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from definitions.contract import StepFailure
from definitions.json_values import bounded
from executions.history import build_record, catch_names
from executions.models import STEP_VALUE_LIMIT, ExecutionPublic, ExecutionStatus, StepState
from workflows.interpreter import error_binding, error_names

ALL_HISTORIES = Path(__file__).resolve().parents[1] / "replay" / "histories"
HISTORIES = ALL_HISTORIES / "0.3.0"
WORKFLOW_IDS: dict[str, str] = json.loads((HISTORIES / "workflow-ids.json").read_text())
FLOW_GROUPS = ("0.3.0", "0.3.1", "0.5.0")
"""The groups that recorded flows (0.5.0: a succeed in a branch or an iteration ends the
execution; a mocked workflow step; an invalid wait)."""


def workflow_id(name: str, group: str = "0.3.0") -> str:
    ids: dict[str, str] = json.loads((ALL_HISTORIES / group / "workflow-ids.json").read_text())
    return ids[name]


async def record_of(
    name: str, group: str = "0.3.0", *, history: dict[str, Any] | None = None
) -> ExecutionPublic:
    """The record of a recorded history (or of `history`, one made from it), under the
    workflow id it ran with (child workflow ids are made from it), as
    tests/replay/test_replay.py `load` reads it."""
    execution_id = workflow_id(name, group)
    text = (
        json.dumps(history)
        if history is not None
        else (ALL_HISTORIES / group / f"{name}.json").read_text()
    )
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
    route = at(record, "route")
    assert (route.route, route.service, route.action) == ("yes", None, None)
    assert not {"service", "action"} & set(route.model_dump(mode="json"))
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
    assert stop.error == {"type": "OrderRejected", "message": "n=3", "step_id": "stop"}
    assert (stop.service, stop.action) == (None, None)
    assert record.error is not None
    assert (record.error.error_type, record.error.message) == ("OrderRejected", "n=3")
    assert record.error.step_id == "stop"


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
    assert (sub.service, sub.action) == (None, None)
    assert not {"service", "action"} & set(sub.model_dump(mode="json"))


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
        "input",
        "output",
    }
    # The same values its parent's workflow step answers for it.
    parent = await record_of("flow-workflow-step")
    assert (dumped[0]["input"], dumped[0]["output"]) == (parent.steps[0].input, parent.result)


@pytest.mark.parametrize(
    ("group", "name"),
    [
        (group, p.stem)
        for group in FLOW_GROUPS
        for p in sorted((ALL_HISTORIES / group).glob("flow-*.json"))
    ],
    ids=lambda value: value,
)
async def test_every_flow_record_is_answerable_and_reads_the_same_twice(group: str, name: str):
    record = await record_of(name, group)
    again = await record_of(name, group)
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
        assert set(step) >= {"id", "status", "attempts"}
        # Only a task (or a chain's step) calls a service.
        calls = step.get("type") in (None, "task")
        assert {"service", "action"} & set(step) == ({"service", "action"} if calls else set())
        if step.get("error") is not None:
            assert step["error"]["step_id"] == step["id"]
        for value in (step.get("input"), step.get("output")):
            assert len(json.dumps(value).encode()) <= STEP_VALUE_LIMIT + 200


async def test_an_invalid_wait_fails_itself_and_the_execution_names_it():
    record = await record_of("flow-invalid-wait", "0.5.0")
    assert record.status == ExecutionStatus.FAILED
    assert shape(record) == [("wait", "w", "FAILED")]
    error = record.error
    assert error is not None
    assert (error.step_id, error.error_type) == ("w", "InvalidWait")
    assert at(record, "w").error == {
        "type": "InvalidWait",
        "message": error.message,
        "step_id": "w",
    }


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_a_step_that_failed_before_its_call_is_the_route_and_the_failed_step():
    """flow-mapping-choice cut after its choice, failed as the interpreter fails a task
    whose input expression fails: an ApplicationError naming the step in its details."""
    history = json.loads((HISTORIES / "flow-mapping-choice.json").read_text())
    events = history["events"][:10]
    details = {"step_id": "yes"}
    events.append(
        {
            "eventId": "11",
            "eventTime": events[-1]["eventTime"],
            "eventType": "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
            "workflowExecutionFailedEventAttributes": {
                "failure": {
                    "message": "step 'yes': the input expression failed: no such field",
                    "applicationFailureInfo": {
                        "type": "ExpressionFailed",
                        "nonRetryable": True,
                        "details": {
                            "payloads": [
                                {
                                    "metadata": {"encoding": _base64(b"json/plain")},
                                    "data": _base64(json.dumps(details).encode()),
                                }
                            ]
                        },
                    },
                },
                "workflowTaskCompletedEventId": "10",
            },
        }
    )
    record = await record_of("flow-mapping-choice", history={"events": events})
    assert record.status == ExecutionStatus.FAILED
    assert shape(record) == [
        ("task", "fetch", "COMPLETED"),
        ("choice", "route", "COMPLETED"),
        ("task", "yes", "FAILED"),
    ]
    assert at(record, "route").route == "yes"
    failed = at(record, "yes")
    assert (failed.service, failed.action, failed.attempts) == ("echo", "run", 0)
    assert failed.error == {
        "type": "ExpressionFailed",
        "message": "step 'yes': the input expression failed: no such field",
        "step_id": "yes",
    }
    assert record.error is not None and record.error.step_id == "yes"


async def test_a_mocked_workflow_step_answers_its_mock_and_starts_no_child():
    record = await record_of("flow-mocked-workflow-step", "0.5.0")
    assert record.status == ExecutionStatus.COMPLETED
    assert shape(record) == [("workflow", "sub", "COMPLETED"), ("task", "use", "COMPLETED")]
    sub = at(record, "sub")
    assert (sub.output, sub.child_execution_id, sub.service) == ({"v": 3}, None, None)
    assert at(record, "use").output == record.result == {"ok": True}


async def test_a_succeed_in_a_branch_withdraws_the_other_branch():
    record = await record_of("flow-succeed-in-branch", "0.5.0")
    assert record.status == ExecutionStatus.COMPLETED
    assert record.result == {"early": True}
    assert [(s.type, s.path, s.status, s.branch) for s in record.steps[1:]] == [
        ("task", "slow-one", "CANCELED", 0),
        ("task", "quick", "COMPLETED", 1),
        ("succeed", "done", "COMPLETED", 1),
    ]
    assert record.error is None


async def test_a_succeed_in_a_branch_completes_its_parallel_with_the_result():
    record = await record_of("flow-succeed-in-branch", "0.5.0")
    assert (at(record, "both").status, at(record, "both").count) == ("COMPLETED", 2)
    assert at(record, "done").output == record.result == {"early": True}


async def test_a_succeed_in_a_map_iteration_shows_that_iteration_and_counts_it():
    """The iteration that reached the succeed left no event (a choice, then the succeed):
    it is the one after the last that did, and the map counts the iterations started."""
    record = await record_of("flow-succeed-in-map", "0.5.0")
    assert record.status == ExecutionStatus.COMPLETED
    assert [(s.type, s.path, s.status) for s in record.steps] == [
        ("map", "each", "COMPLETED"),
        ("choice", "each[0].look", "COMPLETED"),
        ("task", "each[0].call", "COMPLETED"),
        ("choice", "each[1].look", "COMPLETED"),
        ("task", "each[1].call", "COMPLETED"),
        ("choice", "each[2].look", "COMPLETED"),
        ("succeed", "each[2].found", "COMPLETED"),
    ]
    assert at(record, "each").count == 3
    assert at(record, "each[2].look").route == "found"
    found = at(record, "each[2].found")
    assert (found.iteration, found.output) == (2, record.result)


async def test_a_succeed_in_a_map_batch_counts_the_items_of_the_batches_started():
    record = await record_of("flow-succeed-in-map-batch", "0.5.0")
    assert shape(record) == [
        ("map", "each", "COMPLETED"),
        ("workflow", "each/batch-0", "COMPLETED"),
        ("workflow", "each/batch-1", "COMPLETED"),
    ]
    assert record.steps[0].count == 500 + len(record.steps[2].input)
    batch = await record_of("flow-succeed-in-map-batch-batch", "0.5.0")
    assert shape(batch) == [
        ("map", "each", "COMPLETED"),
        ("choice", "each[500].look", "COMPLETED"),
        ("succeed", "each[500].found", "COMPLETED"),
    ]
    assert at(batch, "each[500].found").output == record.result == {"found": 500}


async def test_a_map_whose_items_failed_to_evaluate_fails_itself():
    record = await record_of("flow-map-too-large", "0.5.0")
    assert record.status == ExecutionStatus.FAILED
    assert shape(record) == [("map", "each", "FAILED")]
    each = at(record, "each")
    assert each.count == 0
    assert each.error is not None and each.error["type"] == "MapTooLarge"
    assert record.error is not None and record.error.step_id == "each"


async def test_a_task_input_stopped_by_a_limit_and_caught_fails_and_routes_to_the_catch():
    record = await record_of("flow-catch-expression-limit", "0.5.0")
    assert record.status == ExecutionStatus.COMPLETED
    assert shape(record) == [("task", "big", "FAILED"), ("task", "fallback", "COMPLETED")]
    big = at(record, "big")
    assert (big.route, big.attempts) == ("fallback", 0)
    assert big.error is not None and big.error["type"] == "ExpressionLimit"


async def test_a_failure_naming_no_step_fails_the_choice_the_execution_stopped_at():
    """flow-mapping-choice cut before its choice's route ran, failed as the worker fails
    an execution on a bug in workflow code: the exception's type, no details."""
    history = json.loads((HISTORIES / "flow-mapping-choice.json").read_text())
    events = history["events"][:10]
    events.append(
        {
            "eventId": "11",
            "eventTime": events[-1]["eventTime"],
            "eventType": "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
            "workflowExecutionFailedEventAttributes": {
                "failure": {
                    "message": "maximum recursion depth exceeded",
                    "applicationFailureInfo": {"type": "RecursionError"},
                },
                "workflowTaskCompletedEventId": "10",
            },
        }
    )
    record = await record_of("flow-mapping-choice", history={"events": events})
    assert shape(record) == [("task", "fetch", "COMPLETED"), ("choice", "route", "FAILED")]
    route = at(record, "route")
    assert route.route is None
    assert route.error is not None and route.error["type"] == "RecursionError"
    assert record.error is not None and record.error.step_id == "route"


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
