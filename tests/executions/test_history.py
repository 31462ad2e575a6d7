"""The execution record, built from histories recorded from the real engine
(tests/replay/histories/0.1.0; starts by name through `si:start` from 0.4.0), so a change
of the SDK's history layout shows here."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from definitions.contract import INVALID_START, LOAD_DEFINITION_ACTIVITY
from executions.history import build_record, local_activity_marker
from executions.models import STEP_VALUE_LIMIT, ExecutionPublic, ExecutionStatus

HISTORIES = Path(__file__).resolve().parents[1] / "replay" / "histories" / "0.1.0"
START_ACTIVITY_HISTORIES = HISTORIES.parent / "0.4.0"
"""Starts by name since the `si:start` activity (its first attempt of the entry step)."""


def recorded(name: str, histories: Path = HISTORIES) -> dict[str, Any]:
    return json.loads((histories / f"{name}.json").read_text())


async def record_of(
    name: str, history: dict[str, Any] | None = None, *, histories: Path = HISTORIES
) -> ExecutionPublic:
    text = json.dumps(history if history is not None else recorded(name, histories))
    events = WorkflowHistory.from_json(f"exec-{name}", text).events
    return await build_record(f"exec-{name}", events, None, converter=pydantic_data_converter)


def steps(record: ExecutionPublic) -> list[tuple[str, str, int]]:
    return [(s.id, s.status, s.attempts) for s in record.steps]


def json_payload(value: Any) -> dict[str, Any]:
    return {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(json.dumps(value).encode()).decode(),
    }


def payload_value(payload: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(payload["data"]))


def values(record: ExecutionPublic) -> list[tuple[str, Any, Any]]:
    return [(s.id, s.input, s.output) for s in record.steps]


async def test_local_activity_markers_give_each_step_its_attempts():
    record = await record_of("low-latency")
    assert record.status == ExecutionStatus.COMPLETED
    assert steps(record) == [("first", "COMPLETED", 1), ("second", "COMPLETED", 2)]
    assert record.result == {"text": "ok after 2 calls"}
    assert record.input == {"x": 1}
    # A marker records no input: each step's is what the chain's data gave it.
    first_output = {"echo": {"x": 1}, "action": "run"}
    assert values(record) == [
        ("first", {"x": 1}, first_output),
        ("second", {"x": 1, **first_output}, {"text": "ok after 2 calls"}),
    ]
    assert record.error is None
    assert record.closed_at is not None and record.closed_at >= record.started_at


async def test_the_marker_parser_reads_the_recorded_marker_layout():
    events = WorkflowHistory.from_json("x", json.dumps(recorded("low-latency"))).events
    markers = [await local_activity_marker(e, pydantic_data_converter) for e in events]
    found = [m for m in markers if m is not None]
    assert [(m.activity_id, m.attempt, m.failure is None) for m in found] == [
        ("first", 1, True),
        ("second", 2, True),
    ]
    assert all(m.activity_type.endswith(".run") and m.result for m in found)


async def test_an_sdk_started_execution_reads_its_definition_from_the_load_marker():
    record = await record_of("sdk-by-name")
    assert record.status == ExecutionStatus.COMPLETED
    assert record.workflow_name.startswith("document-sentiment")
    assert record.workflow_id is not None and record.workflow_version == 1
    assert steps(record) == [
        ("extract-text", "COMPLETED", 1),
        ("analyze-sentiment", "COMPLETED", 1),
    ]
    assert record.input == {"document_url": "https://example.com/document.pdf"}
    assert record.context == {}
    assert record.result == {"sentiment": "positive", "score": 1.0}


async def test_an_sdk_started_execution_keeps_its_context():
    record = await record_of("sdk-by-name-context")
    assert record.context == {"project_id": "456", "request_id": "req-sdk"}
    assert [s.status for s in record.steps] == ["COMPLETED", "COMPLETED"]


async def test_a_failed_load_marker_fails_the_execution_without_steps():
    record = await record_of("sdk-by-name-unknown")
    assert record.status == ExecutionStatus.FAILED
    assert record.steps == []
    assert record.error is not None
    assert record.error.error_type == "NotFoundError"
    assert "not found" in record.error.message


async def test_activity_events_give_a_retried_step_its_attempts():
    record = await record_of("retried-step")
    assert record.status == ExecutionStatus.COMPLETED
    assert steps(record) == [("only", "COMPLETED", 3)]
    assert record.steps[0].worker and record.steps[0].started_at is not None
    assert record.result == {"text": "ok after 3 calls"}
    assert values(record) == [("only", {"x": 1}, {"text": "ok after 3 calls"})]


async def test_a_refused_step_fails_the_execution_with_the_step_error():
    record = await record_of("failed-4xx")
    assert record.status == ExecutionStatus.FAILED
    assert steps(record) == [("only", "FAILED", 1)]
    assert record.steps[0].last_error and "HTTP 404" in record.steps[0].last_error
    assert values(record) == [("only", {}, None)]
    error = record.error
    assert error is not None
    assert (error.step_id, error.action, error.attempts) == ("only", "404", 1)
    assert error.error_type == "ServiceRejected"
    assert "HTTP 404" in error.message
    assert record.result is None


async def test_a_one_action_execution_has_one_step():
    record = await record_of("one-action")
    assert (record.kind, record.workflow_id, record.workflow_version) == ("action", None, None)
    assert steps(record) == [("run", "COMPLETED", 1)]
    assert record.input == {"text": "hello"}
    assert values(record) == [
        ("run", {"text": "hello"}, {"echo": {"text": "hello"}, "action": "run"})
    ]


async def test_an_execution_still_running_is_running_with_its_step_scheduled():
    record = await record_of("running-mid-step")
    assert record.status == ExecutionStatus.RUNNING
    assert record.closed_at is None
    assert steps(record) == [("first", "COMPLETED", 1), ("second", "SCHEDULED", 0)]
    first_output = {"echo": {"x": 1}, "action": "run"}
    # Scheduled: what it sends is known, what it answers not yet.
    assert values(record) == [
        ("first", {"x": 1}, first_output),
        ("second", {"x": 1, **first_output}, None),
    ]


def _failed_at_start(input_value: Any, failure_type: str, message: str) -> dict[str, Any]:
    """sdk-by-name-unknown with its input and closing failure replaced: how an execution
    the workflow fails at once (InvalidStart, NondeterminismError) is recorded."""
    history = recorded("sdk-by-name-unknown")
    events = [e for e in history["events"] if e["eventType"] != "EVENT_TYPE_MARKER_RECORDED"]
    started = events[0]["workflowExecutionStartedEventAttributes"]
    started["input"]["payloads"] = [json_payload(input_value)]
    failure = events[-1]["workflowExecutionFailedEventAttributes"]["failure"]
    failure["message"] = message
    failure["applicationFailureInfo"] = {"type": failure_type, "nonRetryable": True}
    return {"events": events}


@pytest.mark.parametrize("value", ["not-a-dict", [1, 2], 42, None])
async def test_an_input_that_is_no_object_is_answered_with_the_invalid_start_error(value):
    message = "the input must be a JSON object"
    record = await record_of("invalid", _failed_at_start(value, INVALID_START, message))
    assert record.status == ExecutionStatus.FAILED
    assert record.input == value
    assert record.error is not None
    assert record.error.error_type == INVALID_START
    assert message in record.error.message
    assert record.model_dump(mode="json")["input"] == value


async def test_unreadable_options_are_answered_with_default_context():
    history = _failed_at_start({"x": 1}, INVALID_START, "options are no object")
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]
    started["input"]["payloads"].append(json_payload("not-options"))
    record = await record_of("bad-options", history)
    assert (record.status, record.context) == (ExecutionStatus.FAILED, {})
    assert record.error is not None and record.error.error_type == INVALID_START


async def test_a_nondeterminism_failure_reads_back_as_failed_with_that_error():
    message = "[TMPRL1100] Nondeterminism error: activity type of scheduled event mismatch"
    record = await record_of(
        "nondeterminism", _failed_at_start({"x": 1}, "NondeterminismError", message)
    )
    assert record.status == ExecutionStatus.FAILED
    assert record.error is not None
    assert record.error.error_type == "NondeterminismError"
    assert "Nondeterminism" in record.error.message


def test_the_load_definition_activity_is_named_by_the_contract():
    text = (HISTORIES / "sdk-by-name.json").read_text()
    assert (
        LOAD_DEFINITION_ACTIVITY
        in base64.b64decode(
            json.loads(text)["events"][4]["markerRecordedEventAttributes"]["details"]["data"][
                "payloads"
            ][0]["data"]
        ).decode()
    )


async def test_chain_steps_answer_their_input_and_output_as_tasks_sent_and_answered_them():
    record = await record_of("sdk-by-name")
    extracted = record.steps[0].output
    assert extracted is not None and "text" in extracted
    assert values(record) == [
        ("extract-text", {"document_url": "https://example.com/document.pdf"}, extracted),
        ("analyze-sentiment", {"text": extracted["text"]}, record.result),
    ]
    dumped = record.model_dump(mode="json")["steps"][0]
    assert {"service", "action", "input", "output"} <= set(dumped)
    assert not {"type", "path", "error", "route"} & set(dumped)


async def test_a_chain_step_answers_a_large_output_truncated():
    history = recorded("retried-step")
    completed = next(
        e for e in history["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED"
    )
    large = {"text": "x" * (2 * STEP_VALUE_LIMIT)}
    completed["activityTaskCompletedEventAttributes"]["result"]["payloads"] = [json_payload(large)]
    record = await record_of("retried-step", history)
    assert record.result == {"text": "ok after 3 calls"}  # the execution's own, unbounded
    output = record.steps[0].output
    assert output["truncated"] is True and output["size"] > STEP_VALUE_LIMIT
    assert len(json.dumps(output, separators=(",", ":")).encode()) <= STEP_VALUE_LIMIT
    assert record.steps[0].input == {"x": 1}


async def test_the_entry_step_run_inside_si_start_answers_its_input_and_output():
    record = await record_of("sdk-by-name", histories=START_ACTIVITY_HISTORIES)
    assert steps(record) == [
        ("extract-text", "COMPLETED", 1),
        ("analyze-sentiment", "COMPLETED", 1),
    ]
    extracted = record.steps[0].output
    assert extracted is not None and "text" in extracted
    assert values(record) == [
        ("extract-text", {"document_url": "https://example.com/document.pdf"}, extracted),
        ("analyze-sentiment", {"text": extracted["text"]}, record.result),
    ]


async def test_the_entry_step_inside_si_start_sends_what_its_schema_takes_of_the_input():
    history = recorded("sdk-by-name", START_ACTIVITY_HISTORIES)
    scheduled = next(
        e for e in history["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    )
    payloads = scheduled["activityTaskScheduledEventAttributes"]["input"]["payloads"]
    call = payload_value(payloads[0])
    call["input"] = {**call["input"], "not-declared": 1}
    payloads[0] = json_payload(call)
    record = await record_of("sdk-by-name", history, histories=START_ACTIVITY_HISTORIES)
    assert record.steps[0].input == {"document_url": "https://example.com/document.pdf"}


async def test_an_entry_step_retried_after_si_start_answers_its_own_activity():
    record = await record_of("sdk-by-name-retried-first", histories=START_ACTIVITY_HISTORIES)
    assert steps(record) == [("only", "COMPLETED", 3)]
    assert values(record) == [("only", {"x": 1}, {"text": "ok after 3 calls"})]


async def test_a_local_entry_step_retried_after_si_start_counts_both_attempts():
    record = await record_of("sdk-by-name-low-latency", histories=START_ACTIVITY_HISTORIES)
    assert steps(record) == [("first", "COMPLETED", 2), ("second", "COMPLETED", 1)]
    first_output = {"text": "ok after 2 calls"}
    assert values(record) == [
        ("first", {"x": 1}, first_output),
        ("second", {"x": 1, **first_output}, record.result),
    ]


async def test_an_entry_step_refused_inside_si_start_answers_its_input_only():
    record = await record_of("sdk-by-name-4xx-first", histories=START_ACTIVITY_HISTORIES)
    assert steps(record) == [("only", "FAILED", 1)]
    assert values(record) == [("only", {"x": 1}, None)]
    assert record.error is not None and record.error.step_id == "only"
